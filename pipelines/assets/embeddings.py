"""Offer embeddings for the shopping assistant's semantic search (table offer_embeddings).

The model is optional: when it is not installed (or ONECART_ASSISTANT_EMBEDDINGS=off) the asset
succeeds without embedding and says why, and the index stays keyword-only. The assistant package
is imported when the asset runs, not when the definitions load, so a code location without it
still loads.
"""

from typing import Any

import dagster as dg

from onecart import progress as progress_status
from onecart.settings import get_settings
from pipelines.resources import WarehouseResource

EMBEDDINGS_GROUP = "embeddings"


@dg.asset(deps=["normalized_products"], group_name=EMBEDDINGS_GROUP, kinds={"onnx", "duckdb"})
def offer_embeddings(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    """all-MiniLM-L6-v2 sentence embeddings (384 floats) of every current offer's title, brand,
    category and description start, cached in the warehouse by text hash: only new or changed
    texts are embedded, texts no offer uses any more are dropped. search_products sends them to
    Meilisearch in each document's `_vectors.default` (assistant.embedding_store
    .read_document_vectors)."""
    try:
        from assistant.config import get_assistant_settings
        from assistant.embedding_store import refresh_offer_embeddings
        from assistant.embeddings import load_offer_embedder, model_status
    except ImportError as exc:  # the assistant package is not installed with this location
        return _skipped(context, f"assistant package unavailable: {exc}")
    settings = get_assistant_settings()
    if not settings.embeddings_enabled:
        return _skipped(context, "switched off (ONECART_ASSISTANT_EMBEDDINGS=off)")

    def report(line: str) -> None:
        # The run's log (Dagster UI), stdout (an in-process run's terminal) and the status file
        # (`onecart status`) all say how far the embedding is.
        context.log.info(line)
        print(line, flush=True)
        progress_status.write_status(get_settings(), "embeddings", 0, 0, line)

    # The first load on a machine exports and quantizes the ONNX model (tens of seconds).
    report("offer embeddings: loading the model (the first time: preparing its int8 version)")
    try:
        embedder = load_offer_embedder(settings)
        if embedder is None:
            return _skipped(context, model_status(settings.model_package).reason)
        refresh = refresh_offer_embeddings(warehouse.connect, embedder, progress=report)
    finally:
        progress_status.clear_status(get_settings(), "embeddings")
    return dg.MaterializeResult(
        metadata={
            "skipped": "",
            "model": refresh.model_id,
            "dagster/row_count": refresh.distinct_texts,
            "offers": refresh.offers,
            "embedded": refresh.embedded,
            "reused": refresh.reused,
            "pruned": refresh.pruned,
            "embed_seconds": round(refresh.embed_seconds, 2),
            "offers_per_second": round(refresh.offers_per_second, 1),
        }
    )


def _skipped(context: dg.AssetExecutionContext, reason: str) -> dg.MaterializeResult:
    context.log.info(f"offer embeddings skipped: {reason}")
    metadata: dict[str, Any] = {"skipped": reason}
    return dg.MaterializeResult(metadata=metadata)

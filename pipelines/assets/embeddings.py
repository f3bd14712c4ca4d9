"""Offer embeddings for the shopping assistant's semantic search (table offer_embeddings).

The model is optional: when it is not installed (or ONECART_ASSISTANT_EMBEDDINGS=off) the asset
succeeds without embedding and says why, and the index stays keyword-only. The assistant package
is imported when the asset runs, not when the definitions load, so a code location without it
still loads.

The asset materializes only when the stored vectors changed (texts embedded or pruned). Otherwise
it records an observation saying why (switched off, no model, nothing new) and yields no output,
so Dagster skips `search_products` in the same run (offer_embeddings_job): re-syncing the index
after every refresh would cost a pass over every offer for vectors the index already has.
"""

import os
from collections.abc import Iterator
from typing import Any

import dagster as dg

from onecart import progress as progress_status
from onecart.settings import get_settings
from pipelines.embedding_lock import embeddings_lock_path, one_embeddings_run_at_a_time
from pipelines.resources import WarehouseResource

EMBEDDINGS_GROUP = "embeddings"
OFFER_EMBEDDINGS = dg.AssetKey("offer_embeddings")
# Why nothing is embedded while the assistant's settings switch embeddings off (`onecart ingest`
# says the same without starting a run).
SWITCHED_OFF = "switched off (ONECART_ASSISTANT_EMBEDDINGS=off)"


@dg.asset(
    deps=["normalized_products"],
    group_name=EMBEDDINGS_GROUP,
    kinds={"onnx", "duckdb"},
    output_required=False,
)
def offer_embeddings(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[dg.MaterializeResult]:
    """all-MiniLM-L6-v2 sentence embeddings (384 floats) of every current offer's title, brand,
    category and description start, cached in the warehouse by text hash: only new or changed
    texts are embedded, texts no offer uses any more are dropped. search_products sends them to
    Meilisearch in each document's `_vectors.default` (assistant.embedding_store
    .read_document_vectors). Materialized only when the vectors changed; a run that changed
    nothing (or could not embed) is recorded as an observation with the reason."""
    try:
        from assistant.config import get_assistant_settings
        from assistant.embedding_store import refresh_offer_embeddings
        from assistant.embeddings import load_offer_embedder, model_status
    except ImportError as exc:  # the assistant package is not installed with this location
        _skipped(context, f"assistant package unavailable: {exc}")
        return
    settings = get_assistant_settings()
    if not settings.embeddings_enabled:
        _skipped(context, SWITCHED_OFF)
        return

    def report(line: str) -> None:
        # The run's log (Dagster UI), stdout (an in-process run's terminal) and the status file
        # (`onecart status`) all say how far the embedding is.
        context.log.info(line)
        print(line, flush=True)
        progress_status.write_status(get_settings(), "embeddings", 0, 0, line)

    def waiting(holder: str) -> None:
        report(
            f"offer embeddings: waiting for the offer embeddings run {holder} to finish (one at "
            "a time); then only what it did not embed"
        )

    # However this run was launched (the run queue, `onecart ingest` in its own process), it
    # never embeds beside another one (pipelines/embedding_lock.py).
    try:
        with one_embeddings_run_at_a_time(
            embeddings_lock_path(warehouse.pipeline_db_path),
            f"{context.run.run_id} (pid {os.getpid()})",
            on_wait=waiting,
        ):
            # The first load on a machine exports and quantizes the ONNX model (tens of seconds).
            report(
                "offer embeddings: loading the model (the first time: preparing its int8 version)"
            )
            embedder = load_offer_embedder(settings)
            if embedder is None:
                _skipped(context, model_status(settings.model_package).reason)
                return
            refresh = refresh_offer_embeddings(warehouse.connect, embedder, progress=report)
    finally:
        # Also when the run was cancelled while it waited: status showed "waiting" for ever.
        progress_status.clear_status(get_settings(), "embeddings")
    metadata: dict[str, Any] = {
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
    if refresh.embedded or refresh.pruned:
        yield dg.MaterializeResult(metadata=metadata)
    else:
        context.log_event(dg.AssetObservation(asset_key=OFFER_EMBEDDINGS, metadata=metadata))


def _skipped(context: dg.AssetExecutionContext, reason: str) -> None:
    """Record why nothing was embedded (the asset then yields no output)."""
    context.log.info(f"offer embeddings skipped: {reason}")
    metadata: dict[str, Any] = {"skipped": reason}
    context.log_event(dg.AssetObservation(asset_key=OFFER_EMBEDDINGS, metadata=metadata))

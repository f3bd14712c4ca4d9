"""The assistant evaluation's index: built from the warehouse exactly as the pipeline's
search_products asset builds its documents, with the offers' vectors (embedded first where
missing), and read back whole for the judge."""

from __future__ import annotations

from typing import Any

import duckdb
import meilisearch

from assistant.config import AssistantSettings
from assistant.embedding_store import read_document_vectors, refresh_offer_embeddings
from assistant.embeddings import load_offer_embedder, model_status
from assistant.index_profile import forget_index_profiles
from commerce.fx import FxTable
from onecart.settings import Settings
from warehouse.fx_rates import RateTable


def prepare_index(
    settings: Settings,
    assistant_settings: AssistantSettings,
    client: meilisearch.Client,
    index_uid: str,
    *,
    progress: Any = print,
) -> FxTable:
    """Embed what is missing, then build the evaluation index from the warehouse exactly as the
    pipeline's search_products asset builds its documents, with vectors. Returns the FX table."""
    import warehouse
    from pipelines.search_sync import build_search_documents
    from search_index.indexing import sync_index
    from warehouse.derived import read_offer_frame

    db_path = settings.pipeline_db_path
    # The offers' model exactly as the pipeline loads it (ONECART_ASSISTANT_EMBED_BACKEND and
    # the rest), and only that model's vectors go into the index, whatever else is cached.
    embedder = load_offer_embedder(assistant_settings)
    if embedder is not None:
        refresh = refresh_offer_embeddings(
            lambda: warehouse.connect(db_path), embedder, progress=progress
        )
        progress(
            f"embeddings: {refresh.embedded} new, {refresh.reused} cached"
            + (f" ({refresh.offers_per_second:.0f} offers/s)" if refresh.embedded else "")
        )
    else:
        progress(f"embeddings: {model_status(assistant_settings.model_package).reason}")
    with warehouse.connect(db_path, read_only=True) as conn:
        offers = read_offer_frame(conn)
        rates = latest_warehouse_rates(conn)
        marketplaces = {
            slug: {"slug": slug, "name": name, "logo": logo}
            for slug, name, logo in conn.execute(
                "SELECT slug, name, logo FROM marketplaces"
            ).fetchall()
        }
        vectors = read_document_vectors(conn, embedder.model_id) if embedder is not None else None
    built = build_search_documents(offers, marketplaces=marketplaces, rates=rates.rates)
    result = sync_index(client, index_uid, built.documents, vectors=vectors, progress=progress)
    progress(
        f"{index_uid}: {len(built.documents)} documents "
        f"({'rebuilt' if result.rebuilt else 'incremental'}, sent {result.sent}), "
        f"{len(vectors or {})} with vectors"
    )
    forget_index_profiles()
    return warehouse_fx(rates)


def latest_warehouse_rates(conn: duckdb.DuckDBPyConnection) -> RateTable:
    """The warehouse's latest FX rates; SystemExit when it has none (no ingest yet)."""
    from warehouse.derived import read_latest_rates

    rates = read_latest_rates(conn)
    if rates is None:
        raise SystemExit("the warehouse has no FX rates: run `onecart ingest` first")
    return rates


def warehouse_fx(rates: RateTable) -> FxTable:
    """The run's FX table, from the warehouse's rates."""
    return FxTable(
        per_usd={c: r for c, r in rates.rates.items() if c != "USD"},
        as_of=rates.as_of,
        sources=("warehouse",),
    )


def read_warehouse_fx(settings: Settings) -> FxTable:
    """The FX table of the warehouse's latest rates, for a run on the index as it is."""
    import warehouse

    with warehouse.connect(settings.pipeline_db_path, read_only=True) as conn:
        return warehouse_fx(latest_warehouse_rates(conn))


def read_index_offers(client: meilisearch.Client, index_uid: str) -> list[dict[str, Any]]:
    """Every document of the index (without vectors), for the catalog map."""
    index = client.index(index_uid)
    documents: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = index.get_documents({"limit": 10_000, "offset": offset})
        documents.extend(dict(doc) for doc in page.results)
        offset += len(page.results)
        if not page.results or offset >= page.total:
            return documents

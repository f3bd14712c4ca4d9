"""An offers-index refresh that builds only the documents whose inputs changed.

Comparing every document's `doc_hash` with the index (search_index.indexing.sync_index) needs
every document built in Python first, which at a million offers costs far more than the refresh
itself once ~1% of prices moved. So the warehouse keeps, per offer, what the index was last sent
(table search_document_state): a hash of every input of its document, computed by DuckDB in one
pass (the offer's row but its fetch time, its group id and sizes, the prices of every offer of its
group, which set the group's cheapest price, and its price-change summary), and the document's
doc_hash. Inputs shared by every document (FX rates, marketplace names and logos, the index
declaration, the source of the document code) make one context hash (table
search_index_context).

A refresh then reads and builds only the offers whose input hash moved, sends those whose
doc_hash really changed, and deletes the offers that are gone. Hashing every offer's inputs (the
text of each row, md5) took most of a refresh at a million offers, so the state also keeps a
cheap change marker per offer (pipelines/search_records.py OFFER_MARKER_SQL: DuckDB's 64-bit
hash() of its row's content hash, the few columns that hash does not cover, and its matching)
and the group it was in, and how much of the append-only price_history it read
(search_history_read). Only the offers whose marker moved (new offers and rows written before
markers existed or under another marker included), the offers with price-history rows added since,
and every offer of the groups they are or were in (whose size, cheapest price and prices they
share), are hashed and compared; every other input of a document is covered by these, so the
others' input hashes cannot have moved. The comparison runs inside DuckDB under the search
builds' memory limit and the changed offers come back through a Parquet file, a batch at a time,
so a refresh's memory follows the number of changed offers, not the catalog. Everything else
falls back to the full comparison (and rewrites the state): a missing or differently declared
index, another context hash, embeddings (vectors change outside the offer rows), or an index
whose document count no longer matches the state (it was changed behind the pipeline's back).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import meilisearch
import polars as pl

from onecart.progress import counted_noun
from pipelines import search_sync
from pipelines.search_records import (
    CANDIDATE_INPUT_HASH_SQL,
    EMPTY_STATE,
    INPUT_HASH_SQL,
    OFFER_MARKER_SQL,
    STATE_COLUMNS,
    STATE_SCHEMA,
    History,
    context_hash,
    create_candidate_groups,
    held_context,
    read_history,
    stale_record_reason,
    state_rows,
    write_state,
)
from search_index.documents import DOCUMENT_HASH_FIELD, document_id
from search_index.indexing import (
    IndexSyncResult,
    apply_document_changes,
    has_embedder,
    pending_rebuild_reason,
    sync_index,
)

Connect = Callable[..., Any]


@dataclass(slots=True)
class OfferIndexSync:
    """What the offers-index refresh did (the asset's metadata)."""

    result: IndexSyncResult
    documents: int
    skipped: dict[str, str] = field(default_factory=dict)
    inactive_offers: int = 0
    mode: str = "full"  # "full" (every document built) or "changed" (changed inputs only)
    fallback_reason: str = ""
    built: int = 0


def sync_offer_index(
    connect: Connect,
    client: meilisearch.Client,
    index_uid: str,
    *,
    rates: Mapping[str, Decimal],
    marketplaces: Mapping[str, Mapping[str, Any]],
    active: list[str],
    vectors: Mapping[str, Any] | None,
    progress: Callable[[str], None],
    counted: list[str] | None = None,
) -> OfferIndexSync:
    """Make the offers index hold exactly the active offers' documents, building only those
    whose inputs changed when the state allows it (module docstring), else all of them.

    Each document's group fields (its group's size, marketplaces and cheapest price) count the
    offers of the `counted` marketplaces only (default: every active one): the marketplaces an
    admin disabled keep their offers in the index, but not in any group's counts. A change of
    `counted` changes the context hash, so every document is built and compared then."""
    counted = sorted(active if counted is None else set(counted) & set(active))
    build = _OfferBuild(
        index_uid=index_uid,
        rates=rates,
        marketplaces=marketplaces,
        active=active,
        counted=counted,
        shared=context_hash(rates, marketplaces, active, counted),
        progress=progress,
    )
    reason = _fallback_reason(connect, client, index_uid, build.shared, vectors)
    if reason is None:
        return _sync_changed(connect, client, build)
    progress(f"{index_uid}: building every document ({reason})")
    return _sync_all(connect, client, build, vectors=vectors, reason=reason)


@dataclass(frozen=True, slots=True)
class _OfferBuild:
    """What both ways of refreshing the offers index (every offer, or the changed ones) work
    from: the index, the marketplaces whose offers it holds (`active`) and those whose offers
    count in the groups' sizes and prices (`counted`), and the inputs every document depends on
    (their hash is `shared`, the context hash)."""

    index_uid: str
    rates: Mapping[str, Decimal]
    marketplaces: Mapping[str, Mapping[str, Any]]
    active: list[str]
    counted: list[str]
    shared: str
    progress: Callable[[str], None]

    def offer_documents(
        self, batch: pl.DataFrame, skipped: dict[str, str], groups: pl.DataFrame
    ) -> list[dict[str, Any]]:
        """The documents of one batch of exported offer rows, with their groups' fields from
        `groups` (search_sync.group_summaries over every offer that counts); offers that
        cannot become a document are noted in `skipped`."""
        return list(
            search_sync.iter_offer_documents(
                batch,
                marketplaces=self.marketplaces,
                rates=self.rates,
                skipped=skipped,
                groups=groups,
            )
        )


def _sync_all(
    connect: Connect,
    client: meilisearch.Client,
    build: _OfferBuild,
    *,
    vectors: Mapping[str, Any] | None,
    reason: str,
) -> OfferIndexSync:
    """Every active offer's document built and synced, streamed in batches from an export of
    the offer rows, so memory stays flat however large the catalog."""
    skipped: dict[str, str] = {}
    state_parts: list[pl.DataFrame] = []
    with search_sync.spill_directory(connect) as spill:
        exported = spill / "offers.parquet"
        # The markers are read on the export's connection, from the same snapshot of the rows
        # (joined into the export's query instead, they cost it half again).
        markers = spill / "markers.parquet"
        history: list[History] = []

        def read_markers(conn: duckdb.DuckDBPyConnection) -> None:
            conn.execute(
                f"COPY ({OFFER_MARKER_SQL}) TO {search_sync.sql_text(markers)} (FORMAT parquet)"
            )
            history.append(read_history(conn, build.index_uid)[1])

        inactive = search_sync.export_active_offers(
            connect, INPUT_HASH_SQL, exported, active=build.active, also=read_markers
        )
        groups = search_sync.exported_group_summaries(exported, build.rates, counted=build.counted)

        def documents() -> Iterator[dict[str, Any]]:
            for batch in search_sync.iter_row_batches(exported):
                built = build.offer_documents(batch.drop("input_hash"), skipped, groups)
                state_parts.append(state_rows(batch, built))
                yield from built

        result = sync_index(
            client, build.index_uid, documents(), progress=build.progress, vectors=vectors
        )
        rows = pl.concat(state_parts) if state_parts else EMPTY_STATE
        with connect() as conn:
            documents_held = write_state(
                conn,
                build.index_uid,
                rows,
                rows.clear(),
                replace_all=True,
                shared=build.shared,
                history=history[0],
                markers=markers,
            )
    return OfferIndexSync(
        result=result,
        documents=documents_held,
        skipped=skipped,
        inactive_offers=int(inactive),
        mode="full",
        fallback_reason=reason,
        built=rows.height,
    )


def _fallback_reason(
    connect: Connect,
    client: meilisearch.Client,
    index_uid: str,
    shared: str,
    vectors: Mapping[str, Any] | None,
) -> str | None:
    """Why every document must be built this time, or None."""
    if vectors is not None:
        return "embeddings travel with the documents"
    rebuild = pending_rebuild_reason(client, index_uid)
    if rebuild is not None:
        return rebuild
    if has_embedder(client, index_uid):
        # Every document must lose its vectors (and the index its embedder): sync_index does it.
        return "the index holds vectors the warehouse no longer has"
    with connect() as conn:
        held = held_context(conn, index_uid)
    return stale_record_reason(
        client,
        index_uid,
        held,
        shared,
        index="index",
        context="FX rates, marketplaces or the document code",
    )


def _export_changed_inputs(
    connect: Connect, index_uid: str, active: list[str], target: Path
) -> tuple[pl.DataFrame, int, History]:
    """Write the offers whose input hash may have moved (module docstring: those whose marker
    moved and every offer of the groups they are or were in) to the Parquet file `target`, with
    their input hash, marker and the input hash and doc_hash the state holds for them, ordered by
    id, inside DuckDB under the search builds' memory limit: read into Python, the whole offer
    frame and the state took the refresh to 3.5 GiB at a million offers. Returns the state rows
    of offers that are gone (no longer in products, or of an inactive marketplace), the count
    of offers of inactive marketplaces and what price_history holds (read_history).

    Offers of inactive marketplaces are written too (they have no state, so their marker always
    moved), and left out by the reader: a marketplace filter pushed into these queries ran out of
    DuckDB's memory limit at a million offers (search_sync.export_active_offers)."""
    uid = search_sync.sql_text(index_uid)
    with connect() as conn, search_sync.limited_memory(conn):
        conn.register("active_marketplaces", pl.DataFrame({"slug": active}).to_arrow())
        try:
            conn.execute(f"CREATE OR REPLACE TEMP TABLE offer_markers AS {OFFER_MARKER_SQL}")
            # Offers whose marker moved (c) and state rows that no longer match an offer's (s).
            conn.execute(
                "CREATE OR REPLACE TEMP TABLE marker_changes AS "
                "SELECT marketplace, external_id, c.row_marker IS NOT NULL AS is_offer, "
                "c.group_id AS group_now, s.group_id AS group_before "
                "FROM offer_markers AS c FULL JOIN "
                f"(SELECT * FROM search_document_state WHERE index_uid = {uid}) AS s "
                "USING (marketplace, external_id) "
                "WHERE c.row_marker IS DISTINCT FROM s.row_marker"
            )
            # Offers with new price-history rows: changed in their own document only, but their
            # groups are read with them (the candidates' groups must hold all of their offers).
            changed_history, history = read_history(conn, index_uid)
            conn.execute(
                "INSERT INTO marker_changes SELECT marketplace, external_id, true, group_id, "
                f"group_id FROM offer_markers SEMI JOIN ({changed_history}) AS h "
                "USING (marketplace, external_id)"
            )
            create_candidate_groups(conn, "marker_changes")
            conn.execute(
                "CREATE OR REPLACE TEMP TABLE candidate_offers AS "
                "SELECT marketplace, external_id FROM marker_changes WHERE is_offer "
                "UNION SELECT marketplace, external_id FROM offer_markers "
                "WHERE group_id IN (SELECT group_id FROM candidate_groups)"
            )
            conn.execute(
                "COPY (SELECT h.*, m.row_marker, s.input_hash AS held_input_hash, "
                f"s.doc_hash AS held_doc_hash FROM ({CANDIDATE_INPUT_HASH_SQL}) AS h "
                "JOIN offer_markers AS m USING (marketplace, external_id) "
                "LEFT JOIN search_document_state AS s "
                f"ON s.index_uid = {uid} "
                "AND s.marketplace = h.marketplace AND s.external_id = h.external_id "
                f"ORDER BY h.marketplace, h.external_id) TO {search_sync.sql_text(target)} "
                "(FORMAT parquet)"
            )
            gone = conn.sql(
                "SELECT s.marketplace, s.external_id, s.doc_hash FROM search_document_state AS s "
                "WHERE s.index_uid = $uid AND NOT EXISTS (SELECT 1 FROM products AS p "
                "WHERE p.marketplace = s.marketplace AND p.external_id = s.external_id "
                "AND p.marketplace IN (SELECT slug FROM active_marketplaces))",
                params={"uid": index_uid},
            ).pl()
            (inactive,) = conn.execute(
                "SELECT count(*) FROM products WHERE marketplace NOT IN "
                "(SELECT slug FROM active_marketplaces)"
            ).fetchall()[0]
        finally:
            conn.unregister("active_marketplaces")
            for table in (
                "offer_markers",
                "marker_changes",
                "candidate_groups",
                "candidate_offers",
            ):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
    return gone, int(inactive), history


def _sync_changed(
    connect: Connect, client: meilisearch.Client, build: _OfferBuild
) -> OfferIndexSync:
    """Build the documents of the offers whose inputs changed, in batches from an export of
    those offers, and send the ones whose doc_hash changed; delete the gone offers' documents."""
    skipped: dict[str, str] = {}
    state_parts: list[pl.DataFrame] = []
    built_count = 0
    is_active = pl.col("marketplace").is_in(build.active)
    with search_sync.spill_directory(connect) as spill:
        exported = spill / "changed_offers.parquet"
        gone, inactive, history = _export_changed_inputs(
            connect, build.index_uid, build.active, exported
        )
        # The candidates hold every offer of their groups: their summaries over them are the
        # groups' own.
        prices = (
            pl.scan_parquet(exported)
            .select("group_id", "marketplace", "price_minor", "currency", "available")
            .collect()
        )
        groups = search_sync.group_summaries(prices, build.rates, counted=build.counted)
        del prices
        # Offers that left, and offers that can no longer become a document, leave the index.
        delete = [
            document_id(slug, external_id)
            for slug, external_id, doc_hash in gone.iter_rows()
            if doc_hash is not None
        ]

        def changed_documents() -> Iterator[dict[str, Any]]:
            for batch in search_sync.iter_row_batches(exported):
                nonlocal built_count
                batch = batch.filter(is_active)
                moved = pl.col("input_hash").ne_missing(pl.col("held_input_hash"))
                # A candidate whose inputs did not move keeps its document; only its marker and
                # group are recorded.
                state_parts.append(
                    batch.filter(~moved)
                    .with_columns(pl.col("held_doc_hash").alias("doc_hash"))
                    .select(STATE_SCHEMA.names())
                )
                batch = batch.filter(moved)
                if batch.is_empty():
                    continue
                built_count += batch.height
                built = build.offer_documents(
                    batch.drop(*STATE_COLUMNS, "held_input_hash", "held_doc_hash"), skipped, groups
                )
                state_parts.append(state_rows(batch, built))
                held = dict(
                    zip(
                        (
                            document_id(slug, external_id)
                            for slug, external_id in batch.select(
                                "marketplace", "external_id"
                            ).iter_rows()
                        ),
                        batch.get_column("held_doc_hash").to_list(),
                        strict=True,
                    )
                )
                built_ids = {document["id"] for document in built}
                delete.extend(
                    key
                    for key, doc_hash in held.items()
                    if doc_hash is not None and key not in built_ids
                )
                # Inputs can move without the document moving (an offer's own fetch of an
                # unchanged page, a group's other offer changing a price above the cheapest):
                # only real changes are sent.
                yield from (d for d in built if held.get(d["id"]) != d[DOCUMENT_HASH_FIELD])

        result = apply_document_changes(
            client, build.index_uid, changed_documents(), delete, progress=build.progress
        )
    rows = pl.concat(state_parts) if state_parts else EMPTY_STATE
    build.progress(
        f"{build.index_uid}: {counted_noun(rows.height, 'offer')} whose rows or groups changed, "
        f"{built_count} with changed inputs, {counted_noun(result.sent, 'document')} changed, "
        f"{result.deleted} deleted"
    )
    with connect() as conn:
        documents = write_state(
            conn,
            build.index_uid,
            rows,
            gone,
            replace_all=False,
            shared=build.shared,
            history=history,
        )
    return OfferIndexSync(
        # What was sent and deleted, and the rest of the recorded documents as unchanged.
        result=replace(result, unchanged=documents - result.sent),
        documents=documents,
        skipped=skipped,
        inactive_offers=inactive,
        mode="changed",
        built=built_count,
    )

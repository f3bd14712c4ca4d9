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
cheap change marker per offer (OFFER_MARKER_SQL: DuckDB's 64-bit hash() of its products row but
fetched_at and its matching) and the group it was in, and how much of the append-only
price_history it read (search_history_read). Only the offers whose marker moved (new offers and
rows written before markers existed included), the offers with price-history rows added since,
and every offer of the groups they are or were in (whose size, cheapest price and prices they
share), are hashed and compared; every other input of a document is covered by these, so the
others' input hashes cannot have moved. The comparison runs inside DuckDB
under the search builds' memory limit and the changed offers come back through a Parquet file,
a batch at a time, so a refresh's memory follows the number of changed offers, not the catalog. Everything else falls back to the
full comparison (and rewrites the state): a missing or differently declared index, another
context hash, embeddings (vectors change outside the offer rows), or an index whose document
count no longer matches the state (it was changed behind the pipeline's back).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import meilisearch
import polars as pl

import search_index.documents
from pipelines import search_sync
from search_index.documents import DOCUMENT_HASH_FIELD, document_id
from search_index.indexing import (
    IndexSyncResult,
    apply_document_changes,
    document_count,
    pending_rebuild_reason,
    sync_index,
)
from warehouse.connection import transaction
from warehouse.derived import OFFER_EXPORT_SQL

Connect = Callable[..., Any]

# The offer frame (warehouse.derived.read_offer_frame) with each offer's input hash. fetched_at
# moves with every fetch and is not part of a document; everything else of the row is hashed,
# so a document field added later is covered without touching this query.
INPUT_HASH_ROWS_SQL = f"""
WITH offers AS ({OFFER_EXPORT_SQL}),
group_prices AS (
    SELECT group_id, md5(string_agg(
        CAST(ROW(marketplace, external_id, price_minor, currency, available) AS VARCHAR), ','
        ORDER BY marketplace, external_id)) AS group_prices_hash
    FROM offers WHERE group_id IS NOT NULL GROUP BY group_id
),
hashed AS (
    SELECT o.*, g.group_prices_hash FROM offers AS o LEFT JOIN group_prices AS g USING (group_id)
)
SELECT h.* EXCLUDE (group_prices_hash),
       md5(CAST(inputs AS VARCHAR)) AS input_hash
FROM hashed AS h, (SELECT h.* EXCLUDE (fetched_at)) AS inputs
"""
INPUT_HASH_SQL = f"{INPUT_HASH_ROWS_SQL}ORDER BY h.marketplace, h.external_id\n"

# Per offer: its group and a change marker of its products row but fetched_at (whatever columns
# it has) and its matching. The rest of its document's inputs is covered otherwise: its group's
# size, marketplaces and prices change only when an offer joins, leaves or changes in the group,
# whose marker then moves and makes every offer of the group a candidate; its price history only
# grows, and the offers of the rows added since the last sync are candidates (HISTORY_SQL).
# (Aggregating every offer's history and every group's size here took half of the query.)
# hash() is DuckDB's vectorized 64-bit hash: a missed change needs two different rows of one
# offer to collide (2^-64).
OFFER_MARKER_SQL = """
SELECT p.marketplace, p.external_id, g.group_id,
       hash(*COLUMNS(p.* EXCLUDE (fetched_at)), g.group_id, g.method, g.confidence) AS row_marker
FROM products AS p
LEFT JOIN product_groups AS g USING (marketplace, external_id)
"""
# price_history's rows before rowid $held (the ones the last sync read, appended first) and all
# of them: (rows, fingerprint) of each.
HISTORY_SQL = """
SELECT count(*) FILTER (WHERE rowid < $held),
       coalesce(sum(hash(*COLUMNS(*))::HUGEINT) FILTER (WHERE rowid < $held), 0),
       count(*), coalesce(sum(hash(*COLUMNS(*))::HUGEINT), 0)
FROM price_history
"""
# The input-hash rows of the offers in the temp table `candidate_offers` only, their groups being
# those of `candidate_groups` (which hold every offer of those groups): the tables the offer
# frame reads, shadowed by their rows that matter. Same columns and hashes as INPUT_HASH_SQL.
# The candidates' products rows are picked by rowid from a join of the keys alone: DuckDB then
# reads the other columns of the matching rows only (a semi join on the keys read every column
# of every offer: twice the time).
CANDIDATE_INPUT_HASH_SQL = f"""
WITH products AS (
    SELECT * FROM main.products WHERE rowid IN (
        SELECT rowid FROM main.products SEMI JOIN candidate_offers USING (marketplace, external_id)
    )
),
product_groups AS (
    SELECT * FROM main.product_groups
    WHERE group_id IN (SELECT group_id FROM candidate_groups)
),
price_history AS (
    SELECT * FROM main.price_history SEMI JOIN candidate_offers USING (marketplace, external_id)
)
SELECT * FROM ({INPUT_HASH_ROWS_SQL})
"""


_STATE_SCHEMA = pl.Schema(
    {
        "marketplace": pl.String,
        "external_id": pl.String,
        "input_hash": pl.String,
        "doc_hash": pl.String,
        "group_id": pl.String,
        "row_marker": pl.UInt64,
    }
)
_EMPTY_STATE = pl.DataFrame(schema=_STATE_SCHEMA)
# Exported beside the offer rows, never part of a document.
_STATE_COLUMNS = ("input_hash", "row_marker")


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


def context_hash(
    rates: Mapping[str, Decimal], marketplaces: Mapping[str, Mapping[str, Any]], active: list[str]
) -> str:
    """The hash of what every document shares, and of the code that builds documents."""
    code = inspect.getsource(search_index.documents) + inspect.getsource(search_sync)
    shared = json.dumps(
        {
            "rates": {code: str(rate) for code, rate in sorted(rates.items())},
            "marketplaces": {slug: dict(card) for slug, card in sorted(marketplaces.items())},
            "active": sorted(active),
            "code": hashlib.sha256(code.encode()).hexdigest(),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(shared.encode()).hexdigest()


# (rows, fingerprint) of price_history as a sync read it (table search_history_read).
History = tuple[int, int]


def read_history(conn: duckdb.DuckDBPyConnection, index_uid: str) -> tuple[str, History]:
    """The SQL of the offers with price-history rows the last sync of `index_uid` did not read
    (every offer with history when its rows are not a prefix of the table's any more, or there is
    no record), and what price_history holds now."""
    held = conn.execute(
        "SELECT history_rows, history_fingerprint FROM search_history_read WHERE index_uid = ?",
        [index_uid],
    ).fetchall()
    held_rows = int(held[0][0]) if held else 0
    prefix_rows, prefix_fingerprint, rows, fingerprint = conn.execute(
        HISTORY_SQL, {"held": held_rows}
    ).fetchall()[0]
    changed = "SELECT DISTINCT marketplace, external_id FROM price_history"
    if held and (int(prefix_rows), int(prefix_fingerprint)) == (held_rows, int(held[0][1])):
        changed += f" WHERE rowid >= {held_rows}"
    return changed, (int(rows), int(fingerprint))


def _state_rows(frame: pl.DataFrame, documents: list[dict[str, Any]]) -> pl.DataFrame:
    """The state rows (_STATE_SCHEMA) of the offers in `frame`, which were built into
    `documents`."""
    hashes = {document["id"]: document[DOCUMENT_HASH_FIELD] for document in documents}
    ids = [
        document_id(slug, external_id)
        for slug, external_id in frame.select("marketplace", "external_id").iter_rows()
    ]
    frame = frame.with_columns(pl.Series("doc_hash", [hashes.get(i) for i in ids], dtype=pl.String))
    if "row_marker" not in frame.columns:  # a full build's: _write_state reads them from a file
        frame = frame.with_columns(pl.lit(None, dtype=pl.UInt64).alias("row_marker"))
    return frame.select(_STATE_SCHEMA.names())


def _write_state(
    conn: duckdb.DuckDBPyConnection,
    index_uid: str,
    rows: pl.DataFrame,
    gone: pl.DataFrame,
    *,
    replace_all: bool,
    shared: str,
    history: History,
    markers: Path | None = None,
) -> int:
    """Record what the index now holds; returns its document count. `markers`: a Parquet file of
    OFFER_MARKER_SQL's rows, read from the snapshot the state's rows were built from, whose
    groups and markers the recorded offers take; `history`: what that snapshot's price_history
    held (read_history)."""
    conn.register("state_rows", rows.to_arrow())
    conn.register("gone_rows", gone.select("marketplace", "external_id").to_arrow())
    try:
        with transaction(conn):
            if replace_all:
                conn.execute("DELETE FROM search_document_state WHERE index_uid = ?", [index_uid])
            else:
                conn.execute(
                    "DELETE FROM search_document_state AS s WHERE index_uid = ? AND EXISTS ("
                    "SELECT 1 FROM gone_rows AS g WHERE g.marketplace = s.marketplace "
                    "AND g.external_id = s.external_id)",
                    [index_uid],
                )
            conn.execute(
                "INSERT INTO search_document_state "
                "(index_uid, marketplace, external_id, input_hash, doc_hash, group_id, row_marker) "
                "SELECT ?, marketplace, external_id, input_hash, doc_hash, group_id, row_marker "
                "FROM state_rows ON CONFLICT (index_uid, marketplace, external_id) DO UPDATE SET "
                "input_hash = excluded.input_hash, doc_hash = excluded.doc_hash, "
                "group_id = excluded.group_id, row_marker = excluded.row_marker",
                [index_uid],
            )
            if markers is not None:
                conn.execute(
                    "UPDATE search_document_state AS s SET group_id = m.group_id, "
                    f"row_marker = m.row_marker FROM read_parquet({search_sync.sql_text(markers)}) "
                    "AS m WHERE s.index_uid = ? AND s.marketplace = m.marketplace "
                    "AND s.external_id = m.external_id",
                    [index_uid],
                )
            (documents,) = conn.execute(
                "SELECT count(doc_hash) FROM search_document_state WHERE index_uid = ?",
                [index_uid],
            ).fetchall()[0]
            record_index_context(conn, index_uid, shared, int(documents))
            conn.execute(
                "INSERT OR REPLACE INTO search_history_read "
                "(index_uid, history_rows, history_fingerprint) VALUES (?, ?, ?)",
                [index_uid, *history],
            )
    finally:
        conn.unregister("state_rows")
        conn.unregister("gone_rows")
    return int(documents)


def held_context(conn: duckdb.DuckDBPyConnection, index_uid: str) -> tuple[str, int] | None:
    """(context hash, document count) recorded by the index's last sync, or None."""
    rows = conn.execute(
        "SELECT context_hash, documents FROM search_index_context WHERE index_uid = ?", [index_uid]
    ).fetchall()
    return (str(rows[0][0]), int(rows[0][1])) if rows else None


def record_index_context(
    conn: duckdb.DuckDBPyConnection, index_uid: str, context: str, documents: int
) -> None:
    """Remember what the index was built from and how many documents it holds (inside the
    caller's transaction, with the per-document state)."""
    conn.execute(
        "INSERT INTO search_index_context (index_uid, context_hash, documents, synced_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT (index_uid) DO UPDATE SET "
        "context_hash = excluded.context_hash, documents = excluded.documents, "
        "synced_at = excluded.synced_at",
        [index_uid, context, documents, datetime.now(UTC)],
    )


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
) -> OfferIndexSync:
    """Make the offers index hold exactly the active offers' documents, building only those
    whose inputs changed when the state allows it (module docstring), else all of them."""
    shared = context_hash(rates, marketplaces, active)
    reason = _fallback_reason(connect, client, index_uid, shared, vectors)
    if reason is None:
        return _sync_changed(
            connect, client, index_uid, rates, marketplaces, active, shared, progress
        )
    progress(f"{index_uid}: building every document ({reason})")
    return _sync_all(
        connect,
        client,
        index_uid,
        rates=rates,
        marketplaces=marketplaces,
        active=active,
        vectors=vectors,
        shared=shared,
        reason=reason,
        progress=progress,
    )


def _sync_all(
    connect: Connect,
    client: meilisearch.Client,
    index_uid: str,
    *,
    rates: Mapping[str, Decimal],
    marketplaces: Mapping[str, Mapping[str, Any]],
    active: list[str],
    vectors: Mapping[str, Any] | None,
    shared: str,
    reason: str,
    progress: Callable[[str], None],
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
            history.append(read_history(conn, index_uid)[1])

        group_min, inactive = search_sync.export_active_offers(
            connect, INPUT_HASH_SQL, exported, active=active, rates=rates, also=read_markers
        )

        def documents() -> Iterator[dict[str, Any]]:
            for batch in search_sync.iter_row_batches(exported):
                built = list(
                    search_sync.iter_offer_documents(
                        batch.drop("input_hash"),
                        marketplaces=marketplaces,
                        rates=rates,
                        skipped=skipped,
                        group_min=group_min,
                    )
                )
                state_parts.append(_state_rows(batch, built))
                yield from built

        result = sync_index(client, index_uid, documents(), progress=progress, vectors=vectors)
        rows = pl.concat(state_parts) if state_parts else _EMPTY_STATE
        with connect() as conn:
            documents_held = _write_state(
                conn,
                index_uid,
                rows,
                rows.clear(),
                replace_all=True,
                shared=shared,
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
    with connect() as conn:
        held = held_context(conn, index_uid)
    if held is None:
        return "no record of what the index was sent"
    if held[0] != shared:
        return "FX rates, marketplaces or the document code changed"
    indexed = document_count(client, index_uid)
    if indexed != held[1]:
        return f"the index holds {indexed} documents, the pipeline sent {held[1]}"
    return None


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
            conn.execute(
                "CREATE OR REPLACE TEMP TABLE candidate_groups AS "
                "SELECT group_now AS group_id FROM marker_changes WHERE group_now IS NOT NULL "
                "UNION SELECT group_before FROM marker_changes WHERE group_before IS NOT NULL"
            )
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
    connect: Connect,
    client: meilisearch.Client,
    index_uid: str,
    rates: Mapping[str, Decimal],
    marketplaces: Mapping[str, Mapping[str, Any]],
    active: list[str],
    shared: str,
    progress: Callable[[str], None],
) -> OfferIndexSync:
    """Build the documents of the offers whose inputs changed, in batches from an export of
    those offers, and send the ones whose doc_hash changed; delete the gone offers' documents."""
    skipped: dict[str, str] = {}
    state_parts: list[pl.DataFrame] = []
    built_count = 0
    is_active = pl.col("marketplace").is_in(active)
    with search_sync.spill_directory(connect) as spill:
        exported = spill / "changed_offers.parquet"
        gone, inactive, history = _export_changed_inputs(connect, index_uid, active, exported)
        # The candidates hold every offer of their groups: the cheapest price per group over
        # them is the group's own.
        prices = (
            pl.scan_parquet(exported)
            .filter(is_active)
            .select("group_id", "price_minor", "currency", "available")
            .collect()
        )
        group_min = search_sync.cheapest_usd_per_group(prices, rates)
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
                    .select(_STATE_SCHEMA.names())
                )
                batch = batch.filter(moved)
                if batch.is_empty():
                    continue
                built_count += batch.height
                built = list(
                    search_sync.iter_offer_documents(
                        batch.drop(*_STATE_COLUMNS, "held_input_hash", "held_doc_hash"),
                        marketplaces=marketplaces,
                        rates=rates,
                        skipped=skipped,
                        group_min=group_min,
                    )
                )
                state_parts.append(_state_rows(batch, built))
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
            client, index_uid, changed_documents(), delete, progress=progress
        )
    rows = pl.concat(state_parts) if state_parts else _EMPTY_STATE
    progress(
        f"{index_uid}: {rows.height} offers whose rows or groups changed, {built_count} with "
        f"changed inputs, {result.sent} documents changed, {result.deleted} deleted"
    )
    with connect() as conn:
        documents = _write_state(
            conn, index_uid, rows, gone, replace_all=False, shared=shared, history=history
        )
    return OfferIndexSync(
        result=IndexSyncResult(
            sent=result.sent,
            deleted=result.deleted,
            unchanged=documents - result.sent,
            rebuilt=False,
            task_uids=result.task_uids,
        ),
        documents=documents,
        skipped=skipped,
        inactive_offers=inactive,
        mode="changed",
        built=built_count,
    )

"""What the warehouse keeps of what the offers index was sent (pipelines/search_state.py syncs
it): the SQL of each offer's input hash and change marker, the per-offer state rows
(search_document_state), what price_history held (search_history_read) and the context hash of
what every document shares (search_index_context).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import meilisearch
import polars as pl

import search_index.documents
from onecart.progress import counted_noun
from pipelines import search_sync
from search_index.documents import DOCUMENT_HASH_FIELD, document_id
from search_index.indexing import document_count
from warehouse.connection import transaction
from warehouse.derived import OFFER_EXPORT_SQL
from warehouse.offers import CONTENT_FIELDS, PRODUCTS_SCHEMA

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

# Per offer: its group and a change marker of its products row but fetched_at and its matching.
# The normalizer fingerprints every content field of a row (content_hash, warehouse.offers
# CONTENT_FIELDS) and moves updated_at with it, so the marker hashes content_hash and the columns
# it does not cover, not the row's text: hashing every column (descriptions, titles, URLs) of
# every offer was most of this pass (0.8 s at 200k offers). A column added to products is marked
# either way: in CONTENT_FIELDS through content_hash, else here. So whatever writes products rows
# must store the content_hash of their content, as warehouse.normalize computes it (every writer
# of the pipeline stores the normalizer's rows; tests that edit rows rehash them).
# The rest of the document's inputs is covered otherwise: its group's size, marketplaces and
# prices change only when an offer joins, leaves or changes in the group, whose marker then moves
# and makes every offer of the group a candidate; its price history only grows, and the offers of
# the rows added since the last sync are candidates (HISTORY_SQL). (Aggregating every offer's
# history and every group's size here took half of the query.) hash() is DuckDB's vectorized
# 64-bit hash: a missed change needs two different rows of one offer to collide (2^-64).
MARKED_PRODUCT_COLUMNS = tuple(
    name
    for name in PRODUCTS_SCHEMA.names()
    if name not in CONTENT_FIELDS and name not in ("marketplace", "external_id", "fetched_at")
)
OFFER_MARKER_SQL = f"""
SELECT p.marketplace, p.external_id, g.group_id,
       hash({", ".join(f"p.{name}" for name in MARKED_PRODUCT_COLUMNS)},
            g.group_id, g.method, g.confidence) AS row_marker
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


STATE_SCHEMA = pl.Schema(
    {
        "marketplace": pl.String,
        "external_id": pl.String,
        "input_hash": pl.String,
        "doc_hash": pl.String,
        "group_id": pl.String,
        "row_marker": pl.UInt64,
    }
)
EMPTY_STATE = pl.DataFrame(schema=STATE_SCHEMA)
# Exported beside the offer rows, never part of a document.
STATE_COLUMNS = ("input_hash", "row_marker")


def context_hash(
    rates: Mapping[str, Decimal],
    marketplaces: Mapping[str, Mapping[str, Any]],
    active: list[str],
    counted: list[str] | None = None,
) -> str:
    """The hash of what every document shares (the marketplaces whose offers are indexed and
    those whose offers count in the groups among them), and of the code that builds
    documents."""
    code = inspect.getsource(search_index.documents) + inspect.getsource(search_sync)
    shared = json.dumps(
        {
            "rates": {code: str(rate) for code, rate in sorted(rates.items())},
            "marketplaces": {slug: dict(card) for slug, card in sorted(marketplaces.items())},
            "active": sorted(active),
            "counted": sorted(active if counted is None else counted),
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


def state_rows(frame: pl.DataFrame, documents: list[dict[str, Any]]) -> pl.DataFrame:
    """The state rows (STATE_SCHEMA) of the offers in `frame`, which were built into
    `documents`."""
    hashes = {document["id"]: document[DOCUMENT_HASH_FIELD] for document in documents}
    ids = [
        document_id(slug, external_id)
        for slug, external_id in frame.select("marketplace", "external_id").iter_rows()
    ]
    frame = frame.with_columns(pl.Series("doc_hash", [hashes.get(i) for i in ids], dtype=pl.String))
    if "row_marker" not in frame.columns:  # a full build's: write_state reads them from a file
        frame = frame.with_columns(pl.lit(None, dtype=pl.UInt64).alias("row_marker"))
    return frame.select(STATE_SCHEMA.names())


def write_state(
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


def stale_record_reason(
    client: meilisearch.Client,
    index_uid: str,
    held: tuple[str, int] | None,
    shared: str,
    *,
    index: str,
    context: str,
) -> str | None:
    """Why the record of what an index was last sent (`held`, held_context) cannot tell which
    documents changed, so that every document must be built and compared, or None: the offers
    and the product index (pipelines/group_search_state.py) both refresh from such a record.
    `index` names the index and `context` what its context hash covers, in the reason."""
    if not held:
        return f"no record of what the {index} was sent"
    if held[0] != shared:
        return f"{context} changed"
    indexed = document_count(client, index_uid)
    if indexed != held[1]:
        return f"the {index} holds {counted_noun(indexed, 'document')}, the pipeline sent {held[1]}"
    return None


def create_candidate_groups(conn: duckdb.DuckDBPyConnection, changes: str) -> None:
    """The temp table `candidate_groups`: every group an entry of the temp table `changes`
    (group_now, group_before: a document whose marker moved) is or was in. Both indexes read
    those groups again whole: an offer document carries its group's size and cheapest price,
    a product document is its group's offers."""
    conn.execute(
        "CREATE OR REPLACE TEMP TABLE candidate_groups AS "
        f"SELECT group_now AS group_id FROM {changes} WHERE group_now IS NOT NULL "
        f"UNION SELECT group_before FROM {changes} WHERE group_before IS NOT NULL"
    )


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

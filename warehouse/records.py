"""Skipping what did not change, record by record: a refresh stores and normalizes only payloads
the warehouse did not hold.

Every raw record is staged with the SHA-256 of its payload (warehouse.offers.record_hash). A
payload the warehouse held once and the marketplace sends once is the same record wherever it now
sits: its raw_catalog row stays and only moves to its new page and position
(:func:`load_changed_records`).
Every other payload (new, gone, or repeated on either side) is replaced. Normalization then reads
only the records whose payload no offer or rejection was read from (:func:`records_to_read`),
swaps in their offers and rejections (warehouse.record_changes) and moves every other row to
where its record now sits (:func:`place_unchanged_records`): positions and fetch times end up as
a full run records them, and the tables are the ones a full normalization gives
(tests/pipelines/test_incremental.py compares them).

Duplicate external ids tie records together (the first record in catalog order naming an id claims
it, whether it became an offer or was quarantined, and moves change that order), so when anything
changed every record of an id held more than once is read again, and the records read widen until
no id they hold, or held, belongs to a record left alone (:func:`records_tied_to`). Identical payloads
repeated in the catalog are read again too: their hash alone does not tell them apart.

Every statement is set-based and joins on the small changed set; the moves are one UPDATE of
narrow columns (page, record_index, fetched_at, run_id) that DuckDB applies in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from warehouse.catalog import FULL_RAW_LOAD_MEMORY_LIMIT, RAW_COLUMNS, RAW_LOAD_MEMORY_LIMIT
from warehouse.connection import transaction
from warehouse.gtin_claims import UNCLAIMED_READS_SQL, write_gtin_claims
from warehouse.offers import REASON_DUPLICATE, NormalizedCatalog

HASH_SCHEMA = pl.Schema({"payload_hash": pl.String})
# Temporary tables of a raw load (per connection, dropped at the end).
_RAW_LOAD_TABLES = ("staged_keys", "kept_hashes", "incoming", "staged_sources")


def hash_frame(hashes: Sequence[str]) -> pl.DataFrame:
    return pl.DataFrame({"payload_hash": list(hashes)}, schema=HASH_SCHEMA)


def held_payload_hashes(conn: duckdb.DuckDBPyConnection, marketplace: str) -> set[str] | None:
    """The payload hashes of the marketplace's raw records, for staging only what is new; None
    when it holds none, or holds rows stored before payload hashes existed (the next load then
    stores every record again)."""
    (held, unhashed) = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE payload_hash IS NULL) FROM raw_catalog "
        "WHERE marketplace = ?",
        [marketplace],
    ).fetchall()[0]
    if not held or unhashed:
        return None
    rows = conn.execute(
        "SELECT DISTINCT payload_hash FROM raw_catalog WHERE marketplace = ?", [marketplace]
    ).fetchall()
    return {digest for (digest,) in rows}


def held_sources(
    conn: duckdb.DuckDBPyConnection, marketplace: str, held_hashes: AbstractSet[str]
) -> dict[str, str]:
    """Source digest -> payload hash of the marketplace's records whose payload the warehouse
    holds (`held_hashes`), for an adapter that skips parsing what it has seen (raw_sources)."""
    rows = conn.execute(
        "SELECT source_digest, payload_hash FROM raw_sources WHERE marketplace = ?", [marketplace]
    ).fetchall()
    return {source: digest for source, digest in rows if digest in held_hashes}


def load_changed_records(
    conn: duckdb.DuckDBPyConnection,
    marketplace: str,
    staging_path: Path,
    page_hashes: dict[int, tuple[str, int, datetime]],
    *,
    replace_all: bool,
) -> tuple[int, list[int], int]:
    """Bring the marketplace's raw_catalog rows to the staged catalog; return (raw rows held,
    pages changed or gone, records stored).

    With `replace_all` (a full refresh, a first fetch, or rows without payload hashes) every row
    is replaced and the staging must hold every payload. Otherwise a payload held once and
    fetched once keeps its row, moved to its new place and fetch; every other held row goes and
    every other fetched record is stored, its payload from the staging file or, when the
    warehouse already held it (a payload repeated now or before), from raw_catalog.
    `page_hashes` maps every fetched page to (content hash, record count, fetch time).
    """
    held_pages = dict(
        conn.execute(
            "SELECT page, content_hash FROM raw_pages WHERE marketplace = ?", [marketplace]
        ).fetchall()
    )
    changed = sorted(
        page for page, (digest, _, _) in page_hashes.items() if held_pages.get(page) != digest
    )
    gone = sorted(p for p in held_pages if p not in page_hashes and held_pages[p] is not None)
    (previous_limit,) = conn.execute("SELECT current_setting('memory_limit')").fetchall()[0]
    conn.execute(
        "SET memory_limit = ?",
        [FULL_RAW_LOAD_MEMORY_LIMIT if replace_all else RAW_LOAD_MEMORY_LIMIT],
    )
    conn.register(
        "fetched_pages",
        pl.DataFrame(
            [(page, *facts) for page, facts in page_hashes.items()],
            schema={
                "page": pl.Int32,
                "content_hash": pl.String,
                "records": pl.Int32,
                "fetched_at": pl.Datetime("us", "UTC"),
            },
            orient="row",
        ).to_arrow(),
    )
    try:
        with transaction(conn):
            if replace_all:
                stored = _replace_every_record(conn, marketplace, staging_path)
            else:
                stored = _replace_changed_records(conn, marketplace, staging_path)
            _keep_staged_sources(conn, marketplace, staging_path)
            # Pages fetched: new hash (normalized_hash stays: the catalog changed where they
            # differ). Pages gone: content_hash NULL until normalization has seen it.
            conn.execute(
                "INSERT INTO raw_pages (marketplace, page, records, content_hash, fetched_at) "
                "SELECT ?, page, records, content_hash, fetched_at FROM fetched_pages "
                "ON CONFLICT (marketplace, page) DO UPDATE SET records = excluded.records, "
                "content_hash = excluded.content_hash, fetched_at = excluded.fetched_at",
                [marketplace],
            )
            conn.execute(
                "UPDATE raw_pages SET content_hash = NULL, records = 0 WHERE marketplace = ? "
                "AND content_hash IS NOT NULL AND page NOT IN (SELECT page FROM fetched_pages)",
                [marketplace],
            )
            if replace_all:
                conn.execute(
                    "UPDATE raw_pages SET normalized_hash = NULL WHERE marketplace = ?",
                    [marketplace],
                )
        conn.execute("CHECKPOINT")
    finally:
        conn.unregister("fetched_pages")
        for name in _RAW_LOAD_TABLES:
            conn.execute(f"DROP TABLE IF EXISTS temp.{name}")
        if previous_limit is not None:
            conn.execute("SET memory_limit = ?", [previous_limit])
    (count,) = conn.execute(
        "SELECT count(*) FROM raw_catalog WHERE marketplace = ?", [marketplace]
    ).fetchall()[0]
    return int(count), sorted({*changed, *gone}), stored


def _keep_staged_sources(
    conn: duckdb.DuckDBPyConnection, marketplace: str, staging_path: Path
) -> None:
    """raw_sources: the staged records' sources (none where the adapter says none). A digest
    names one payload, so only digests gone and new are written (deleting and inserting all
    33k rows of a 200k-offer feed, with a key, cost its refresh 0.4 s more load CPU)."""
    conn.execute(
        "CREATE TEMP TABLE staged_sources AS SELECT DISTINCT source_digest, payload_hash "
        "FROM read_parquet(?) WHERE source_digest IS NOT NULL",
        [str(staging_path)],
    )
    conn.execute(
        "DELETE FROM raw_sources AS r WHERE r.marketplace = ? AND NOT EXISTS "
        "(SELECT 1 FROM staged_sources AS s WHERE s.source_digest = r.source_digest)",
        [marketplace],
    )
    conn.execute(
        "INSERT INTO raw_sources (marketplace, source_digest, payload_hash) "
        "SELECT ?, s.source_digest, s.payload_hash FROM staged_sources AS s WHERE NOT EXISTS "
        "(SELECT 1 FROM raw_sources AS r WHERE r.marketplace = ? "
        "AND r.source_digest = s.source_digest)",
        [marketplace, marketplace],
    )


def _replace_every_record(
    conn: duckdb.DuckDBPyConnection, marketplace: str, staging_path: Path
) -> int:
    conn.execute("DELETE FROM raw_catalog WHERE marketplace = ?", [marketplace])
    # A record staged without its payload would fail raw_catalog's NOT NULL here: a full load
    # needs a staging written without held hashes. DuckDB's own Parquet reader, not an Arrow
    # dataset: the dataset's batches sit outside DuckDB's memory limit, and a load of 150k
    # records peaked at 1.65 GiB through it at 1GB (0.64 GiB this way at 512MB, in less time).
    (stored,) = conn.execute(
        f"INSERT INTO raw_catalog ({RAW_COLUMNS}) SELECT {RAW_COLUMNS} FROM read_parquet(?) "
        "WHERE marketplace = ?",
        [str(staging_path), marketplace],
    ).fetchall()[0]
    return int(stored)


def _replace_changed_records(
    conn: duckdb.DuckDBPyConnection, marketplace: str, staging_path: Path
) -> int:
    # DuckDB's own Parquet reader: a third of the CPU of scanning the Arrow dataset (twice here).
    staged = "read_parquet(?)"
    # The staged positions, without the payloads (Parquet reads only these columns).
    conn.execute(
        "CREATE TEMP TABLE staged_keys AS SELECT page, record_index, payload_hash, fetched_at, "
        f"run_id FROM {staged}",
        [str(staging_path)],
    )
    # Payloads held once and fetched once: the same record, at most moved.
    conn.execute(
        """
        CREATE TEMP TABLE kept_hashes AS
        SELECT payload_hash FROM staged_keys GROUP BY payload_hash HAVING count(*) = 1
        INTERSECT
        SELECT payload_hash FROM raw_catalog WHERE marketplace = ?
            GROUP BY payload_hash HAVING count(*) = 1
        """,
        [marketplace],
    )
    conn.execute(
        f"CREATE TEMP TABLE incoming AS SELECT {RAW_COLUMNS} FROM {staged} "
        "WHERE payload_hash NOT IN (SELECT payload_hash FROM kept_hashes)",
        [str(staging_path)],
    )
    (unstaged,) = conn.execute("SELECT count(*) FROM incoming WHERE payload IS NULL").fetchall()[0]
    if unstaged:
        # Payloads repeated now or before: staged without their text, which the warehouse holds.
        conn.execute(
            "UPDATE incoming AS i SET payload = r.payload FROM ("
            "SELECT payload_hash, any_value(payload) AS payload FROM raw_catalog "
            "WHERE marketplace = ? AND payload_hash IN "
            "(SELECT payload_hash FROM incoming WHERE payload IS NULL) GROUP BY payload_hash"
            ") AS r WHERE i.payload IS NULL AND i.payload_hash = r.payload_hash",
            [marketplace],
        )
        (lost,) = conn.execute("SELECT count(*) FROM incoming WHERE payload IS NULL").fetchall()[0]
        if lost:
            raise RuntimeError(
                f"{marketplace}: {lost} records were staged without their payload, which the "
                "warehouse no longer holds (changed during the fetch?); run again with "
                "full_refresh"
            )
    conn.execute(
        "DELETE FROM raw_catalog WHERE marketplace = ? "
        "AND payload_hash NOT IN (SELECT payload_hash FROM kept_hashes)",
        [marketplace],
    )
    conn.execute(
        "UPDATE raw_catalog AS r SET page = s.page, record_index = s.record_index, "
        "fetched_at = s.fetched_at, run_id = s.run_id "
        "FROM (SELECT * FROM staged_keys "
        "WHERE payload_hash IN (SELECT payload_hash FROM kept_hashes)) AS s "
        "WHERE r.marketplace = ? AND r.payload_hash = s.payload_hash "
        "AND (r.page <> s.page OR r.record_index <> s.record_index "
        "OR r.fetched_at <> s.fetched_at OR r.run_id <> s.run_id)",
        [marketplace],
    )
    conn.execute(f"INSERT INTO raw_catalog ({RAW_COLUMNS}) SELECT {RAW_COLUMNS} FROM incoming")
    (stored,) = conn.execute("SELECT count(*) FROM incoming").fetchall()[0]
    return int(stored)


def catalog_changed(conn: duckdb.DuckDBPyConnection, marketplace: str) -> bool:
    """True when a page was fetched with other records, or other positions, or is gone, since
    the last normalization saw it."""
    (count,) = conn.execute(
        "SELECT count(*) FROM raw_pages WHERE marketplace = ? "
        "AND content_hash IS DISTINCT FROM normalized_hash",
        [marketplace],
    ).fetchall()[0]
    return bool(count)


def can_normalize_incrementally(conn: duckdb.DuckDBPyConnection, marketplace: str) -> bool:
    """True once a normalization recorded which payload every offer and rejection of the
    marketplace was read from, and each such payload's GTIN claim."""
    sources, products, unhashed = conn.execute(
        f"""
        SELECT
            (SELECT count(*) FROM product_sources WHERE marketplace = $m),
            (SELECT count(*) FROM products WHERE marketplace = $m),
            (SELECT count(*) FROM product_sources WHERE marketplace = $m AND payload_hash IS NULL)
            + (SELECT count(*) FROM rejected_products
               WHERE marketplace = $m AND payload_hash IS NULL)
            + (SELECT count(*) FROM raw_catalog WHERE marketplace = $m AND payload_hash IS NULL)
            + {UNCLAIMED_READS_SQL}
        """,
        {"m": marketplace},
    ).fetchall()[0]
    return bool(sources) and sources == products and not unhashed


def records_to_read(conn: duckdb.DuckDBPyConnection, marketplace: str) -> list[str]:
    """Payload hashes to normalize again: payloads no offer or rejection was read from, payloads
    read before and gone now, payloads repeated on either side, and every record of an external
    id held more than once. Every raw record read gives exactly one offer or rejection, so what
    was read is product_sources and rejected_products."""
    rows = conn.execute(
        """
        WITH raw AS (
            SELECT payload_hash, count(*) AS copies FROM raw_catalog WHERE marketplace = $m
            GROUP BY payload_hash
        ),
        read_before AS (
            SELECT payload_hash, count(*) AS copies FROM (
                SELECT payload_hash FROM product_sources WHERE marketplace = $m
                UNION ALL
                SELECT payload_hash FROM rejected_products WHERE marketplace = $m
            ) GROUP BY payload_hash
        ),
        repeated_ids AS (
            SELECT DISTINCT external_id FROM rejected_products
            WHERE marketplace = $m AND reason = $duplicate
        )
        SELECT payload_hash FROM raw FULL OUTER JOIN read_before AS b USING (payload_hash)
            WHERE raw.copies IS DISTINCT FROM 1 OR b.copies IS DISTINCT FROM 1
        UNION
        SELECT payload_hash FROM product_sources
            WHERE marketplace = $m AND external_id IN (SELECT external_id FROM repeated_ids)
        UNION
        SELECT payload_hash FROM rejected_products
            WHERE marketplace = $m AND external_id IN (SELECT external_id FROM repeated_ids)
        UNION
        SELECT payload_hash FROM rejected_products
            WHERE marketplace = $m AND reason = $duplicate
        ORDER BY payload_hash
        """,
        {"m": marketplace, "duplicate": REASON_DUPLICATE},
    ).fetchall()
    return [digest for (digest,) in rows]


def records_tied_to(
    conn: duckdb.DuckDBPyConnection,
    marketplace: str,
    hashes: Sequence[str],
    ids: Sequence[str],
) -> list[str]:
    """Payload hashes outside `hashes` whose offer or rejection names one of `ids` or an id the
    records of `hashes` held before: re-reading `hashes` alone could change which record claims
    it (a quarantined record claims the id it names too)."""
    conn.register("read_hashes", hash_frame(hashes).to_arrow())
    conn.register(
        "read_ids",
        pl.DataFrame({"external_id": list(ids)}, schema={"external_id": pl.String}).to_arrow(),
    )
    try:
        rows = conn.execute(
            """
            WITH held AS (
                SELECT payload_hash, external_id FROM product_sources WHERE marketplace = $m
                UNION ALL
                SELECT payload_hash, external_id FROM rejected_products
                    WHERE marketplace = $m AND external_id IS NOT NULL
            ),
            touched AS (
                SELECT external_id FROM read_ids
                UNION
                SELECT external_id FROM held SEMI JOIN read_hashes USING (payload_hash)
            )
            SELECT DISTINCT payload_hash FROM held SEMI JOIN touched USING (external_id)
            WHERE payload_hash NOT IN (SELECT payload_hash FROM read_hashes)
            ORDER BY payload_hash
            """,
            {"m": marketplace},
        ).fetchall()
    finally:
        conn.unregister("read_hashes")
        conn.unregister("read_ids")
    return [digest for (digest,) in rows]


def sources_frame(catalog: NormalizedCatalog) -> pl.DataFrame:
    if catalog.sources is not None:
        return catalog.sources
    return pl.DataFrame(
        schema={
            "external_id": pl.String,
            "page": pl.Int32,
            "record_index": pl.Int32,
            "payload_hash": pl.String,
        }
    )


def write_sources(
    conn: duckdb.DuckDBPyConnection, marketplace: str, catalog: NormalizedCatalog
) -> None:
    """After a full normalization: every offer's source record, and every payload's GTIN
    claim."""
    conn.register("staged_sources", sources_frame(catalog).to_arrow())
    try:
        with transaction(conn):
            conn.execute("DELETE FROM product_sources WHERE marketplace = ?", [marketplace])
            conn.execute(
                "INSERT INTO product_sources "
                "(marketplace, external_id, page, record_index, payload_hash) "
                "SELECT ?, external_id, page, record_index, payload_hash FROM staged_sources",
                [marketplace],
            )
            write_gtin_claims(conn, marketplace, catalog)
    finally:
        conn.unregister("staged_sources")


def place_unchanged_records(
    conn: duckdb.DuckDBPyConnection,
    marketplace: str,
    *,
    run_id: str,
    now: datetime,
    moved: bool,
) -> None:
    """What a full run would record of the records left alone: the page and position their
    payload now sits at (`moved`: only when the catalog changed, see catalog_changed), the
    fetch time of that page for offers, and this run for rejections (a full run rejects them
    again). Only rows whose value differs are written."""
    if moved:
        # Payloads held once: those read again were just written where they sit.
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE placed AS SELECT payload_hash, "
            "any_value(page) AS page, any_value(record_index) AS record_index "
            "FROM raw_catalog WHERE marketplace = ? GROUP BY payload_hash HAVING count(*) = 1",
            [marketplace],
        )
        try:
            for table in ("product_sources", "rejected_products"):
                conn.execute(
                    f"UPDATE {table} AS t SET page = p.page, record_index = p.record_index "
                    "FROM placed AS p WHERE t.marketplace = ? AND t.payload_hash = p.payload_hash "
                    "AND (t.page IS DISTINCT FROM p.page "
                    "OR t.record_index IS DISTINCT FROM p.record_index)",
                    [marketplace],
                )
        finally:
            conn.execute("DROP TABLE IF EXISTS temp.placed")
    conn.execute(
        "UPDATE rejected_products SET rejected_at = ?, run_id = ? WHERE marketplace = ? "
        "AND run_id <> ?",
        [now, run_id, marketplace, run_id],
    )
    conn.execute(
        "UPDATE products AS p SET fetched_at = r.fetched_at FROM product_sources AS s, raw_pages AS r "
        "WHERE p.marketplace = ? AND s.marketplace = p.marketplace AND s.external_id = p.external_id "
        "AND r.marketplace = s.marketplace AND r.page = s.page AND p.fetched_at <> r.fetched_at",
        [marketplace],
    )


def mark_pages_normalized(conn: duckdb.DuckDBPyConnection, marketplace: str) -> None:
    """Every page as the normalization just saw it; pages gone from the catalog are forgotten."""
    conn.execute(
        "DELETE FROM raw_pages WHERE marketplace = ? AND content_hash IS NULL", [marketplace]
    )
    conn.execute(
        "UPDATE raw_pages SET normalized_hash = content_hash WHERE marketplace = ? "
        "AND normalized_hash IS DISTINCT FROM content_hash",
        [marketplace],
    )

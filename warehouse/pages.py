"""Skipping what did not change: catalog pages by content hash, offers by the page they came from.

A fetch stages every page with the SHA-256 of its records (warehouse.catalog.stage_raw_catalog).
:func:`load_changed_pages` then replaces only the pages whose hash moved in raw_catalog and
records them in raw_pages; normalization re-reads only those pages (:func:`pages_to_normalize`),
and :func:`apply_page_changes` swaps in their offers and rejections, leaving every other
marketplace row as it was. The result is the same tables a full normalization gives
(tests/pipelines/test_incremental.py compares them).

Duplicate external ids tie pages together (the first occurrence in catalog order wins), so the
pages to re-read are widened until no id they hold or held also appears on a page left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as pa_dataset

from warehouse.catalog import (
    INSERT_NEW_PRODUCTS_SQL,
    RAW_COLUMNS,
    RAW_LOAD_MEMORY_LIMIT,
    RAW_STAGING_SCHEMA,
    REJECTED_COLUMNS,
    UPDATE_PRODUCTS_SQL,
)
from warehouse.connection import transaction
from warehouse.offers import REASON_DUPLICATE, NormalizedCatalog

PAGE_SCHEMA = pl.Schema({"page": pl.Int32})


def _page_frame(pages: Sequence[int]) -> pl.DataFrame:
    return pl.DataFrame({"page": list(pages)}, schema=PAGE_SCHEMA)


def load_changed_pages(
    conn: duckdb.DuckDBPyConnection,
    marketplace: str,
    staging_path: Path,
    page_hashes: dict[int, tuple[str, int, datetime]],
    *,
    full_refresh: bool = False,
) -> tuple[int, list[int]]:
    """Replace the raw_catalog rows of the pages whose content hash changed (all of them with
    `full_refresh`, or the first time); return (raw rows held, pages changed or gone).

    `page_hashes` maps every fetched page to (content hash, record count, fetch time).
    """
    held = dict(
        conn.execute(
            "SELECT page, content_hash FROM raw_pages WHERE marketplace = ?", [marketplace]
        ).fetchall()
    )
    if full_refresh or not held:
        changed = sorted(page_hashes)
        gone = sorted(page for page in held if page not in page_hashes)
        replace_all = True
    else:
        changed = sorted(p for p, (digest, _, _) in page_hashes.items() if held.get(p) != digest)
        gone = sorted(p for p in held if p not in page_hashes and held[p] is not None)
        replace_all = False
    staged = pa_dataset.dataset(staging_path, format="parquet", schema=RAW_STAGING_SCHEMA)
    (previous_limit,) = conn.execute("SELECT current_setting('memory_limit')").fetchall()[0]
    conn.execute("SET memory_limit = ?", [RAW_LOAD_MEMORY_LIMIT])
    conn.register("staged_raw", staged)
    conn.register("changed_pages", _page_frame([*changed, *gone]).to_arrow())
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
                conn.execute("DELETE FROM raw_catalog WHERE marketplace = ?", [marketplace])
            else:
                conn.execute(
                    "DELETE FROM raw_catalog WHERE marketplace = ? "
                    "AND page IN (SELECT page FROM changed_pages)",
                    [marketplace],
                )
            conn.execute(
                f"INSERT INTO raw_catalog ({RAW_COLUMNS}) SELECT {RAW_COLUMNS} FROM staged_raw "
                "WHERE marketplace = ? AND page IN (SELECT page FROM changed_pages)",
                [marketplace],
            )
            # Pages fetched: new hash (normalized_hash stays: the page is re-read when they
            # differ). Pages gone: content_hash NULL until normalization has dropped their rows.
            conn.execute(
                "INSERT INTO raw_pages (marketplace, page, records, content_hash, fetched_at) "
                "SELECT ?, page, records, content_hash, fetched_at FROM fetched_pages "
                "ON CONFLICT (marketplace, page) DO UPDATE SET records = excluded.records, "
                "content_hash = excluded.content_hash, fetched_at = excluded.fetched_at",
                [marketplace],
            )
            conn.execute(
                "UPDATE raw_pages SET content_hash = NULL, records = 0 WHERE marketplace = ? "
                "AND page NOT IN (SELECT page FROM fetched_pages)",
                [marketplace],
            )
            if replace_all:
                conn.execute(
                    "UPDATE raw_pages SET normalized_hash = NULL WHERE marketplace = ?",
                    [marketplace],
                )
        conn.execute("CHECKPOINT")
    finally:
        for name in ("staged_raw", "changed_pages", "fetched_pages"):
            conn.unregister(name)
        if previous_limit is not None:
            conn.execute("SET memory_limit = ?", [previous_limit])
    (count,) = conn.execute(
        "SELECT count(*) FROM raw_catalog WHERE marketplace = ?", [marketplace]
    ).fetchall()[0]
    return int(count), sorted({*changed, *gone})


def dirty_pages(conn: duckdb.DuckDBPyConnection, marketplace: str) -> list[int]:
    """Pages fetched (or gone) since the last normalization read them."""
    rows = conn.execute(
        "SELECT page FROM raw_pages WHERE marketplace = ? "
        "AND content_hash IS DISTINCT FROM normalized_hash ORDER BY page",
        [marketplace],
    ).fetchall()
    return [page for (page,) in rows]


def can_normalize_incrementally(conn: duckdb.DuckDBPyConnection, marketplace: str) -> bool:
    """True once a normalization recorded where the marketplace's offers come from."""
    (sources,) = conn.execute(
        "SELECT count(*) FROM product_sources WHERE marketplace = ?", [marketplace]
    ).fetchall()[0]
    (products,) = conn.execute(
        "SELECT count(*) FROM products WHERE marketplace = ?", [marketplace]
    ).fetchall()[0]
    return bool(sources) and sources == products


def pages_tied_to(
    conn: duckdb.DuckDBPyConnection, marketplace: str, pages: Sequence[int], ids: Sequence[str]
) -> list[int]:
    """Pages outside `pages` holding an offer, or a duplicate, of one of `ids` or of an id the
    pages held before: re-reading `pages` alone could change which occurrence wins there."""
    conn.register("read_pages", _page_frame(pages).to_arrow())
    conn.register(
        "read_ids",
        pl.DataFrame({"external_id": list(ids)}, schema={"external_id": pl.String}).to_arrow(),
    )
    try:
        rows = conn.execute(
            """
            WITH touched AS (
                SELECT external_id FROM read_ids
                UNION SELECT external_id FROM product_sources
                    WHERE marketplace = $m AND page IN (SELECT page FROM read_pages)
                UNION SELECT external_id FROM rejected_products
                    WHERE marketplace = $m AND reason = $duplicate
                      AND page IN (SELECT page FROM read_pages)
            )
            SELECT DISTINCT page FROM (
                SELECT page, external_id FROM product_sources WHERE marketplace = $m
                UNION ALL
                SELECT page, external_id FROM rejected_products
                    WHERE marketplace = $m AND reason = $duplicate
            ) AS held
            WHERE page NOT IN (SELECT page FROM read_pages)
              AND external_id IN (SELECT external_id FROM touched)
            ORDER BY page
            """,
            {"m": marketplace, "duplicate": REASON_DUPLICATE},
        ).fetchall()
    finally:
        conn.unregister("read_pages")
        conn.unregister("read_ids")
    return [page for (page,) in rows]


def write_sources(
    conn: duckdb.DuckDBPyConnection, marketplace: str, catalog: NormalizedCatalog
) -> None:
    """After a full normalization: every offer's source and every page marked as read."""
    sources = catalog.sources if catalog.sources is not None else pl.DataFrame()
    conn.register("staged_sources", sources.to_arrow())
    try:
        with transaction(conn):
            conn.execute("DELETE FROM product_sources WHERE marketplace = ?", [marketplace])
            conn.execute(
                "INSERT INTO product_sources (marketplace, external_id, page, record_index) "
                "SELECT ?, external_id, page, record_index FROM staged_sources",
                [marketplace],
            )
            conn.execute(
                "DELETE FROM raw_pages WHERE marketplace = ? AND content_hash IS NULL",
                [marketplace],
            )
            conn.execute(
                "UPDATE raw_pages SET normalized_hash = content_hash WHERE marketplace = ?",
                [marketplace],
            )
    finally:
        conn.unregister("staged_sources")


def apply_page_changes(
    conn: duckdb.DuckDBPyConnection,
    marketplace: str,
    catalog: NormalizedCatalog,
    *,
    run_id: str,
    loaded_at: datetime,
) -> tuple[int, int]:
    """Swap in the offers and rejections of the pages `catalog` read; every other row of the
    marketplace stays. Logs the load; returns (products, removed offers)."""
    pages = list(catalog.pages or ())
    conn.register("staged_products", catalog.products.to_arrow())
    conn.register("staged_rejected", catalog.rejected.to_arrow())
    conn.register(
        "staged_sources",
        (catalog.sources if catalog.sources is not None else pl.DataFrame()).to_arrow(),
    )
    conn.register("read_pages", _page_frame(pages).to_arrow())
    try:
        with transaction(conn):
            (removed,) = conn.execute(
                "SELECT count(*) FROM product_sources WHERE marketplace = ? "
                "AND page IN (SELECT page FROM read_pages) "
                "AND external_id NOT IN (SELECT external_id FROM staged_products)",
                [marketplace],
            ).fetchall()[0]
            conn.execute(
                "DELETE FROM products WHERE marketplace = ? AND external_id IN ("
                "SELECT external_id FROM product_sources WHERE marketplace = ? "
                "AND page IN (SELECT page FROM read_pages)) "
                "AND external_id NOT IN (SELECT external_id FROM staged_products)",
                [marketplace, marketplace],
            )
            conn.execute(UPDATE_PRODUCTS_SQL)
            conn.execute(INSERT_NEW_PRODUCTS_SQL)
            conn.execute(
                "DELETE FROM rejected_products WHERE marketplace = ? "
                "AND page IN (SELECT page FROM read_pages)",
                [marketplace],
            )
            conn.execute(
                f"INSERT INTO rejected_products ({REJECTED_COLUMNS}) "
                f"SELECT {REJECTED_COLUMNS} FROM staged_rejected"
            )
            conn.execute(
                "DELETE FROM product_sources WHERE marketplace = ? "
                "AND page IN (SELECT page FROM read_pages)",
                [marketplace],
            )
            conn.execute(
                "INSERT INTO product_sources (marketplace, external_id, page, record_index) "
                "SELECT ?, external_id, page, record_index FROM staged_sources",
                [marketplace],
            )
            conn.execute(
                "DELETE FROM raw_pages WHERE marketplace = ? AND content_hash IS NULL "
                "AND page IN (SELECT page FROM read_pages)",
                [marketplace],
            )
            conn.execute(
                "UPDATE raw_pages SET normalized_hash = content_hash WHERE marketplace = ? "
                "AND page IN (SELECT page FROM read_pages)",
                [marketplace],
            )
            totals = conn.execute(
                """
                SELECT
                    (SELECT count(*) FROM products WHERE marketplace = $m),
                    (SELECT count(*) FROM rejected_products WHERE marketplace = $m),
                    (SELECT coalesce(sum(records), 0) FROM raw_pages WHERE marketplace = $m),
                    (SELECT sha256(coalesce(string_agg(external_id || ':' || content_hash,
                                                      chr(10) ORDER BY external_id || ':' || content_hash), ''))
                     FROM products WHERE marketplace = $m)
                """,
                {"m": marketplace},
            ).fetchall()[0]
            products, rejected, raw_records, fingerprint = totals
            conn.execute(
                "INSERT INTO catalog_loads (marketplace, run_id, loaded_at, raw_records, products, "
                "rejected, gtin_claimed, gtin_invalid, new_offers, changed_offers, removed_offers, "
                "content_fingerprint, pages_read) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    marketplace,
                    run_id,
                    loaded_at,
                    raw_records,
                    products,
                    rejected,
                    catalog.gtin_claimed,
                    catalog.gtin_invalid,
                    catalog.new_offers,
                    catalog.changed_offers,
                    int(removed),
                    fingerprint,
                    pages,
                ],
            )
    finally:
        for name in ("staged_products", "staged_rejected", "staged_sources", "read_pages"):
            conn.unregister(name)
    return int(products), int(removed)


def touch_unchanged_offers(
    conn: duckdb.DuckDBPyConnection, marketplace: str, *, run_id: str, now: datetime
) -> None:
    """Offers of pages fetched again unchanged were seen at the page's latest fetch, and their
    rejected records were rejected again by this run (as a full run would record them)."""
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


def held_validators(conn: duckdb.DuckDBPyConnection, marketplace: str) -> dict[str, str]:
    """The validators of the catalog the warehouse holds, for a conditional request; none when
    it holds no raw records (a 304 would then leave it empty)."""
    rows = conn.execute(
        "SELECT v.etag, v.last_modified FROM catalog_validators AS v WHERE v.marketplace = ? "
        "AND EXISTS (SELECT 1 FROM raw_pages AS r WHERE r.marketplace = v.marketplace "
        "AND r.content_hash IS NOT NULL)",
        [marketplace],
    ).fetchall()
    if not rows:
        return {}
    etag, last_modified = rows[0]
    return {
        name: value for name, value in (("etag", etag), ("last_modified", last_modified)) if value
    }


def store_validators(
    conn: duckdb.DuckDBPyConnection, marketplace: str, validators: dict[str, str], *, now: datetime
) -> None:
    """Keep what the marketplace sent with the catalog just stored (or forget stale ones)."""
    if not validators:
        conn.execute("DELETE FROM catalog_validators WHERE marketplace = ?", [marketplace])
        return
    conn.execute(
        "INSERT OR REPLACE INTO catalog_validators (marketplace, etag, last_modified, checked_at) "
        "VALUES (?, ?, ?, ?)",
        [marketplace, validators.get("etag"), validators.get("last_modified"), now],
    )


def confirm_unchanged_catalog(
    conn: duckdb.DuckDBPyConnection, marketplace: str, *, now: datetime
) -> tuple[int, int]:
    """After a 304: every held page was seen again now. Returns (pages, raw records)."""
    conn.execute(
        "UPDATE raw_pages SET fetched_at = ? WHERE marketplace = ? AND content_hash IS NOT NULL",
        [now, marketplace],
    )
    conn.execute(
        "UPDATE catalog_validators SET checked_at = ? WHERE marketplace = ?", [now, marketplace]
    )
    pages, records = conn.execute(
        "SELECT count(*), coalesce(sum(records), 0) FROM raw_pages "
        "WHERE marketplace = ? AND content_hash IS NOT NULL",
        [marketplace],
    ).fetchall()[0]
    return int(pages), int(records)

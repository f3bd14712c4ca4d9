"""Writing a refresh's re-read records into products, rejected_products and product_sources, at
the cost of what changed.

warehouse/records.py decides which records a refresh reads again; this swaps in their offers,
rejections and sources (`write_record_changes`). Every statement touches the marketplace's rows
of the re-read records only: DuckDB prunes the scans with the join's dynamic filters (min/max
and a Bloom filter of the small side's keys), and what a statement writes is what changed.

An offer whose row changed is deleted and inserted again rather than updated in place. DuckDB
stores an in-place update beside the row group and rewrites the updated columns of the whole row
group at the next checkpoint: a refresh re-pricing 1% of a marketplace at random touches every
row group, and rewriting `content_hash` (random hex, 64 characters, every row of the
marketplace) cost the connection's checkpoint 0.07 s of CPU per 33,000 offers (bench/RESULTS.md,
"Catalog refresh: normalizing again at the cost of the change"). A deleted row is a bit in a
deletion vector and the re-inserted ones are appended: the checkpoint writes only those. The
table's rows end up with the values a full run gives; only their physical order differs, which
no reader relies on (every query that lists rows orders them).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import duckdb

from warehouse.catalog import PRODUCT_COLUMNS, REJECTED_COLUMNS
from warehouse.connection import transaction
from warehouse.gtin_claims import catalog_gtin_counts, write_gtin_claims
from warehouse.offers import NormalizedCatalog
from warehouse.records import hash_frame, sources_frame

# The staged relations of one write, registered for its statements and let go after.
_STAGED = ("staged_products", "staged_rejected", "staged_sources", "read_hashes")


def content_fingerprint(conn: duckdb.DuckDBPyConnection, marketplace: str) -> str:
    """warehouse.offers' content fingerprint of the marketplace's offers as they now stand:
    SHA-256 of every `external_id:content_hash`, sorted, one a line. The two columns are read
    and sorted by Polars (several times cheaper than DuckDB's ordered string_agg at 166,000
    offers), and hashed once."""
    pairs = (
        conn.sql(
            "SELECT external_id || ':' || content_hash AS pair FROM products "
            "WHERE marketplace = $m",
            params={"m": marketplace},
        )
        .pl()
        .get_column("pair")
        .sort()
        .str.join("\n")
        .item()
    )
    return hashlib.sha256((pairs or "").encode()).hexdigest()


def write_record_changes(
    conn: duckdb.DuckDBPyConnection,
    marketplace: str,
    catalog: NormalizedCatalog,
    *,
    run_id: str,
    loaded_at: datetime,
) -> tuple[int, int]:
    """Swap in the offers and rejections of the records `catalog` read (its read_hashes); every
    other row of the marketplace stays. Logs the load; returns (products, removed offers)."""
    conn.register("staged_products", catalog.products.to_arrow())
    conn.register("staged_rejected", catalog.rejected.to_arrow())
    conn.register("staged_sources", sources_frame(catalog).to_arrow())
    conn.register("read_hashes", hash_frame(list(catalog.read_hashes or ())).to_arrow())
    params = {"m": marketplace}
    try:
        with transaction(conn):
            # The offers the re-read records gave before; those whose id no record gives now go.
            conn.execute(
                "CREATE OR REPLACE TEMP TABLE offers_read AS SELECT external_id "
                "FROM product_sources WHERE marketplace = $m "
                "AND payload_hash IN (SELECT payload_hash FROM read_hashes)",
                params,
            )
            (removed,) = conn.execute(
                "SELECT count(*) FROM offers_read "
                "WHERE external_id NOT IN (SELECT external_id FROM staged_products)"
            ).fetchall()[0]
            # Every staged offer goes in whole: comparing it with the row held first would read
            # every column of the marketplace's rows (a Bloom filter of 1% of the keys still
            # hits every vector of 2,048 rows), where the delete reads the keys alone.
            conn.execute(
                "DELETE FROM products WHERE marketplace = $m AND ("
                "external_id IN (SELECT external_id FROM staged_products) "
                "OR external_id IN (SELECT external_id FROM offers_read))",
                params,
            )
            conn.execute(
                f"INSERT INTO products ({PRODUCT_COLUMNS}) "
                f"SELECT {PRODUCT_COLUMNS} FROM staged_products"
            )
            conn.execute(
                "DELETE FROM rejected_products WHERE marketplace = $m "
                "AND payload_hash IN (SELECT payload_hash FROM read_hashes)",
                params,
            )
            conn.execute(
                f"INSERT INTO rejected_products ({REJECTED_COLUMNS}) "
                f"SELECT {REJECTED_COLUMNS} FROM staged_rejected"
            )
            conn.execute(
                "DELETE FROM product_sources WHERE marketplace = $m "
                "AND payload_hash IN (SELECT payload_hash FROM read_hashes)",
                params,
            )
            conn.execute(
                "INSERT INTO product_sources "
                "(marketplace, external_id, page, record_index, payload_hash) "
                "SELECT $m, external_id, page, record_index, payload_hash FROM staged_sources",
                params,
            )
            write_gtin_claims(conn, marketplace, catalog)
            # The whole catalog's GTINs, as a full read counts them (the check judges the feed,
            # not the few records a refresh read).
            gtin_claimed, gtin_invalid = catalog_gtin_counts(conn, marketplace)
            products, rejected, raw_records = conn.execute(
                """
                SELECT
                    (SELECT count(*) FROM products WHERE marketplace = $m),
                    (SELECT count(*) FROM rejected_products WHERE marketplace = $m),
                    (SELECT coalesce(sum(records), 0) FROM raw_pages WHERE marketplace = $m)
                """,
                params,
            ).fetchall()[0]
            conn.execute(
                "INSERT INTO catalog_loads (marketplace, run_id, loaded_at, raw_records, products, "
                "rejected, gtin_claimed, gtin_invalid, new_offers, changed_offers, removed_offers, "
                "content_fingerprint, pages_read, records_read) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    marketplace,
                    run_id,
                    loaded_at,
                    raw_records,
                    products,
                    rejected,
                    gtin_claimed,
                    gtin_invalid,
                    catalog.new_offers,
                    catalog.changed_offers,
                    int(removed),
                    content_fingerprint(conn, marketplace),
                    list(catalog.pages or ()),
                    catalog.raw_records,
                ],
            )
    finally:
        for name in _STAGED:
            conn.unregister(name)
        conn.execute("DROP TABLE IF EXISTS temp.offers_read")
    return int(products), int(removed)

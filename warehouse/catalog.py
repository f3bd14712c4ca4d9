"""Reading and writing one marketplace's catalog in the warehouse: marketplaces, raw_catalog,
products, rejected_products and catalog_loads.

Every write for a marketplace happens in one transaction, so a failure leaves the previous run's
rows in place: a marketplace that is down keeps its last good catalog.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pa_dataset
import pyarrow.parquet as pq

from adapters.base import CatalogPage, MarketplaceConfig
from warehouse.connection import transaction
from warehouse.offers import (
    PRODUCTS_SCHEMA,
    REJECTED_SCHEMA,
    NormalizedCatalog,
    PreviousOffer,
    RawRecord,
    payload_bytes,
)
from warehouse.pages import page_digest

RAW_STAGING_SCHEMA = pa.schema(
    [
        ("marketplace", pa.string()),
        ("page", pa.int32()),
        ("record_index", pa.int32()),
        ("payload", pa.string()),
        ("fetched_at", pa.timestamp("us", tz="UTC")),
        ("run_id", pa.string()),
        # SHA-256 of the payload (warehouse.offers.record_hash). A refresh stages no payload
        # (NULL) for a record whose hash the warehouse already holds: it is never stored again.
        ("payload_hash", pa.string()),
        # The record's source digest where the adapter says it (a feed's item text, see
        # raw_sources): staged for raw_sources, not a column of raw_catalog.
        ("source_digest", pa.string()),
    ]
)
RAW_COLUMNS = ", ".join(name for name in RAW_STAGING_SCHEMA.names if name != "source_digest")


def raw_staging_page(
    marketplace: str,
    page: int,
    *,
    payloads: list[str | None],
    hashes: list[str],
    fetched_at: datetime,
    run_id: str,
) -> pa.Table:
    """One fetched page's records as rows of RAW_STAGING_SCHEMA, in the page's order (a payload
    is None when the warehouse already holds its hash)."""
    return pa.table(
        {
            "marketplace": [marketplace] * len(hashes),
            "page": [page] * len(hashes),
            "record_index": list(range(len(hashes))),
            "payload": payloads,
            "fetched_at": [fetched_at] * len(hashes),
            "run_id": [run_id] * len(hashes),
            "payload_hash": hashes,
            "source_digest": [None] * len(hashes),
        },
        schema=RAW_STAGING_SCHEMA,
    )


# Staged rows written to Parquet at once: one Arrow table and row group per 100-record page cost
# ~3 µs of staging CPU a record (most of staging besides the payload text and its hash).
STAGING_BATCH_ROWS = 4096


class StagingBatches:
    """Fetched pages' rows of RAW_STAGING_SCHEMA, written to `writer` STAGING_BATCH_ROWS at a
    time (the rows and their order are the pages'; only the Parquet row groups are larger)."""

    def __init__(self, writer: pq.ParquetWriter, *, marketplace: str, run_id: str) -> None:
        self.writer = writer
        self.marketplace = marketplace
        self.run_id = run_id
        self._clear()

    def _clear(self) -> None:
        self.pages: list[int] = []
        self.indexes: list[int] = []
        self.payloads: list[str | None] = []
        self.fetched: list[datetime] = []
        self.hashes: list[str] = []
        self.sources: list[str | None] = []

    def add(
        self,
        page: int,
        *,
        payloads: list[str | None],
        hashes: list[str],
        fetched_at: datetime,
        sources: list[str | None] | None,
    ) -> None:
        count = len(hashes)
        self.pages += [page] * count
        self.indexes += range(count)
        self.payloads += payloads
        self.fetched += [fetched_at] * count
        self.hashes += hashes
        self.sources += sources if sources is not None else [None] * count
        if len(self.hashes) >= STAGING_BATCH_ROWS:
            self.flush()

    def flush(self) -> None:
        count = len(self.hashes)
        if not count:
            return
        self.writer.write_table(
            pa.table(
                {
                    "marketplace": pa.repeat(pa.scalar(self.marketplace, pa.string()), count),
                    "page": pa.array(self.pages, pa.int32()),
                    "record_index": pa.array(self.indexes, pa.int32()),
                    "payload": pa.array(self.payloads, pa.string()),
                    "fetched_at": pa.array(
                        self.fetched, RAW_STAGING_SCHEMA.field("fetched_at").type
                    ),
                    "run_id": pa.repeat(pa.scalar(self.run_id, pa.string()), count),
                    "payload_hash": pa.array(self.hashes, pa.string()),
                    "source_digest": pa.array(self.sources, pa.string()),
                },
                schema=RAW_STAGING_SCHEMA,
            )
        )
        self._clear()


# DuckDB memory while a marketplace's raw records are replaced (see load_raw_catalog): every
# step of that load can spill to disk, so a small limit costs no failures.
RAW_LOAD_MEMORY_LIMIT = "1GB"
# The same for a load of every record (a first fetch, a full refresh), read straight from the
# staging file by DuckDB: one marketplace of 150k records (a million-offer catalog) peaked at
# 0.64 GiB in 38 s at 512MB, 1.07 GiB in 28 s at 1GB, and failed at 256MB.
FULL_RAW_LOAD_MEMORY_LIMIT = "512MB"
PRODUCT_COLUMNS = ", ".join(PRODUCTS_SCHEMA.names())
REJECTED_COLUMNS = ", ".join(REJECTED_SCHEMA.names())
PRODUCT_KEY_COLUMNS = ("marketplace", "external_id")
_PRODUCT_KEY_MATCH = " AND ".join(f"p.{name} = s.{name}" for name in PRODUCT_KEY_COLUMNS)
# replace_products' three steps; `staged_products` holds one marketplace's new catalog.
UPDATE_PRODUCTS_SQL = (
    "UPDATE products AS p SET "
    + ", ".join(
        f"{name} = s.{name}" for name in PRODUCTS_SCHEMA.names() if name not in PRODUCT_KEY_COLUMNS
    )
    + f" FROM staged_products AS s WHERE {_PRODUCT_KEY_MATCH}"
)
DELETE_VANISHED_PRODUCTS_SQL = (
    "DELETE FROM products AS p WHERE p.marketplace = ? "
    f"AND NOT EXISTS (SELECT 1 FROM staged_products AS s WHERE {_PRODUCT_KEY_MATCH})"
)
INSERT_NEW_PRODUCTS_SQL = (
    f"INSERT INTO products ({PRODUCT_COLUMNS}) SELECT {PRODUCT_COLUMNS} FROM staged_products AS s "
    f"WHERE NOT EXISTS (SELECT 1 FROM products AS p WHERE {_PRODUCT_KEY_MATCH})"
)


@dataclass(frozen=True, slots=True)
class RawFetchStats:
    """What one catalog fetch brought back."""

    pages: int
    records: int
    bytes: int
    staging_path: Path
    # page -> (SHA-256 of its records' hashes, record count, fetch time): a page whose hash
    # moved holds a new payload or a record that moved (raw_pages).
    page_hashes: dict[int, tuple[str, int, datetime]] = field(default_factory=dict)
    # Records staged with their payload (the others' payloads the warehouse already holds).
    payloads_staged: int = 0
    # Pages the marketplace answered 304 Not Modified (staged from the hashes held for them).
    pages_not_modified: int = 0
    records_not_modified: int = 0
    # Records whose source (a feed's item text) was seen before: not parsed, hash held.
    records_unparsed: int = 0


def stage_raw_catalog(
    pages: Iterable[CatalogPage],
    staging_path: Path,
    *,
    marketplace: str,
    run_id: str,
    fetched_at: datetime | None = None,
    held_hashes: AbstractSet[str] | None = None,
    held_pages: Mapping[int, Sequence[str]] | None = None,
) -> RawFetchStats:
    """Write every fetched page to a Parquet staging file as the pages arrive (STAGING_BATCH_ROWS
    rows at a time).

    Fetching takes a while and must not hold the warehouse lock; staging on disk keeps memory flat
    however large the catalog. If fetching fails half-way, the exception propagates and the
    warehouse is never touched. Every page and record gets one fetch time, the first page's
    (`CatalogPage.fetched_at`) or `fetched_at` when given (a replay of the sandbox's past
    catalogs records the day it replays). Every record is staged with its
    position and payload hash; its payload only when the hash is not in `held_hashes` (what the
    warehouse's raw_catalog already holds for the marketplace). A page the marketplace answered
    304 Not Modified (`CatalogPage.held`) is staged from `held_pages`, the payload hashes the
    warehouse holds for it in order (warehouse.pages.held_page_validators), without payloads; a
    record the adapter did not parse (`CatalogPage.held_hashes`) from its held hash. Source
    digests (`CatalogPage.sources`) are staged for raw_sources.
    """
    staging_path.parent.mkdir(parents=True, exist_ok=True)
    page_count = record_count = byte_count = payloads_staged = not_modified = kept_records = 0
    unparsed = 0
    page_hashes: dict[int, tuple[str, int, datetime]] = {}
    held = held_hashes if held_hashes is not None else frozenset()
    with pq.ParquetWriter(staging_path, RAW_STAGING_SCHEMA) as writer:
        batches = StagingBatches(writer, marketplace=marketplace, run_id=run_id)
        for page in pages:
            page_count += 1
            # One fetch, one time: the first page's, for every page and record (module
            # warehouse.published_products: the analysts' copy keeps it once per marketplace).
            if fetched_at is None:
                fetched_at = page.fetched_at
            seen_at = fetched_at
            staged: list[str | None]
            if page.held:
                kept = (held_pages or {}).get(page.page)
                if not kept or not held.issuperset(kept):
                    raise RuntimeError(
                        f"{marketplace}: page {page.page} was not modified, but the warehouse "
                        "does not hold its records; run again with full_refresh"
                    )
                hashes = list(kept)
                staged = [None] * len(hashes)
                not_modified += 1
                kept_records += len(hashes)
            elif page.held_hashes is not None:
                # Records not parsed (their source was seen before) come as held hashes.
                hashes, staged = [], []
                for record, kept in zip(page.records, page.held_hashes, strict=True):
                    if kept is not None:
                        if kept not in held:
                            raise RuntimeError(
                                f"{marketplace}: page {page.page} holds a record whose source "
                                "was seen before, but the warehouse does not hold its payload; "
                                "run again with full_refresh"
                            )
                        hashes.append(kept)
                        staged.append(None)
                        unparsed += 1
                        continue
                    data = payload_bytes(record)
                    digest = hashlib.sha256(data).hexdigest()
                    byte_count += len(data)
                    hashes.append(digest)
                    staged.append(None if digest in held else data.decode("utf-8"))
                payloads_staged += sum(text is not None for text in staged)
            else:
                encoded = [payload_bytes(record) for record in page.records]
                # record_hash of each payload, from its bytes; only new payloads are decoded.
                hashes = [hashlib.sha256(data).hexdigest() for data in encoded]
                byte_count += sum(map(len, encoded))
                staged = [
                    None if digest in held else data.decode("utf-8")
                    for data, digest in zip(encoded, hashes, strict=True)
                ]
                payloads_staged += sum(text is not None for text in staged)
            page_hashes[page.page] = (page_digest(hashes), len(hashes), seen_at)
            record_count += len(hashes)
            batches.add(
                page.page,
                payloads=staged,
                hashes=hashes,
                fetched_at=seen_at,
                sources=page.sources,
            )
        batches.flush()
    return RawFetchStats(
        pages=page_count,
        records=record_count,
        bytes=byte_count,
        staging_path=staging_path,
        page_hashes=page_hashes,
        payloads_staged=payloads_staged,
        pages_not_modified=not_modified,
        records_not_modified=kept_records,
        records_unparsed=unparsed,
    )


def load_raw_catalog(conn: duckdb.DuckDBPyConnection, marketplace: str, staging_path: Path) -> int:
    """Replace the marketplace's raw_catalog rows with the staged ones; return the row count.

    The load and its checkpoint run under RAW_LOAD_MEMORY_LIMIT: unbounded, DuckDB's buffer pool
    (80% of RAM by default) took 4.1 GiB to checkpoint the replacement of one marketplace's
    166k raw records in a warehouse holding a million; limited, it spills and peaks at 1.7 GiB.
    """
    staged = pa_dataset.dataset(staging_path, format="parquet", schema=RAW_STAGING_SCHEMA)
    (previous_limit,) = conn.execute("SELECT current_setting('memory_limit')").fetchone() or (None,)
    conn.execute("SET memory_limit = ?", [RAW_LOAD_MEMORY_LIMIT])
    conn.register("staged_raw", staged)
    try:
        with transaction(conn):
            conn.execute("DELETE FROM raw_catalog WHERE marketplace = ?", [marketplace])
            conn.execute(
                f"INSERT INTO raw_catalog ({RAW_COLUMNS}) SELECT {RAW_COLUMNS} FROM staged_raw "
                "WHERE marketplace = ?",
                [marketplace],
            )
        conn.execute("CHECKPOINT")
    finally:
        conn.unregister("staged_raw")
        if previous_limit is not None:
            conn.execute("SET memory_limit = ?", [previous_limit])
    (count,) = conn.execute(
        "SELECT count(*) FROM raw_catalog WHERE marketplace = ?", [marketplace]
    ).fetchone() or (0,)
    return int(count)


def upsert_marketplace(
    conn: duckdb.DuckDBPyConnection, config: MarketplaceConfig, *, now: datetime
) -> None:
    """Record the marketplace's configuration (names and logos for analysts and documents)."""
    conn.execute(
        "INSERT OR REPLACE INTO marketplaces "
        "(slug, name, kind, currency, country, logo, rating, match_identifier, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            config.slug,
            config.name,
            config.kind,
            config.currency,
            config.country,
            config.logo,
            config.rating,
            config.match_identifier,
            now,
        ],
    )


def mark_live_marketplaces(
    conn: duckdb.DuckDBPyConnection, active: Iterable[str], disabled: Iterable[str]
) -> None:
    """Set `marketplaces.active` (in marketplaces.toml and active) and `storefront_enabled` (not
    disabled by an admin) for every marketplace the warehouse knows, as search reads them: a
    marketplace deactivated after its last fetch keeps its row and offers, and only this tells
    the analyst views (offers_usd.live) that shoppers can no longer buy them."""
    active_list, disabled_list = sorted(set(active)), sorted(set(disabled))
    conn.execute(
        "UPDATE marketplaces SET active = list_contains(?, slug), "
        "storefront_enabled = NOT list_contains(?, slug) "
        "WHERE active IS DISTINCT FROM list_contains(?, slug) "
        "OR storefront_enabled IS DISTINCT FROM (NOT list_contains(?, slug))",
        [active_list, disabled_list, active_list, disabled_list],
    )


def read_raw_records(conn: duckdb.DuckDBPyConnection, marketplace: str) -> list[RawRecord]:
    """The marketplace's stored raw records, in the order the marketplace sent them."""
    rows = conn.execute(
        "SELECT page, record_index, CAST(payload AS VARCHAR), fetched_at FROM raw_catalog "
        "WHERE marketplace = ? ORDER BY page, record_index",
        [marketplace],
    ).fetchall()
    return [RawRecord(page=p, record_index=i, payload=text, fetched_at=f) for p, i, text, f in rows]


def read_previous_offers(
    conn: duckdb.DuckDBPyConnection, marketplace: str
) -> dict[str, PreviousOffer]:
    """Content hash and timestamps of the marketplace's offers as of the last run."""
    rows = conn.execute(
        "SELECT external_id, content_hash, first_seen_at, updated_at FROM products "
        "WHERE marketplace = ?",
        [marketplace],
    ).fetchall()
    return {
        external_id: PreviousOffer(content_hash=digest, first_seen_at=first, updated_at=updated)
        for external_id, digest, first, updated in rows
    }


def replace_products(
    conn: duckdb.DuckDBPyConnection,
    marketplace: str,
    catalog: NormalizedCatalog,
    *,
    run_id: str,
    loaded_at: datetime,
) -> None:
    """Swap in the marketplace's new products and rejected rows, and log the load, atomically."""
    conn.register("staged_products", catalog.products.to_arrow())
    conn.register("staged_rejected", catalog.rejected.to_arrow())
    try:
        with transaction(conn):
            # In place, then what vanished and what is new. Deleting and re-inserting every key
            # instead made DuckDB's commit redo the primary-key index: 7 s for a 164k-offer
            # marketplace in a million-offer warehouse, against 0.4 s this way.
            conn.execute(UPDATE_PRODUCTS_SQL)
            conn.execute(DELETE_VANISHED_PRODUCTS_SQL, [marketplace])
            conn.execute(INSERT_NEW_PRODUCTS_SQL)
            conn.execute("DELETE FROM rejected_products WHERE marketplace = ?", [marketplace])
            conn.execute(
                f"INSERT INTO rejected_products ({REJECTED_COLUMNS}) "
                f"SELECT {REJECTED_COLUMNS} FROM staged_rejected"
            )
            conn.execute(
                "INSERT INTO catalog_loads (marketplace, run_id, loaded_at, raw_records, products, "
                "rejected, gtin_claimed, gtin_invalid, new_offers, changed_offers, removed_offers, "
                "content_fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    marketplace,
                    run_id,
                    loaded_at,
                    catalog.raw_records,
                    catalog.products.height,
                    catalog.rejected.height,
                    catalog.gtin_claimed,
                    catalog.gtin_invalid,
                    catalog.new_offers,
                    catalog.changed_offers,
                    catalog.removed_offers,
                    catalog.content_fingerprint,
                ],
            )
    finally:
        conn.unregister("staged_products")
        conn.unregister("staged_rejected")


@dataclass(frozen=True, slots=True)
class CatalogLoad:
    """One row of catalog_loads."""

    marketplace: str
    run_id: str
    loaded_at: datetime
    raw_records: int
    products: int
    rejected: int
    gtin_claimed: int
    gtin_invalid: int
    new_offers: int
    changed_offers: int
    removed_offers: int
    content_fingerprint: str


def recent_loads(
    conn: duckdb.DuckDBPyConnection, marketplace: str, *, limit: int = 2
) -> list[CatalogLoad]:
    """The marketplace's latest loads, newest first (the drift check compares the first two)."""
    rows = conn.execute(
        "SELECT marketplace, run_id, loaded_at, raw_records, products, rejected, gtin_claimed, "
        "gtin_invalid, new_offers, changed_offers, removed_offers, content_fingerprint "
        "FROM catalog_loads WHERE marketplace = ? ORDER BY loaded_at DESC LIMIT ?",
        [marketplace, limit],
    ).fetchall()
    return [CatalogLoad(*row) for row in rows]


def product_counts_by_marketplace(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Offers and the newest fetch time per marketplace, for freshness and progress reports."""
    return conn.sql(
        "SELECT marketplace, count(*) AS products, max(fetched_at) AS last_fetched_at "
        "FROM products GROUP BY marketplace ORDER BY marketplace"
    ).pl()

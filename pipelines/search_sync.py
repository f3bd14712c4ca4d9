"""Building the search documents of every current offer from the warehouse rows, and the product
documents (one per product group) of the product index from those.

The document shapes belong to search_index.documents and search_index.groups
(docs/data-contract.md); this module only gathers what they need per offer: the marketplace's
name and logo, the product group with its size, cheapest USD price and matching method, the run's
FX rates, and the price-change summary.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq

from search_index.documents import (
    DocumentError,
    build_document,
    convert_to_usd_minor,
    document_id,
    summarize_groups,
)
from search_index.groups import GroupDocument, build_group_documents


@dataclass(slots=True)
class SearchDocuments:
    """The documents to index, and the offers left out with the reason (never silently)."""

    documents: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _usd_of(price_minor: Any, currency: Any, rates: Mapping[str, Decimal]) -> int | None:
    try:
        return convert_to_usd_minor(price_minor, currency, rates)
    except DocumentError:
        return None


# group_summaries as columns, joined onto the offer rows: named apart from the offer frame's own
# group_size / group_marketplaces (search_index.documents.group_fields reads these).
SUMMARY_SCHEMA = pl.Schema(
    {
        "group_id": pl.String,
        "summary_size": pl.Int64,
        "summary_marketplaces": pl.Int64,
        "summary_available": pl.Int64,
        "summary_available_marketplaces": pl.Int64,
        "summary_min_price_usd_minor": pl.Int64,
    }
)


def group_summaries(
    offers: pl.DataFrame,
    rates: Mapping[str, Decimal],
    *,
    counted: Collection[str] | None = None,
) -> pl.DataFrame:
    """Per group id, what its offer documents say of it (search_index.documents.summarize_groups,
    the one definition, also the marketplace-visibility job's): its offers and marketplaces and
    its cheapest USD price (among the available offers; all of them when none is), over the
    offers of `counted` marketplaces only (every offer of `offers` when None): a marketplace an
    admin disabled keeps its offers in the offers index but counts in no group, as in the product
    index. As columns (SUMMARY_SCHEMA), not a GroupSummary per group: the offers index build holds
    them for its whole run, ~100 MB as objects at a million offers."""
    frame = offers.select("group_id", "marketplace", "price_minor", "currency", "available")
    if counted is not None:
        frame = frame.filter(pl.col("marketplace").is_in(list(counted)))
    summaries = summarize_groups(
        (group_id, marketplace, _usd_of(price_minor, currency, rates), bool(available))
        for group_id, marketplace, price_minor, currency, available in frame.iter_rows()
    )
    columns: dict[str, list[Any]] = {name: [] for name in SUMMARY_SCHEMA.names()}
    while summaries:
        group_id, summary = summaries.popitem()  # each freed as its row is taken
        columns["group_id"].append(group_id)
        columns["summary_size"].append(summary.size)
        columns["summary_marketplaces"].append(summary.marketplaces)
        columns["summary_available"].append(summary.available)
        columns["summary_available_marketplaces"].append(summary.available_marketplaces)
        columns["summary_min_price_usd_minor"].append(summary.min_price_usd_minor)
    return pl.DataFrame(columns, schema=SUMMARY_SCHEMA)


def iter_offer_documents(
    offers: pl.DataFrame,
    *,
    marketplaces: Mapping[str, Mapping[str, Any]],
    rates: Mapping[str, Decimal],
    skipped: dict[str, str],
    groups: pl.DataFrame | None = None,
) -> Iterator[dict[str, Any]]:
    """One search document per offer row of warehouse.derived.read_offer_frame; offers that
    cannot become a document are recorded in `skipped` (key `marketplace/external_id`).

    `groups` (group_summaries over every offer that counts) is for a frame that holds only some
    offers of a group, a batch of a streamed build, or offers of marketplaces that do not count;
    by default it is computed from `offers`, every offer counting."""
    if groups is None:
        groups = group_summaries(offers, rates)
    rows = offers.with_columns(pl.col("group_id").cast(pl.String)).join(
        groups, on="group_id", how="left", maintain_order="left"
    )
    for row in rows.iter_rows(named=True):
        slug = row["marketplace"]
        group_id = row["group_id"]
        if group_id is None:
            group = None
        elif row["summary_size"] is None:
            group = {"group_id": group_id}
        else:
            group = {
                "group_id": group_id,
                "group_size": row["summary_size"],
                "group_marketplaces": row["summary_marketplaces"],
                "group_available": row["summary_available"],
                "group_available_marketplaces": row["summary_available_marketplaces"],
                "group_min_price_usd_minor": row["summary_min_price_usd_minor"],
            }
        history = {
            "previous_price_minor": row.get("previous_price_minor"),
            "price_dropped_at": row.get("price_dropped_at"),
        }
        try:
            yield build_document(
                row,
                marketplace=marketplaces.get(slug, {"slug": slug, "name": slug}),
                group=group,
                fx_usd_rates=rates,
                history=history,
            )
        except DocumentError as exc:
            skipped[f"{slug}/{row['external_id']}"] = str(exc)


def read_offer_vectors(conn: duckdb.DuckDBPyConnection) -> dict[str, list[float]] | None:
    """Search-document id -> embedding from the offer_embeddings asset, or None when there are
    none (or the assistant package is not installed): the index is then keyword-only."""
    try:
        from assistant.embedding_store import read_document_vectors
    except ImportError:
        return None
    return read_document_vectors(conn)


def build_search_documents(
    offers: pl.DataFrame,
    *,
    marketplaces: Mapping[str, Mapping[str, Any]],
    rates: Mapping[str, Decimal],
) -> SearchDocuments:
    """Every document at once (the index sync compares them with what the index holds)."""
    result = SearchDocuments()
    result.documents = list(
        iter_offer_documents(offers, marketplaces=marketplaces, rates=rates, skipped=result.skipped)
    )
    return result


def offer_matches(offers: pl.DataFrame) -> dict[str, tuple[str, Decimal]]:
    """Search-document id -> (matching method, confidence) from product_groups, for the product
    page's "how these offers were matched"."""
    matches: dict[str, tuple[str, Decimal]] = {}
    columns = ("marketplace", "external_id", "match_method", "match_confidence")
    if not set(columns) <= set(offers.columns):
        return matches
    for slug, external_id, method, confidence in offers.select(columns).iter_rows():
        if method is not None:
            matches[document_id(slug, external_id)] = (method, confidence)
    return matches


def build_product_documents(
    offers: pl.DataFrame,
    *,
    marketplaces: Mapping[str, Mapping[str, Any]],
    rates: Mapping[str, Decimal],
) -> tuple[list[GroupDocument], dict[str, str]]:
    """The product index's documents (one per product group) and the offers left out of them
    (the same offers the offers index leaves out, with the reason)."""
    skipped: dict[str, str] = {}
    offer_documents = iter_offer_documents(
        offers, marketplaces=marketplaces, rates=rates, skipped=skipped
    )
    return build_group_documents(offer_documents, matches=offer_matches(offers)), skipped


# Streamed builds: a million offers as one frame and a million documents as one list took
# 4.5-5.5 GiB in the full builds of both indexes (bench/RESULTS.md); in batches of this many
# rows the builds stay flat whatever the catalog's size.
STREAM_BATCH_ROWS = 20_000
# DuckDB's memory while it exports the offers for a streamed build (export_active_offers): the
# export sorts every active offer and, for the offers index, hashes each group's prices in
# order. Unbounded (DuckDB's default, 80% of RAM), the query alone took the pipeline process
# from 1.0 to 4.1 GiB at a million offers; every operator of it can spill to disk, so a small
# limit costs time, not failures.
EXPORT_MEMORY_LIMIT = "512MB"


@contextmanager
def limited_memory(
    conn: duckdb.DuckDBPyConnection, limit: str = EXPORT_MEMORY_LIMIT
) -> Iterator[duckdb.DuckDBPyConnection]:
    """DuckDB's memory limited to `limit` for the block (its operators spill beyond it), then
    set back: the queries of a search build go over every offer, and unbounded (80% of RAM)
    one of them alone took gigabytes at a million offers."""
    (previous,) = conn.execute("SELECT current_setting('memory_limit')").fetchall()[0]
    conn.execute("SET memory_limit = ?", [limit])
    try:
        yield conn
    finally:
        conn.execute("SET memory_limit = ?", [previous])


@contextmanager
def spill_directory(connect: Callable[..., Any]) -> Iterator[Path]:
    """A temporary directory beside the warehouse file (not /tmp, often a RAM disk) for the rows
    a streamed build reads once the warehouse is unlocked again."""
    with connect() as conn:
        (path,) = conn.execute(
            "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchall()[0]
    parent = Path(path).parent if path else None
    with tempfile.TemporaryDirectory(prefix="search-build-", dir=parent) as directory:
        yield Path(directory)


def export_active_offers(
    connect: Callable[..., Any],
    source_sql: str,
    target: Path,
    *,
    active: list[str],
    order_by: str = "",
    also: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> int:
    """Write the rows of `source_sql` that belong to `active` marketplaces to the Parquet file
    `target` (DuckDB streams them: nothing is held in Python), then let the warehouse go: the
    documents take far longer to build and index than the export. Returns the count of offers
    of inactive marketplaces. `also` runs on the same connection right after the export: what it
    reads is the snapshot the export read."""
    with connect() as conn, limited_memory(conn):
        conn.register("active_marketplaces", pl.DataFrame({"slug": active}).to_arrow())
        try:
            (inactive,) = conn.execute(
                "SELECT count(*) FROM products WHERE marketplace NOT IN "
                "(SELECT slug FROM active_marketplaces)"
            ).fetchall()[0]
            # The marketplace filter goes on a second pass over the written file (only when some
            # marketplace is inactive), never into the export's own query: pushed down into it,
            # the query ran out of DuckDB's memory limit at a million offers (0.7 GiB without).
            everything = target.with_name(f"{target.stem}.all{target.suffix}")
            conn.execute(
                f"COPY (SELECT * FROM ({source_sql}) {order_by}) "
                f"TO {sql_text(everything if inactive else target)} (FORMAT parquet)"
            )
            if also is not None:
                also(conn)
        finally:
            conn.unregister("active_marketplaces")
    if inactive:
        # Streamed by Polars in file order, once the warehouse is let go.
        pl.scan_parquet(everything).filter(pl.col("marketplace").is_in(active)).sink_parquet(target)
        everything.unlink()
    return int(inactive)


def exported_group_summaries(
    source: Path, rates: Mapping[str, Decimal], *, counted: Collection[str] | None = None
) -> pl.DataFrame:
    """group_summaries over the offers of an exported Parquet file, for a build whose batches
    do not hold whole groups (a batch of the offers index's export only sees some of a group's
    offers). Reads only the five columns a summary needs."""
    prices = pl.read_parquet(
        source, columns=["group_id", "marketplace", "price_minor", "currency", "available"]
    )
    return group_summaries(prices, rates, counted=counted)


def sql_text(value: Path | str) -> str:
    """`value` (a path, an index uid) as a SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def iter_row_batches(source: Path, *, rows: int | None = None) -> Iterator[pl.DataFrame]:
    """The rows of an exported Parquet file, `rows` (default STREAM_BATCH_ROWS) at a time, in
    file order."""
    for batch in pq.ParquetFile(source).iter_batches(batch_size=rows or STREAM_BATCH_ROWS):
        yield pl.from_arrow(batch)  # type: ignore[misc]


def iter_group_batches(source: Path, *, rows: int | None = None) -> Iterator[pl.DataFrame]:
    """Like iter_row_batches for rows ordered by group_id (nulls last), but a group never
    straddles two batches: the product document of a group needs all of its offers."""
    carried: pl.DataFrame | None = None
    for batch in iter_row_batches(source, rows=rows):
        if carried is not None:
            batch = pl.concat([carried, batch], how="vertical_relaxed")
        last_group = batch.get_column("group_id")[-1]
        if last_group is None:
            carried = None
            yield batch
            continue
        tail = batch.get_column("group_id") == last_group
        carried = batch.filter(tail)
        if carried.height < batch.height:
            yield batch.filter(~tail)
    if carried is not None and carried.height:
        yield carried

"""The per-marketplace assets: `raw_catalog` and `normalized_products`, partitioned by slug.

One partition is one marketplace, so a marketplace that is down fails only its own partition, and
its last good rows stay in the warehouse for everything downstream.
"""

import json
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from adapters.base import CatalogPage, MarketplaceError, NotModified
from adapters.changed_since import ChangesUnavailable
from onecart.progress import counted_noun
from pipelines.catalog_loading import CatalogLoading
from pipelines.checks import catalog_check_specs, evaluate_catalog_checks
from pipelines.resources import MarketplacesResource, WarehouseResource
from warehouse.catalog import (
    RawFetchStats,
    replace_products,
    stage_raw_catalog,
    upsert_marketplace,
)
from warehouse.changed_since import (
    MAX_CHANGED_SHARE,
    changes_since,
    forget_watermark,
    held_records,
    stage_changed_catalog,
    store_watermark,
)
from warehouse.normalize import normalize_stored_catalog
from warehouse.offers import NormalizedCatalog, preview_markdown
from warehouse.pages import (
    confirm_unchanged_catalog,
    held_page_validators,
    held_validators,
    store_page_validators,
    store_validators,
)
from warehouse.record_changes import write_record_changes
from warehouse.records import (
    can_normalize_incrementally,
    catalog_changed,
    held_payload_hashes,
    held_sources,
    load_changed_records,
    mark_pages_normalized,
    place_unchanged_records,
    records_tied_to,
    records_to_read,
    write_sources,
)

CATALOG_GROUP = "catalog"
PREVIEW_COLUMNS = ("external_id", "title", "price_minor", "currency", "brand", "model", "gtin")
# DuckDB's memory while a partition is normalized and loaded: unbounded (80% of RAM), one
# marketplace of 166k records at a million offers peaked at 1.46 GiB, in replace_products; at
# 512MB DuckDB spills and the same partition peaked at 1.20 GiB (in 120 s against 171 s, both
# under load 6-8). Two partition workers and the pipeline process share issue 11's 2 GB.
NORMALIZE_MEMORY_LIMIT = "512MB"


class CatalogRunConfig(dg.Config):
    """`full_refresh`: store and read every record again, as if the warehouse held nothing.
    `as_of` (ISO 8601, replays of the sandbox's past catalogs only): record the fetch and the
    normalization at that moment instead of now."""

    full_refresh: bool = False
    as_of: str = ""

    def moment(self) -> datetime:
        """`as_of` as an aware UTC datetime, or now."""
        if not self.as_of:
            return datetime.now(UTC)
        moment = datetime.fromisoformat(self.as_of)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _catalog_ids(catalog: NormalizedCatalog) -> list[str]:
    """Every id the records read name: their offers' and their rejections' (a quarantined
    record claims the id it names)."""
    ids = catalog.products.get_column("external_id").to_list()
    return ids + catalog.rejected.get_column("external_id").drop_nulls().to_list()


class EmptyCatalogError(RuntimeError):
    """A marketplace answered with no records at all while we hold a catalog for it."""


def _close(adapter: object) -> None:
    close = getattr(adapter, "close", None)
    if callable(close):
        close()


# A fetch still running says how far it got at most this often (the run's log in the UI).
FETCH_PROGRESS_EVERY_S = 10.0


class PagesRead:
    """How far a fetch of every page got: the pages the marketplace answered, counted as they
    are staged, so that a fetch failing half-way says where it stopped (an operator told only
    "503" could not tell an outage from the first page from one at page 19 of 75), and, while a
    slow one runs, `report` hears every FETCH_PROGRESS_EVERY_S how far it is (a fetch at 1.5 s
    a page showed nothing in the run's log until it ended). `clock`: seconds, monotonic."""

    def __init__(
        self,
        slug: str = "",
        report: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pages = 0
        self.records = 0
        self._slug = slug
        self._report = report
        self._clock = clock
        self._started = self._last_report = clock()

    def count(self, pages: Iterable[CatalogPage]) -> Iterator[CatalogPage]:
        """`pages`, counting each as it is handed on."""
        for page in pages:
            self.pages += 1
            self.records += len(page.records)
            now = self._clock()
            if self._report is not None and now - self._last_report >= FETCH_PROGRESS_EVERY_S:
                self._last_report = now
                self._report(
                    f"{self._slug}: {counted_noun(self.pages, 'page')} "
                    f"({counted_noun(self.records, 'record')}) fetched so far, "
                    f"{int(now - self._started)} s in"
                )
            yield page


def describe_fetch_failure(slug: str, error: Exception, pages_read: int) -> str:
    """The failed partition's description: the marketplace, how many pages of the fetch came
    before the failure (none of them is kept), and the adapter's typed error."""
    where = f" after {counted_noun(pages_read, 'page')}" if pages_read else ""
    return f"{slug}: catalog fetch failed{where}: {type(error).__name__}: {error}"


def describe_normalization(
    slug: str,
    *,
    products: int,
    offers_read: int,
    rejected_read: int,
    rejected_by_reason: dict[str, int],
) -> str:
    """normalized_products' log line: the offers the marketplace now has, what this run read
    (a refresh reads only new or changed records), and apart from those, every rejection the
    catalog holds by reason (the same counts as the `rejected_by_reason` metadata)."""
    held = sum(rejected_by_reason.values())
    rejections = (
        f"the catalog's {counted_noun(held, 'rejected record')} by reason: "
        f"{json.dumps(rejected_by_reason)}"
        if held
        else "none rejected"
    )
    return (
        f"{slug}: {counted_noun(products, 'product')}; read {counted_noun(offers_read, 'offer')} "
        f"and {counted_noun(rejected_read, 'rejected record')}; {rejections}"
    )


def fetch_catalog_changes(adapter: Any, since: datetime, *, at_most: int, read: PagesRead) -> Any:
    """The adapter's changed-since fetch (its CatalogChanges); on a failure, `read` holds the
    pages the marketplace answered before it (the changed records' and the ids' listings)."""
    adapter.pages_answered = 0
    try:
        return adapter.fetch_catalog_changes(since, at_most=at_most)
    finally:
        read.pages = adapter.pages_answered


def _stage_catalog(
    context: dg.AssetExecutionContext,
    config: CatalogRunConfig,
    adapter: Any,
    staging: Path,
    *,
    since: datetime | None,
    held: list[tuple[str | None, str]],
    held_hashes: set[str] | None,
    held_pages: dict[int, list[str]],
    read: PagesRead,
) -> tuple[RawFetchStats, str, datetime | None, int | None]:
    """Fetch and stage the catalog: by changes since `since` when given and possible, else
    every page. Returns the staging's stats, how it was fetched ("changed_since" or "full"),
    the marketplace's clock when the fetch began (None: unknown) and the records sent as
    changed (None: every page)."""
    slug = context.partition_key
    if since is not None:
        try:
            changes = fetch_catalog_changes(
                adapter, since, at_most=max(100, int(len(held) * MAX_CHANGED_SHARE)), read=read
            )

            def records_by_id(ids: list[str]) -> list[dict[str, Any]]:
                # The records looked up by id count too: their pages come after the listings'.
                try:
                    return adapter.fetch_records_by_id(ids)
                finally:
                    read.pages = adapter.pages_answered

            stats = stage_changed_catalog(
                changes,
                held,
                records_by_id,
                staging,
                marketplace=slug,
                run_id=context.run.run_id,
                fetched_at=config.moment() if config.as_of else datetime.now(UTC),
            )
            return stats, "changed_since", changes.started_at, len(changes.changed)
        except ChangesUnavailable as why:
            read.pages = 0  # the full fetch's pages are what a failure of it will count
            context.log.info(f"{slug}: fetching every page: {why}")
    stats = stage_raw_catalog(
        read.count(adapter.fetch_catalog_pages()),
        staging,
        marketplace=slug,
        run_id=context.run.run_id,
        fetched_at=config.moment() if config.as_of else None,
        held_hashes=held_hashes,
        held_pages=held_pages,
    )
    return stats, "full", getattr(adapter, "catalog_started_at", None), None


def build_catalog_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The two partitioned assets, for the marketplaces known when the definitions are built."""

    @dg.asset(
        partitions_def=partitions,
        group_name=CATALOG_GROUP,
        kinds={"python", "duckdb"},
    )
    def raw_catalog(
        context: dg.AssetExecutionContext,
        config: CatalogRunConfig,
        warehouse: WarehouseResource,
        marketplaces: MarketplacesResource,
    ) -> dg.MaterializeResult:
        """Every catalog record of one marketplace exactly as it sent them (table raw_catalog).

        Pages are fetched through the marketplace's adapter (retries and backoff included) and
        staged on disk; only a complete fetch changes the marketplace's rows. Where the platform
        filters by modification time (Shopify, WooCommerce), a refresh fetches only the records
        changed since the last complete fetch and every id, and stages the full catalog from
        those and the records held (warehouse/changed_since.py). HTTP failures after
        the retries fail this partition alone and leave the previous rows in place. Only records
        whose payload the warehouse does not hold are staged and stored; the others' rows move
        to their new page and position (warehouse/records.py; every record is stored again with
        `full_refresh`).
        """
        slug = context.partition_key
        marketplace = marketplaces.config_for(slug)
        adapter = marketplaces.adapter_for(slug)
        staging = warehouse.staging_path(slug, context.run.run_id)
        held_hashes = None
        # Pages asked for conditionally: the payload hashes held for each (a 304 stands for them).
        held_pages: dict[int, list[str]] = {}
        # Changed-since fetches (adapters/changed_since.py): from when, and the records held.
        since = None
        held_ids: list[tuple[str | None, str]] = []
        if hasattr(adapter, "held_sources"):
            # Items' source digests are taken on every fetch (a full one too), for the next.
            adapter.held_sources = {}
        if not config.full_refresh:
            with warehouse.connect() as conn:
                if hasattr(adapter, "catalog_validators"):
                    adapter.catalog_validators = held_validators(conn, slug)
                held_hashes = held_payload_hashes(conn, slug)
                if held_hashes is not None and hasattr(adapter, "page_validators"):
                    adapter.page_validators, held_pages = held_page_validators(conn, slug)
                if held_hashes is not None and hasattr(adapter, "held_sources"):
                    adapter.held_sources = held_sources(conn, slug, held_hashes)
                if (
                    held_hashes is None
                    and conn.execute(
                        "SELECT count(*) FROM raw_catalog WHERE marketplace = ?", [slug]
                    ).fetchall()[0][0]
                ):
                    context.log.info(
                        f"{slug}: the raw records held predate payload hashes; storing and "
                        "normalizing every record once"
                    )
                if held_hashes is not None and getattr(adapter, "fetches_changes", False):
                    since = changes_since(conn, slug, now=datetime.now(UTC))
                    if since is not None:
                        held_ids = held_records(conn, slug)
        # The run's log (Dagster UI) and `onecart status` both say how far the fetch is.
        loading = CatalogLoading(slug, context.run.run_id)
        loading.say(f"{slug}: fetching the catalog")

        def report(line: str) -> None:
            context.log.info(line)
            loading.say(line)

        read = PagesRead(slug, report=report)
        try:
            try:
                stats, fetch_mode, started_at, changed_records = _stage_catalog(
                    context,
                    config,
                    adapter,
                    staging,
                    since=since,
                    held=held_ids,
                    held_hashes=held_hashes,
                    held_pages=held_pages,
                    read=read,
                )
                del held_ids, held_pages
            except NotModified:
                # 304 to our conditional request: the catalog we hold is current.
                with warehouse.connect() as conn:
                    upsert_marketplace(conn, marketplace, now=datetime.now(UTC))
                    pages, rows = confirm_unchanged_catalog(conn, slug, now=config.moment())
                context.log.info(f"{slug}: not modified since the last fetch (HTTP 304)")
                return dg.MaterializeResult(
                    metadata={
                        "marketplace": slug,
                        "not_modified": True,
                        "pages": pages,
                        "records": rows,
                        "changed_pages": 0,
                        "dagster/row_count": rows,
                    }
                )
            except MarketplaceError as exc:
                # The next run fetches in full: what failed half-way is not worth trusting.
                with warehouse.connect() as conn:
                    forget_watermark(conn, slug)
                raise dg.Failure(
                    description=describe_fetch_failure(slug, exc, read.pages),
                    metadata={
                        "marketplace": slug,
                        "error": type(exc).__name__,
                        "pages_read": read.pages,
                    },
                ) from exc
            finally:
                _close(adapter)
            loading.say(
                f"{slug}: storing {counted_noun(stats.records, 'record')} of "
                f"{counted_noun(stats.pages, 'page')} fetched"
            )
            with warehouse.connect() as conn:
                (held,) = conn.execute(
                    "SELECT count(*) FROM raw_catalog WHERE marketplace = ?", [slug]
                ).fetchall()[0]
                if stats.records == 0 and held:
                    raise dg.Failure(
                        description=(
                            f"{slug}: the marketplace returned an empty catalog; keeping the "
                            f"{counted_noun(held, 'record')} of the last good fetch"
                        ),
                        metadata={"marketplace": slug, "kept_records": int(held)},
                    )
                upsert_marketplace(conn, marketplace, now=datetime.now(UTC))
                rows, changed_pages, stored = load_changed_records(
                    conn, slug, staging, stats.page_hashes, replace_all=held_hashes is None
                )
                store_validators(
                    conn, slug, getattr(adapter, "received_validators", {}), now=datetime.now(UTC)
                )
                store_page_validators(
                    conn, slug, getattr(adapter, "received_page_validators", {}), stats.page_hashes
                )
                if started_at is None:
                    forget_watermark(conn, slug)
                else:
                    store_watermark(
                        conn, slug, started_at, full=fetch_mode == "full", now=datetime.now(UTC)
                    )
        finally:
            staging.unlink(missing_ok=True)
            loading.done()
        context.log.info(
            f"{slug}: {counted_noun(stats.records, 'record')} in {counted_noun(stats.pages, 'page')} "
            f"({counted_noun(stats.bytes, 'byte')} fetched, {fetch_mode}; "
            f"{counted_noun(stats.pages_not_modified, 'page')} not modified, "
            f"{counted_noun(stats.records_unparsed, 'record')} seen before not parsed), "
            f"{counted_noun(stored, 'record')} stored, {counted_noun(len(changed_pages), 'page')} changed"
        )
        return dg.MaterializeResult(
            metadata={
                "marketplace": slug,
                "fetch": fetch_mode,
                "records_fetched": stats.records - stats.records_not_modified
                if changed_records is None
                else changed_records,
                "pages": stats.pages,
                "pages_not_modified": stats.pages_not_modified,
                "records_unparsed": stats.records_unparsed,
                "records": stats.records,
                "bytes": stats.bytes,
                "changed_pages": len(changed_pages),
                "records_stored": stored,
                "dagster/row_count": rows,
            }
        )

    @dg.asset(
        partitions_def=partitions,
        deps=[raw_catalog],
        group_name=CATALOG_GROUP,
        kinds={"polars", "duckdb"},
        check_specs=catalog_check_specs(partitions),
    )
    def normalized_products(
        context: dg.AssetExecutionContext,
        config: CatalogRunConfig,
        warehouse: WarehouseResource,
        marketplaces: MarketplacesResource,
    ) -> dg.MaterializeResult:
        """One marketplace's offers in the shared schema (table products), and every record that
        could not become one, with its reason (table rejected_products).

        The format's vectorized query (warehouse/vectorized.py) reads the common record inside
        DuckDB; any record it cannot vouch for goes through the adapter's normalize_record, which
        gives rejections their reason. A record repeating an external id an earlier record named
        (even a quarantined one) is rejected as duplicate_external_id. content_hash fingerprints what shoppers see; first_seen_at is kept
        across runs and updated_at moves only when the content changes. Only the records whose
        payload no offer or rejection was read from are read again (warehouse/records.py), unless
        `full_refresh`; the others' rows move to where their record now sits. The marketplace's
        quality checks (pipelines/checks.py) are evaluated at the end, on the same connection.
        """
        started = time.perf_counter()
        # The process's CPU (DuckDB's and Polars' threads included): the partitions run two at
        # a time on a shared machine, so their wall times overlap while DuckDB's baseline runs
        # alone; CPU compares the work.
        cpu_started = time.process_time()
        slug = context.partition_key
        marketplace = marketplaces.config_for(slug)
        adapter = marketplaces.adapter_for(slug)
        now = config.moment()
        run_id = context.run.run_id
        loading = CatalogLoading(slug, run_id)
        loading.say(f"{slug}: normalizing the catalog")
        try:
            with warehouse.connect() as conn:
                # Waiting for another partition's connection and opening the file: part of
                # normalize_seconds, reported apart (DuckDB's own read waits for nobody).
                open_seconds = round(time.perf_counter() - started, 3)
                conn.execute("SET memory_limit = ?", [NORMALIZE_MEMORY_LIMIT])
                incremental = not config.full_refresh and can_normalize_incrementally(conn, slug)
                changed = not incremental or catalog_changed(conn, slug)
                hashes = records_to_read(conn, slug) if incremental and changed else None
                if incremental and not hashes:
                    catalog = None
                else:
                    catalog = normalize_stored_catalog(
                        conn,
                        marketplace,
                        adapter.normalize_record,
                        now=now,
                        run_id=run_id,
                        hashes=tuple(hashes) if hashes is not None else None,
                    )
                    # Duplicate ids tie records together: widen until no id is shared with a
                    # record left alone (usually at once).
                    while hashes is not None:
                        tied = records_tied_to(conn, slug, hashes, _catalog_ids(catalog))
                        if not tied:
                            break
                        hashes = sorted({*hashes, *tied})
                        catalog = normalize_stored_catalog(
                            conn,
                            marketplace,
                            adapter.normalize_record,
                            now=now,
                            run_id=run_id,
                            hashes=tuple(hashes),
                        )
                if catalog is None:
                    removed = 0
                elif hashes is None:
                    replace_products(conn, slug, catalog, run_id=run_id, loaded_at=now)
                    write_sources(conn, slug, catalog)
                    removed = catalog.removed_offers
                else:
                    _, removed = write_record_changes(
                        conn, slug, catalog, run_id=run_id, loaded_at=now
                    )
                place_unchanged_records(
                    conn, slug, run_id=run_id, now=now, moved=incremental and changed
                )
                if changed:
                    mark_pages_normalized(conn, slug)
                (products,) = conn.execute(
                    "SELECT count(*) FROM products WHERE marketplace = ?", [slug]
                ).fetchall()[0]
                # Every rejection the marketplace's catalog holds, not only the records read now.
                rejected_by_reason = {
                    str(reason): int(count)
                    for reason, count in conn.execute(
                        "SELECT reason, count(*) FROM rejected_products WHERE marketplace = ? "
                        "GROUP BY reason ORDER BY count(*) DESC, reason",
                        [slug],
                    ).fetchall()
                }
                # Normalizing and loading, without the checks (the benchmark compares this with
                # DuckDB's own read of the payloads).
                normalize_seconds = round(time.perf_counter() - started, 3)
                normalize_cpu_seconds = round(time.process_time() - cpu_started, 3)
                selected_checks = {key.name for key in context.selected_asset_check_keys}
                check_results = evaluate_catalog_checks(conn, slug, selected_checks, run_id=run_id)
        finally:
            _close(adapter)
            loading.done()
        if catalog is None:
            context.log.info(f"{slug}: no new payload since the last run; nothing to normalize")
            return dg.MaterializeResult(
                metadata={
                    "marketplace": slug,
                    "dagster/row_count": int(products),
                    "pages_read": 0,
                    "records_read": 0,
                    "normalize_seconds": normalize_seconds,
                    "normalize_cpu_seconds": normalize_cpu_seconds,
                    "warehouse_open_seconds": open_seconds,
                    "new_offers": 0,
                    "changed_offers": 0,
                    "removed_offers": 0,
                    "content_changed": False,
                    "rejected": sum(rejected_by_reason.values()),
                    "rejected_by_reason": dg.MetadataValue.json(rejected_by_reason),
                },
                check_results=check_results,
            )
        content_changed = bool(catalog.new_offers or catalog.changed_offers or removed)
        context.log.info(
            describe_normalization(
                slug,
                products=int(products),
                offers_read=catalog.products.height,
                rejected_read=catalog.rejected.height,
                rejected_by_reason=rejected_by_reason,
            )
        )
        return dg.MaterializeResult(
            metadata={
                "marketplace": slug,
                "dagster/row_count": int(products),
                "pages_read": len(catalog.pages) if catalog.pages is not None else "all",
                "records_read": catalog.raw_records if hashes is not None else "all",
                "normalize_seconds": normalize_seconds,
                "normalize_cpu_seconds": normalize_cpu_seconds,
                "warehouse_open_seconds": open_seconds,
                "raw_records": catalog.raw_records,
                "rejected": sum(rejected_by_reason.values()),
                "rejected_by_reason": dg.MetadataValue.json(rejected_by_reason),
                "new_offers": catalog.new_offers,
                "changed_offers": catalog.changed_offers,
                "removed_offers": removed,
                "content_changed": content_changed,
                "content_fingerprint": catalog.content_fingerprint,
                "preview": dg.MetadataValue.md(preview_markdown(catalog.products, PREVIEW_COLUMNS)),
            },
            check_results=check_results,
        )

    return [raw_catalog, normalized_products]

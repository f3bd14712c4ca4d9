"""The per-marketplace assets: `raw_catalog` and `normalized_products`, partitioned by slug.

One partition is one marketplace, so a marketplace that is down fails only its own partition, and
its last good rows stay in the warehouse for everything downstream.
"""

import json
from datetime import UTC, datetime

import dagster as dg

from adapters.base import MarketplaceError
from pipelines.resources import MarketplacesResource, WarehouseResource
from warehouse.catalog import (
    load_raw_catalog,
    replace_products,
    stage_raw_catalog,
    upsert_marketplace,
)
from warehouse.normalize import normalize_stored_catalog
from warehouse.offers import preview_markdown

CATALOG_GROUP = "catalog"
PREVIEW_COLUMNS = ("external_id", "title", "price_minor", "currency", "brand", "model", "gtin")


class EmptyCatalogError(RuntimeError):
    """A marketplace answered with no records at all while we hold a catalog for it."""


def _close(adapter: object) -> None:
    close = getattr(adapter, "close", None)
    if callable(close):
        close()


def build_catalog_assets(partitions: dg.PartitionsDefinition) -> list[dg.AssetsDefinition]:
    """The two partitioned assets, for the marketplaces known when the definitions are built."""

    @dg.asset(
        partitions_def=partitions,
        group_name=CATALOG_GROUP,
        kinds={"python", "duckdb"},
    )
    def raw_catalog(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        marketplaces: MarketplacesResource,
    ) -> dg.MaterializeResult:
        """Every catalog record of one marketplace exactly as it sent them (table raw_catalog).

        Pages are fetched through the marketplace's adapter (retries and backoff included) and
        staged on disk; only a complete fetch replaces the marketplace's rows. HTTP failures after
        the retries fail this partition alone and leave the previous rows in place.
        """
        slug = context.partition_key
        config = marketplaces.config_for(slug)
        adapter = marketplaces.adapter_for(slug)
        staging = warehouse.staging_path(slug, context.run.run_id)
        try:
            try:
                stats = stage_raw_catalog(
                    adapter.fetch_catalog_pages(),
                    staging,
                    marketplace=slug,
                    run_id=context.run.run_id,
                )
            except MarketplaceError as exc:
                raise dg.Failure(
                    description=f"{slug}: catalog fetch failed: {type(exc).__name__}: {exc}",
                    metadata={"marketplace": slug, "error": type(exc).__name__},
                ) from exc
            finally:
                _close(adapter)
            with warehouse.connect() as conn:
                (held,) = conn.execute(
                    "SELECT count(*) FROM raw_catalog WHERE marketplace = ?", [slug]
                ).fetchone() or (0,)
                if stats.records == 0 and held:
                    raise dg.Failure(
                        description=(
                            f"{slug}: the marketplace returned an empty catalog; keeping the "
                            f"{held} records of the last good fetch"
                        ),
                        metadata={"marketplace": slug, "kept_records": int(held)},
                    )
                upsert_marketplace(conn, config, now=datetime.now(UTC))
                rows = load_raw_catalog(conn, slug, staging)
        finally:
            staging.unlink(missing_ok=True)
        context.log.info(
            f"{slug}: {stats.records} records in {stats.pages} pages ({stats.bytes} bytes)"
        )
        return dg.MaterializeResult(
            metadata={
                "marketplace": slug,
                "pages": stats.pages,
                "records": stats.records,
                "bytes": stats.bytes,
                "dagster/row_count": rows,
            }
        )

    @dg.asset(
        partitions_def=partitions,
        deps=[raw_catalog],
        group_name=CATALOG_GROUP,
        kinds={"polars", "duckdb"},
    )
    def normalized_products(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        marketplaces: MarketplacesResource,
    ) -> dg.MaterializeResult:
        """One marketplace's offers in the shared schema (table products), and every record that
        could not become one, with its reason (table rejected_products).

        The format's vectorized query (warehouse/vectorized.py) reads the common record inside
        DuckDB; any record it cannot vouch for goes through the adapter's normalize_record, which
        gives rejections their reason. Repeated external ids after the first are rejected as
        duplicate_external_id. content_hash fingerprints what shoppers
        see; first_seen_at is kept across runs and updated_at moves only when the content changes.
        """
        slug = context.partition_key
        config = marketplaces.config_for(slug)
        adapter = marketplaces.adapter_for(slug)
        now = datetime.now(UTC)
        try:
            with warehouse.connect() as conn:
                catalog = normalize_stored_catalog(
                    conn, config, adapter.normalize_record, now=now, run_id=context.run.run_id
                )
                replace_products(conn, slug, catalog, run_id=context.run.run_id, loaded_at=now)
        finally:
            _close(adapter)
        rejected_by_reason = catalog.rejected_by_reason
        content_changed = bool(
            catalog.new_offers or catalog.changed_offers or catalog.removed_offers
        )
        context.log.info(
            f"{slug}: {catalog.products.height} products, {catalog.rejected.height} rejected "
            f"{json.dumps(rejected_by_reason)}"
        )
        return dg.MaterializeResult(
            metadata={
                "marketplace": slug,
                "dagster/row_count": catalog.products.height,
                "raw_records": catalog.raw_records,
                "rejected": catalog.rejected.height,
                "rejected_by_reason": dg.MetadataValue.json(rejected_by_reason),
                "new_offers": catalog.new_offers,
                "changed_offers": catalog.changed_offers,
                "removed_offers": catalog.removed_offers,
                "content_changed": content_changed,
                "content_fingerprint": catalog.content_fingerprint,
                "preview": dg.MetadataValue.md(preview_markdown(catalog.products, PREVIEW_COLUMNS)),
            }
        )

    return [raw_catalog, normalized_products]

"""The two jobs: one partition run per marketplace, then one run of everything downstream.

They are separate on purpose. A job with both would rebuild the index once per marketplace, and a
single backfill would skip the downstream assets whenever any marketplace failed; here the
downstream run always works from whatever the warehouse holds.
"""

from __future__ import annotations

import dagster as dg

from pipelines.checks import products_are_fresh

MARKETPLACE_CATALOG_JOB = "marketplace_catalog_job"
CATALOG_DOWNSTREAM_JOB = "catalog_downstream_job"

CATALOG_ASSETS = ("raw_catalog", "normalized_products")
DOWNSTREAM_ASSETS = (
    "fx_rates",
    "product_groups",
    "price_history",
    "offer_embeddings",
    "search_products",
    "search_product_groups",
    "storefront_products",
    "analyst_warehouse",
)


def build_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    """The catalog job (partitioned like its assets) and the unpartitioned downstream job."""
    freshness = dg.AssetSelection.checks(products_are_fresh)
    catalog_job = dg.define_asset_job(
        MARKETPLACE_CATALOG_JOB,
        selection=dg.AssetSelection.assets(*CATALOG_ASSETS) - freshness,
        description="Fetch and normalize one marketplace's catalog (one partition per marketplace).",
        executor_def=dg.in_process_executor,
    )
    downstream_job = dg.define_asset_job(
        CATALOG_DOWNSTREAM_JOB,
        selection=dg.AssetSelection.assets(*DOWNSTREAM_ASSETS) | freshness,
        description="FX rates, matching, price history, search indexes (offers and products), "
        "storefront sync and the analysts' warehouse, from whatever the warehouse holds.",
        executor_def=dg.in_process_executor,
    )
    return [catalog_job, downstream_job]

"""The jobs: one partition run per marketplace, one run of everything downstream, and the offer
embeddings in a run of their own.

They are separate on purpose. The embeddings are the slow part of a first load (every offer
through the model): the downstream job indexes for keyword search without them, and the
embeddings job follows in the background and sends the vectors to the index when they are in. A job with both would rebuild the index once per marketplace, and a
single backfill would skip the downstream assets whenever any marketplace failed; here the
downstream run always works from whatever the warehouse holds.
"""

from __future__ import annotations

import dagster as dg

from pipelines.checks import products_are_fresh

MARKETPLACE_CATALOG_JOB = "marketplace_catalog_job"
CATALOG_DOWNSTREAM_JOB = "catalog_downstream_job"
OFFER_EMBEDDINGS_JOB = "offer_embeddings_job"
CATALOG_FRESHNESS_JOB = "catalog_freshness_job"
FETCH_TIMES_JOB = "fetch_times_job"

CATALOG_ASSETS = ("raw_catalog", "normalized_products")
DOWNSTREAM_ASSETS = (
    "fx_rates",
    "product_groups",
    "price_history",
    "search_products",
    "search_product_groups",
    "storefront_products",
    "analyst_warehouse",
)

# The embeddings, then the index again so it carries them (an incremental sync once it has).
# offer_embeddings yields no output when the vectors did not change, and Dagster then skips
# search_products in this run.
EMBEDDING_ASSETS = ("offer_embeddings", "search_products")
# Every run of the embeddings job carries this tag, and dagster.yaml's run queue launches one run
# with it at a time (onecart/dagster_instance.py): the run `up` launched, the sensor's after a
# refresh and one started from the UI used to embed the same texts side by side.
ONE_AT_A_TIME_TAG = ("onecart/one_at_a_time", OFFER_EMBEDDINGS_JOB)


def build_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    """The catalog job (partitioned like its assets), the downstream job, the embeddings job,
    the freshness check on its own (its schedule evaluates it at every refresh tick, whether or
    not a catalog changed or any fetch succeeded) and the fetch times job (the analysts' copy
    after a refresh that changed no offer)."""
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
    embeddings_job = dg.define_asset_job(
        OFFER_EMBEDDINGS_JOB,
        selection=dg.AssetSelection.assets(*EMBEDDING_ASSETS),
        description="Embed new or changed offer texts for the assistant, then give the index "
        "their vectors (hybrid search).",
        executor_def=dg.in_process_executor,
        # `tags`, not `run_tags`: a launch through the webserver's GraphQL (`onecart ingest`,
        # `up`) merges the job's `tags` into the run's and ignores `run_tags` (Dagster 1.13).
        tags=dict([ONE_AT_A_TIME_TAG]),
    )
    freshness_job = dg.define_asset_job(
        CATALOG_FRESHNESS_JOB,
        selection=freshness,
        description="Check that every marketplace was fetched lately (products_are_fresh).",
        executor_def=dg.in_process_executor,
    )
    # Publishing after a refresh that changed no offer writes the fetch times only: every table
    # is compared with the copy's and kept (warehouse.publish).
    fetch_times_job = dg.define_asset_job(
        FETCH_TIMES_JOB,
        selection=dg.AssetSelection.assets("analyst_warehouse"),
        description="After refreshes that changed no offer: the analysts' copy learns the new "
        "fetch times (marketplace_coverage.last_fetched_at); nothing else is written again.",
        executor_def=dg.in_process_executor,
    )
    return [catalog_job, downstream_job, embeddings_job, freshness_job, fetch_times_job]


# Built once: the sensors target them by definition, and the code location holds the same ones.
JOBS = build_jobs()
catalog_job, downstream_job, embeddings_job, freshness_job, fetch_times_job = JOBS

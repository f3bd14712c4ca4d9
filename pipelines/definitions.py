"""The Dagster code location of OneCart's pipeline (loaded by workspace.yaml).

`defs` is lazy: marketplaces.toml and the settings are read when Dagster loads the location, not
when this module is imported. `build_definitions(settings)` is what tests and `onecart ingest` use.
"""

from __future__ import annotations

import dagster as dg

from onecart.production import require_production_ready
from onecart.settings import Settings, get_settings
from pipelines.assets.catalog import build_catalog_assets
from pipelines.assets.embeddings import offer_embeddings
from pipelines.assets.history import price_history
from pipelines.assets.matching import product_groups
from pipelines.assets.reference import fx_rates
from pipelines.assets.serving import (
    analyst_warehouse,
    search_product_groups,
    search_products,
    storefront_products,
)
from pipelines.checks import products_are_fresh
from pipelines.ingest_plans import ingest_plan_store
from pipelines.jobs import JOBS, downstream_job, embeddings_job
from pipelines.partitions import build_marketplace_partitions
from pipelines.resources import build_resources
from pipelines.schedules import build_catalog_freshness_schedule, build_catalog_refresh_schedule
from pipelines.sensors import build_embeddings_after_downstream_sensor, products_changed_sensor


def build_definitions(settings: Settings) -> dg.Definitions:
    """Assets, checks, jobs, schedule, sensor and resources for the given settings."""
    partitions = build_marketplace_partitions(settings)
    return dg.Definitions(
        assets=[
            *build_catalog_assets(partitions),
            fx_rates,
            product_groups,
            price_history,
            offer_embeddings,
            search_products,
            search_product_groups,
            storefront_products,
            analyst_warehouse,
        ],
        asset_checks=[products_are_fresh],
        jobs=JOBS,
        schedules=[
            build_catalog_refresh_schedule(
                settings.schedule_cron, partitions, ingest_plan_store(settings)
            ),
            build_catalog_freshness_schedule(settings.schedule_cron),
        ],
        sensors=[
            products_changed_sensor,
            build_embeddings_after_downstream_sensor(downstream_job, embeddings_job),
        ],
        resources=build_resources(settings),
        # What the UI's Materialize button and its backfills run (the implicit asset job), in
        # one process like the jobs above: Dagster's default started a process per step, each
        # importing the pipeline again, and a partition whose steps took 4 s ran 45 s.
        executor=dg.in_process_executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The definitions for this process's settings (read now, at load time); in production the
    pipeline refuses to load while a secret is a default (onecart.production)."""
    settings = get_settings()
    require_production_ready(settings, "pipeline")
    return build_definitions(settings)

"""Refreshes that change no offer: the freshness check is still evaluated at every refresh tick,
and the analysts' copy still learns of the fetch (bench/RESULTS.md, ops QA pass 3's leftovers).

Before, both hung on the downstream run, which the sensor starts only when offers changed: with
quiet catalogs the Dagster UI showed freshness green while a marketplace had not been fetched
for hours, and `marketplace_coverage.last_fetched_at` kept the time of the last change."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import duckdb
import pytest

import warehouse
from onecart.settings import Settings
from pipelines.definitions import build_definitions
from pipelines.jobs import CATALOG_FRESHNESS_JOB, MARKETPLACE_CATALOG_JOB
from pipelines.run import materialize_all
from pipelines.schedules import CATALOG_FRESHNESS_SCHEDULE
from pipelines.sensors import products_changed_sensor
from warehouse.publish import KEPT

FETCHED = ["kiondo", "fakestore"]


@pytest.fixture(scope="module")
def two_catalogs(pipeline_settings: Settings, instance: dg.DagsterInstance, meili: object) -> None:
    """Kiondo and Fake Store ingested (catalogs, downstream, analysts' copy); the other
    marketplaces never fetched."""
    report = materialize_all(
        instance=instance, progress=lambda _line: None, marketplaces=FETCHED, embeddings=False
    )
    assert not report.failed_partitions


def pipeline_fetches(settings: Settings) -> dict[str, datetime]:
    with warehouse.connect(settings.pipeline_db_path, read_only=True) as conn:
        rows = conn.execute(
            "SELECT marketplace, max(fetched_at) FROM products GROUP BY marketplace"
        ).fetchall()
    return dict(rows)


def copy_fetches(settings: Settings) -> dict[str, datetime]:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        rows = conn.execute(
            "SELECT marketplace, last_fetched_at FROM marketplace_coverage "
            "WHERE last_fetched_at IS NOT NULL"
        ).fetchall()
    return dict(rows)


def test_freshness_is_evaluated_at_every_refresh_tick_and_names_each_stale_marketplace(
    two_catalogs: None, pipeline_settings: Settings, instance: dg.DagsterInstance
) -> None:
    definitions = build_definitions(pipeline_settings)
    schedule = definitions.resolve_schedule_def(CATALOG_FRESHNESS_SCHEDULE)
    assert schedule.cron_schedule == pipeline_settings.schedule_cron
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    tick = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=tick,
        repository_def=definitions.get_repository_def(),
    )
    (request,) = schedule.evaluate_tick(context).run_requests or []
    job = definitions.resolve_job_def(schedule.job_name)

    # Kiondo's fetches have failed for seven hours: its offers keep their old fetch time.
    db = pipeline_settings.pipeline_db_path
    with warehouse.connect(db) as conn:
        conn.execute(
            "UPDATE products SET fetched_at = fetched_at - INTERVAL 7 HOUR "
            "WHERE marketplace = 'kiondo'"
        )
    try:
        result = job.execute_in_process(instance=instance, tags=request.tags)
    finally:
        with warehouse.connect(db) as conn:
            conn.execute(
                "UPDATE products SET fetched_at = fetched_at + INTERVAL 7 HOUR "
                "WHERE marketplace = 'kiondo'"
            )
    assert result.success
    # Only the check: nothing is materialized again.
    assert result.get_asset_materialization_events() == []
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "products_are_fresh"
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    stale = evaluation.metadata["stale"].value
    assert "kiondo" in stale and "fakestore" not in stale
    # Each stale marketplace has its own line: how long ago it was fetched, or never.
    lines = (evaluation.description or "").splitlines()
    assert any(line.startswith("kiondo: last fetched 7.0") for line in lines), lines
    assert "amazon: never fetched" in lines
    assert not any(line.startswith("fakestore") for line in lines)


def test_freshness_does_not_call_a_marketplace_whose_every_record_was_quarantined_unfetched(
    two_catalogs: None, pipeline_settings: Settings, instance: dg.DagsterInstance
) -> None:
    """Fake Store was fetched a moment ago, and every record of it quarantined (a feed that
    changed its price format, say): it has no offer, and the check said "fakestore: never
    fetched", sending whoever reads it to the wrong problem. It still warns (shoppers see
    nothing of the store), with the fetch time and where to look."""
    definitions = build_definitions(pipeline_settings)
    job = definitions.resolve_job_def(CATALOG_FRESHNESS_JOB)
    db = pipeline_settings.pipeline_db_path
    with warehouse.connect(db) as conn:
        conn.execute(
            "CREATE TABLE held_offers AS SELECT * FROM products WHERE marketplace = 'fakestore'"
        )
        conn.execute("DELETE FROM products WHERE marketplace = 'fakestore'")
    try:
        result = job.execute_in_process(instance=instance)
    finally:
        with warehouse.connect(db) as conn:
            conn.execute("INSERT INTO products SELECT * FROM held_offers")
            conn.execute("DROP TABLE held_offers")
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert "fakestore" in evaluation.metadata["stale"].value
    lines = (evaluation.description or "").splitlines()
    (line,) = [line for line in lines if line.startswith("fakestore")]
    assert line.startswith("fakestore: no offers: fetched at "), line
    assert "none of its records became an offer" in line
    assert "amazon: never fetched" in lines


def test_a_refresh_that_changed_nothing_moves_the_analysts_fetch_time_only(
    two_catalogs: None, pipeline_settings: Settings, instance: dg.DagsterInstance
) -> None:
    # materialize_all refreshed everything itself: nothing for the sensor to do.
    idle = dg.build_sensor_context(instance=instance)
    assert isinstance(products_changed_sensor(idle), dg.SkipReason)
    before = copy_fetches(pipeline_settings)
    assert set(before) == set(FETCHED)

    definitions = build_definitions(pipeline_settings)
    catalog = definitions.resolve_job_def(MARKETPLACE_CATALOG_JOB)
    result = catalog.execute_in_process(partition_key="fakestore", instance=instance)
    assert result.success
    refreshed = result.asset_materializations_for_node("normalized_products")[-1]
    assert refreshed.metadata["content_changed"].value is False
    fetched = pipeline_fetches(pipeline_settings)
    assert fetched["fakestore"] > before["fakestore"]

    request = products_changed_sensor(
        dg.build_sensor_context(instance=instance, cursor=idle.cursor)
    )
    assert isinstance(request, dg.RunRequest), request
    job = definitions.resolve_job_def(request.job_name or "")
    published = job.execute_in_process(instance=instance, tags=request.tags)
    assert published.success

    assert copy_fetches(pipeline_settings) == {
        "kiondo": before["kiondo"],
        "fakestore": fetched["fakestore"],
    }
    # Of the offers, the fetch time alone was written; the big tables the refresh left alone
    # were kept as they were (the small marketplaces and rejected_products carry the run's own
    # marks, and are written when those moved).
    (materialization,) = published.asset_materializations_for_node("analyst_warehouse")
    refresh = materialization.metadata["table_refresh"].value
    untouched = ("product_groups", "price_history", "fx_rates", "catalog_loads")
    assert {table: refresh[table] for table in untouched} == dict.fromkeys(untouched, KEPT)
    assert materialization.metadata["product_rows_written"].value == 0
    assert materialization.metadata["fetch_times_written"].value == 1
    # The embeddings follow downstream runs only: this run is not one.
    assert request.job_name != "catalog_downstream_job"

"""The Dagster code location loads, and its partitions, jobs, schedule, sensor and resources are
what the rest of OneCart expects."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.utils import make_new_run_id

from adapters.registry import load_marketplaces
from onecart.settings import REPO_ROOT, Settings, get_settings
from pipelines.definitions import build_definitions, defs
from pipelines.jobs import (
    CATALOG_DOWNSTREAM_JOB,
    CATALOG_FRESHNESS_JOB,
    FETCH_TIMES_JOB,
    MARKETPLACE_CATALOG_JOB,
    OFFER_EMBEDDINGS_JOB,
)
from pipelines.resources import WarehouseResource
from pipelines.run import UnknownMarketplaceError, materialize_all
from pipelines.schedules import CATALOG_REFRESH_SCHEDULE
from pipelines.sensors import (
    EMBEDDINGS_AFTER_DOWNSTREAM_SENSOR,
    PRODUCTS_CHANGED_SENSOR,
    products_changed_sensor,
)

ASSETS = {
    "raw_catalog",
    "normalized_products",
    "fx_rates",
    "product_groups",
    "price_history",
    "offer_embeddings",
    "search_products",
    "search_product_groups",
    "storefront_products",
    "analyst_warehouse",
}
CHECKS = {
    "price_is_positive",
    "currency_is_iso",
    "gtin_checksum_share",
    "offer_keys_are_unique",
    "row_count_drift",
    "rejected_share",
    "products_are_fresh",
    "rates_cover_offer_currencies",
}


def test_definitions_load_lazily_with_every_asset_and_check() -> None:
    definitions = defs()
    graph = definitions.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == ASSETS
    assert {key.name for key in graph.asset_check_keys} == CHECKS
    for asset in ASSETS:
        spec = graph.get(dg.AssetKey(asset))
        assert spec.description, f"{asset} has no description (its docstring)"
        assert spec.group_name != "default"


def test_onecart_status_reads_every_check_of_the_definitions_by_name() -> None:
    """`onecart status` names the checks without importing the code that declares them
    (pipelines/check_names.py): the same keys as the definitions'."""
    from onecart.check_status import _check_keys

    partitioned, unpartitioned = _check_keys()
    assert set(partitioned) | set(unpartitioned) == set(
        defs().resolve_asset_graph().asset_check_keys
    )


def test_the_product_groups_description_gives_every_confidence_of_the_matching_rules() -> None:
    """The Dagster UI shows the docstring; an analyst reads match_confidence by it."""
    from warehouse import matching

    spec = defs().resolve_asset_graph().get(dg.AssetKey("product_groups"))
    confidences = {
        str(value) for name, value in vars(matching).items() if name.startswith("CONFIDENCE_")
    }
    description = " ".join((spec.description or "").split())
    assert {value for value in confidences if value not in description} == set(), description


def test_catalog_assets_are_partitioned_by_the_configured_marketplaces() -> None:
    settings = get_settings()
    definitions = build_definitions(settings)
    slugs = [
        config.slug for config in load_marketplaces(settings.marketplaces_file) if config.active
    ]
    job = definitions.resolve_job_def(MARKETPLACE_CATALOG_JOB)
    assert job.partitions_def is not None
    assert job.partitions_def.get_partition_keys() == slugs
    graph = definitions.resolve_asset_graph()
    assert graph.get(dg.AssetKey("search_products")).partitions_def is None


def test_jobs_split_the_catalog_from_everything_downstream() -> None:
    definitions = defs()
    catalog = definitions.resolve_job_def(MARKETPLACE_CATALOG_JOB)
    downstream = definitions.resolve_job_def(CATALOG_DOWNSTREAM_JOB)
    assert set(catalog.asset_layer.executable_asset_keys) == {
        dg.AssetKey("raw_catalog"),
        dg.AssetKey("normalized_products"),
    }
    # The embeddings run apart (after the index serves keyword search): offer_embeddings_job
    # embeds, then gives the index the vectors.
    assert {key.to_user_string() for key in downstream.asset_layer.executable_asset_keys} == (
        ASSETS - {"raw_catalog", "normalized_products", "offer_embeddings"}
    )
    embeddings = definitions.resolve_job_def(OFFER_EMBEDDINGS_JOB)
    assert {key.to_user_string() for key in embeddings.asset_layer.executable_asset_keys} == {
        "offer_embeddings",
        "search_products",
    }
    # The freshness check alone (its schedule runs it at every refresh tick), and the analysts'
    # copy alone (after refreshes that changed no offer).
    freshness = definitions.resolve_job_def(CATALOG_FRESHNESS_JOB)
    assert freshness.asset_layer.executable_asset_keys == set()
    assert {key.name for key in freshness.asset_layer.asset_graph.asset_check_keys} >= {
        "products_are_fresh"
    }
    fetch_times = definitions.resolve_job_def(FETCH_TIMES_JOB)
    assert {key.to_user_string() for key in fetch_times.asset_layer.executable_asset_keys} == {
        "analyst_warehouse"
    }


def test_what_the_ui_materializes_runs_in_one_process_like_the_jobs() -> None:
    """The UI's Materialize button and its backfills run the implicit asset job: with Dagster's
    default executor every step was a fresh process importing the pipeline, and a partition
    whose steps took 4 s ran 45 s (bench/RESULTS.md, ops QA pass 3)."""
    definitions = defs()
    implicit = definitions.resolve_implicit_global_asset_job_def()
    assert implicit.executor_def.name == dg.in_process_executor.name
    for name in (
        MARKETPLACE_CATALOG_JOB,
        CATALOG_DOWNSTREAM_JOB,
        OFFER_EMBEDDINGS_JOB,
        CATALOG_FRESHNESS_JOB,
        FETCH_TIMES_JOB,
    ):
        assert definitions.resolve_job_def(name).executor_def.name == dg.in_process_executor.name


def test_schedule_runs_every_partition_on_the_configured_cron() -> None:
    settings = Settings(schedule_cron="*/5 * * * *")
    definitions = build_definitions(settings)
    schedule = definitions.resolve_schedule_def(CATALOG_REFRESH_SCHEDULE)
    assert schedule.cron_schedule == "*/5 * * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == MARKETPLACE_CATALOG_JOB
    with dg.instance_for_test() as instance:
        tick = datetime(2026, 11, 25, 6, 30, tzinfo=UTC)
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=tick,
            repository_def=definitions.get_repository_def(),
        ) as context:
            requests = schedule.evaluate_tick(context).run_requests or []
    slugs = [
        config.slug for config in load_marketplaces(settings.marketplaces_file) if config.active
    ]
    assert [request.partition_key for request in requests] == slugs
    assert [request.run_key for request in requests] == [
        f"{slug}@{tick.isoformat()}" for slug in slugs
    ]


def test_a_refresh_tick_leaves_out_a_partition_whose_run_is_still_queued_or_running() -> None:
    """A tick queued a second run of a marketplace whose last refresh was still queued or
    running (a refresh longer than the cron interval, or the daemon's catch-up tick right after
    `onecart up` re-executed the refresh `down` cancelled): two fetches of one catalog side by
    side. The tick now requests only the other partitions, and says which it left out."""
    settings = Settings(schedule_cron="*/5 * * * *")
    definitions = build_definitions(settings)
    schedule = definitions.resolve_schedule_def(CATALOG_REFRESH_SCHEDULE)
    slugs = [
        config.slug for config in load_marketplaces(settings.marketplaces_file) if config.active
    ]
    catalog_job = definitions.resolve_job_def(MARKETPLACE_CATALOG_JOB)
    with dg.instance_for_test() as instance:
        statuses = [
            # (A queued run needs a code location's origin; the schedule reads only the status.)
            dg.DagsterRunStatus.STARTING,
            dg.DagsterRunStatus.STARTED,
            dg.DagsterRunStatus.SUCCESS,  # a run finished before the tick holds nothing back
        ]
        for slug, status in zip(slugs[:3], statuses, strict=True):
            instance.add_run(
                dg.DagsterRun(
                    job_name=catalog_job.name,
                    run_id=make_new_run_id(),
                    status=status,
                    tags={"dagster/partition": slug},
                )
            )
        # Entered, so the tick's log (which names the partitions left out) is closed after it.
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime.now(UTC) + timedelta(minutes=5),
            repository_def=definitions.get_repository_def(),
        ) as context:
            requests = schedule.evaluate_tick(context).run_requests or []
    assert [request.partition_key for request in requests] == slugs[2:]


def test_default_schedule_is_every_thirty_minutes() -> None:
    schedule = defs().resolve_schedule_def(CATALOG_REFRESH_SCHEDULE)
    assert schedule.cron_schedule == get_settings().schedule_cron == "*/30 * * * *"


def test_sensor_is_on_by_default_and_idle_without_materializations() -> None:
    sensor = defs().resolve_sensor_def(PRODUCTS_CHANGED_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    # The downstream job after changes, the fetch times job after refreshes without any.
    assert {target.job_name for target in sensor.targets} == {
        CATALOG_DOWNSTREAM_JOB,
        FETCH_TIMES_JOB,
    }
    with dg.instance_for_test() as instance:
        result = products_changed_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SkipReason)


def test_sensor_waits_for_a_ui_backfill_of_the_catalogs_too() -> None:
    """The UI's backfills run the implicit asset job, not marketplace_catalog_job: the sensor
    started the downstream run after the first partition of a backfill changed offers, with
    the others still running (and again after them)."""
    with dg.instance_for_test() as instance:
        instance.add_run(
            dg.DagsterRun(
                job_name="__ASSET_JOB",
                run_id=str(uuid.uuid4()),
                status=dg.DagsterRunStatus.STARTED,
                tags={"dagster/partition": "fakestore", "dagster/backfill": "abcdefgh"},
            )
        )
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key="normalized_products",
                partition="kiondo",
                metadata={"content_changed": True},
            )
        )
        result = products_changed_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SkipReason)
    assert "waiting for 1 catalog run(s)" in (result.skip_message or "")


def test_the_embeddings_follow_each_downstream_run_in_a_run_of_their_own() -> None:
    sensor = defs().resolve_sensor_def(EMBEDDINGS_AFTER_DOWNSTREAM_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.job_name == OFFER_EMBEDDINGS_JOB


def test_resources_come_from_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The default storefront DB is the home's SQLite file; a DATABASE_URL in the environment (the
    # PostgreSQL runs of the suite) would be the settings' answer instead.
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings(ONECART_HOME=tmp_path, MEILI_INDEX="shop_index")
    resources = build_definitions(settings).resources
    warehouse = resources["warehouse"]
    assert isinstance(warehouse, WarehouseResource)
    assert warehouse.pipeline_db_path == str(tmp_path.resolve() / "pipeline.duckdb")
    assert warehouse.published_path == str(tmp_path.resolve() / "warehouse.duckdb")
    assert resources["search_index"].index_uid == "shop_index"
    assert resources["storefront_db"].database_url.endswith("storefront.db")


def test_workspace_yaml_loads_the_pipeline_code_location(tmp_path: Path) -> None:
    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    (location,) = workspace["load_from"]
    assert location["python_module"]["module_name"] == "pipelines.definitions"
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    completed = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            str(REPO_ROOT / "workspace.yaml"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Validation successful" in completed.stderr + completed.stdout


def test_ingest_refuses_unknown_marketplaces_before_running_anything() -> None:
    with pytest.raises(UnknownMarketplaceError, match="atlantis") as refused:
        materialize_all(marketplaces=["shopwave", "atlantis"], progress=pytest.fail)
    assert "shopwave" in str(refused.value)  # the configured ones are listed


def test_a_refresh_down_cancelled_is_left_to_up_by_the_catch_up_tick_once() -> None:
    """`onecart up` re-executes the refresh `down` cancelled right after Dagster answers, while
    the daemon evaluates the schedule's catch-up tick; each looked for the other's run first, and
    when both looked before either launched, one marketplace was refreshed twice side by side
    (ops leftovers). The tick leaves a marketplace whose cancelled refresh no `up` has carried
    on yet to `up`; once `up` has (its run tagged `onecart/resumed_as`) or when a later tick
    finds it still waiting (no `up` came: Dagster started by hand), the tick refreshes it."""
    from onecart.dagster_runs import RESUMED_AS_TAG, STOPPED_BY_DOWN, STOPPED_BY_TAG

    settings = Settings(schedule_cron="*/5 * * * *")
    definitions = build_definitions(settings)
    schedule = definitions.resolve_schedule_def(CATALOG_REFRESH_SCHEDULE)
    slugs = [
        config.slug for config in load_marketplaces(settings.marketplaces_file) if config.active
    ]
    # shopwave's refresh succeeded as `down` came: nothing to carry on, the tick refreshes it.
    waiting, carried_on, succeeded = slugs[0], slugs[1], slugs[2]

    # Ticks after the runs (a run begun after a tick's time is as fresh as the tick).
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)

    def tick(instance: dg.DagsterInstance, minute: int) -> list[str]:
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=hour + timedelta(minutes=minute),
            repository_def=definitions.get_repository_def(),
        ) as context:
            requests = schedule.evaluate_tick(context).run_requests or []
        return [request.partition_key for request in requests]  # type: ignore[misc]

    with dg.instance_for_test() as instance:
        stopped = {}
        for slug in (waiting, carried_on, succeeded):
            stopped[slug] = make_new_run_id()
            instance.add_run(
                dg.DagsterRun(
                    job_name=MARKETPLACE_CATALOG_JOB,
                    run_id=stopped[slug],
                    status=dg.DagsterRunStatus.SUCCESS
                    if slug == succeeded
                    else dg.DagsterRunStatus.CANCELED,
                    tags={"dagster/partition": slug, STOPPED_BY_TAG: STOPPED_BY_DOWN},
                )
            )
        catch_up = tick(instance, 30)
        # The same tick evaluated again (the daemon retries a failed submission) says the same.
        again = tick(instance, 30)
        instance.add_run_tags(stopped[carried_on], {RESUMED_AS_TAG: make_new_run_id()})
        next_tick = tick(instance, 35)
    assert catch_up == again == [slug for slug in slugs if slug not in (waiting, carried_on)]
    assert next_tick == slugs


def test_a_late_catch_up_tick_leaves_out_the_marketplaces_refreshed_since_its_time() -> None:
    """The daemon evaluates the tick it missed while OneCart was down once `onecart up --ingest`
    has started it, while the ingest refreshes every marketplace: the tick queued a second
    refresh of each marketplace whose ingest run had just finished (ops QA, branch ops5). A
    marketplace refreshed successfully after the tick's own time is left out; one whose refresh
    since then failed is requested."""
    settings = Settings(schedule_cron="*/5 * * * *")
    definitions = build_definitions(settings)
    schedule = definitions.resolve_schedule_def(CATALOG_REFRESH_SCHEDULE)
    slugs = [
        config.slug for config in load_marketplaces(settings.marketplaces_file) if config.active
    ]
    missed_tick = datetime.now(UTC) - timedelta(minutes=3)
    with dg.instance_for_test() as instance:
        for slug, status in zip(
            slugs[:2], [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE], strict=True
        ):
            instance.add_run(
                dg.DagsterRun(
                    job_name=MARKETPLACE_CATALOG_JOB,
                    run_id=make_new_run_id(),
                    status=status,
                    tags={"dagster/partition": slug, "onecart/trigger": "ingest"},
                )
            )
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=missed_tick,
            repository_def=definitions.get_repository_def(),
        ) as context:
            requests = schedule.evaluate_tick(context).run_requests or []
    assert [request.partition_key for request in requests] == slugs[1:]


def test_the_tick_after_an_ingest_leaves_out_the_marketplaces_it_fetched_within_the_interval() -> (
    None
):
    """The regular tick right after an ingest queued a refresh of every marketplace the ingest had
    fetched a minute before (ops QA, branch ops5: seven refreshes at 03:30 after a 03:27–03:29
    ingest, with a */3 cron). A marketplace fetched successfully less than the schedule's
    interval before the tick is left out, and the tick says so; one whose fetch failed is
    requested, as is one the previous tick refreshed, and a tick one interval later requests
    them all again."""
    settings = Settings(schedule_cron="*/5 * * * *")
    definitions = build_definitions(settings)
    schedule = definitions.resolve_schedule_def(CATALOG_REFRESH_SCHEDULE)
    slugs = [
        config.slug for config in load_marketplaces(settings.marketplaces_file) if config.active
    ]
    now = datetime.now(UTC)
    next_tick = now.replace(second=0, microsecond=0) + timedelta(minutes=5 - now.minute % 5)

    def evaluate(tick: datetime) -> dg.ScheduleExecutionData:
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=tick,
            repository_def=definitions.get_repository_def(),
        ) as context:
            return schedule.evaluate_tick(context)

    with dg.instance_for_test() as instance:
        for slug in slugs:
            instance.add_run(
                dg.DagsterRun(
                    job_name=MARKETPLACE_CATALOG_JOB,
                    run_id=make_new_run_id(),
                    status=dg.DagsterRunStatus.SUCCESS
                    if slug != slugs[0]
                    else dg.DagsterRunStatus.FAILURE,
                    # The previous tick's own run is the schedule's cadence, not a fetch to skip.
                    tags={
                        "dagster/partition": slug,
                        "onecart/trigger": "schedule" if slug == slugs[1] else "ingest",
                    },
                )
            )
        right_after = evaluate(next_tick)
        a_while_after = evaluate(next_tick + timedelta(minutes=5))
    assert [request.partition_key for request in right_after.run_requests or []] == slugs[:2]
    assert sorted(r.partition_key for r in a_while_after.run_requests or []) == sorted(slugs)
    # Everything fetched within the interval: the tick is skipped, saying why.
    with dg.instance_for_test() as instance:
        for slug in slugs:
            instance.add_run(
                dg.DagsterRun(
                    job_name=MARKETPLACE_CATALOG_JOB,
                    run_id=make_new_run_id(),
                    status=dg.DagsterRunStatus.SUCCESS,
                    tags={"dagster/partition": slug, "onecart/trigger": "ingest"},
                )
            )
        skipped = evaluate(next_tick)
    assert not skipped.run_requests
    assert skipped.skip_message is not None
    assert skipped.skip_message.startswith(
        "fetched successfully less than 5 minutes before this tick or since, not requested again: "
    )
    assert all(slug in skipped.skip_message for slug in slugs)


def test_a_skipped_tick_names_each_marketplace_left_out_once_with_its_reason() -> None:
    """ops10's 16:00 tick: "still refreshing from an earlier run, not requested again: dummymart;
    fetched successfully less than 30 minutes before this tick or since, not requested again:
    shopwave, kiondo, dummymart, …": dummymart named under both reasons. The run still going is
    the reason that holds it back (it brings the marketplace up to date either way)."""
    settings = Settings(schedule_cron="*/5 * * * *")
    definitions = build_definitions(settings)
    schedule = definitions.resolve_schedule_def(CATALOG_REFRESH_SCHEDULE)
    slugs = [
        config.slug for config in load_marketplaces(settings.marketplaces_file) if config.active
    ]
    with dg.instance_for_test() as instance:
        for slug in slugs:
            instance.add_run(
                dg.DagsterRun(
                    job_name=MARKETPLACE_CATALOG_JOB,
                    run_id=make_new_run_id(),
                    status=dg.DagsterRunStatus.SUCCESS,
                    tags={"dagster/partition": slug, "onecart/trigger": "ingest"},
                )
            )
        instance.add_run(  # a refresh of the first one from the UI, still fetching
            dg.DagsterRun(
                job_name=MARKETPLACE_CATALOG_JOB,
                run_id=make_new_run_id(),
                status=dg.DagsterRunStatus.STARTED,
                tags={"dagster/partition": slugs[0]},
            )
        )
        now = datetime.now(UTC)
        tick = now.replace(second=0, microsecond=0) + timedelta(minutes=5 - now.minute % 5)
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=tick,
            repository_def=definitions.get_repository_def(),
        ) as context:
            skipped = schedule.evaluate_tick(context)
    assert not skipped.run_requests
    assert skipped.skip_message == (
        f"still refreshing from an earlier run, not requested again: {slugs[0]}; "
        "fetched successfully less than 5 minutes before this tick or since, not requested "
        f"again: {', '.join(slugs[1:])}"
    )

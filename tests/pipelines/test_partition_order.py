"""Partition runs start longest first, by each marketplace's last run of the same kind.

Order note: after the schedule test below, a Definitions object whose repository is first built
later (tests/pipelines/test_definitions.py's `defs()`) finds Dagster's state storage of this
test's disposed instance and fails; pytest runs that module before this one. Copying the
contextvars context did not isolate it."""

import time
from datetime import UTC, datetime

import dagster as dg

from adapters.registry import load_marketplaces
from onecart.settings import Settings
from pipelines.definitions import build_definitions
from pipelines.jobs import MARKETPLACE_CATALOG_JOB
from pipelines.partition_order import last_durations, longest_first
from pipelines.schedules import CATALOG_REFRESH_SCHEDULE


def test_never_measured_first_then_longest_and_ties_in_given_order() -> None:
    durations = {"a": 2.0, "b": 9.0, "d": 2.0, "e": 0.5}
    assert longest_first(["a", "b", "c", "d", "e", "f"], durations) == [
        "c",
        "f",
        "b",
        "a",
        "d",
        "e",
    ]


@dg.op(config_schema={"full_refresh": bool, "seconds": float})
def raw_catalog(context: dg.OpExecutionContext) -> None:
    time.sleep(context.op_config["seconds"])


@dg.job(name=MARKETPLACE_CATALOG_JOB)
def stand_in_catalog_job() -> None:
    # Only the run records matter here: the job's name, the partition tag, the run config's
    # full_refresh and how long the run took.
    raw_catalog()


def _run(
    instance: dg.DagsterInstance, slug: str, *, full_refresh: bool, seconds: float = 0.0
) -> float:
    """Run the stand-in partition; returns the duration its run record holds."""
    result = stand_in_catalog_job.execute_in_process(
        instance=instance,
        tags={"dagster/partition": slug},
        run_config={
            "ops": {"raw_catalog": {"config": {"full_refresh": full_refresh, "seconds": seconds}}}
        },
    )
    assert result.success
    record = instance.get_run_record_by_id(result.run_id)
    assert record is not None and record.start_time and record.end_time
    return record.end_time - record.start_time


def test_durations_come_from_the_newest_successful_run_of_the_same_kind() -> None:
    with dg.instance_for_test() as instance:
        _run(instance, "shopwave", full_refresh=False)
        newest_shopwave = _run(instance, "shopwave", full_refresh=False)
        full_kiondo = _run(instance, "kiondo", full_refresh=True)
        incremental_kiondo = _run(instance, "kiondo", full_refresh=False)
        incremental = last_durations(instance, full_refresh=False)
        full = last_durations(instance, full_refresh=True)
    assert incremental == {"shopwave": newest_shopwave, "kiondo": incremental_kiondo}
    assert full == {"kiondo": full_kiondo}


def test_the_schedule_requests_the_longest_partition_first() -> None:
    settings = Settings(schedule_cron="*/7 * * * *")
    slugs = [c.slug for c in load_marketplaces(settings.marketplaces_file) if c.active]
    slow, never = slugs[-1], slugs[1]
    definitions = build_definitions(settings)
    schedule = definitions.resolve_schedule_def(CATALOG_REFRESH_SCHEDULE)
    with dg.instance_for_test() as instance:
        for slug in slugs:
            if slug != never:
                _run(instance, slug, full_refresh=False, seconds=1.5 if slug == slow else 0.0)
        context = dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2026, 12, 4, 6, 30, tzinfo=UTC),
            repository_def=definitions.get_repository_def(),
        )
        requests = schedule.evaluate_tick(context).run_requests or []
    ordered = [request.partition_key for request in requests]
    assert sorted(ordered) == sorted(slugs)
    assert ordered[:2] == [never, slow]

"""Partition runs start longest first, by each marketplace's last run of the same kind.

The schedule's use of this order is exercised by tests/pipelines/test_definitions.py (a fresh
instance: every partition never run, so configuration order). A schedule evaluation here, after
runs in a test instance, left Dagster's state storage pointing at that disposed instance and broke
later modules' repository loads, so the order is tested below the schedule."""

import time

import dagster as dg

from pipelines.jobs import MARKETPLACE_CATALOG_JOB
from pipelines.partition_order import last_durations, longest_first


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

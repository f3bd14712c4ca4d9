"""`onecart ingest` and a scheduled refresh of the same marketplace (pipelines/ingest_overlap.py):
the ingest fetched a marketplace while the daemon's refresh of it was running, side by side (ops
leftovers). It now waits for that run to end, says so, and fetches after it; a real Dagster
instance records the runs as the daemon does."""

from __future__ import annotations

import threading

import dagster as dg
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._core.utils import make_new_run_id

from pipelines.ingest_overlap import wait_for_refresh_in_flight
from pipelines.jobs import MARKETPLACE_CATALOG_JOB
from pipelines.run import PartitionOutcome
from pipelines.run_progress import describe_partition


def _scheduled_run(instance: dg.DagsterInstance, slug: str, status: dg.DagsterRunStatus) -> str:
    run_id = make_new_run_id()
    instance.add_run(
        dg.DagsterRun(
            job_name=MARKETPLACE_CATALOG_JOB,
            run_id=run_id,
            status=status,
            tags={
                "dagster/partition": slug,
                "onecart/trigger": "schedule",
                GRPC_INFO_TAG: '{"host": "localhost", "port": 1}',
            },
        )
    )
    return run_id


def test_the_ingest_waits_for_a_scheduled_refresh_of_the_same_marketplace() -> None:
    with dg.instance_for_test() as instance:
        running = _scheduled_run(instance, "kiondo", dg.DagsterRunStatus.STARTED)
        _scheduled_run(instance, "shopwave", dg.DagsterRunStatus.STARTED)
        waiting = threading.Event()
        lines: list[str] = []

        def said(line: str) -> None:
            lines.append(line)
            waiting.set()

        def finish_once_waited_for() -> None:
            waiting.wait()
            instance.report_dagster_event(
                DagsterEvent(
                    event_type_value=DagsterEventType.RUN_SUCCESS.value,
                    job_name=MARKETPLACE_CATALOG_JOB,
                ),
                running,
            )

        ending = threading.Thread(target=finish_once_waited_for)
        ending.start()
        waited = wait_for_refresh_in_flight(instance, "kiondo", said, poll=0.05)
        ending.join()
        assert instance.get_run_by_id(running).status == dg.DagsterRunStatus.SUCCESS
        # Nothing in flight for this one: no wait, nothing said.
        assert wait_for_refresh_in_flight(instance, "dummymart", said, poll=0.05) is None
    assert lines == [
        f"kiondo: a scheduled refresh is fetching it (Dagster run {running}); "
        "waiting for it to end before fetching it"
    ]
    assert waited == f"kiondo: waited for the scheduled refresh {running} (SUCCESS) before fetching"


def test_a_refresh_run_left_started_by_a_dead_process_is_not_waited_for_for_ever() -> None:
    """A run with no code server (an `ingest` killed mid-run left it STARTED) is nobody's to end:
    the ingest does not wait for it."""
    with dg.instance_for_test() as instance:
        run_id = make_new_run_id()
        instance.add_run(
            dg.DagsterRun(
                job_name=MARKETPLACE_CATALOG_JOB,
                run_id=run_id,
                status=dg.DagsterRunStatus.STARTED,
                tags={"dagster/partition": "kiondo", "onecart/trigger": "ingest"},
            )
        )
        lines: list[str] = []
        assert wait_for_refresh_in_flight(instance, "kiondo", lines.append, poll=0.05) is None
    assert lines == []


def test_the_ingest_report_names_the_refresh_it_waited_for() -> None:
    waited = "kiondo: waited for the scheduled refresh abc (SUCCESS) before fetching"
    outcome = PartitionOutcome(
        marketplace="kiondo", success=True, run_id="def", fetched=40, pages=2, waited=waited
    )
    assert describe_partition(outcome)[0] == waited
    assert describe_partition(outcome)[1].startswith("kiondo: fetched 40 records (2 pages)")

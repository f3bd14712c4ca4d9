"""`onecart ingest` beside the daemon's scheduled refreshes: the ingest fetched a marketplace while
the schedule's run of the same marketplace was fetching it, side by side (two fetches at once,
their loads serialized only by the warehouse lock, then two downstream runs). The ingest now waits
for such a run to end before fetching the marketplace itself; the tick that follows leaves out
what the ingest fetched (pipelines/schedules.py), and, while the ingest runs, what it has yet
to fetch (pipelines/ingest_plans.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import dagster as dg
from dagster._core.storage.tags import GRPC_INFO_TAG

from pipelines.ingest_plans import PARTITION_TAKES_AT_MOST_S
from pipelines.jobs import MARKETPLACE_CATALOG_JOB

# Runs still fetching. QUEUED ones are left out: with the daemon stopped they never start, and
# the ingest would wait for ever (the tick leaves out a marketplace fetched meanwhile).
FETCHING: Final = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# A refresh running longer than this is stuck, and the ingest goes ahead.
WAIT_AT_MOST_S: Final = PARTITION_TAKES_AT_MOST_S


def wait_for_refresh_in_flight(
    instance: dg.DagsterInstance,
    slug: str,
    progress: Callable[[str], None],
    *,
    poll: float = 1.0,
    at_most: float = WAIT_AT_MOST_S,
) -> str | None:
    """Wait until no run the daemon launched is fetching `slug`'s catalog; say so when it
    waits. Returns what the ingest's report says of the wait (None: nothing to wait for).

    Only runs launched through a code server count: a run another process executed in place
    (an ingest killed mid-run) can stay STARTED with nobody to end it."""
    runs = [
        run
        for run in instance.get_runs(
            dg.RunsFilter(
                job_name=MARKETPLACE_CATALOG_JOB,
                statuses=FETCHING,
                tags={"dagster/partition": slug},
            )
        )
        if GRPC_INFO_TAG in run.tags
    ]
    if not runs:
        return None
    waited = []
    deadline = time.monotonic() + at_most
    for run in runs:
        progress(
            f"{slug}: a scheduled refresh is fetching it (Dagster run {run.run_id}); "
            "waiting for it to end before fetching it"
        )
        current = instance.get_run_by_id(run.run_id)
        while current is not None and not current.is_finished and time.monotonic() < deadline:
            time.sleep(poll)
            current = instance.get_run_by_id(run.run_id)
        status = current.status.value if current is not None else "gone"
        waited.append(f"{run.run_id} ({status})")
    return f"{slug}: waited for the scheduled refresh {', '.join(waited)} before fetching"

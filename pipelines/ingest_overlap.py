"""`onecart ingest` beside the daemon's scheduled refreshes: the ingest fetched a marketplace while
the schedule's run of the same marketplace was fetching it, side by side (two fetches at once,
their loads serialized only by the warehouse lock, then two downstream runs). The ingest now waits
for such a run to end before fetching the marketplace itself; the tick that follows leaves out
what the ingest fetched (pipelines/schedules.py), and, while the ingest runs, what it has yet
to fetch (:class:`IngestPlan`)."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import dagster as dg
from dagster._core.storage.tags import GRPC_INFO_TAG

from pipelines.jobs import MARKETPLACE_CATALOG_JOB

# Runs still fetching. QUEUED ones are left out: with the daemon stopped they never start, and
# the ingest would wait for ever (the tick leaves out a marketplace fetched meanwhile).
FETCHING: Final = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# A refresh takes minutes; one running longer than this is stuck, and the ingest goes ahead.
WAIT_AT_MOST_S: Final = 3600.0


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


# Where a running `onecart ingest` says which marketplaces it has yet to fetch: the Dagster
# instance's key-value store, which the daemon's schedule reads in the cluster profile too
# (PostgreSQL storage, possibly another host). One JSON object, one entry per ingest.
INGEST_PLANS_KEY: Final = "onecart/ingest_plans"


@dataclass(frozen=True, slots=True)
class _PlanEntry:
    host: str
    pid: int
    pending: list[str]
    updated: str  # ISO 8601, UTC: when the ingest last said what it has yet to fetch


def _read_plans(instance: dg.DagsterInstance) -> dict[str, _PlanEntry]:
    text = instance.daemon_cursor_storage.get_cursor_values({INGEST_PLANS_KEY}).get(
        INGEST_PLANS_KEY
    )
    if not text:
        return {}
    try:
        return {key: _PlanEntry(**value) for key, value in json.loads(text).items()}
    except (TypeError, ValueError):  # written by an older OneCart: no plan to honour
        return {}


def _write_plans(instance: dg.DagsterInstance, plans: dict[str, _PlanEntry]) -> None:
    instance.daemon_cursor_storage.set_cursor_values(
        {INGEST_PLANS_KEY: json.dumps({key: asdict(entry) for key, entry in plans.items()})}
    )


class IngestPlan:
    """What a running `onecart ingest` has yet to fetch, kept in the Dagster instance while it
    runs: the refresh schedule's catch-up tick (the daemon starting beside `up --ingest`) queued
    the marketplaces the ingest had not reached, and the ingest then waited for those runs
    before fetching each again (pipelines/schedules.py leaves them out now).

    Two ingests starting at the same instant can overwrite each other's entry (the store has no
    compare-and-set); the tick then queues that ingest's marketplaces and the ingest waits for
    those runs, as before: each fetch still happens one at a time."""

    def __init__(self, instance: dg.DagsterInstance, marketplaces: list[str]) -> None:
        self._instance = instance
        self._key = uuid.uuid4().hex
        self._pending = list(marketplaces)

    def __enter__(self) -> IngestPlan:
        self._save()
        return self

    def fetched(self, slug: str) -> None:
        """The ingest is done with `slug` (fetched or failed): the tick may request it again,
        as its own rules say (a successful fetch within the interval is left out)."""
        if slug in self._pending:
            self._pending.remove(slug)
            self._save()

    def __exit__(self, *exc_info: object) -> None:
        plans = _read_plans(self._instance)
        plans.pop(self._key, None)
        _write_plans(self._instance, plans)

    def _save(self) -> None:
        plans = _read_plans(self._instance)
        plans[self._key] = _PlanEntry(
            host=socket.gethostname(),
            pid=os.getpid(),
            pending=list(self._pending),
            updated=datetime.now(UTC).isoformat(),
        )
        _write_plans(self._instance, plans)


def _still_running(entry: _PlanEntry, now: datetime) -> bool:
    """An ingest killed before it could take its plan back leaves it behind: on this host its
    process is gone; on another host (cluster profile) a plan not updated for longer than a
    partition may take (WAIT_AT_MOST_S) is taken as left behind."""
    if entry.host == socket.gethostname():
        try:
            os.kill(entry.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's live process
            return True
        return True
    return now - datetime.fromisoformat(entry.updated) < timedelta(seconds=WAIT_AT_MOST_S)


def marketplaces_an_ingest_will_fetch(instance: dg.DagsterInstance) -> set[str]:
    """The marketplaces a running `onecart ingest` has yet to fetch (or is fetching)."""
    now = datetime.now(UTC)
    return {
        slug
        for entry in _read_plans(instance).values()
        if _still_running(entry, now)
        for slug in entry.pending
    }

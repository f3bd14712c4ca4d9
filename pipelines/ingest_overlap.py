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
from typing import Final, cast

import dagster as dg
from dagster._core.storage.legacy_storage import LegacyRunStorage
from dagster._core.storage.runs.schema import KeyValueStoreTable
from dagster._core.storage.runs.sql_run_storage import SqlRunStorage
from dagster._core.storage.sqlalchemy_compat import db_select
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
# (PostgreSQL storage, possibly another host). One key per ingest, this prefix and the ingest's
# own id: each ingest writes only its own, so two ingests starting at once cannot overwrite each
# other's plan (one shared JSON object, read, changed and written back, could lose one).
INGEST_PLAN_KEY_PREFIX: Final = "onecart/ingest_plan/"


@dataclass(frozen=True, slots=True)
class _PlanEntry:
    host: str
    pid: int
    pending: list[str]
    updated: str  # ISO 8601, UTC: when the ingest last said what it has yet to fetch


def _key_value_storage(instance: dg.DagsterInstance) -> SqlRunStorage:
    """The SQL run storage holding the instance's key-value table. Dagster's own methods read
    and write keys named in advance; the plans are found by their prefix, and one is deleted
    only while it holds what was read (compare-and-delete), which needs the table itself."""
    storage = instance.run_storage
    if isinstance(storage, LegacyRunStorage):  # `storage: postgres:` in dagster.yaml
        storage = storage._storage.run_storage  # no public way to its tables
    return cast(SqlRunStorage, storage)


def _read_plans(instance: dg.DagsterInstance) -> dict[str, tuple[str, _PlanEntry | None]]:
    """Every ingest's plan by key: the stored text, and the plan (None: not one this OneCart
    can read, which no tick honours)."""
    table = KeyValueStoreTable
    rows = _key_value_storage(instance).fetchall(
        db_select([table.c.key, table.c.value]).where(
            table.c.key.startswith(INGEST_PLAN_KEY_PREFIX, autoescape=True)
        )
    )
    plans: dict[str, tuple[str, _PlanEntry | None]] = {}
    for row in rows:
        try:
            plans[row["key"]] = (row["value"], _PlanEntry(**json.loads(row["value"])))
        except (TypeError, ValueError):
            plans[row["key"]] = (row["value"], None)
    return plans


def _delete_plan(instance: dg.DagsterInstance, key: str, *, if_still: str | None = None) -> None:
    """Delete a plan; with `if_still`, only while it holds that text (a plan judged left behind
    that its ingest has since updated stays)."""
    table = KeyValueStoreTable
    condition = table.c.key == key
    if if_still is not None:
        condition = condition & (table.c.value == if_still)
    with _key_value_storage(instance).connect() as conn:
        conn.execute(table.delete().where(condition))


class IngestPlan:
    """What a running `onecart ingest` has yet to fetch, kept in the Dagster instance while it
    runs: the refresh schedule's catch-up tick (the daemon starting beside `up --ingest`) queued
    the marketplaces the ingest had not reached, and the ingest then waited for those runs
    before fetching each again (pipelines/schedules.py leaves them out now).

    Each ingest keeps its plan under a key of its own and only ever writes that key: ingests
    starting, fetching and ending at the same instant leave each other's plans alone."""

    def __init__(self, instance: dg.DagsterInstance, marketplaces: list[str]) -> None:
        self._instance = instance
        self._key = INGEST_PLAN_KEY_PREFIX + uuid.uuid4().hex
        self._pending = list(marketplaces)

    def __enter__(self) -> IngestPlan:
        _delete_plans_left_behind(self._instance)
        self._save()
        return self

    def fetched(self, slug: str) -> None:
        """The ingest is done with `slug` (fetched or failed): the tick may request it again,
        as its own rules say (a successful fetch within the interval is left out)."""
        if slug in self._pending:
            self._pending.remove(slug)
            self._save()

    def __exit__(self, *exc_info: object) -> None:
        _delete_plan(self._instance, self._key)

    def _save(self) -> None:
        entry = _PlanEntry(
            host=socket.gethostname(),
            pid=os.getpid(),
            pending=list(self._pending),
            updated=datetime.now(UTC).isoformat(),
        )
        self._instance.daemon_cursor_storage.set_cursor_values(
            {self._key: json.dumps(asdict(entry))}
        )


def _delete_plans_left_behind(instance: dg.DagsterInstance) -> None:
    """Plans of ingests killed before they could take them back (or unreadable): gone from the
    store once the next ingest starts, rather than kept for ever, one key per killed ingest."""
    now = datetime.now(UTC)
    for key, (text, entry) in _read_plans(instance).items():
        if entry is None or not _still_running(entry, now):
            _delete_plan(instance, key, if_still=text)


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
        for _, entry in _read_plans(instance).values()
        if entry is not None and _still_running(entry, now)
        for slug in entry.pending
    }

"""What a running `onecart ingest` has yet to fetch, so the refresh schedule's catch-up tick (the
daemon starting beside `up --ingest`) leaves those marketplaces to it: the tick had queued every
marketplace the ingest had not reached, and the ingest then waited for those runs before
fetching each again (pipelines/schedules.py leaves them out now).

The plans live in a table of OneCart's own, `onecart_ingest_plans`, beside Dagster's storage:
a SQLite file in DAGSTER_HOME locally, Dagster's PostgreSQL database in the cluster profile (the
daemon, and so the tick, may run on another host than the ingest). Dagster's public instance API
has no key-value store (its `kvs` table is reached only through private modules, which a Dagster
upgrade may change), and the plans need what it would not give anyway: listing them, and
deleting one only while it still holds what was read.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Final

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from onecart.dagster_instance import dagster_home, dagster_postgres_url
from onecart.settings import Settings

# A partition takes minutes; one taking longer than this is stuck: the ingest waits no longer for
# a scheduled refresh (pipelines/ingest_overlap.py), and a plan from another host not updated for
# as long is taken as left behind.
PARTITION_TAKES_AT_MOST_S: Final = 3600.0
PLANS_TABLE: Final = "onecart_ingest_plans"
LOCAL_PLANS_FILE: Final = "onecart_ingest_plans.sqlite"

_METADATA = sa.MetaData()
_PLANS = sa.Table(
    PLANS_TABLE,
    _METADATA,
    # One row per running ingest, written only by that ingest.
    sa.Column("ingest_id", sa.String(64), primary_key=True),
    # JSON: host, pid, pending (the marketplaces it has yet to fetch), updated (ISO 8601, UTC).
    sa.Column("plan", sa.Text, nullable=False),
)


class IngestPlanStore:
    """The plans' table at `url`, created on first use. Connections are not pooled: an ingest's
    worker processes are forked, and the schedule reads once a tick."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: sa.Engine | None = None

    def read_plans(self) -> dict[str, str]:
        """Every stored plan's text, by ingest id."""
        with self._connect() as conn:
            rows = conn.execute(sa.select(_PLANS.c.ingest_id, _PLANS.c.plan))
            return {ingest_id: plan for ingest_id, plan in rows}

    def write_plan(self, ingest_id: str, plan: str) -> None:
        """Store `plan` as that ingest's (only that ingest writes its row: no one to race)."""
        with self._connect() as conn:
            updated = conn.execute(
                _PLANS.update().where(_PLANS.c.ingest_id == ingest_id).values(plan=plan)
            )
            if updated.rowcount == 0:
                conn.execute(_PLANS.insert().values(ingest_id=ingest_id, plan=plan))

    def delete_plan(self, ingest_id: str, *, if_still: str | None = None) -> bool:
        """Delete a plan; with `if_still`, only while it holds that text (compare-and-delete: a
        plan judged left behind that its ingest has since updated stays). True when deleted."""
        condition = _PLANS.c.ingest_id == ingest_id
        if if_still is not None:
            condition = condition & (_PLANS.c.plan == if_still)
        with self._connect() as conn:
            return conn.execute(_PLANS.delete().where(condition)).rowcount > 0

    def _connect(self) -> AbstractContextManager[sa.Connection]:
        if self._engine is None:
            self._engine = self._create_engine()
        return self._engine.begin()

    def _create_engine(self) -> sa.Engine:
        url = sa.make_url(self.url)
        connect_args = {}
        if url.get_backend_name() == "sqlite":
            if url.database:
                os.makedirs(os.path.dirname(os.path.abspath(url.database)), exist_ok=True)
            # The ingest writes while the daemon's tick reads: wait out the other's lock.
            connect_args = {"timeout": 30}
        engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
        try:
            _METADATA.create_all(engine)
        except sa.exc.DatabaseError:
            # Two processes creating the table at once: one of them fails, and the table exists.
            if not sa.inspect(engine).has_table(PLANS_TABLE):
                raise
        return engine


@cache
def _store_at(url: str) -> IngestPlanStore:
    return IngestPlanStore(url)


def ingest_plan_store(settings: Settings) -> IngestPlanStore:
    """Where the ingests of these settings keep their plans, and the schedule reads them: the
    PostgreSQL database of Dagster's storage in the cluster profile, a SQLite file in
    DAGSTER_HOME locally (where `onecart up` runs the daemon)."""
    if settings.profile == "cluster":
        url = dagster_postgres_url(settings)
        if not url:
            raise RuntimeError(
                "the cluster profile keeps the ingest plans beside Dagster's storage in "
                "PostgreSQL: set ONECART_DAGSTER_POSTGRES_URL"
            )
        return _store_at(url)
    return _store_at(f"sqlite:///{dagster_home(settings) / LOCAL_PLANS_FILE}")


@dataclass(frozen=True, slots=True)
class _PlanEntry:
    host: str
    pid: int
    pending: list[str]
    updated: str  # ISO 8601, UTC: when the ingest last said what it has yet to fetch


def _parsed(text: str) -> _PlanEntry | None:
    """The plan in `text`; None when it is not one this OneCart can read (no tick honours it)."""
    try:
        entry = _PlanEntry(**json.loads(text))
        readable = (
            isinstance(entry.pid, int)
            and isinstance(entry.pending, list)
            and datetime.fromisoformat(entry.updated).tzinfo is not None
        )
    except (TypeError, ValueError):
        return None
    return entry if readable else None


class IngestPlan:
    """What one running `onecart ingest` has yet to fetch, kept in `store` while it runs.

    Each ingest keeps its plan under an id of its own and only ever writes that row: ingests
    starting, fetching and ending at the same instant leave each other's plans alone."""

    def __init__(self, store: IngestPlanStore, marketplaces: list[str]) -> None:
        self._store = store
        self._id = uuid.uuid4().hex
        self._pending = list(marketplaces)

    def __enter__(self) -> IngestPlan:
        _delete_plans_left_behind(self._store)
        self._save()
        return self

    def fetched(self, slug: str) -> None:
        """The ingest is done with `slug` (fetched or failed): the tick may request it again,
        as its own rules say (a successful fetch within the interval is left out)."""
        if slug in self._pending:
            self._pending.remove(slug)
            self._save()

    def __exit__(self, *exc_info: object) -> None:
        self._store.delete_plan(self._id)

    def _save(self) -> None:
        entry = _PlanEntry(
            host=socket.gethostname(),
            pid=os.getpid(),
            pending=list(self._pending),
            updated=datetime.now(UTC).isoformat(),
        )
        self._store.write_plan(self._id, json.dumps(asdict(entry)))


def _delete_plans_left_behind(store: IngestPlanStore) -> None:
    """Plans of ingests killed before they could take them back (or unreadable): gone from the
    store once the next ingest starts, rather than kept for ever, one row per killed ingest."""
    now = datetime.now(UTC)
    for ingest_id, text in store.read_plans().items():
        entry = _parsed(text)
        if entry is None or not _still_running(entry, now):
            store.delete_plan(ingest_id, if_still=text)


def _still_running(entry: _PlanEntry, now: datetime) -> bool:
    """An ingest killed before it could take its plan back leaves it behind: on this host its
    process is gone; on another host (cluster profile) a plan not updated for longer than a
    partition may take is taken as left behind."""
    if entry.host == socket.gethostname():
        try:
            os.kill(entry.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # another user's live process
            return True
        return True
    return now - datetime.fromisoformat(entry.updated) < timedelta(
        seconds=PARTITION_TAKES_AT_MOST_S
    )


def marketplaces_an_ingest_will_fetch(store: IngestPlanStore) -> set[str]:
    """The marketplaces a running `onecart ingest` has yet to fetch (or is fetching)."""
    now = datetime.now(UTC)
    return {
        slug
        for text in store.read_plans().values()
        if (entry := _parsed(text)) is not None and _still_running(entry, now)
        for slug in entry.pending
    }

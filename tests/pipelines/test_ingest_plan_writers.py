"""Two `onecart ingest` runs keeping their plans in the same store at once
(pipelines/ingest_plans.py): each plan was an entry of one shared JSON value, read, changed and
written back without compare-and-set, so an ingest whose write came between the other's read and
write lost that one's entry, and the catch-up tick then queued what that ingest was about to
fetch. Each ingest now has a row of its own in a table of OneCart's (no private Dagster module
reads Dagster's key-value table any more). The interleavings are driven by hand: the second
ingest's step runs right after the first one's first read of the store, before the first one
writes. On SQLite (the local profile) and PostgreSQL (the cluster profile)."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipelines.ingest_plans import (
    PARTITION_TAKES_AT_MOST_S,
    IngestPlan,
    IngestPlanStore,
    marketplaces_an_ingest_will_fetch,
)

PG_TEST_URL = os.environ.get("PG_TEST_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class _StoreLettingAnotherIngestIn(IngestPlanStore):
    """The plans' store as one ingest sees it: right after that ingest's first read, another
    ingest's step runs, before the first one writes anything. An ingest that never reads has
    nothing to interleave: the other step runs after it (:meth:`let_in`)."""

    def __init__(self, store: IngestPlanStore, other_ingest_step: Callable[[], None]) -> None:
        super().__init__(store.url)
        self._other_ingest_step: Callable[[], None] | None = other_ingest_step

    def read_plans(self) -> dict[str, str]:
        plans = super().read_plans()
        self.let_in()
        return plans

    def let_in(self) -> None:
        """Run the other ingest's step (once) if it has not run yet."""
        step, self._other_ingest_step = self._other_ingest_step, None
        if step is not None:
            step()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A schema of its own in the test database (PG_TEST_URL) for the plans' table, dropped
    after."""
    engine = sa.create_engine(PG_TEST_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        # `make test` starts PostgreSQL (as CI does): one that does not answer is a failure.
        engine.dispose()
        raise RuntimeError(f"PostgreSQL does not answer at {PG_TEST_URL}") from exc
    schema = f"ingest_plans_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        # The table goes to the schema first on the search path.
        yield f"{PG_TEST_URL}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> IngestPlanStore:
    if request.param == "sqlite":
        return IngestPlanStore(f"sqlite:///{tmp_path / 'plans' / 'onecart_ingest_plans.sqlite'}")
    return IngestPlanStore(request.getfixturevalue("postgres_url"))


def test_two_ingests_starting_at_once_both_keep_their_plans(
    store: IngestPlanStore,
) -> None:
    second = IngestPlan(store, ["shopwave", "bazaarly"])
    interleaved = _StoreLettingAnotherIngestIn(store, second.__enter__)
    first = IngestPlan(interleaved, ["kiondo"])
    with first:
        interleaved.let_in()
        assert marketplaces_an_ingest_will_fetch(store) == {"kiondo", "shopwave", "bazaarly"}
        second.__exit__(None, None, None)
        assert marketplaces_an_ingest_will_fetch(store) == {"kiondo"}
    assert marketplaces_an_ingest_will_fetch(store) == set()


def test_an_ingest_starting_while_another_says_what_it_fetched_keeps_its_plan(
    store: IngestPlanStore,
) -> None:
    second = IngestPlan(store, ["shopwave"])
    with IngestPlan(store, ["kiondo", "bazaarly"]) as running:
        # The same ingest, its storage now letting the second one in.
        interleaved = _StoreLettingAnotherIngestIn(store, second.__enter__)
        running._store = interleaved
        running.fetched("kiondo")
        interleaved.let_in()
        assert marketplaces_an_ingest_will_fetch(store) == {"bazaarly", "shopwave"}
    assert marketplaces_an_ingest_will_fetch(store) == {"shopwave"}
    second.__exit__(None, None, None)
    assert marketplaces_an_ingest_will_fetch(store) == set()


def test_an_ingest_starting_while_another_ends_keeps_its_plan(
    store: IngestPlanStore,
) -> None:
    second = IngestPlan(store, ["shopwave"])
    ending = IngestPlan(store, ["kiondo"])
    interleaved = _StoreLettingAnotherIngestIn(store, second.__enter__)
    with ending:
        ending._store = interleaved
    interleaved.let_in()
    assert marketplaces_an_ingest_will_fetch(store) == {"shopwave"}
    second.__exit__(None, None, None)
    assert marketplaces_an_ingest_will_fetch(store) == set()


def _plan_text(host: str, pid: int, pending: list[str], updated: datetime) -> str:
    """A plan as an ingest stores it."""
    return json.dumps(
        {"host": host, "pid": pid, "pending": pending, "updated": updated.isoformat()}
    )


def test_a_plan_judged_left_behind_that_its_ingest_updates_meanwhile_stays(
    store: IngestPlanStore,
) -> None:
    """Another host's ingest silent for longer than a partition may take is taken as gone, and
    the next ingest deletes its plan; when that ingest speaks again between the read and the
    delete, its new plan stays (compare-and-delete), and the tick leaves its marketplace alone."""
    long_ago = datetime.now(UTC) - timedelta(seconds=PARTITION_TAKES_AT_MOST_S + 60)
    store.write_plan("elsewhere", _plan_text("another-host", 4242, ["kiondo"], long_ago))
    assert marketplaces_an_ingest_will_fetch(store) == set()

    def the_other_host_speaks_again() -> None:
        store.write_plan(
            "elsewhere", _plan_text("another-host", 4242, ["kiondo"], datetime.now(UTC))
        )

    interleaved = _StoreLettingAnotherIngestIn(store, the_other_host_speaks_again)
    with IngestPlan(interleaved, ["shopwave"]):
        assert marketplaces_an_ingest_will_fetch(store) == {"kiondo", "shopwave"}
    assert marketplaces_an_ingest_will_fetch(store) == {"kiondo"}
    assert set(store.read_plans()) == {"elsewhere"}


def test_plans_left_behind_or_unreadable_are_not_honoured_and_the_next_ingest_deletes_them(
    store: IngestPlanStore,
) -> None:
    long_ago = datetime.now(UTC) - timedelta(seconds=PARTITION_TAKES_AT_MOST_S + 60)
    left_behind = {
        "stale elsewhere": _plan_text("another-host", 4242, ["kiondo"], long_ago),
        "not json": "{",
        "no zone": _plan_text(socket.gethostname(), os.getpid(), ["fakestore"], long_ago).replace(
            "+00:00", ""
        ),
        "pending not a list": json.dumps(
            {"host": "h", "pid": 1, "pending": "kiondo", "updated": long_ago.isoformat()}
        ),
    }
    for ingest_id, text in left_behind.items():
        store.write_plan(ingest_id, text)
    assert marketplaces_an_ingest_will_fetch(store) == set()
    with IngestPlan(store, ["shopwave"]):
        assert marketplaces_an_ingest_will_fetch(store) == {"shopwave"}
        assert len(store.read_plans()) == 1
    assert store.read_plans() == {}

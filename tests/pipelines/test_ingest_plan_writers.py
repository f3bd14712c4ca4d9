"""Two `onecart ingest` runs keeping their plans in the same Dagster instance at once
(pipelines/ingest_overlap.py): each plan was an entry of one shared JSON value, read, changed and
written back without compare-and-set, so an ingest whose write came between the other's read and
write lost that one's entry, and the catch-up tick then queued what that ingest was about to
fetch. The interleavings are driven by hand: the second ingest's step runs right after the first
one's first read of Dagster's storage, before the first one writes. On a real Dagster instance,
SQLite and PostgreSQL storage."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.storage.legacy_storage import LegacyRunStorage

from pipelines.ingest_overlap import IngestPlan, marketplaces_an_ingest_will_fetch

PG_TEST_URL = os.environ.get("PG_TEST_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class _StorageLettingAnotherIngestIn:
    """Dagster's run storage (its key-value store) as one ingest sees it: right after that
    ingest's first read, another ingest's step runs, before the first one writes anything. An
    ingest that never reads has nothing to interleave: the other step runs after it
    (:meth:`let_in`)."""

    def __init__(self, storage: Any, other_ingest_step: Callable[[], None]) -> None:
        self._storage = storage
        self._other_ingest_step: Callable[[], None] | None = other_ingest_step

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._storage, name)
        if not callable(attribute) or not name.startswith(("get", "fetch")):
            return attribute

        def read(*args: Any, **kwargs: Any) -> Any:
            result = attribute(*args, **kwargs)
            step, self._other_ingest_step = self._other_ingest_step, None
            if step is not None:
                step()
            return result

        return read

    def let_in(self) -> None:
        """Run the other ingest's step if the ingest did not read."""
        step, self._other_ingest_step = self._other_ingest_step, None
        if step is not None:
            step()


class _InstanceLettingAnotherIngestIn:
    """The Dagster instance one ingest's IngestPlan is given, its storage interleaved."""

    def __init__(self, instance: dg.DagsterInstance, other_ingest_step: Callable[[], None]):
        self._instance = instance
        storage = instance.run_storage
        if isinstance(storage, LegacyRunStorage):  # PostgreSQL: the SQL storage inside
            storage = storage._storage.run_storage
        self._storage = _StorageLettingAnotherIngestIn(storage, other_ingest_step)

    @property
    def run_storage(self) -> Any:
        return self._storage

    @property
    def daemon_cursor_storage(self) -> Any:
        return self._storage

    def __getattr__(self, name: str) -> Any:
        return getattr(self._instance, name)

    def let_in(self) -> None:
        self._storage.let_in()


@pytest.fixture
def postgres_storage_url() -> Iterator[str]:
    """A schema of its own in the test database (PG_TEST_URL) for a Dagster instance's storage,
    dropped after."""
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
    # dagster-postgres speaks psycopg2; its tables go to the schema first on the search path.
    url = PG_TEST_URL.replace("+psycopg", "+psycopg2", 1)
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def instance(request: pytest.FixtureRequest) -> Iterator[dg.DagsterInstance]:
    if request.param == "sqlite":
        with dg.instance_for_test() as sqlite_instance:
            yield sqlite_instance
        return
    url = request.getfixturevalue("postgres_storage_url")
    with dg.instance_for_test(
        overrides={"storage": {"postgres": {"postgres_url": url}}}
    ) as postgres_instance:
        yield postgres_instance


def test_two_ingests_starting_at_once_both_keep_their_plans(
    instance: dg.DagsterInstance,
) -> None:
    second = IngestPlan(instance, ["shopwave", "bazaarly"])
    interleaved = _InstanceLettingAnotherIngestIn(instance, second.__enter__)
    first = IngestPlan(interleaved, ["kiondo"])
    with first:
        interleaved.let_in()
        assert marketplaces_an_ingest_will_fetch(instance) == {"kiondo", "shopwave", "bazaarly"}
        second.__exit__(None, None, None)
        assert marketplaces_an_ingest_will_fetch(instance) == {"kiondo"}
    assert marketplaces_an_ingest_will_fetch(instance) == set()


def test_an_ingest_starting_while_another_says_what_it_fetched_keeps_its_plan(
    instance: dg.DagsterInstance,
) -> None:
    second = IngestPlan(instance, ["shopwave"])
    with IngestPlan(instance, ["kiondo", "bazaarly"]) as running:
        # The same ingest, its storage now letting the second one in.
        interleaved = _InstanceLettingAnotherIngestIn(instance, second.__enter__)
        running._instance = interleaved
        running.fetched("kiondo")
        interleaved.let_in()
        assert marketplaces_an_ingest_will_fetch(instance) == {"bazaarly", "shopwave"}
    assert marketplaces_an_ingest_will_fetch(instance) == {"shopwave"}
    second.__exit__(None, None, None)
    assert marketplaces_an_ingest_will_fetch(instance) == set()


def test_an_ingest_starting_while_another_ends_keeps_its_plan(
    instance: dg.DagsterInstance,
) -> None:
    second = IngestPlan(instance, ["shopwave"])
    ending = IngestPlan(instance, ["kiondo"])
    interleaved = _InstanceLettingAnotherIngestIn(instance, second.__enter__)
    with ending:
        ending._instance = interleaved
    interleaved.let_in()
    assert marketplaces_an_ingest_will_fetch(instance) == {"shopwave"}
    second.__exit__(None, None, None)
    assert marketplaces_an_ingest_will_fetch(instance) == set()

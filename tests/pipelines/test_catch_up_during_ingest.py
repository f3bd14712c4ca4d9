"""The refresh schedule's catch-up tick during `onecart ingest` (ops5/ops6 leftover): the daemon,
starting beside `up --ingest`, evaluated the tick it missed while the ingest was fetching, and
queued every marketplace the ingest had not reached; the ingest then waited for each of those
runs and fetched the marketplace again. The ingest now keeps what it has yet to fetch in the
Dagster instance, and the tick leaves those marketplaces to it: each is refreshed once. A real
ingest against the sandbox, with the tick evaluated mid-ingest on a real Dagster instance of the
test's own."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from adapters.registry import load_marketplaces
from onecart.settings import Settings
from pipelines.definitions import build_definitions
from pipelines.ingest_plans import (
    IngestPlan,
    ingest_plan_store,
    marketplaces_an_ingest_will_fetch,
)
from pipelines.run import materialize_all
from pipelines.schedules import CATALOG_REFRESH_SCHEDULE
from tests.pipelines.conftest import clear_settings_caches

# Small catalogs, fetched in this order by a one-at-a-time ingest.
INGESTED = ["dummymart", "fakestore", "kiondo"]


def _tick_evaluator(
    settings: Settings, instance: dg.DagsterInstance
) -> Callable[[datetime], dg.ScheduleExecutionData]:
    """The daemon's evaluation of the refresh schedule at a tick, its definitions loaded before
    the ingest starts, as the daemon's code server has them."""
    definitions = build_definitions(settings)
    schedule = definitions.resolve_schedule_def(CATALOG_REFRESH_SCHEDULE)
    repository = definitions.get_repository_def()

    def evaluate(tick: datetime) -> dg.ScheduleExecutionData:
        with dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tick, repository_def=repository
        ) as context:
            return schedule.evaluate_tick(context)

    return evaluate


# One after the other in this process, and in two worker processes.
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_catch_up_tick_during_an_ingest_leaves_alone_what_the_ingest_will_fetch(
    pipeline_settings: Settings,
    workers: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("ONECART_PIPELINE_WORKERS", workers)
    clear_settings_caches()
    # A Dagster instance of its own: no other test's runs count as fetches since the tick.
    try:
        with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
            _ingest_beside_a_catch_up_tick(pipeline_settings, instance)
    finally:
        monkeypatch.delenv("ONECART_PIPELINE_WORKERS")
        clear_settings_caches()


def _ingest_beside_a_catch_up_tick(
    pipeline_settings: Settings, instance: dg.DagsterInstance
) -> None:
    active = [
        config.slug
        for config in load_marketplaces(pipeline_settings.marketplaces_file)
        if config.active
    ]
    # The tick missed while OneCart was down, evaluated once the daemon is up: a while ago.
    missed_tick = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
    ticks: list[dg.ScheduleExecutionData] = []
    evaluate_tick = _tick_evaluator(pipeline_settings, instance)

    def progress(line: str) -> None:
        # "loading catalogs: 1 of 3 marketplaces …": the first is done, the rest to come.
        if line.startswith("loading catalogs: 1 of 3"):
            ticks.append(evaluate_tick(missed_tick))

    report = materialize_all(
        instance=instance,
        progress=progress,
        marketplaces=INGESTED,
        downstream_assets=("product_groups",),
        embeddings=False,
    )
    assert not report.failed_partitions
    assert len(ticks) == 1
    requested = [request.partition_key for request in ticks[0].run_requests or []]
    # The first was fetched since the tick's time; the two the ingest had not reached are its.
    assert requested == [slug for slug in active if slug not in INGESTED]
    # Once the ingest is over, nothing of it is left behind for later ticks.
    assert marketplaces_an_ingest_will_fetch(ingest_plan_store(pipeline_settings)) == set()
    later = evaluate_tick(missed_tick + timedelta(hours=2))
    assert sorted(request.partition_key for request in later.run_requests or []) == sorted(active)


def test_the_plan_of_an_ingest_killed_before_it_ended_is_not_honoured(
    pipeline_settings: Settings,
) -> None:
    """An ingest killed mid-run cannot take its plan back: its marketplaces are not left out of
    every tick for ever once its process is gone, and the next ingest to start deletes it."""
    store = ingest_plan_store(pipeline_settings)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # The plan a process that is gone left behind, as an ingest writes it.
    store.write_plan(
        "killed",
        json.dumps(
            {
                "host": socket.gethostname(),
                "pid": dead.pid,
                "pending": ["fakestore"],
                "updated": datetime.now(UTC).isoformat(),
            }
        ),
    )
    assert marketplaces_an_ingest_will_fetch(store) == set()
    plan = IngestPlan(store, ["kiondo", "shopwave"])
    with plan:
        plan.fetched("kiondo")
        assert marketplaces_an_ingest_will_fetch(store) == {"shopwave"}
        assert "killed" not in store.read_plans()
    assert marketplaces_an_ingest_will_fetch(store) == set()
    assert store.read_plans() == {}


def test_the_local_profile_keeps_the_plans_in_dagster_home(pipeline_settings: Settings) -> None:
    """The daemon `onecart up` starts reads the plans where the ingest writes them: in a SQLite
    file of OneCart's own beside the instance's storage, no Dagster table."""
    store = ingest_plan_store(pipeline_settings)
    assert store.url == f"sqlite:///{pipeline_settings.home_dir / 'dagster'}/" + (
        "onecart_ingest_plans.sqlite"
    )

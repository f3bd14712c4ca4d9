"""What `onecart up` does with the runs `onecart down` cancelled when other runs have done their
work since (onecart/dagster_runs.py): a real Dagster instance prepared as `up` prepares it, with
the runs recorded in it as Dagster records them; no webserver answers, so a run that would be
re-executed is named as refused."""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg
from dagster._core.utils import make_new_run_id

from onecart import dagster_runs, processes
from onecart.dagster_instance import prepare_dagster_instance
from onecart.settings import Settings

STOPPED = {dagster_runs.STOPPED_BY_TAG: dagster_runs.STOPPED_BY_DOWN}


def _add_run(
    instance: dg.DagsterInstance,
    job_name: str,
    *,
    status: dg.DagsterRunStatus,
    tags: dict[str, str],
    assets: tuple[str, ...] = (),
) -> str:
    run_id = make_new_run_id()
    instance.add_run(
        dg.DagsterRun(
            job_name=job_name,
            run_id=run_id,
            status=status,
            tags=tags,
            # An asset job's whole run records an empty selection (Dagster 1.13).
            asset_selection=frozenset(dg.AssetKey(asset) for asset in assets),
        )
    )
    return run_id


def test_up_after_an_ingest_does_not_rerun_the_fetch_times_and_freshness_runs_it_superseded(
    tmp_path: Path,
) -> None:
    """`onecart up --ingest` carried on, after its ingest, the fetch times and freshness runs
    `down` had cancelled, though the ingest's downstream run had just published the analysts'
    copy and evaluated the freshness check (ops leftovers): both ran again for nothing. They are
    now taken as done by the ingest's run, and the output says so; a replayed day's downstream
    run (FX rates, matching and price history only) does neither's work."""
    settings = Settings(ONECART_HOME=tmp_path / "home", ONECART_DAGSTER_PORT=processes.free_port())
    prepare_dagster_instance(settings)
    with dagster_runs.open_instance(settings) as instance:
        fetch_times = _add_run(
            instance, "fetch_times_job", status=dg.DagsterRunStatus.CANCELED, tags=STOPPED
        )
        freshness = _add_run(
            instance, "catalog_freshness_job", status=dg.DagsterRunStatus.CANCELED, tags=STOPPED
        )
        downstream = _add_run(
            instance,
            "catalog_downstream_job",
            status=dg.DagsterRunStatus.CANCELED,
            tags={**STOPPED, "onecart/trigger": "sensor"},
        )
        # A replayed past day, then today's ingest.
        _add_run(
            instance,
            "catalog_downstream_job",
            status=dg.DagsterRunStatus.SUCCESS,
            tags={"onecart/trigger": "ingest"},
            assets=("fx_rates", "product_groups", "price_history"),
        )
        replayed_only = dict(
            dagster_runs.resume_runs_stopped_by_down(settings, report=lambda line: None)
        )
        ingest = _add_run(
            instance,
            "catalog_downstream_job",
            status=dg.DagsterRunStatus.SUCCESS,
            tags={"onecart/trigger": "ingest"},
        )
        lines: list[str] = []
        carried = dagster_runs.resume_runs_stopped_by_down(settings, report=lines.append)
        tags = {run_id: instance.get_run_by_id(run_id).tags for run_id in carried}  # type: ignore[union-attr]
    # The partial run did the work of none: each would be re-executed (no webserver: refused).
    assert replayed_only == {}
    assert carried == {fetch_times: ingest, freshness: ingest, downstream: ingest}
    assert all(run_tags[dagster_runs.RESUMED_AS_TAG] == ingest for run_tags in tags.values())
    for run_id, job in (
        (fetch_times, "fetch_times_job"),
        (freshness, "catalog_freshness_job"),
        (downstream, "catalog_downstream_job"),
    ):
        assert (
            f"Dagster run {run_id} ({job}) was cancelled by `down`; the ingest's run {ingest} "
            "(catalog_downstream_job) has done its work since: not run again"
        ) in lines, lines
    assert not any("refused" in line for line in lines), lines


def test_a_run_that_succeeded_as_down_came_is_not_run_again_nor_its_tick_s_mark_carried(
    tmp_path: Path,
) -> None:
    """`down` tags each run before cancelling it, and a refresh about to end succeeds all the
    same: `up` re-executed that refresh, done a moment before, and the schedule's catch-up tick
    left its marketplace to `up` (ops QA, branch ops5). A stopped run that succeeded is not
    carried on. And the run that carries a cancelled one on inherits none of the tags about the
    stop: with the tick's mark inherited, a later cancel of the carrier looked already waited for,
    and the next tick refreshed it beside `up`'s re-execution."""
    settings = Settings(ONECART_HOME=tmp_path / "home", ONECART_DAGSTER_PORT=processes.free_port())
    prepare_dagster_instance(settings)
    with dagster_runs.open_instance(settings) as instance:
        _add_run(
            instance,
            "marketplace_catalog_job",
            status=dg.DagsterRunStatus.SUCCESS,
            tags={**STOPPED, "dagster/partition": "shopwave"},
        )
        lines: list[str] = []
        carried = dagster_runs.resume_runs_stopped_by_down(settings, report=lines.append)
        cancelled = _add_run(
            instance,
            "marketplace_catalog_job",
            status=dg.DagsterRunStatus.CANCELED,
            tags={
                **STOPPED,
                "dagster/partition": "kiondo",
                "onecart/trigger": "schedule",
                dagster_runs.LEFT_TO_UP_TAG: "2026-12-07T03:45:00+00:00",
            },
        )
        parent = instance.get_run_by_id(cancelled)
    assert carried == {} and lines == []
    assert parent is not None
    assert dagster_runs.carried_tags(parent, dagster_runs.RESUMED_TRIGGER) == {
        "dagster/partition": "kiondo",
        "onecart/trigger": "resumed_after_down",
    }


def test_down_says_so_of_a_run_it_tagged_that_finished_before_its_cancel_came(
    tmp_path: Path,
) -> None:
    """A refresh still starting when `down` lists the runs: `down` tags it and waits for it to
    start, and it succeeds meanwhile. Dagster then refuses the cancel of a finished run, and
    `down` said nothing of it: the operator could not tell that it had done its work."""
    from dagster._core.events import DagsterEvent, DagsterEventType
    from dagster._core.storage.tags import GRPC_INFO_TAG

    settings = Settings(ONECART_HOME=tmp_path / "home", ONECART_DAGSTER_PORT=processes.free_port())
    prepare_dagster_instance(settings)
    with dagster_runs.open_instance(settings) as instance:
        run_id = _add_run(
            instance,
            "marketplace_catalog_job",
            status=dg.DagsterRunStatus.STARTING,
            tags={GRPC_INFO_TAG: '{"host": "localhost", "port": 1}', "dagster/partition": "kiondo"},
        )

        def succeed_once_tagged() -> None:
            # The run ends as `down` waits for its start: after the tag, before the cancel.
            while dagster_runs.STOPPED_BY_TAG not in instance.get_run_by_id(run_id).tags:
                threading.Event().wait(0.05)
            instance.report_dagster_event(
                DagsterEvent(
                    event_type_value=DagsterEventType.RUN_SUCCESS.value,
                    job_name="marketplace_catalog_job",
                ),
                run_id,
            )

        ending = threading.Thread(target=succeed_once_tagged)
        ending.start()
        lines: list[str] = []
        cancelled = dagster_runs.cancel_unfinished_runs(settings, report=lines.append)
        ending.join()
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.SUCCESS
    assert cancelled == []
    assert lines == [
        f"Dagster run {run_id} (marketplace_catalog_job, kiondo) finished before the cancel "
        "came: SUCCESS (nothing for `up` to carry on)"
    ]

"""Dagster runs across `onecart down` and `up`: `down` cancels the runs Dagster is running or
has queued before it stops Dagster, and the next `up` starts the offer embeddings again when
`down` cancelled them.

Stopping Dagster with a run in progress left the run to be torn down by Dagster's own shutdown
(SIGTERM to its whole process group): `dagster dev` then took up to its stop timeout and was
SIGKILLed, and the run ended as a failure "interrupted unexpectedly". Cancelling goes through
Dagster's run coordinator (`cancel_run`: a queued run is dropped from the queue, a started one is
terminated by its run launcher, which interrupts the step), so the run ends CANCELED, its step's
`finally` blocks run, and Dagster has nothing left to wait for when it is stopped. The offer
embeddings keep every batch they wrote (assistant.embedding_store), so the run `up` launches
again embeds only what is left.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final

from onecart.dagster_instance import dagster_home, dagster_postgres_url
from onecart.settings import Settings

if TYPE_CHECKING:
    from dagster import DagsterInstance, DagsterRun

# Set on each run `down` cancelled: what `up` looks for, and what the Dagster UI shows.
STOPPED_BY_TAG: Final = "onecart/stopped_by"
STOPPED_BY_DOWN: Final = "down"
RESUMED_TRIGGER: Final = {"onecart/trigger": "resumed_after_down"}
# A step notices the interrupt at its next Python instruction; a run's teardown (its events,
# its resources) takes a few seconds more on a busy machine.
CANCEL_TIMEOUT_S: Final = 30.0
POLL_S: Final = 0.25


@contextlib.contextmanager
def open_instance(settings: Settings) -> Iterator[DagsterInstance]:
    """The instance `onecart up` runs Dagster with (dagster.yaml reads the cluster profile's
    PostgreSQL URL from the environment)."""
    from dagster import DagsterInstance

    previous = os.environ.get("ONECART_DAGSTER_POSTGRES_URL")
    postgres = dagster_postgres_url(settings)
    if postgres:
        os.environ["ONECART_DAGSTER_POSTGRES_URL"] = postgres
    try:
        instance = DagsterInstance.from_config(str(dagster_home(settings)))
        try:
            yield instance
        finally:
            instance.dispose()
    finally:
        if previous is None:
            os.environ.pop("ONECART_DAGSTER_POSTGRES_URL", None)
        else:
            os.environ["ONECART_DAGSTER_POSTGRES_URL"] = previous


def _cancellable(run: DagsterRun) -> bool:
    """Queued, or launched through a code server (which can interrupt it). A run executed in
    another process of its own (`onecart ingest` in a terminal) has no code server: its own
    command owns it, and Dagster's terminate would only mark it CANCELING."""
    from dagster import DagsterRunStatus
    from dagster._core.storage.tags import GRPC_INFO_TAG

    return run.status == DagsterRunStatus.QUEUED or GRPC_INFO_TAG in run.tags


def cancel_unfinished_runs(
    settings: Settings,
    *,
    report: Callable[[str], None] = print,
    timeout: float = CANCEL_TIMEOUT_S,
) -> list[str]:
    """Cancel every queued or running run Dagster launched, wait (up to `timeout`) until each has
    ended, and return their ids; each is tagged `onecart/stopped_by=down`."""
    from dagster import DagsterRunStatus, RunsFilter

    unfinished = [
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
    ]
    with open_instance(settings) as instance:
        runs = [
            run for run in instance.get_runs(RunsFilter(statuses=unfinished)) if _cancellable(run)
        ]
        asked = []
        for run in runs:
            instance.add_run_tags(run.run_id, {STOPPED_BY_TAG: STOPPED_BY_DOWN})
            try:
                cancelled = instance.run_coordinator.cancel_run(run.run_id)
            except Exception as exc:  # the code server is gone: Dagster's stop ends the run
                report(f"could not cancel Dagster run {run.run_id} ({run.job_name}): {exc}")
                continue
            if cancelled:
                asked.append(run)
        deadline = time.monotonic() + timeout
        pending = {run.run_id: run for run in asked}
        while pending and time.monotonic() < deadline:
            for run_id in list(pending):
                current = instance.get_run_by_id(run_id)
                if current is None or current.is_finished:
                    run = pending.pop(run_id)
                    status = current.status.value if current else "gone"
                    report(f"cancelled Dagster run {run_id} ({run.job_name}): {status}")
            if pending:
                time.sleep(POLL_S)
        for run_id, run in pending.items():
            report(f"Dagster run {run_id} ({run.job_name}) still ending after {timeout:.0f}s")
    return [run.run_id for run in asked]


def embeddings_stopped_by_down(settings: Settings) -> str | None:
    """The id of the newest offer embeddings run when `down` cancelled it (no later run of the
    job came after it), else None."""
    from dagster import RunsFilter

    from pipelines.jobs import OFFER_EMBEDDINGS_JOB

    with open_instance(settings) as instance:
        newest = instance.get_runs(RunsFilter(job_name=OFFER_EMBEDDINGS_JOB), limit=1)
    if newest and newest[0].is_finished and newest[0].tags.get(STOPPED_BY_TAG) == STOPPED_BY_DOWN:
        return newest[0].run_id
    return None


def resume_embeddings_stopped_by_down(
    settings: Settings, *, report: Callable[[str], None] = print
) -> str | None:
    """Launch the offer embeddings again when `down` cancelled the last run (it embeds only the
    texts that run did not write); returns the new run's id."""
    stopped = embeddings_stopped_by_down(settings)
    if stopped is None:
        return None
    from pipelines.run import launch_offer_embeddings

    try:
        run_id = launch_offer_embeddings(settings, tags=RESUMED_TRIGGER)
    except Exception as exc:  # Dagster refused the run: the next ingest launches one
        report(
            f"offer embeddings: run {stopped} was cancelled by `down`, and Dagster refused a new one ({exc})"
        )
        return None
    report(
        f"offer embeddings: run {stopped} was cancelled by `down`; run {run_id} carries on "
        f"({settings.dagster_url}/runs/{run_id})"
    )
    return run_id

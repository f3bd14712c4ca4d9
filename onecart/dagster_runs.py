"""Dagster runs across `onecart down` and `up`: `down` cancels the runs Dagster is running or
has queued before it stops Dagster, and the next `up` re-executes what it cancelled (a catalog
refresh, the downstream run, the offer embeddings, …) unless a later run did that work.

Stopping Dagster with a run in progress left the run to be torn down by Dagster's own shutdown
(SIGTERM to its whole process group): `dagster dev` then took up to its stop timeout and was
SIGKILLed, and the run ended as a failure "interrupted unexpectedly". Cancelling goes through
Dagster's run coordinator (`cancel_run`: a queued run is dropped from the queue, a started one is
terminated by its run launcher, which interrupts the step), so the run ends CANCELED, its step's
`finally` blocks run, and Dagster has nothing left to wait for when it is stopped. The offer
embeddings keep every batch they wrote (assistant.embedding_store), so the run `up` launches
again embeds only what is left; a catalog refresh fetches again.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Final

from onecart.dagster_instance import dagster_home, dagster_postgres_url
from onecart.settings import Settings

if TYPE_CHECKING:
    from dagster import DagsterInstance, DagsterRun
    from dagster._core.storage.dagster_run import RunRecord

# Set on each run `down` cancelled: what `up` looks for, and what the Dagster UI shows.
STOPPED_BY_TAG: Final = "onecart/stopped_by"
STOPPED_BY_DOWN: Final = "down"
RESUMED_TRIGGER: Final = {"onecart/trigger": "resumed_after_down"}
# pipelines.jobs.OFFER_EMBEDDINGS_JOB (the CLI does not load the pipeline for this).
OFFER_EMBEDDINGS_JOB: Final = "offer_embeddings_job"
# Set on a run `down` cancelled once `up` dealt with it: the run that carries its work on.
RESUMED_AS_TAG: Final = "onecart/resumed_as"
# Set by the refresh schedule's tick on a cancelled refresh it left to `up` (pipelines/schedules.py).
LEFT_TO_UP_TAG: Final = "onecart/left_to_up_at"
# Tags of a stopped run about its stop, which the run carrying it on must not inherit: a carrier
# `down` cancelled in turn would look already stopped, resumed or waited for.
STOP_TAGS: Final = frozenset({STOPPED_BY_TAG, RESUMED_AS_TAG, LEFT_TO_UP_TAG})
# A step notices the interrupt at its next Python instruction; a run's teardown (its events,
# its resources) takes a few seconds more on a busy machine.
CANCEL_TIMEOUT_S: Final = 30.0
# DagsterRunStatus values of a run the daemon launched that has not recorded its start yet.
STARTING_STATUSES: Final = frozenset({"NOT_STARTED", "STARTING"})
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
        deadline = time.monotonic() + timeout
        for run in runs:
            instance.add_run_tags(run.run_id, {STOPPED_BY_TAG: STOPPED_BY_DOWN})
            # A run still starting records its start after the cancel's CANCELING, and then takes
            # the interrupt for an unexpected one: it ended as a FAILURE ("interrupted
            # unexpectedly"), not CANCELED. It is cancelled once it has started.
            while time.monotonic() < deadline:
                current = instance.get_run_by_id(run.run_id)
                if current is None or current.status.value not in STARTING_STATUSES:
                    break
                time.sleep(POLL_S)
            try:
                cancelled = instance.run_coordinator.cancel_run(run.run_id)
            except Exception as exc:  # the code server is gone: Dagster's stop ends the run
                report(f"could not cancel Dagster run {run.run_id} ({run.job_name}): {exc}")
                continue
            if cancelled:
                asked.append(run)
                continue
            # Dagster refuses to cancel a finished run: one that ended after the listing (often
            # as it was waited for above) was otherwise never mentioned.
            current = instance.get_run_by_id(run.run_id)
            if current is not None and current.is_finished:
                report(_finished_before_cancel(current))
        deadline = time.monotonic() + timeout
        pending = {run.run_id: run for run in asked}
        while pending and time.monotonic() < deadline:
            for run_id in list(pending):
                current = instance.get_run_by_id(run_id)
                if current is None or current.is_finished:
                    run = pending.pop(run_id)
                    if current is not None and current.status == DagsterRunStatus.SUCCESS:
                        # Its last step ended before the interrupt reached it.
                        report(_finished_before_cancel(current))
                        continue
                    status = current.status.value if current else "gone"
                    report(f"cancelled Dagster run {run_id} ({run.job_name}): {status}")
            if pending:
                time.sleep(POLL_S)
        for run_id, run in pending.items():
            report(f"Dagster run {run_id} ({run.job_name}) still ending after {timeout:.0f}s")
    return [run.run_id for run in asked]


def _finished_before_cancel(run: DagsterRun) -> str:
    """What `down` says of a run it tagged that ended before its cancel came: whether `up` will
    carry it on (left_unfinished_by_down)."""
    after = "`up` runs it again" if left_unfinished_by_down(run) else "nothing for `up` to carry on"
    return (
        f"Dagster run {run.run_id} ({_describe(run)}) finished before the cancel came: "
        f"{run.status.value} ({after})"
    )


def _resume_group(run: DagsterRun) -> tuple[str, str, tuple[str, ...]]:
    """Runs that do the same work: the same job, partition and asset selection (the UI's
    Materialize runs the implicit asset job with a selection of its own)."""
    from dagster._core.storage.tags import PARTITION_NAME_TAG

    selection = tuple(sorted(key.to_user_string() for key in run.asset_selection or ()))
    return run.job_name, run.tags.get(PARTITION_NAME_TAG, ""), selection


def _describe(run: DagsterRun) -> str:
    from dagster._core.storage.tags import PARTITION_NAME_TAG

    partition = run.tags.get(PARTITION_NAME_TAG)
    return f"{run.job_name}, {partition}" if partition else run.job_name


def left_unfinished_by_down(run: DagsterRun) -> bool:
    """Whether `run` is one `down` stopped before it finished its work and no `up` has dealt
    with yet. `down` tags each run before cancelling it, and a run about to end succeeds all the
    same: `up` re-executed such a refresh, done a moment before."""
    return stopped_by_down(run.status.value, run.tags)


# DagsterRunStatus values of a finished run (DagsterRun.is_finished), by name: status reads
# them from the GraphQL API too, without importing Dagster.
FINISHED_RUN_STATUSES: Final = frozenset({"SUCCESS", "FAILURE", "CANCELED"})


def stopped_by_down(status: str, tags: Mapping[str, str]) -> bool:
    """left_unfinished_by_down of a run given by its status's name and its tags."""
    return (
        tags.get(STOPPED_BY_TAG) == STOPPED_BY_DOWN
        and status in FINISHED_RUN_STATUSES
        and status != "SUCCESS"
        and RESUMED_AS_TAG not in tags
    )


def runs_stopped_by_down(instance: DagsterInstance) -> list[RunRecord]:
    """The finished runs `down` stopped before they did their work that no `up` has dealt with
    yet, oldest first."""
    from dagster import RunsFilter

    records = instance.get_run_records(
        RunsFilter(tags={STOPPED_BY_TAG: STOPPED_BY_DOWN}), ascending=True
    )
    return [record for record in records if left_unfinished_by_down(record.dagster_run)]


# pipelines.jobs.CATALOG_DOWNSTREAM_JOB, and the jobs whose work a run of it does: it publishes
# the analysts' copy (the fetch times job's only asset) and evaluates products_are_fresh (the
# freshness job's only check). An ingest ends with one: `up --ingest` re-executed the fetch
# times and freshness runs `down` had cancelled after its own downstream run had done both.
DOWNSTREAM_JOB: Final = "catalog_downstream_job"
COVERED_BY_DOWNSTREAM: Final = {
    "fetch_times_job": "analyst_warehouse",
    "catalog_freshness_job": "products_are_fresh",
}


def _does_the_work_of(later: DagsterRun, run: DagsterRun) -> bool:
    """Whether `later` does all that re-executing `run` would: the same job and partition with
    the same assets or every asset of the job (an empty selection), or a downstream run that
    includes the one asset or check of a fetch times or freshness run."""
    from dagster._core.storage.tags import PARTITION_NAME_TAG

    selection = {key.to_user_string() for key in later.asset_selection or ()}
    if later.job_name == run.job_name:
        return later.tags.get(PARTITION_NAME_TAG) == run.tags.get(PARTITION_NAME_TAG) and (
            not selection or _resume_group(later) == _resume_group(run)
        )
    covered = COVERED_BY_DOWNSTREAM.get(run.job_name)
    if covered is None or later.job_name != DOWNSTREAM_JOB:
        return False
    checks = {key.name for key in later.asset_check_selection or ()}
    return not selection or covered in selection | checks


def _later_run(instance: DagsterInstance, stopped: RunRecord) -> DagsterRun | None:
    """A run created after the stopped one (a schedule's tick, a sensor's request, an ingest)
    that `down` did not cancel and that does the stopped run's work: resuming it would do the
    same again."""
    from dagster import RunsFilter

    run = stopped.dagster_run
    jobs = [run.job_name] + ([DOWNSTREAM_JOB] if run.job_name in COVERED_BY_DOWNSTREAM else [])
    for job_name in jobs:
        for later in instance.get_runs(
            RunsFilter(job_name=job_name, created_after=stopped.create_timestamp)
        ):
            if (
                later.run_id != run.run_id
                and later.tags.get(STOPPED_BY_TAG) != STOPPED_BY_DOWN
                and _does_the_work_of(later, run)
            ):
                return later
    return None


def _describe_later(run: DagsterRun) -> str:
    """`run <id> (<job>[, <partition>])`, naming an ingest's or a schedule's run as such."""
    trigger = run.tags.get("onecart/trigger")
    owner = {
        "ingest": "the ingest's ",
        "schedule": "the refresh schedule's ",
        "freshness": "the freshness schedule's ",
    }.get(trigger or "", "")
    return f"{owner}run {run.run_id} ({_describe(run)})"


REEXECUTE_MUTATION: Final = """
mutation ResumeAfterDown($params: ReexecutionParams!) {
  launchPipelineReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PipelineNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on UnauthorizedError { message }
  }
}
"""


class ReexecutionRefused(RuntimeError):
    """The Dagster webserver did not launch the re-execution."""


def carried_tags(run: DagsterRun, tags: Mapping[str, str]) -> dict[str, str]:
    """The tags of the run carrying `run` on: the parent's as Dagster's own re-execution keeps
    them, but none about `down`'s stop (STOP_TAGS: the new run was not stopped, and a schedule
    tick's mark on the parent, carried over, made a later cancel of the new run look already
    waited for), and `tags`."""
    from dagster._core.storage.tags import TAGS_TO_MAYBE_OMIT_ON_RETRY

    kept = {
        key: value
        for key, value in run.tags.items()
        if key not in TAGS_TO_MAYBE_OMIT_ON_RETRY and key not in STOP_TAGS
    }
    return {**kept, **tags}


def reexecute_run(settings: Settings, run: DagsterRun, tags: Mapping[str, str]) -> str:
    """Re-execute a run through the Dagster webserver, as the UI's "Re-execute all" does: the
    same job, partition, config and tags (plus `tags`), linked to it as its parent; the new
    run goes through the run queue. Every step runs again: the assets are incremental (a
    finished step redoes little), and a cancelled catalog fetch must start afresh (its staged
    pages are the cancelled run's). Returns the new run's id."""
    import httpx

    params = {
        "parentRunId": run.run_id,
        "strategy": "ALL_STEPS",
        "useParentRunTags": False,
        "extraTags": [
            {"key": key, "value": value} for key, value in carried_tags(run, tags).items()
        ],
    }
    try:
        response = httpx.post(
            f"{settings.dagster_url}/graphql",
            json={"query": REEXECUTE_MUTATION, "variables": {"params": params}},
            timeout=60,
        )
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ReexecutionRefused(f"the Dagster webserver did not answer ({exc})") from exc
    if body.get("errors"):
        raise ReexecutionRefused("; ".join(error.get("message", "") for error in body["errors"]))
    answer = body["data"]["launchPipelineReexecution"]
    if answer["__typename"] == "LaunchRunSuccess":
        return str(answer["run"]["runId"])
    reason = answer.get("message") or "; ".join(e["message"] for e in answer.get("errors", []))
    raise ReexecutionRefused(f"{answer['__typename']}: {reason}")


def resume_runs_stopped_by_down(
    settings: Settings,
    *,
    report: Callable[[str], None] = print,
    skip_jobs: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """Carry on what `down` cancelled: each run it cancelled (a catalog refresh, the downstream
    run, the offer embeddings, …) is re-executed through Dagster, once per job, partition and
    asset selection (of two cancelled embeddings runs, the newer carries on), unless a later
    run already does the same work (the schedule's next tick, a sensor's run, an ingest). The
    stopped run is tagged `onecart/resumed_as` with what took over, so the next `up` leaves it
    alone; a run Dagster refuses to re-execute is named with the way to do it by hand. Runs of
    `skip_jobs` are left for later (`up --ingest` runs them itself). Returns stopped run id ->
    the run that carries it on."""
    carried: dict[str, str] = {}
    with open_instance(settings) as instance:
        stopped = [
            record
            for record in runs_stopped_by_down(instance)
            if record.dagster_run.job_name not in skip_jobs
        ]
        groups: dict[tuple[str, str, tuple[str, ...]], list[RunRecord]] = {}
        for record in stopped:
            groups.setdefault(_resume_group(record.dagster_run), []).append(record)
        for group in groups.values():
            newest = group[-1].dagster_run
            later = _later_run(instance, group[-1])
            if later is not None:
                carrier = later.run_id
            else:
                try:
                    carrier = reexecute_run(settings, newest, RESUMED_TRIGGER)
                except ReexecutionRefused as exc:
                    report(
                        f"Dagster run {newest.run_id} ({_describe(newest)}) was cancelled by "
                        f"`down`, and Dagster refused to re-execute it ({exc}): re-execute it "
                        f"from the Dagster UI ({settings.dagster_url}/runs/{newest.run_id}, "
                        "Re-execute all)"
                    )
                    continue
            for record in group:
                instance.add_run_tags(record.dagster_run.run_id, {RESUMED_AS_TAG: carrier})
                carried[record.dagster_run.run_id] = carrier
            done = (
                f"{_describe_later(later)} has done its work since: not run again"
                if later is not None
                else f"run {carrier} carries on ({settings.dagster_url}/runs/{carrier})"
            )
            report(
                f"Dagster run {newest.run_id} ({_describe(newest)}) was cancelled by `down`; {done}"
            )
    return carried

"""`onecart ingest` and `up --ingest`: one materialization of the pipeline (or the demo's history
replay) from the operator's shell, with progress on stdout, then the offer embeddings in the
background; what failed is named by partition (marketplace), downstream asset or failed step.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from onecart import catalog_status, dagster_instance, processes, services, supervision
from onecart.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from onecart.progress import counted_noun
from onecart.settings import Settings


def wants_demo_history(settings: Settings) -> bool:
    """pipelines.replay.demo_history_wanted, imported only when asked (Dagster is slow to load)."""
    from pipelines.replay import demo_history_wanted

    return demo_history_wanted(settings)


def history_replay_interrupted(settings: Settings) -> bool:
    """Whether a replay in this home stopped before its last day (pipelines.replay)."""
    from pipelines.replay import interrupted_replay

    return interrupted_replay(settings) is not None


def demo_history_notice(days: int) -> str:
    """What `onecart up --ingest` says before a first demo run replays the sandbox's history."""
    return (
        f"first run of the demo: replaying the sandbox's last {counted_noun(days, 'day')} first, so "
        "price charts and price drops have data (ONECART_DEMO_HISTORY_DAYS=0 loads today's "
        "catalog only)"
    )


def history_finished_line(days: int, seconds: float) -> str:
    return (
        f"ingest with {counted_noun(days, 'day')} of history finished in {seconds:.0f}s: "
        "keyword search is live"
    )


def run_history_replay(
    settings: Settings, days: int, *, before_embeddings: threading.Thread | None = None
) -> int:
    """`ingest --history DAYS`: delegate to pipelines.replay, then start the offer embeddings
    once, as a plain ingest does (in the background when Dagster answers); exit 1 naming what
    failed when a day's run failed."""
    for variable, value in services.child_environment(settings).items():
        os.environ.setdefault(variable, value)
    dagster_instance.write_dagster_yaml(settings)
    from pipelines.replay import HistoryReplayError, replay_sandbox_history

    started = time.monotonic()
    try:
        reports = replay_sandbox_history(days, progress=print)
    except HistoryReplayError as exc:
        print(f"ingest --history: {exc}", file=sys.stderr)
        return EXIT_USAGE
    failures = [
        line
        for report in reports
        for line in ingest_failure_lines(
            report,
            failed_steps_of_run=lambda run_id: failed_steps_of_run(settings, run_id),
            never_fetched=catalog_status.never_fetched(settings, failed_partitions(report)),
        )
    ]
    if failures:
        for line in failures:
            print(line, file=sys.stderr)
        return EXIT_FAILED
    print(history_finished_line(days, time.monotonic() - started))
    if before_embeddings is not None:
        before_embeddings.join()  # the Dagster UI that takes the background run
    return start_offer_embeddings(settings)


def run_ingest(
    settings: Settings,
    *,
    marketplaces: Sequence[str],
    before_embeddings: threading.Thread | None = None,
) -> int:
    """Call `pipelines.run.materialize_all`; exit 1 naming what failed: the partitions
    (marketplaces), the downstream assets, or the downstream run's failed steps.

    Runs are recorded in the same DAGSTER_HOME as `dagster dev`, so they appear in its UI.
    """
    for variable, value in services.child_environment(settings).items():
        os.environ.setdefault(variable, value)
    postgres = dagster_instance.dagster_postgres_url(settings)
    if postgres:  # with the driver dagster-postgres needs named
        os.environ["ONECART_DAGSTER_POSTGRES_URL"] = postgres
    dagster_instance.write_dagster_yaml(settings)
    try:
        from pipelines.run import materialize_all
    except ImportError as exc:
        print(f"ingest unavailable: pipelines.run does not import ({exc})", file=sys.stderr)
        return EXIT_FAILED
    # Keyword search goes live first; the embeddings follow in a background run.
    options: dict[str, Any] = {"progress": print, "embeddings": False}
    if marketplaces:
        options["marketplaces"] = list(marketplaces)
    print(
        "ingest: materializing the pipeline"
        + (f" for {', '.join(marketplaces)}" if marketplaces else "")
    )
    started = time.monotonic()
    try:
        if settings.profile == "cluster":
            result = ingest_through_the_queue(settings, marketplaces)
        else:
            result = materialize_all(**options)
    except Exception as exc:  # the pipeline's own failure: report it, never a traceback wall
        print(f"ingest failed: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    failures = ingest_failure_lines(
        result,
        failed_steps_of_run=lambda run_id: failed_steps_of_run(settings, run_id),
        never_fetched=catalog_status.never_fetched(settings, failed_partitions(result)),
    )
    if failures:
        for line in failures:
            print(line, file=sys.stderr)
        return EXIT_FAILED
    print(f"ingest finished in {time.monotonic() - started:.0f}s: keyword search is live")
    if before_embeddings is not None:
        before_embeddings.join()  # the Dagster UI that takes the background run
    return start_offer_embeddings(settings)


def ingest_through_the_queue(settings: Settings, marketplaces: Sequence[str]) -> object:
    """The cluster profile's ingest: queued runs that the daemon launches concurrently."""
    from pipelines.queued_run import materialize_all_queued

    by_name = {service.name: service for service in services.build_services(settings)}
    if not supervision.inspect_service(settings, by_name["dagster"]).healthy:
        raise processes.ProcessError(
            f"the cluster profile ingests through Dagster's run queue, and nothing answers at "
            f"{settings.dagster_url}: start `dagster` and `dagster-daemon` (docs/deploy.md)"
        )
    return materialize_all_queued(settings, marketplaces=list(marketplaces) or None)


def start_offer_embeddings(settings: Settings) -> int:
    """Run the offer embeddings in the background through Dagster when its webserver answers
    (the assistant switches to hybrid search when they are in), else here in the foreground;
    neither while the assistant's settings switch them off (no run could switch search)."""
    from pipelines.assets.embeddings import SWITCHED_OFF
    from pipelines.run import dagster_instance, launch_offer_embeddings

    if not embeddings_enabled():
        print(f"offer embeddings: skipped, {SWITCHED_OFF}; the assistant uses keyword search")
        return EXIT_OK
    by_name = {service.name: service for service in services.build_services(settings)}
    if supervision.inspect_service(settings, by_name["dagster"]).healthy:
        try:
            run_id = launch_offer_embeddings(settings)
        except Exception as exc:  # Dagster refused the run: say so and embed here instead
            print(f"offer embeddings: background run refused ({exc}); embedding here")
        else:
            print(
                f"offer embeddings: background run {run_id} "
                f"({settings.dagster_url}/runs/{run_id}); the assistant uses keyword search "
                "until it finishes (`onecart status` shows its progress)"
            )
            return EXIT_OK
    from dagster import DagsterEventType

    from pipelines.definitions import build_definitions
    from pipelines.jobs import OFFER_EMBEDDINGS_JOB
    from pipelines.run import QUIET_RUN_CONFIG, dagster_home

    instance = dagster_instance(dagster_home(settings))
    try:
        job = build_definitions(settings).resolve_job_def(OFFER_EMBEDDINGS_JOB)
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_RUN_CONFIG
        )
    finally:
        instance.dispose()
    if not result.success:
        failed = sorted(
            {
                e.step_key or ""
                for e in result.all_events
                if e.event_type == DagsterEventType.STEP_FAILURE
            }
        )
        print(f"offer embeddings failed in step(s): {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    skipped = embeddings_skipped_reason(result.all_events)
    if skipped:
        # The reasons carry parentheses of their own ("switched off (…=off)").
        print(f"offer embeddings: skipped, {skipped}; the assistant uses keyword search")
    else:
        print("offer embeddings: done; the assistant uses hybrid search")
    return EXIT_OK


def embeddings_enabled() -> bool:
    """The assistant's switch; True without the assistant package (the run then says why)."""
    try:
        from assistant.config import get_assistant_settings
    except ImportError:
        return True
    return get_assistant_settings().embeddings_enabled


def embeddings_skipped_reason(events: Sequence[Any]) -> str | None:
    """Why the offer_embeddings step embedded nothing (switched off, no model package), from the
    observation it records instead of a materialization; None when it ran."""
    from dagster import DagsterEventType

    for event in events:
        if event.event_type != DagsterEventType.ASSET_OBSERVATION:
            continue
        skipped = event.event_specific_data.asset_observation.metadata.get("skipped")
        if skipped is not None and skipped.value:
            return str(skipped.value)
    return None


def _read_result(result: object, key: str) -> Any:
    """`key` of materialize_all's result: an attribute of `pipelines.run.IngestReport`, or the
    same key of a mapping."""
    if result is None:
        return None
    return result.get(key) if isinstance(result, Mapping) else getattr(result, key, None)


def _names(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence | set | frozenset):
        return [str(item) for item in value]
    return []


def failed_partitions(result: object) -> list[str]:
    """The marketplaces whose partition failed in `materialize_all`'s result."""
    return _names(_read_result(result, "failed_partitions"))


def failed_downstream_assets(result: object) -> list[str]:
    """The downstream assets (fx_rates, product_groups, search_products, …) that failed."""
    return _names(_read_result(result, "failed_downstream_assets"))


def _what_is_kept(partitions: list[str], never_fetched: Collection[str]) -> str:
    """Whether the failed marketplaces keep a catalog: one never fetched has none to keep."""
    kept = [slug for slug in partitions if slug not in never_fetched]
    none = [slug for slug in partitions if slug in never_fetched]
    if not none:
        return (
            "its last good catalog is kept"
            if len(kept) == 1
            else "their last good catalogs are kept"
        )
    them = "it" if len(none) == 1 else "them"
    if not kept:
        return f"never fetched: no catalog of {them} yet"
    catalogs = "catalog" if len(kept) == 1 else "catalogs"
    are = "is" if len(kept) == 1 else "are"
    return (
        f"the last good {catalogs} of {', '.join(kept)} {are} kept; {', '.join(none)} never "
        f"fetched: no catalog of {them} yet"
    )


def ingest_failure_lines(
    result: object,
    *,
    failed_steps_of_run: Callable[[str], list[str]] | None = None,
    never_fetched: Collection[str] = (),
) -> list[str]:
    """What the operator is told when an ingest fails; empty when it succeeded.

    Partitions and downstream assets are named on lines of their own, so a broken search index
    is never reported as a broken marketplace. When the report says the run failed but names
    neither (a failed asset check, or a run that failed before any step), the downstream run's
    failed steps are looked up with `failed_steps_of_run`, and the run id is given either way so
    the operator can open its log in the Dagster UI.
    """
    partitions = failed_partitions(result)
    assets = failed_downstream_assets(result)
    lines = []
    if partitions:
        lines.append(
            f"ingest failed for partition(s): {', '.join(partitions)} "
            f"({_what_is_kept(partitions, never_fetched)})"
        )
        # Each one's reason is on its FAILED line above; the next step is a run of only those.
        retry = " ".join(f"--marketplace {slug}" for slug in partitions)
        them = "it once it answers" if len(partitions) == 1 else "them once they answer"
        lines.append(f"  retry {them}: onecart ingest {retry}")
    if assets:
        lines.append(f"ingest failed in downstream asset(s): {', '.join(assets)}")
    reported_failure = _read_result(result, "success") is False
    if reported_failure and not partitions and not assets:
        run_id = _read_result(result, "downstream_run_id")
        steps = failed_steps_of_run(run_id) if run_id and failed_steps_of_run else []
        where = f"downstream run {run_id}" if run_id else "the downstream run"
        if steps:
            lines.append(f"ingest failed in {where}, step(s): {', '.join(steps)}")
        else:
            lines.append(
                f"ingest failed: {where} reported failure without a failed asset or step; "
                "its log is in the Dagster UI (onecart up, then Runs)"
            )
    return lines


def failed_steps_of_run(settings: Settings, run_id: str) -> list[str]:
    """The step keys that failed in one run of the Dagster instance `ingest` records into (asset
    checks have steps of their own, which the ingest report does not name)."""
    import dagster as dg

    from pipelines.run import dagster_home, dagster_instance

    instance = dagster_instance(dagster_home(settings))
    try:
        entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    finally:
        instance.dispose()
    return sorted({entry.step_key for entry in entries if entry.step_key})

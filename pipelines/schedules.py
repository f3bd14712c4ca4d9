"""The catalog refresh schedule (every marketplace's partition, every N minutes) and the freshness
check's schedule beside it."""

from datetime import UTC, datetime, timedelta
from typing import Final

import dagster as dg
from dagster._utils.schedules import reverse_cron_string_iterator

from onecart.dagster_runs import (
    LEFT_TO_UP_TAG,
    STOPPED_BY_DOWN,
    STOPPED_BY_TAG,
    left_unfinished_by_down,
)
from onecart.progress import counted_noun
from pipelines.ingest_plans import IngestPlanStore, marketplaces_an_ingest_will_fetch
from pipelines.jobs import CATALOG_FRESHNESS_JOB, MARKETPLACE_CATALOG_JOB
from pipelines.partition_order import partitions_longest_first

CATALOG_REFRESH_SCHEDULE = "catalog_refresh_schedule"
CATALOG_FRESHNESS_SCHEDULE = "catalog_freshness_schedule"
# Ahead of the tick's queued catalog runs: the check reads the warehouse for a moment.
FRESHNESS_PRIORITY = "10"
# A run in these states still refreshes its marketplace.
UNFINISHED_RUN_STATUSES: Final = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def build_catalog_refresh_schedule(
    cron: str, partitions: dg.StaticPartitionsDefinition, ingest_plans: IngestPlanStore
) -> dg.ScheduleDefinition:
    """One run per marketplace partition at each tick (cron from settings.schedule_cron),
    leaving out what a running `onecart ingest` (its plan in `ingest_plans`) is about to fetch.

    The downstream assets follow through `products_changed_sensor`, once the tick's runs are done,
    so they run once per refresh and also when some marketplaces failed.
    """

    @dg.schedule(
        name=CATALOG_REFRESH_SCHEDULE,
        cron_schedule=cron,
        job_name=MARKETPLACE_CATALOG_JOB,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        execution_timezone="UTC",
        description="Refresh every marketplace's catalog; the sensor then refreshes the rest.",
    )
    def catalog_refresh_schedule(
        context: dg.ScheduleEvaluationContext,
    ) -> list[dg.RunRequest] | dg.SkipReason:
        # The daemon always sets the tick's time; one run key per marketplace and tick.
        tick = context.scheduled_execution_time.isoformat()
        # The queue launches runs of equal priority in the order they were requested.
        slugs = partitions_longest_first(
            context.instance, partitions.get_partition_keys(), full_refresh=False
        )
        # A marketplace whose last refresh is still queued or running is not fetched twice side
        # by side (a refresh longer than the interval): that run brings it up to date.
        in_flight = {
            run.tags.get("dagster/partition")
            for run in context.instance.get_runs(
                dg.RunsFilter(job_name=MARKETPLACE_CATALOG_JOB, statuses=UNFINISHED_RUN_STATUSES)
            )
        }
        skipped: list[str] = []
        if in_flight & set(slugs):
            skipped.append(
                "still refreshing from an earlier run, not requested again: "
                + ", ".join(slug for slug in slugs if slug in in_flight)
            )
        interval = _interval_before(cron, context.scheduled_execution_time)
        # One reason per marketplace: one still refreshing is held back by that run.
        refreshed = (
            _fetched_since(context.instance, context.scheduled_execution_time - interval)
            - in_flight
        )
        if refreshed & set(slugs):
            skipped.append(
                f"fetched successfully less than {_duration(interval)} before this tick or "
                "since, not requested again: "
                + ", ".join(slug for slug in slugs if slug in refreshed)
            )
        # A catch-up tick evaluated while `onecart up --ingest` ingests queued what the ingest
        # had not reached yet; the ingest then waited for each such run and fetched it again.
        ingesting = marketplaces_an_ingest_will_fetch(ingest_plans) - in_flight
        if ingesting & set(slugs):
            skipped.append(
                "a running `onecart ingest` is about to fetch them, not requested: "
                + ", ".join(slug for slug in slugs if slug in ingesting)
            )
        left_to_up = _left_to_up(context.instance, tick)
        if left_to_up & set(slugs):
            skipped.append(
                "cancelled by `onecart down`, left to `onecart up` to carry on: "
                + ", ".join(slug for slug in slugs if slug in left_to_up)
            )
        requests = [
            dg.RunRequest(
                run_key=f"{slug}@{tick}",
                partition_key=slug,
                tags={"onecart/trigger": "schedule", "onecart/tick": tick},
            )
            for slug in slugs
            if slug not in in_flight | refreshed | ingesting | left_to_up
        ]
        if not requests and skipped:
            # The tick's skip reason in the UI and `dagster schedule logs`: why nothing ran.
            return dg.SkipReason("; ".join(skipped))
        for reason in skipped:
            context.log.info(reason)
        return requests

    return catalog_refresh_schedule


def _interval_before(cron: str, tick: datetime) -> timedelta:
    """The time from the schedule's previous tick to `tick` (the interval, for a regular cron)."""
    earlier = reverse_cron_string_iterator(tick.timestamp() - 1, cron, "UTC")
    return tick - next(earlier).astimezone(UTC)


def _duration(interval: timedelta) -> str:
    minutes, seconds = divmod(int(interval.total_seconds()), 60)
    return counted_noun(minutes, "minute") if not seconds else counted_noun(seconds, "second")


def _fetched_since(instance: dg.DagsterInstance, since: datetime) -> set[str]:
    """The marketplaces whose catalog a run other than this schedule's fetched successfully,
    beginning at `since` or later.

    The tick right after `onecart ingest` (or a refresh from the UI) fetched again every
    marketplace fetched a minute before: twice the requests to each marketplace and a second
    downstream run, for nothing newer. A catch-up tick evaluated late (the daemon starting with
    `onecart up --ingest`) found the ingest's runs finished and queued each again, too. The
    previous tick's own runs are the schedule's cadence and do not count: else every other tick
    would be skipped."""
    fetched: set[str] = set()
    for record in instance.get_run_records(
        dg.RunsFilter(
            job_name=MARKETPLACE_CATALOG_JOB,
            statuses=[dg.DagsterRunStatus.SUCCESS],
            updated_after=since,
        )
    ):
        run = record.dagster_run
        began = (
            datetime.fromtimestamp(record.start_time, UTC)
            if record.start_time is not None
            else record.create_timestamp.astimezone(UTC)
        )
        if began >= since and run.tags.get("onecart/trigger") != "schedule":
            fetched.add(run.tags.get("dagster/partition", ""))
    return fetched


def _left_to_up(instance: dg.DagsterInstance, tick: str) -> set[str]:
    """The marketplaces whose refresh `onecart down` cancelled and the `up` after it has not
    carried on yet (onecart/dagster_runs.py), the first tick that sees one.

    `up` re-executes such a refresh right after Dagster answers, while the daemon evaluates its
    catch-up tick: each checked for the other's run before launching its own, and the two
    checks could both come first, so one marketplace was fetched twice side by side. The tick
    leaves it to `up` instead, and marks the run with its time; a later tick finding the mark
    still there (no `up` came: Dagster started by hand) refreshes it as usual."""
    pending: dict[str, list[dg.DagsterRun]] = {}
    for run in instance.get_runs(
        dg.RunsFilter(job_name=MARKETPLACE_CATALOG_JOB, tags={STOPPED_BY_TAG: STOPPED_BY_DOWN})
    ):
        partition = run.tags.get("dagster/partition")
        if partition and left_unfinished_by_down(run):
            pending.setdefault(partition, []).append(run)
    left: set[str] = set()
    for partition, runs in pending.items():
        if all(run.tags.get(LEFT_TO_UP_TAG, tick) == tick for run in runs):
            for run in runs:
                instance.add_run_tags(run.run_id, {LEFT_TO_UP_TAG: tick})
            left.add(partition)
    return left


def build_catalog_freshness_schedule(cron: str) -> dg.ScheduleDefinition:
    """products_are_fresh at every refresh tick, in a run of its own.

    The downstream run also evaluates it, but the sensor starts one only when offers changed,
    and nothing follows a tick whose fetches all failed: with quiet catalogs a marketplace
    failing for hours showed green. At the tick the check sees what the earlier refreshes left,
    which is what its limit (hours, against a refresh every few minutes) is about.
    """
    return dg.ScheduleDefinition(
        name=CATALOG_FRESHNESS_SCHEDULE,
        cron_schedule=cron,
        job_name=CATALOG_FRESHNESS_JOB,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        execution_timezone="UTC",
        tags={"onecart/trigger": "freshness", "dagster/priority": FRESHNESS_PRIORITY},
        description="Warn when a marketplace has not been fetched lately, whatever the refresh "
        "changed (products_are_fresh, one line per stale marketplace).",
    )

"""Refreshing everything downstream of the catalogs when products changed, and the analysts'
copy's fetch times when they did not."""

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

from pipelines.jobs import (
    CATALOG_DOWNSTREAM_JOB,
    FETCH_TIMES_JOB,
    MARKETPLACE_CATALOG_JOB,
    downstream_job,
    fetch_times_job,
)

PRODUCTS_CHANGED_SENSOR = "products_changed_sensor"
EMBEDDINGS_AFTER_DOWNSTREAM_SENSOR = "embeddings_after_downstream_sensor"
# `onecart ingest` launches its own embeddings run right after its downstream run.
INGEST_TRIGGER = ("onecart/trigger", "ingest")
NORMALIZED_PRODUCTS = dg.AssetKey("normalized_products")
MATERIALIZATIONS_PER_TICK = 1000
# Jobs whose runs refresh catalogs: the schedule's and `onecart ingest`'s, and Dagster's implicit
# asset job, which the UI's Materialize button and its backfills run.
CATALOG_RUN_JOBS = (MARKETPLACE_CATALOG_JOB, "__ASSET_JOB")
# Catalog runs that are queued or running: the refresh waits for them to finish.
UNFINISHED_RUN_STATUSES = (
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
)


def content_changed(record: dg.EventLogRecord) -> bool:
    """Whether a normalized_products materialization added, changed or removed offers."""
    materialization = record.asset_materialization
    if materialization is None:
        return False
    flag = materialization.metadata.get("content_changed")
    # Materializations without the flag (older code, manual reports) count as changes.
    return True if flag is None else bool(flag.value)


@dg.sensor(
    name=PRODUCTS_CHANGED_SENSOR,
    jobs=[downstream_job, fetch_times_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Once the catalog runs of a refresh are done: the downstream job (index, "
    "storefront, analysts' copy) when a marketplace's products changed, else the fetch times "
    "job (the analysts' copy learns when each marketplace was fetched).",
)
def products_changed_sensor(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    """Watches normalized_products materializations (their `content_changed` metadata).

    The cursor is the newest materialization's storage id that was handled. While catalog runs
    are still queued or running the cursor stays put, so their changes are handled together.
    A downstream run started after the newest change (by `onecart ingest`, say) counts as done.
    Refreshes that changed no offer get a run of the fetch times job instead (once a downstream
    or fetch times run started after them, it counts as done), so the analysts' copy shows each
    marketplace's latest fetch, not the fetch of its latest change.
    """
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=NORMALIZED_PRODUCTS, after_storage_id=after),
        limit=MATERIALIZATIONS_PER_TICK,
        ascending=True,
    ).records
    if not records:
        return dg.SkipReason("no new normalized_products materializations")
    unfinished = sum(
        context.instance.get_runs_count(
            dg.RunsFilter(job_name=job, statuses=list(UNFINISHED_RUN_STATUSES))
        )
        for job in CATALOG_RUN_JOBS
    )
    if unfinished:
        return dg.SkipReason(f"waiting for {unfinished} catalog run(s) to finish")
    newest = max(record.storage_id for record in records)
    context.update_cursor(str(newest))
    changed = [record for record in records if content_changed(record)]
    # A downstream run publishes the fetch times too; either job's run after the newest record
    # (by `onecart ingest`, say) has done the work.
    job = CATALOG_DOWNSTREAM_JOB if changed else FETCH_TIMES_JOB
    newest_record = datetime.fromtimestamp(
        max(record.timestamp for record in changed or records), tz=UTC
    )
    for later_job in dict.fromkeys((CATALOG_DOWNSTREAM_JOB, job)):
        later_runs = context.instance.get_runs(
            dg.RunsFilter(job_name=later_job, created_after=newest_record), limit=1
        )
        if later_runs:
            return dg.SkipReason(
                f"{later_job} run {later_runs[0].run_id} already started after the latest "
                + ("change" if changed else "refresh")
            )
    if not changed:
        # Analysts would otherwise see the fetch time of the last change for a healthy store.
        return dg.RunRequest(
            run_key=f"fetch-times-{newest}",
            job_name=FETCH_TIMES_JOB,
            tags={"onecart/trigger": "refreshed_unchanged"},
        )
    marketplaces = sorted({record.partition_key or "" for record in changed} - {""})
    return dg.RunRequest(
        run_key=f"products-changed-{newest}",
        job_name=CATALOG_DOWNSTREAM_JOB,
        tags={
            "onecart/trigger": "products_changed",
            "onecart/marketplaces": ",".join(marketplaces),
        },
    )


# Run successes read per tick; the rest wait for the next tick (the cursor says where).
RUN_SUCCESSES_PER_TICK = 100


def handled_run_success(cursor: str | None) -> int | None:
    """The storage id of the last run success handled, or None before the first tick.

    Before ops11 this sensor was a Dagster run-status sensor, whose cursor is a JSON object
    with the same storage id as `record_id`: an upgraded instance carries on from there."""
    if not cursor:
        return None
    if cursor.isdigit():
        return int(cursor)
    try:
        record_id = json.loads(cursor).get("record_id")
    except (ValueError, AttributeError):
        return None
    return record_id if isinstance(record_id, int) else None


def build_embeddings_after_downstream_sensor(
    downstream_job: "UnresolvedAssetJobDefinition",
    embeddings_job: "UnresolvedAssetJobDefinition",
) -> dg.SensorDefinition:
    """After each downstream run the index serves keyword search; the sensor then runs the offer
    embeddings (new or changed texts only) in a run of their own, which gives the index the
    vectors. Runs of `onecart ingest` are skipped: it launches its own embeddings run.

    A plain sensor over the instance's run successes rather than `@run_status_sensor`, whose
    ticks without a new run status say only "Sensor function returned an empty result": every
    skip here says what the sensor saw."""
    downstream = downstream_job.name

    @dg.sensor(
        name=EMBEDDINGS_AFTER_DOWNSTREAM_SENSOR,
        job=embeddings_job,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description=f"Runs offer_embeddings_job after each successful {downstream} run.",
    )
    def embeddings_after_downstream_sensor(
        context: dg.SensorEvaluationContext,
    ) -> dg.SensorResult:
        after = handled_run_success(context.cursor)
        if after is None:
            # Like Dagster's run-status sensors: start from now, not from every past run.
            newest = context.instance.fetch_run_status_changes(
                dg.DagsterEventType.RUN_SUCCESS, limit=1
            ).records
            return dg.SensorResult(
                skip_reason=dg.SkipReason(
                    f"started: each {downstream} run that succeeds from now on gets an "
                    "embeddings run"
                ),
                cursor=str(newest[0].storage_id if newest else 0),
            )
        successes = context.instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(
                event_type=dg.DagsterEventType.RUN_SUCCESS, after_storage_id=after
            ),
            limit=RUN_SUCCESSES_PER_TICK,
            ascending=True,
        ).records
        if not successes:
            return dg.SensorResult(
                skip_reason=dg.SkipReason(f"no {downstream} run succeeded since the last tick"),
                cursor=str(after),
            )
        cursor = str(max(record.storage_id for record in successes))
        runs = context.instance.get_runs(
            dg.RunsFilter(run_ids=[record.run_id for record in successes])
        )
        ours = [run for run in runs if run.job_name == downstream]
        if not ours:
            return dg.SensorResult(
                skip_reason=dg.SkipReason(
                    f"no {downstream} run among the {len(runs)} other run(s) that succeeded "
                    "since the last tick"
                ),
                cursor=cursor,
            )
        key, value = INGEST_TRIGGER
        by_ingest = [run.run_id for run in ours if run.tags.get(key) == value]
        requests = [
            dg.RunRequest(
                run_key=f"embeddings-after-{run.run_id}",
                tags={
                    "onecart/trigger": "downstream_succeeded",
                    "onecart/after_run": run.run_id,
                    # Launched before queued catalog refreshes (pipelines.run.EMBEDDINGS_PRIORITY_TAG).
                    "dagster/priority": "10",
                },
            )
            for run in ours
            if run.tags.get(key) != value
        ]
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=cursor)
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                f"{downstream} run(s) {', '.join(by_ingest)} came from `onecart ingest`, "
                "which launches its own embeddings run"
            ),
            cursor=cursor,
        )

    return embeddings_after_downstream_sensor

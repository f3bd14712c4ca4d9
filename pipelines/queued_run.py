"""`onecart ingest` in the cluster profile: the same runs as pipelines.run.materialize_all, but
submitted to Dagster's run queue through the webserver, so the daemon launches the catalog
partitions concurrently (up to ONECART_DAGSTER_MAX_RUNS at once), each run in a process of its
own, with the run history in PostgreSQL. Waits for them, then runs the downstream job the same
way, and reports in the same IngestReport shape.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import dagster as dg

from onecart import progress as progress_status
from onecart.settings import Settings
from pipelines.jobs import CATALOG_DOWNSTREAM_JOB, DOWNSTREAM_ASSETS, MARKETPLACE_CATALOG_JOB
from pipelines.run import (
    INGEST_TAGS,
    IngestReport,
    PartitionOutcome,
    UnknownMarketplaceError,
    dagster_home,
    dagster_instance,
)
from pipelines.run_progress import describe_downstream, describe_partition, downstream_skip_line

FINISHED = frozenset(
    {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
)
POLL_SECONDS = 1.0


def _client(settings: Settings) -> Any:
    from dagster_graphql import DagsterGraphQLClient

    return DagsterGraphQLClient(settings.dagster_host, port_number=settings.dagster_port)


def _run_metadata(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, Any]]:
    """Asset name -> the metadata of its (last) materialization in the run."""
    metadata: dict[str, dict[str, Any]] = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        materialization = entry.asset_materialization
        if materialization is not None:
            metadata[materialization.asset_key.to_user_string()] = {
                key: value.value for key, value in materialization.metadata.items()
            }
    return metadata


def _failures(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Failed step -> the first line of its error."""
    failed = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        error = event.step_failure_data.error if event is not None else None
        while error is not None and error.cause is not None:
            error = error.cause
        message = (error.message.strip().splitlines() or [""])[0] if error else "failed"
        failed[entry.step_key or ""] = message
    return failed


def _wait(client: Any, run_ids: list[str], on_finished: Callable[[str, Any], None]) -> None:
    pending = set(run_ids)
    while pending:
        for run_id in sorted(pending):
            status = client.get_run_status(run_id)
            if status in FINISHED:
                pending.discard(run_id)
                on_finished(run_id, status)
        if pending:
            time.sleep(POLL_SECONDS)


def materialize_all_queued(
    settings: Settings,
    *,
    marketplaces: list[str] | None = None,
    progress: Callable[[str], None] = print,
) -> IngestReport:
    """Every marketplace partition (or only `marketplaces`) as queued runs, then the downstream
    job as a queued run; raises UnknownMarketplaceError for a slug that is not configured."""
    from pipelines.definitions import build_definitions

    catalog_job = build_definitions(settings).resolve_job_def(MARKETPLACE_CATALOG_JOB)
    known = catalog_job.partitions_def.get_partition_keys() if catalog_job.partitions_def else []
    selected = list(dict.fromkeys(marketplaces)) if marketplaces else list(known)
    unknown = [slug for slug in selected if slug not in known]
    if unknown:
        raise UnknownMarketplaceError(
            f"unknown marketplace(s) {', '.join(unknown)}; configured: {', '.join(known)}"
        )
    client = _client(settings)
    instance = dagster_instance(dagster_home(settings))
    try:
        run_to_slug = {
            client.submit_job_execution(
                MARKETPLACE_CATALOG_JOB, tags={**INGEST_TAGS, "dagster/partition": slug}
            ): slug
            for slug in selected
        }
        progress(f"queued {len(run_to_slug)} catalog runs; the daemon runs them concurrently")
        partitions: dict[str, PartitionOutcome] = {}
        started = time.monotonic()
        progress_status.write_status(
            settings, "catalogs", 0, len(selected), f"loading catalogs: 0 of {len(selected)}"
        )

        def partition_done(run_id: str, status: Any) -> None:
            slug = run_to_slug[run_id]
            metadata = _run_metadata(instance, run_id)
            raw = metadata.get("raw_catalog", {})
            normalized = metadata.get("normalized_products", {})
            success = status == dg.DagsterRunStatus.SUCCESS
            outcome = PartitionOutcome(
                marketplace=slug,
                success=success,
                run_id=run_id,
                fetched=int(raw.get("records", 0)),
                pages=int(raw.get("pages", 0)),
                normalized=int(normalized.get("dagster/row_count", 0)),
                rejected=int(normalized.get("rejected", 0)),
                rejected_by_reason=dict(normalized.get("rejected_by_reason") or {}),
                error=None if success else "; ".join(_failures(instance, run_id).values()),
            )
            partitions[slug] = outcome
            for line in describe_partition(outcome):
                progress(line)
            line = progress_status.progress_line(
                "loading catalogs",
                len(partitions),
                len(selected),
                "marketplaces",
                time.monotonic() - started,
            )
            progress_status.write_status(settings, "catalogs", len(partitions), len(selected), line)
            progress(line)

        try:
            _wait(client, list(run_to_slug), partition_done)
            in_order = {slug: partitions[slug] for slug in selected if slug in partitions}
            skipped = downstream_skip_line(in_order)
            if skipped:
                progress(skipped)
                return IngestReport(
                    partitions=in_order,
                    downstream_success=True,
                    downstream_run_id=None,
                    downstream_metadata={},
                    failed_downstream_assets=[],
                )
            progress(f"downstream: {', '.join(DOWNSTREAM_ASSETS)} (queued run)")
            downstream_id = client.submit_job_execution(CATALOG_DOWNSTREAM_JOB, tags=INGEST_TAGS)
            outcome: dict[str, Any] = {}
            _wait(client, [downstream_id], lambda _run, status: outcome.update(status=status))
        finally:
            progress_status.clear_status(settings, "catalogs")
        metadata = _run_metadata(instance, downstream_id)
        failures = _failures(instance, downstream_id)
    finally:
        instance.dispose()
    downstream_metadata = {
        asset: metadata[asset] for asset in DOWNSTREAM_ASSETS if asset in metadata
    }
    for asset in DOWNSTREAM_ASSETS:
        if asset in downstream_metadata:
            progress(f"{asset}: {describe_downstream(asset, downstream_metadata[asset])}")
        elif asset in failures:
            progress(f"{asset}: FAILED ({failures[asset]})")
    return IngestReport(
        partitions={slug: partitions[slug] for slug in selected if slug in partitions},
        downstream_success=outcome.get("status") == dg.DagsterRunStatus.SUCCESS,
        downstream_run_id=downstream_id,
        downstream_metadata=downstream_metadata,
        failed_downstream_assets=[asset for asset in DOWNSTREAM_ASSETS if asset in failures],
    )

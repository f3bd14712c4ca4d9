"""`onecart ingest`: materialize the whole pipeline once, in this process, with progress lines.

Runs go through the real Dagster instance (DAGSTER_HOME, default $ONECART_HOME/dagster), so they
show in the UI of `dagster dev` exactly like scheduled runs: one run of `marketplace_catalog_job`
per marketplace partition, then one run of `catalog_downstream_job`. Partition runs go on in
parallel worker processes where there are cores (ONECART_PIPELINE_WORKERS); each run uses the
in-process executor.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg

from assistant.config import get_assistant_settings
from onecart import progress as progress_status
from onecart.production import require_production_ready
from onecart.settings import Settings, get_settings
from pipelines.definitions import build_definitions
from pipelines.ingest_overlap import wait_for_refresh_in_flight
from pipelines.ingest_plans import IngestPlan, ingest_plan_store
from pipelines.jobs import (
    CATALOG_DOWNSTREAM_JOB,
    DOWNSTREAM_ASSETS,
    MARKETPLACE_CATALOG_JOB,
    OFFER_EMBEDDINGS_JOB,
)
from pipelines.partition_order import partitions_longest_first
from pipelines.run_progress import (
    describe_downstream,
    describe_partition,
    downstream_skip_line,
    report_steps,
)

# Dagster's own console logging would bury the progress lines; the runs' full logs stay in the
# instance (and in the UI).
QUIET_RUN_CONFIG: Mapping[str, Any] = {
    "loggers": {"console": {"config": {"log_level": "CRITICAL"}}}
}
INGEST_TAGS = {"onecart/trigger": "ingest"}
# The queue launches higher priorities first: the assistant's vectors do not wait behind a
# scheduled catalog refresh.
EMBEDDINGS_PRIORITY_TAG = {"dagster/priority": "10"}


class UnknownMarketplaceError(ValueError):
    """`marketplaces` named a slug that is not an active marketplace."""


@dataclass(frozen=True, slots=True)
class PartitionOutcome:
    """What happened to one marketplace's partition."""

    marketplace: str
    success: bool
    run_id: str
    fetched: int = 0
    pages: int = 0
    normalized: int = 0
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    check_warnings: list[str] = field(default_factory=list)
    # The marketplace answered our conditional request with 304: the held catalog is current.
    not_modified: bool = False
    # Records the marketplace sent as changed since its last fetch (None: every page fetched).
    changed_since: int | None = None
    # Pages the marketplace answered 304 Not Modified (conditional page requests).
    pages_not_modified: int = 0
    # Records not parsed again: their source (a feed item's text) was seen before.
    records_unparsed: int = 0
    # The scheduled refresh of this marketplace the ingest waited for (pipelines/ingest_overlap.py).
    waited: str | None = None


@dataclass(frozen=True, slots=True)
class IngestReport:
    """The result of :func:`materialize_all`: per partition, and for the downstream run."""

    partitions: dict[str, PartitionOutcome]
    downstream_success: bool
    downstream_run_id: str | None
    downstream_metadata: dict[str, dict[str, Any]]
    failed_downstream_assets: list[str]

    @property
    def failed_partitions(self) -> list[str]:
        """Marketplaces whose partition failed (the CLI names them and exits non-zero)."""
        return [slug for slug, outcome in self.partitions.items() if not outcome.success]

    @property
    def success(self) -> bool:
        """Every partition and every downstream asset succeeded."""
        return not self.failed_partitions and self.downstream_success


def dagster_home(settings: Settings | None = None) -> Path:
    """DAGSTER_HOME when set, else $ONECART_HOME/dagster (created if missing)."""
    settings = settings or get_settings()
    home = Path(os.environ.get("DAGSTER_HOME") or settings.home_dir / "dagster")
    home.mkdir(parents=True, exist_ok=True)
    return home


def dagster_instance(home: Path | None = None) -> dg.DagsterInstance:
    """The persistent Dagster instance whose runs `dagster dev` shows."""
    return dg.DagsterInstance.from_config(str(home or dagster_home()))


def _metadata_values(
    event: dg.AssetMaterialization | dg.AssetObservation,
) -> dict[str, Any]:
    return {key: value.value for key, value in event.metadata.items()}


def _asset_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    materializations = result.asset_materializations_for_node(asset)
    return _metadata_values(materializations[-1]) if materializations else {}


def _embeddings_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """offer_embeddings' metadata: its materialization, or the observation it records instead
    when the vectors did not change (pipelines/assets/embeddings.py)."""
    metadata = _asset_metadata(result, "offer_embeddings")
    if metadata:
        return metadata
    observations = result.asset_observations_for_node("offer_embeddings")
    return _metadata_values(observations[-1]) if observations else {}


def _failure_message(result: dg.ExecuteInProcessResult, step_key: str | None = None) -> str:
    """The user-facing reason of the first failed step (or of `step_key`): the exception's own
    message, not Dagster's wrapper."""
    for event in result.all_events:
        if not event.is_step_failure or (step_key is not None and event.step_key != step_key):
            continue
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            return data.user_failure_data.description
        error = data.error
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            return error.message.strip().splitlines()[0] if error.message else error.cls_name or ""
    return "the run failed"


def _failed_steps(result: dg.ExecuteInProcessResult) -> list[str]:
    return sorted({event.step_key or "" for event in result.all_events if event.is_step_failure})


def _check_warnings(result: dg.ExecuteInProcessResult) -> list[str]:
    warnings = []
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            continue
        details = ", ".join(
            f"{key}={value.value}"
            for key, value in evaluation.metadata.items()
            if key not in {"threshold", "note"}
        )
        warnings.append(f"check {evaluation.check_name} {evaluation.severity.value}: {details}")
    return warnings


def _partition_outcome(slug: str, result: dg.ExecuteInProcessResult) -> PartitionOutcome:
    raw = _asset_metadata(result, "raw_catalog")
    normalized = _asset_metadata(result, "normalized_products")
    if not result.success:
        return PartitionOutcome(
            marketplace=slug,
            success=False,
            run_id=result.run_id,
            fetched=int(raw.get("records", 0)),
            error=_failure_message(result),
        )
    return PartitionOutcome(
        marketplace=slug,
        success=True,
        run_id=result.run_id,
        fetched=int(raw.get("records", 0)),
        pages=int(raw.get("pages", 0)),
        normalized=int(normalized.get("dagster/row_count", 0)),
        rejected=int(normalized.get("rejected", 0)),
        rejected_by_reason=dict(normalized.get("rejected_by_reason") or {}),
        check_warnings=_check_warnings(result),
        not_modified=bool(raw.get("not_modified")),
        changed_since=(
            int(raw.get("records_fetched", 0)) if raw.get("fetch") == "changed_since" else None
        ),
        pages_not_modified=int(raw.get("pages_not_modified", 0)),
        records_unparsed=int(raw.get("records_unparsed", 0)),
    )


@dataclass(slots=True)
class _PartitionWorker:
    """What a worker process holds for the partition it runs: the catalog job and the Dagster
    instance, built in the forked worker (no import of its own, see pipelines/worker_imports.py)."""

    job: dg.JobDefinition
    instance: dg.DagsterInstance


_worker: _PartitionWorker | None = None


def _adopt_environment(environment: Mapping[str, str]) -> None:
    """Make this worker's environment the submitting process's, and forget what was read from
    the old one. A forked worker inherits the forkserver's environment, which is the environment
    of whichever process first started the forkserver (in a test run, the first test's
    ONECART_HOME), not the environment of the ingest that submits the partition."""
    os.environ.clear()
    os.environ.update(environment)
    get_settings.cache_clear()
    get_assistant_settings.cache_clear()


def _start_partition_worker(environment: Mapping[str, str]) -> None:
    """ProcessPoolExecutor initializer: take the submitter's environment. The job and the
    instance wait for the first partition (:func:`_partition_worker`): the pool starts a
    replacement for every worker that exits, also after the last partition, and shutting the
    pool down waits for that replacement to finish starting."""
    _adopt_environment(environment)


def _partition_worker(home: str) -> _PartitionWorker:
    """This worker's job and instance, built on its first partition."""
    global _worker
    if _worker is None:
        job = build_definitions(get_settings()).resolve_job_def(MARKETPLACE_CATALOG_JOB)
        instance = dagster_instance(Path(home))
        atexit.register(instance.dispose)
        _worker = _PartitionWorker(job=job, instance=instance)
    return _worker


def _partition_in_child(
    slug: str, home: str, full_refresh: bool, as_of: str = ""
) -> PartitionOutcome:
    """One marketplace partition run in a worker process (see _run_partitions_concurrently)."""
    worker = _partition_worker(home)
    waited = wait_for_refresh_in_flight(worker.instance, slug, partial(print, flush=True))
    result = worker.job.execute_in_process(
        partition_key=slug,
        instance=worker.instance,
        raise_on_error=False,
        run_config=catalog_run_config(full_refresh, as_of),
        tags=INGEST_TAGS,
    )
    return replace(_partition_outcome(slug, result), waited=waited)


def catalog_run_config(full_refresh: bool, as_of: str = "") -> dict[str, Any]:
    """The run config of one marketplace's catalog run: a full refresh or not, and the moment
    its offers are stamped with (`as_of`, ISO 8601; empty: now)."""
    return {
        **QUIET_RUN_CONFIG,
        "ops": {
            asset: {"config": {"full_refresh": full_refresh, "as_of": as_of}}
            for asset in ("raw_catalog", "normalized_products")
        },
    }


def _partition_worker_pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for partition runs. They fork from a server process that imported the
    pipeline once (not a fork of this process, whose threads could hold locks): no import per
    worker, per ingest, or per day of a --history replay. The server also imports what Dagster
    and the adapters would load in each worker only once it runs (pipelines/worker_imports.py).
    The server outlives this pool and keeps the environment it started with, so each worker is
    given this process's environment.

    Each worker runs one partition and exits (`max_tasks_per_child=1`): after normalizing a
    marketplace of 166k records a long-lived worker still held 0.54 GiB (the forkserver it forks
    from, 0.19 GiB; the rest allocator caches of Python, Polars and DuckDB) while the other worker
    normalized the next partition, at up to 1.45 GiB: the phase's peak is the sum.
    A fresh fork costs a few tenths of a second (building the job, opening the instance),
    nothing next to a partition."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "pipelines.worker_imports"])
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        max_tasks_per_child=1,
        initializer=_start_partition_worker,
        initargs=(dict(os.environ),),
    )


def _run_partitions_concurrently(
    slugs: list[str],
    workers: int,
    home: str,
    full_refresh: bool,
    progress: Callable[[str], None],
    as_of: str = "",
    on_progress: Callable[[int, list[str]], None] | None = None,
    on_done: Callable[[str], None] | None = None,
) -> dict[str, PartitionOutcome]:
    """Partition runs in `workers` processes at once, each its own Dagster run in the shared
    instance. Fetching and staging (most of the time) overlap; DuckDB's one writer is kept by
    design, since every warehouse write goes through warehouse.connect()'s exclusive lock and
    partitions stage their fetch in their own Parquet files first. A partition that fails, or
    whose process dies, fails alone. `on_progress` hears, at the start and after each
    partition, how many are done and which are running (the pool starts them in `slugs`' order,
    one as each finishes); `on_done` hears each marketplace as its partition ends."""
    outcomes: dict[str, PartitionOutcome] = {}

    def running() -> list[str]:
        return [slug for slug in slugs[: len(outcomes) + workers] if slug not in outcomes]

    if on_progress is not None:
        on_progress(0, running())
    with _partition_worker_pool(workers) as pool:
        futures = {
            pool.submit(_partition_in_child, slug, home, full_refresh, as_of): slug
            for slug in slugs
        }
        for future in as_completed(futures):
            slug = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # the worker process itself failed: this partition only
                outcome = PartitionOutcome(
                    marketplace=slug, success=False, run_id="", error=f"{type(exc).__name__}: {exc}"
                )
            outcomes[slug] = outcome
            if on_done is not None:
                on_done(slug)
            for line in describe_partition(outcome):
                progress(line)
            if on_progress is not None:
                on_progress(len(outcomes), running())
    return {slug: outcomes[slug] for slug in slugs}


def materialize_all(
    *,
    instance: dg.DagsterInstance | None = None,
    progress: Callable[[str], None] = print,
    marketplaces: list[str] | None = None,
    full_refresh: bool = False,
    as_of: datetime | None = None,
    downstream_assets: tuple[str, ...] | None = None,
    embeddings: bool = True,
) -> IngestReport:
    """Materialize every marketplace partition (or only `marketplaces`), then the downstream
    assets, printing a line per partition and per downstream asset.

    With `embeddings` the offer embeddings job runs here too, after the index is live for
    keyword search; `onecart ingest` passes False and launches it as a background run instead
    (:func:`launch_offer_embeddings`).

    A failing marketplace fails only its partition; the downstream assets then work from what the
    warehouse holds, including that marketplace's last good catalog. Raises
    UnknownMarketplaceError for a slug that is not configured. `full_refresh` stores and reads
    every page again instead of only the pages that changed. `as_of` and `downstream_assets`
    are for replays of the sandbox's past catalogs (pipelines/history.py): the moment to record,
    and the downstream assets to run (default: all).
    """
    settings = get_settings()
    require_production_ready(settings, "pipeline")
    definitions = build_definitions(settings)
    catalog_job = definitions.resolve_job_def(MARKETPLACE_CATALOG_JOB)
    downstream_job = definitions.resolve_job_def(CATALOG_DOWNSTREAM_JOB)
    known = catalog_job.partitions_def.get_partition_keys() if catalog_job.partitions_def else []
    selected = list(dict.fromkeys(marketplaces)) if marketplaces else list(known)
    unknown = [slug for slug in selected if slug not in known]
    if unknown:
        raise UnknownMarketplaceError(
            f"unknown marketplace(s) {', '.join(unknown)}; configured: {', '.join(known)}"
        )
    instance = instance or dagster_instance(dagster_home(settings))

    as_of_text = as_of.isoformat() if as_of else ""
    catalog_config = catalog_run_config(full_refresh, as_of_text)

    def run_partition(slug: str) -> PartitionOutcome:
        waited = wait_for_refresh_in_flight(instance, slug, progress)
        result = catalog_job.execute_in_process(
            partition_key=slug,
            instance=instance,
            raise_on_error=False,
            run_config=catalog_config,
            tags=INGEST_TAGS,
        )
        return replace(_partition_outcome(slug, result), waited=waited)

    # The site reads the status file to say "loading catalogs: 3 of 6 marketplaces" until the
    # index exists.
    started = time.monotonic()

    def report_loading(done: int, now: list[str]) -> None:
        line = progress_status.progress_line(
            "loading catalogs", done, len(selected), "marketplaces", time.monotonic() - started
        )
        progress_status.write_status(settings, "catalogs", done, len(selected), line)
        # Which ones are loading: a first partition of a parallel ingest takes a while, and
        # "0 of 8 marketplaces" alone said nothing of what was happening.
        progress(f"{line} (now {', '.join(now)})" if now else line)

    workers = min(len(selected), settings.pipeline_workers or os.cpu_count() or 1)
    # The schedule's ticks leave alone what this ingest has yet to fetch.
    with IngestPlan(ingest_plan_store(settings), selected) as plan:
        if workers > 1 and not instance.is_ephemeral and instance.root_directory:
            partitions = _run_partitions_concurrently(
                partitions_longest_first(instance, selected, full_refresh=full_refresh),
                workers,
                instance.root_directory,
                full_refresh,
                progress,
                as_of_text,
                on_progress=report_loading,
                on_done=plan.fetched,
            )
            partitions = {slug: partitions[slug] for slug in selected}  # the report's order
        else:
            # In this process, one after the other: Dagster's in-process execution is not
            # thread-safe (each run reconfigures logging).
            partitions = {}
            for done, slug in enumerate(selected):
                report_loading(done, [slug])
                partitions[slug] = run_partition(slug)
                plan.fetched(slug)
                for line in describe_partition(partitions[slug]):
                    progress(line)
    skipped = downstream_skip_line(partitions)
    if skipped:
        progress_status.clear_status(settings, "catalogs")
        progress(skipped)
        return IngestReport(
            partitions=partitions,
            downstream_success=True,
            downstream_run_id=None,
            downstream_metadata={},
            failed_downstream_assets=[],
        )
    progress_status.write_status(
        settings, "catalogs", len(selected), len(selected), "indexing catalogs for search"
    )

    selected_downstream = downstream_assets or DOWNSTREAM_ASSETS
    progress(f"downstream: {', '.join(selected_downstream)}")
    downstream_config = {
        **QUIET_RUN_CONFIG,
        "ops": {
            asset: {"config": {"full_refresh": full_refresh}}
            for asset in ("product_groups", "price_history")
            if asset in selected_downstream
        },
    }
    downstream_started = time.monotonic()
    downstream_run_id = str(uuid.uuid4())  # known before it starts, to follow its steps
    report_steps(instance, downstream_run_id, settings, progress, marketplaces=len(selected))
    try:
        downstream = downstream_job.execute_in_process(
            instance=instance,
            raise_on_error=False,
            run_config=downstream_config,
            run_id=downstream_run_id,
            tags=INGEST_TAGS,
            asset_selection=(
                [dg.AssetKey(asset) for asset in downstream_assets] if downstream_assets else None
            ),
        )
    finally:
        progress_status.clear_status(settings, "catalogs")
    progress(f"downstream run finished in {time.monotonic() - downstream_started:.0f}s")
    downstream_metadata: dict[str, dict[str, Any]] = {}
    failed_steps = _failed_steps(downstream)
    embedding_run = None
    if embeddings:
        progress("offer embeddings: embedding new or changed offer texts for the assistant")
        embedding_run = definitions.resolve_job_def(OFFER_EMBEDDINGS_JOB).execute_in_process(
            instance=instance, raise_on_error=False, run_config=QUIET_RUN_CONFIG, tags=INGEST_TAGS
        )
        metadata = _embeddings_metadata(embedding_run)
        if metadata:
            downstream_metadata["offer_embeddings"] = metadata
            progress(f"offer_embeddings: {describe_downstream('offer_embeddings', metadata)}")
        failed_steps += [step for step in _failed_steps(embedding_run) if step not in failed_steps]
    for asset in selected_downstream:
        metadata = _asset_metadata(downstream, asset)
        if metadata:
            downstream_metadata[asset] = metadata
            progress(f"{asset}: {describe_downstream(asset, metadata)}")
        elif asset in failed_steps:
            progress(f"{asset}: FAILED ({_failure_message(downstream, asset)})")
        else:
            progress(f"{asset}: not run (an upstream asset failed)")
    for warning in _check_warnings(downstream):
        progress(f"  {warning}")
    assets = (*DOWNSTREAM_ASSETS, "offer_embeddings")
    return IngestReport(
        partitions=partitions,
        downstream_success=downstream.success and (embedding_run is None or embedding_run.success),
        downstream_run_id=downstream.run_id,
        downstream_metadata=downstream_metadata,
        failed_downstream_assets=[asset for asset in assets if asset in failed_steps],
    )


def launch_offer_embeddings(settings: Settings, *, tags: Mapping[str, str] = INGEST_TAGS) -> str:
    """Submit the offer embeddings job to the running Dagster webserver: a background run that
    the daemon launches (the Dagster UI shows its progress); returns the run id. Raises
    dagster_graphql.DagsterGraphQLClientError when Dagster does not accept it."""
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient(settings.dagster_host, port_number=settings.dagster_port)
    return client.submit_job_execution(
        OFFER_EMBEDDINGS_JOB, tags={**tags, **EMBEDDINGS_PRIORITY_TAG}
    )

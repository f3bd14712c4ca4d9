"""The pipeline benchmark's child phases: one ingest measured from the inside (step windows and
metadata from the Dagster instance), and DuckDB's read_json baseline in a fresh process.

Run by bench.pipeline_bench as `python -m bench.pipeline_bench --phase ingest|duckdb`."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.process_metrics import RssSampler, cpu_seconds, peak_rss_of, rusage_peaks

# ---------------------------------------------------------------------------------------------
# Child phase: one ingest (materialize_all), measured from the inside.


def _step_windows(instance: Any, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """Start and end (epoch seconds) of every step of the given runs, from the event log."""
    from dagster import DagsterEventType

    kinds = {
        DagsterEventType.STEP_START,
        DagsterEventType.STEP_SUCCESS,
        DagsterEventType.STEP_FAILURE,
    }
    windows: list[dict[str, Any]] = []
    for run_id in run_ids:
        started: dict[str, float] = {}
        for entry in instance.all_logs(run_id, of_type=kinds):
            event = entry.dagster_event
            if event is None or event.step_key is None:
                continue
            if event.event_type == DagsterEventType.STEP_START:
                started[event.step_key] = entry.timestamp
            elif event.step_key in started:
                windows.append(
                    {
                        "run_id": run_id,
                        "step": event.step_key,
                        "start": started.pop(event.step_key),
                        "end": entry.timestamp,
                        "success": event.event_type == DagsterEventType.STEP_SUCCESS,
                    }
                )
    return windows


def run_ingest_phase(result_file: Path, *, profile_to: Path | None = None) -> int:
    """Materialize everything once, as `onecart ingest` does, and write what it cost as JSON."""
    from pipelines.run import dagster_home, dagster_instance, materialize_all

    catalogs_done: list[float] = []

    def progress(line: str) -> None:
        # "downstream: ..." is printed once every partition run has ended: the wall time of the
        # partition phase (partition runs overlap, so their step times do not add up to it).
        if line.startswith("downstream:") and not catalogs_done:
            catalogs_done.append(time.time())
        print(f"  [{time.strftime('%H:%M:%S')}] {line}", flush=True)

    instance = dagster_instance(dagster_home())
    with RssSampler() as sampler:
        cpu_started = cpu_seconds()
        started = time.time()
        if profile_to is not None:
            import cProfile

            profiler = cProfile.Profile()
            report = profiler.runcall(materialize_all, instance=instance, progress=progress)
            profiler.dump_stats(str(profile_to))
        else:
            report = materialize_all(instance=instance, progress=progress)
        finished = time.time()
        cpu_used = cpu_seconds() - cpu_started
    run_ids = [outcome.run_id for outcome in report.partitions.values()]
    if report.downstream_run_id:
        run_ids.append(report.downstream_run_id)
    windows = _step_windows(instance, run_ids)
    for window in windows:
        window["peak_rss"] = sampler.peak_between(window["start"], window["end"])
    result = {
        "wall_s": finished - started,
        "catalog_phase_s": (catalogs_done[0] if catalogs_done else finished) - started,
        "cpu_s": cpu_used,
        "success": report.success,
        "failed_partitions": report.failed_partitions,
        "failed_downstream_assets": report.failed_downstream_assets,
        "partitions": {
            slug: {
                "success": outcome.success,
                "run_id": outcome.run_id,
                "raw": _raw_metadata(instance, outcome.run_id),
                "fetched": outcome.fetched,
                "pages": outcome.pages,
                "normalized": outcome.normalized,
                "rejected": outcome.rejected,
                "error": outcome.error,
            }
            for slug, outcome in report.partitions.items()
        },
        "downstream": report.downstream_metadata,
        "normalized_metadata": _normalized_metadata(instance, report),
        "steps": windows,
        "peak_rss_sampled": sampler.peak,
        "peak_hwm_process": max(sampler.peak_hwm_process, peak_rss_of(os.getpid())),
        "rusage": rusage_peaks(),
        "children_seen": sorted(sampler.children),
        "code_root": str(Path(sys.modules[materialize_all.__module__].__file__ or "").parents[1]),
    }
    result_file.write_text(json.dumps(result, default=str, indent=1))
    instance.dispose()
    return 0 if report.success else 1


def _raw_metadata(instance: Any, run_id: str) -> dict[str, Any]:
    """What a partition's raw_catalog materialization reported (records, bytes, and on code
    that fetches changes, how: `fetch` and `records_fetched`)."""
    from dagster import DagsterEventType

    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION):
        event = entry.dagster_event
        materialization = event.event_specific_data.materialization if event else None
        if materialization is not None and materialization.asset_key.path == ["raw_catalog"]:
            return {
                key: materialization.metadata[key].value
                for key in (
                    "records",
                    "pages",
                    "bytes",
                    "fetch",
                    "records_fetched",
                    "not_modified",
                    "pages_not_modified",
                )
                if key in materialization.metadata
            }
    return {}


def _normalized_metadata(instance: Any, report: Any) -> dict[str, dict[str, Any]]:
    """new/changed/removed offer counts of each partition's normalized_products materialization."""
    from dagster import DagsterEventType

    counts: dict[str, dict[str, Any]] = {}
    for slug, outcome in report.partitions.items():
        for entry in instance.all_logs(
            outcome.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
        ):
            event = entry.dagster_event
            materialization = event.event_specific_data.materialization if event else None
            if materialization is None or materialization.asset_key.path != ["normalized_products"]:
                continue
            counts[slug] = {
                key: materialization.metadata[key].value
                for key in (
                    "new_offers",
                    "changed_offers",
                    "removed_offers",
                    "raw_records",
                    "records_read",
                    "normalize_seconds",
                    "normalize_cpu_seconds",
                    "warehouse_open_seconds",
                )
                if key in materialization.metadata
            }
    return counts


# ---------------------------------------------------------------------------------------------
# Child phase: the DuckDB baseline, in a fresh process and a fresh database file.


def run_duckdb_phase(ndjson_dir: Path, db_path: Path, result_file: Path) -> int:
    """Time DuckDB's read_json of every exported NDJSON file into a table of a fresh database."""
    import duckdb

    files = sorted(ndjson_dir.glob("*.ndjson"))
    tables: dict[str, dict[str, Any]] = {}
    with RssSampler() as sampler:
        started = time.perf_counter()
        # Every thread of this process (DuckDB's included); the sampler's own CPU is counted
        # too, a few ms, which only flatters the pipeline's side of the CPU ratio.
        cpu_started = time.process_time()
        conn = duckdb.connect(str(db_path))
        for path in files:
            table = "raw_" + re.sub(r"\W", "_", path.stem)
            table_started = time.perf_counter()
            # Identifiers cannot be bound; the table name is derived from a slug above.
            conn.execute(
                f"CREATE TABLE {table} AS SELECT * FROM read_json(?, format = 'newline_delimited')",
                [str(path)],
            )
            (rows,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)
            columns = len(conn.execute(f"DESCRIBE {table}").fetchall())
            tables[path.stem] = {
                "seconds": time.perf_counter() - table_started,
                "rows": int(rows),
                "columns": columns,
            }
        conn.execute("CHECKPOINT")
        conn.close()
        elapsed = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    result = {
        "seconds": elapsed,
        "cpu_seconds": cpu_seconds,
        "tables": tables,
        "threads": os.cpu_count(),
        "peak_rss_sampled": sampler.peak,
        "rusage": rusage_peaks(),
    }
    result_file.write_text(json.dumps(result, indent=1))
    return 0

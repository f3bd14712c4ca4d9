"""Catalog pipeline benchmark: fetch + normalize + load at scale, against DuckDB's own JSON reader.

    .venv/bin/python -m bench.pipeline_bench [--offers 1000000] [--seed 42] [--no-append]

What it does, all on loopback in a throw-away ONECART_HOME (removed afterwards unless --keep):

1. Starts its own sandbox (``python -m sandbox serve --offers N``, the total over its six
   marketplaces) and its own Meilisearch (``--max-indexing-memory``, default 2GiB).
2. **Full run**: ``pipelines.run.materialize_all`` (exactly what ``onecart ingest`` does: one
   Dagster run per marketplace partition, then the downstream run) in a child process, with
   ONECART_ASSISTANT_EMBEDDINGS=off. Step durations come from the Dagster instance's event log;
   peak memory from a /proc sampler (the process and its children, every 0.1 s) and every
   process's own high-water mark (VmHWM); the RESULT line's ``peak_rss_gb`` is the larger of
   the two.
3. **Baseline**: exports the raw payloads the pipeline stored (raw_catalog) to one NDJSON file
   per marketplace, then, in a fresh process and a fresh DuckDB file, times
   ``CREATE TABLE … AS SELECT * FROM read_json(…)`` over them.
4. **Meilisearch**: documents per second of the full rebuild (the search_products step end to
   end, and Meilisearch's own task time).
5. **Incremental run**: bumps the sandbox's ``price_epoch`` knob (≈ 1% of prices change), runs
   the pipeline again, and compares the documents sent with the documents whose ``doc_hash``
   really changed in the index, and with the offers the sandbox changed.
6. Prints a table and replaces the "## Catalog pipeline" section of bench/RESULTS.md.

Targets (issue 11): normalize + load ≤ 2× DuckDB's raw read; peak RSS ≤ 2 GB; the full run
≤ 300 s at 1,000,000 offers; the incremental run ≤ 10% of the full run's time and sends only the
changed documents. The last line printed is machine-readable:
``RESULT offers=N full_s=… normalize_load_vs_duckdb=… incremental_share=… peak_rss_gb=…
docs_sent=… docs_changed=…`` (then, when measured, ``normalize_load_less_wait_vs_duckdb`` and
``normalize_load_cpu_vs_duckdb``: the partitions' summed process CPU over normalize + load ÷ the
baseline process's CPU, since the partitions share two cores and the baseline runs alone).

``--profile`` runs the full ingest under cProfile instead (use a small ``--offers``) and prints
the top functions by cumulative and own time and every step's duration; ``--profile
incremental`` profiles the refresh after a full run and a price_epoch bump instead.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_FILE = REPO_ROOT / "bench" / "RESULTS.md"
SECTION_HEADING = "## Catalog pipeline"

DEFAULT_OFFERS = 1_000_000
DEFAULT_SEED = 42
DEFAULT_MEILI_INDEXING_MEMORY = "2GiB"
INDEX_UID = "products"
SAMPLE_INTERVAL_S = 0.1

TARGET_NORMALIZE_FACTOR = 2.0
TARGET_PEAK_RSS_BYTES = 2 * 1000**3
TARGET_FULL_RUN_S = 300.0
TARGET_INCREMENTAL_SHARE = 0.10

CATALOG_STEPS = ("raw_catalog", "normalized_products")


# ---------------------------------------------------------------------------------------------
# Memory: a sampler of the process tree's resident set, from /proc (no psutil).


def _status_bytes(pid: int, field_name: str) -> int:
    """A `kB` field of /proc/<pid>/status in bytes (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return 0
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found.extend(int(child) for child in children.read().split())
        except OSError:
            continue
    return found


def _proportional_bytes(pid: int) -> int:
    """Pss of `pid` (its resident set with shared pages split among their sharers), in bytes."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return 0
    return 0


def _command_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return "?"


def _descendants(pid: int) -> list[int]:
    found, pending = [], _children(pid)
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(_children(current))
    return found


def process_tree_rss(
    pid: int, seen_children: set[str] | None = None, descendants: list[int] | None = None
) -> int:
    """Resident bytes of `pid` and all its descendants right now (`descendants`: the tree
    already walked by the caller).

    Alone, the process's VmRSS (cheap). With children, the sum of everyone's Pss instead: a
    freshly forked child shares its parent's pages, and adding two VmRSS would count those
    twice. Children's command names are added to `seen_children`.
    """
    if descendants is None:
        descendants = _descendants(pid)
    if not descendants:
        return _status_bytes(pid, "VmRSS")
    if seen_children is not None:
        seen_children.update(_command_name(child) for child in descendants)
    return sum(_proportional_bytes(member) for member in [pid, *descendants])


def peak_rss_of(pid: int) -> int:
    """The kernel's high-water mark of `pid`'s resident set (VmHWM), in bytes."""
    return _status_bytes(pid, "VmHWM")


class RssSampler:
    """Samples the resident set of this process and its children in a background thread, so the
    peak can be attributed to the pipeline step that was running at the time."""

    def __init__(self, interval: float = SAMPLE_INTERVAL_S) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.children: set[str] = set()
        # The largest VmHWM of any one process of the tree: the kernel keeps it per process,
        # so a burst between two samples still shows up at the next one.
        self.peak_hwm_process = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        pid = os.getpid()
        while not self._stop.is_set():
            tree = _descendants(pid)
            self.samples.append((time.time(), process_tree_rss(pid, self.children, tree)))
            for member in [pid, *tree]:
                self.peak_hwm_process = max(self.peak_hwm_process, peak_rss_of(member))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.time(), process_tree_rss(os.getpid())))

    @property
    def peak(self) -> int:
        """The highest sampled resident set, in bytes."""
        return max((rss for _, rss in self.samples), default=0)

    def peak_between(self, start: float, end: float) -> int:
        """The highest sample taken between two `time.time()` instants (widened by one sampling
        interval, so a step shorter than the interval still gets the samples around it)."""
        low, high = start - self.interval, end + self.interval
        return max((rss for t, rss in self.samples if low <= t <= high), default=0)


def rusage_peaks() -> dict[str, int]:
    """The kernel's high-water marks, in bytes: this process's own (VmHWM) and ru_maxrss of
    this process and of its largest waited-for child.

    Only `hwm_self` describes this process alone. Linux carries ru_maxrss across exec: a
    process started by a 2.5 GiB parent (subprocess uses vfork + exec) reports the parent's
    high-water mark as its own ru_maxrss from its first instruction. That is how this bench's
    own orchestrator (which exports the raw payloads between the two runs) once showed up as a
    2.47 GiB "refresh" peak; VmHWM belongs to the process's own address space and is not
    inherited.
    """
    return {
        "hwm_self": peak_rss_of(os.getpid()),
        "self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "children": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    }


def _live_child_cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of `pid`'s live children (a forkserver's own CPU and that
    of the workers it has reaped), from /proc/<child>/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for child in _children(pid):
        try:
            with open(f"/proc/{child}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After "(comm)": state is field 3, utime..cstime are fields 14..17 of the whole line.
        total += sum(int(value) for value in fields[11:15]) / ticks
    return total


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (all its threads; 0 when it is gone), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    """User + system CPU time of this process, of its waited-for children and of its live ones
    (with what they waited for: the partition workers, forked by a forkserver), in seconds. Less
    sensitive than wall time to other processes on a shared machine, though not immune."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    waited = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return waited + _live_child_cpu_seconds(os.getpid())


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


def marketplace_rows(full: dict[str, Any], incremental: dict[str, Any]) -> list[str]:
    """Per marketplace: its offers, and its raw_catalog (fetch + raw load) and
    normalized_products step times in the full run and in the refresh."""

    def step_seconds(phase: dict[str, Any], slug: str, step: str) -> float:
        run_id = phase["partitions"].get(slug, {}).get("run_id")
        return sum(
            w["end"] - w["start"]
            for w in phase["steps"]
            if w["run_id"] == run_id and w["step"] == step
        )

    lines = [
        "| marketplace | raw records | full: `raw_catalog` | refresh: `raw_catalog` · how "
        "(records fetched) | refresh: `normalized_products` |",
        "|---|---:|---:|---:|---:|",
    ]
    total_full = total_refresh = 0.0
    for slug, part in sorted(full["partitions"].items()):
        if "run_id" not in part:
            return []
        raw = incremental["partitions"].get(slug, {}).get("raw", {})
        full_s = step_seconds(full, slug, "raw_catalog")
        refresh_s = step_seconds(incremental, slug, "raw_catalog")
        total_full += full_s
        total_refresh += refresh_s
        how = raw.get("fetch") or ("304" if raw.get("not_modified") else "every page")
        if raw.get("fetch") == "full":
            how = "every page"
        fetched = raw.get("records_fetched")
        if raw.get("pages_not_modified"):
            how += f", {int(raw['pages_not_modified']):,} of {int(raw.get('pages') or 0):,} 304"
        lines.append(
            f"| {slug} | {int(part['raw'].get('records') or part['fetched']):,} | "
            f"{full_s:.1f} s | {refresh_s:.1f} s · {how}"
            + (f" ({int(fetched):,})" if fetched is not None else "")
            + f" | {step_seconds(incremental, slug, 'normalized_products'):.1f} s |"
        )
    lines.append(
        f"| all (summed; partitions overlap) | | {total_full:.1f} s | {total_refresh:.1f} s | |"
    )
    return lines


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


# ---------------------------------------------------------------------------------------------
# The orchestrator.


@dataclass
class Services:
    """What the benchmark started, so it can stop exactly that (by pid)."""

    sandbox_pid: int | None = None
    meili_pid: int | None = None
    sandbox_url: str = ""
    meili_url: str = ""
    started: list[int] = field(default_factory=list)


def machine_description() -> dict[str, Any]:
    """nproc, memory, CPU model and load at the start, for the results."""
    memory_kb = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_gib": memory_kb / 1024**2,
        "cpu": cpu,
        "python": platform.python_version(),
        "load_at_start": os.getloadavg(),
    }


def child_environment(home: Path, services: Services, meili_key: str) -> dict[str, str]:
    """The environment of the pipeline's child processes: everything points at our services."""
    # Imported here, after run_benchmark put the code snapshot first on sys.path. The sandbox
    # accepts any non-empty credentials: the placeholders the tests use, for every marketplace
    # marketplaces.toml serves from it.
    from onecart.services import sandbox_credentials
    from onecart.settings import get_settings

    credentials = sandbox_credentials(get_settings(), environ={})
    sandbox_port = services.sandbox_url.rsplit(":", 1)[1]
    return {
        **os.environ,
        **{name: os.environ.get(name) or value for name, value in credentials.items()},
        "ONECART_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "ONECART_SANDBOX_HOST": "127.0.0.1",
        "ONECART_SANDBOX_PORT": sandbox_port,
        "ONECART_SANDBOX_URL": services.sandbox_url,
        "MEILI_URL": services.meili_url,
        "MEILI_MASTER_KEY": meili_key,
        "MEILI_INDEX": INDEX_UID,
        "ONECART_ASSISTANT_EMBEDDINGS": "off",
        "PYTHONUNBUFFERED": "1",
    }


def run_child(
    argv: Sequence[str], env: Mapping[str, str], log_path: Path, *, cwd: Path
) -> tuple[int, float]:
    """Run a phase of this module in a child process (from the code snapshot in `cwd`), echoing
    its output; returns (exit code, seconds)."""
    started = time.perf_counter()
    with open(log_path, "a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.pipeline_bench", *argv],
            cwd=str(cwd),
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            log.write(line)
            print(line, end="", flush=True)
        code = process.wait()
    return code, time.perf_counter() - started


def start_services(
    settings: Any, *, offers: int, seed: int, indexing_memory: str, services: Services
) -> None:
    """Start the sandbox and Meilisearch on free loopback ports and wait until both answer."""
    from onecart import processes

    sandbox_port = processes.free_port()
    sandbox = processes.start_process(
        settings,
        "bench-sandbox",
        [
            sys.executable,
            "-m",
            "sandbox",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(sandbox_port),
            "--offers",
            str(offers),
            "--seed",
            str(seed),
            "--quiet",
        ],
    )
    services.sandbox_pid = sandbox.pid
    services.sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    meili_port = processes.free_port()
    meili = processes.start_process(
        settings,
        "bench-meilisearch",
        processes.meilisearch_argv(
            settings, settings.home_dir / "meili" / "data.ms", f"127.0.0.1:{meili_port}"
        ),
    )
    services.meili_pid = meili.pid
    services.meili_url = f"http://127.0.0.1:{meili_port}"
    processes.wait_for_http(f"{services.sandbox_url}/_sandbox/health", timeout=120, process=sandbox)
    processes.wait_for_http(f"{services.meili_url}/health", timeout=60, process=meili)


def stop_services(services: Services) -> None:
    """Stop what start_services started, by pid (process group)."""
    from onecart import processes

    for pid in (services.meili_pid, services.sandbox_pid):
        if pid is not None:
            processes.stop_pid(pid)


def export_raw_payloads(db_path: Path, out_dir: Path) -> dict[str, dict[str, int]]:
    """Write each marketplace's stored raw payloads to `<slug>.ndjson`, one record per line, in
    the order they were fetched: exactly the bytes the pipeline normalized."""
    import duckdb

    out_dir.mkdir(parents=True, exist_ok=True)
    exported: dict[str, dict[str, int]] = {}
    conn = duckdb.connect(str(db_path), read_only=True)
    try:
        slugs = [
            slug
            for (slug,) in conn.execute(
                "SELECT DISTINCT marketplace FROM raw_catalog ORDER BY marketplace"
            ).fetchall()
        ]
        for slug in slugs:
            path = out_dir / f"{slug}.ndjson"
            rows = size = 0
            cursor = conn.execute(
                "SELECT CAST(payload AS VARCHAR) FROM raw_catalog WHERE marketplace = ? "
                "ORDER BY page, record_index",
                [slug],
            )
            with open(path, "w", encoding="utf-8") as ndjson:
                while batch := cursor.fetchmany(20_000):
                    lines = "".join(f"{text}\n" for (text,) in batch)
                    ndjson.write(lines)
                    rows += len(batch)
                    size += len(lines.encode("utf-8"))
            exported[slug] = {"rows": rows, "bytes": size}
    finally:
        conn.close()
    return exported


SNAPSHOT_FIELDS = (
    "id",
    "doc_hash",
    "content_hash",
    "group_id",
    "group_size",
    "group_marketplaces",
    "group_min_price_usd_minor",
)
GROUP_FIELDS = ("group_id", "group_size", "group_marketplaces", "group_min_price_usd_minor")


def snapshot_index(meili_url: str, meili_key: str) -> dict[str, tuple[Any, ...]]:
    """Document id -> (doc_hash, content_hash, group fields) of every document in the index,
    so the documents that changed between two runs can be counted and explained."""
    import meilisearch

    index = meilisearch.Client(meili_url, meili_key, timeout=120).index(INDEX_UID)
    snapshot: dict[str, tuple[Any, ...]] = {}
    offset = 0
    while True:
        page = index.get_documents(
            {"fields": list(SNAPSHOT_FIELDS), "limit": 10_000, "offset": offset}
        )
        for document in page.results:
            fields = dict(document)
            snapshot[str(fields["id"])] = tuple(fields.get(name) for name in SNAPSHOT_FIELDS[1:])
        offset += len(page.results)
        if not page.results or offset >= page.total:
            return snapshot


def compare_snapshots(
    before: Mapping[str, tuple[Any, ...]], after: Mapping[str, tuple[Any, ...]]
) -> dict[str, int]:
    """How many documents changed between two snapshots, and why: the offer's own content, only
    its product group's summary (another offer of the group was re-priced), or something else."""
    counts = {"changed": 0, "offer_content": 0, "group_summary": 0, "other": 0, "new": 0}
    for doc_id, now in after.items():
        then = before.get(doc_id)
        if then is None:
            counts["new"] += 1
            counts["changed"] += 1
            continue
        if then[0] == now[0]:
            continue
        counts["changed"] += 1
        if then[1] != now[1]:
            counts["offer_content"] += 1
        elif then[2:] != now[2:]:
            counts["group_summary"] += 1
        else:
            counts["other"] += 1
    counts["removed"] = sum(1 for doc_id in before if doc_id not in after)
    return counts


def meili_indexing_span(meili_url: str, meili_key: str, since: datetime) -> dict[str, Any]:
    """Meilisearch's own view of the document additions since `since`: how many documents it
    indexed and the time from the first task's start to the last task's end."""
    headers = {"Authorization": f"Bearer {meili_key}"}
    tasks: list[dict[str, Any]] = []
    url = f"{meili_url}/tasks"
    params: dict[str, Any] = {
        "types": "documentAdditionOrUpdate",
        "statuses": "succeeded",
        "afterEnqueuedAt": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "limit": 1000,
    }
    while True:
        page = httpx.get(url, params=params, headers=headers, timeout=30).json()
        tasks.extend(page.get("results", []))
        if page.get("next") is None:
            break
        params["from"] = page["next"]
    tasks = [task for task in tasks if task.get("indexUid") != "onecart_meta"]
    if not tasks:
        return {"tasks": 0, "documents": 0, "seconds": 0.0}

    def parse(stamp: str) -> float:
        # Meilisearch writes nanoseconds; datetime takes microseconds.
        stamp = re.sub(r"(\.\d{6})\d*", r"\1", stamp.replace("Z", "+00:00"))
        return datetime.fromisoformat(stamp).timestamp()

    first = min(parse(task["startedAt"]) for task in tasks)
    last = max(parse(task["finishedAt"]) for task in tasks)
    documents = sum(int((task.get("details") or {}).get("indexedDocuments") or 0) for task in tasks)
    return {"tasks": len(tasks), "documents": documents, "seconds": last - first}


def sandbox_changed_offers(offers: int, seed: int, epoch: int) -> int:
    """How many offers the sandbox re-prices going from `epoch - 1` to `epoch` (its own rule:
    phase p changes when (epoch + p) % 100 == 0), over the six core marketplaces (Amazon and
    Sokoni, added on top, re-price theirs too; Amazon's searches reach only part of its catalog)."""
    from sandbox.draws import hash64
    from sandbox.marketplaces import MARKETPLACES
    from sandbox.world import PRICE_EPOCH_PERIOD, World

    world = World(seed, offers)
    changed = 0
    for profile in MARKETPLACES:
        for index in range(world.offer_count(profile.slug)):
            phase = hash64(seed, "epoch-phase", profile.slug, index) % PRICE_EPOCH_PERIOD
            if (epoch + phase) % PRICE_EPOCH_PERIOD == 0:
                changed += 1
    return changed


def step_totals(result: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per step key: summed seconds over the runs, and the peak RSS seen while it ran."""
    totals: dict[str, dict[str, float]] = {}
    for window in result["steps"]:
        entry = totals.setdefault(window["step"], {"seconds": 0.0, "peak_rss": 0})
        entry["seconds"] += window["end"] - window["start"]
        entry["peak_rss"] = max(entry["peak_rss"], window["peak_rss"])
    return totals


def gib(value: float) -> str:
    """Bytes as GiB with two decimals."""
    return f"{value / 1024**3:.2f} GiB"


def seconds(value: float) -> str:
    """Seconds, readable."""
    return f"{value:,.1f} s"


@dataclass
class Outcome:
    """Every number the report shows."""

    params: dict[str, Any]
    machine: dict[str, Any]
    full: dict[str, Any]
    incremental: dict[str, Any]
    duckdb: dict[str, Any]
    exported: dict[str, dict[str, int]]
    meili_full: dict[str, Any]
    meili_incremental: dict[str, Any]
    meili_peak_rss: int
    meili_peak_anon: int
    meili_peak_file: int
    sandbox_peak_rss: int
    changed_in_sandbox: int
    document_changes: dict[str, int]
    notes: list[str]


def _summed_over_partitions(run: dict[str, Any], key: str) -> float | None:
    """`key` of every partition's normalized_products metadata, summed; None when a partition
    did not report it (code older than the figure)."""
    values = [counts.get(key) for counts in run["normalized_metadata"].values()]
    if not values or any(value is None for value in values):
        return None
    return sum(float(value) for value in values)


def summarize(outcome: Outcome) -> dict[str, Any]:
    """The headline numbers and target verdicts, derived from the raw measurements."""
    full_steps = step_totals(outcome.full)
    incremental_steps = step_totals(outcome.incremental)
    fetch_s = full_steps.get("raw_catalog", {}).get("seconds", 0.0)
    # normalized_products also evaluates the marketplace's checks in its step: its own
    # normalize_seconds (normalize + load, lock waits included, checks and Dagster's events
    # excluded) is what compares with DuckDB's read; older code had only the step's window.
    normalize_s = _summed_over_partitions(outcome.full, "normalize_seconds")
    if normalize_s is None:
        normalize_s = full_steps.get("normalized_products", {}).get("seconds", 0.0)
    duckdb_s = outcome.duckdb["seconds"]
    # Of normalize_seconds, the wait for another partition's warehouse connection (the workers
    # run two partitions at once) and the opening of the file: reported apart, not removed.
    open_s = _summed_over_partitions(outcome.full, "warehouse_open_seconds")
    # The same span's process CPU (the partitions run two at a time on two cores while the
    # baseline runs alone, so summed wall times count the overlap; CPU counts the work).
    normalize_cpu_s = _summed_over_partitions(outcome.full, "normalize_cpu_seconds")
    duckdb_cpu_s = outcome.duckdb.get("cpu_seconds")
    search = outcome.full["downstream"].get("search_products", {})
    search_s = full_steps.get("search_products", {}).get("seconds", 0.0)
    documents = int(search.get("documents") or 0)
    inc_search = outcome.incremental["downstream"].get("search_products", {})
    changed_offers = sum(
        int(counts.get("changed_offers") or 0)
        for counts in outcome.incremental["normalized_metadata"].values()
    )
    # The sampler is a thread of the measured process: a burst that holds the GIL could rise
    # and fall between two samples, so the kernel's high-water marks of every process of the
    # tree (VmHWM, see RssSampler) are floors too. Not ru_maxrss: Linux carries it across exec
    # from the parent (see rusage_peaks).
    peak_rss = max(
        outcome.full["peak_rss_sampled"],
        outcome.incremental["peak_rss_sampled"],
        outcome.full.get("peak_hwm_process", 0),
        outcome.incremental.get("peak_hwm_process", 0),
    )
    ratio = normalize_s / duckdb_s if duckdb_s else float("inf")
    share = outcome.incremental["wall_s"] / outcome.full["wall_s"]
    sent = int(inc_search.get("sent") or 0)
    deleted = int(inc_search.get("deleted") or 0)
    only_changed = (
        not inc_search.get("rebuilt")
        and sent == outcome.document_changes["changed"]
        and deleted == outcome.document_changes["removed"]
    )
    return {
        "fetch_s": fetch_s,
        "normalize_s": normalize_s,
        "duckdb_s": duckdb_s,
        "ratio": ratio,
        "open_s": open_s,
        "ratio_less_wait": (
            (normalize_s - open_s) / duckdb_s if open_s is not None and duckdb_s else None
        ),
        "normalize_cpu_s": normalize_cpu_s,
        "duckdb_cpu_s": duckdb_cpu_s,
        "cpu_ratio": (
            normalize_cpu_s / duckdb_cpu_s if normalize_cpu_s is not None and duckdb_cpu_s else None
        ),
        "search_s": search_s,
        "documents": documents,
        "docs_per_s": documents / search_s if search_s else 0.0,
        "meili_docs_per_s": (
            outcome.meili_full["documents"] / outcome.meili_full["seconds"]
            if outcome.meili_full["seconds"]
            else 0.0
        ),
        "changed_offers": changed_offers,
        "sent": sent,
        "deleted": deleted,
        "inc_rebuilt": bool(inc_search.get("rebuilt")),
        "share": share,
        "inc_catalog_s": sum(
            incremental_steps.get(step, {}).get("seconds", 0.0) for step in CATALOG_STEPS
        ),
        "peak_rss": peak_rss,
        "full_steps": full_steps,
        "incremental_steps": incremental_steps,
        "targets": {
            "normalize + load ≤ 2× DuckDB read_json": ratio <= TARGET_NORMALIZE_FACTOR,
            "peak RSS ≤ 2 GB": peak_rss <= TARGET_PEAK_RSS_BYTES,
            "full run ≤ 300 s": outcome.full["wall_s"] <= TARGET_FULL_RUN_S,
            "incremental ≤ 10% of full": share <= TARGET_INCREMENTAL_SHARE,
            "incremental sends only changed documents": only_changed,
        },
    }


def render_markdown(outcome: Outcome) -> str:
    """The "## Catalog pipeline" section of bench/RESULTS.md."""
    s = summarize(outcome)
    p, m = outcome.params, outcome.machine
    full, inc = outcome.full, outcome.incremental
    full_phase = full.get("catalog_phase_s", full["wall_s"])
    inc_phase = inc.get("catalog_phase_s", inc["wall_s"])
    changes = outcome.document_changes
    raw_bytes = sum(entry["bytes"] for entry in outcome.exported.values())
    raw_rows = sum(entry["rows"] for entry in outcome.exported.values())
    products = sum(part["normalized"] for part in full["partitions"].values())
    rejected = sum(part["rejected"] for part in full["partitions"].values())
    lines = [
        SECTION_HEADING,
        "",
        f"Run {p['date']} on commit `{p['commit'][:10]}` (a snapshot: commits made during the "
        "run do not change the code under test) with "
        f"`.venv/bin/python -m bench.pipeline_bench --offers {p['offers']}` "
        f"(seed {p['seed']}, Meilisearch `--max-indexing-memory {p['indexing_memory']}`, "
        "ONECART_ASSISTANT_EMBEDDINGS=off; partitions in parallel worker processes, one per core, "
        "as `onecart ingest` runs them; step times are summed over partitions).",
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['memory_gib']:.1f} GiB RAM, Python "
        f"{m['python']}; load average at start {m['load_at_start'][0]:.1f}. Other engineers' "
        "test suites and benchmarks were running on the same machine at the same time, so "
        "absolute times are pessimistic and noisy.",
        "",
        f"Catalog: {raw_rows:,} raw records ({raw_bytes / 1e9:.2f} GB of JSON) from "
        f"{len(outcome.exported)} marketplaces → {products:,} products, {rejected:,} rejected "
        f"(malformed on purpose), {s['documents']:,} search documents.",
        "",
        "| measurement | full run | incremental run |",
        "|---|---:|---:|",
        f"| wall time, all assets (`materialize_all`) | {seconds(full['wall_s'])} | "
        f"{seconds(inc['wall_s'])} ({s['share']:.0%} of full) |",
        f"| CPU time of the pipeline process and its workers (user + system) | "
        f"{seconds(full.get('cpu_s', 0.0))} | {seconds(inc.get('cpu_s', 0.0))} |",
        f"| CPU time of the sandbox (the marketplaces' servers, same cores) | "
        f"{seconds(full.get('sandbox_cpu_s', 0.0))} | {seconds(inc.get('sandbox_cpu_s', 0.0))} |",
    ]
    steps = list(dict.fromkeys([*s["full_steps"], *s["incremental_steps"]]))
    for step in steps:
        f_entry = s["full_steps"].get(step, {"seconds": 0.0, "peak_rss": 0})
        i_entry = s["incremental_steps"].get(step, {"seconds": 0.0, "peak_rss": 0})
        lines.append(
            f"| &nbsp;&nbsp;`{step}` (time · share · peak RSS) | {seconds(f_entry['seconds'])} · "
            f"{f_entry['seconds'] / full['wall_s']:.0%} · "
            f"{gib(f_entry['peak_rss'])} | {seconds(i_entry['seconds'])} · "
            f"{i_entry['seconds'] / inc['wall_s']:.0%} · "
            f"{gib(i_entry['peak_rss'])} |"
        )
    lines += [
        f"| peak RSS of the pipeline process (+children), sampled | "
        f"{gib(full['peak_rss_sampled'])} | {gib(inc['peak_rss_sampled'])} |",
        f"| largest high-water mark of one process of the tree (VmHWM) | "
        f"{gib(full.get('peak_hwm_process', 0))} | {gib(inc.get('peak_hwm_process', 0))} |",
        f"| ru_maxrss (self; inherited across exec from the bench, not the pipeline's alone) | "
        f"{gib(full['rusage']['self'])} | {gib(inc['rusage']['self'])} |",
        f"| child processes seen by the sampler | "
        f"{', '.join(full.get('children_seen') or []) or 'none'} | "
        f"{', '.join(inc.get('children_seen') or []) or 'none'} |",
        f"| documents sent to Meilisearch | {s['documents']:,} (rebuild) | {s['sent']:,} "
        f"(+{s['deleted']:,} deleted) |",
        "",
        "| comparison | value |",
        "|---|---:|",
        f"| fetch + raw load (`raw_catalog`, all partitions) | {seconds(s['fetch_s'])} |",
        f"| normalize + load (`normalized_products`' own `normalize_seconds`, all partitions) | "
        f"{seconds(s['normalize_s'])} |",
        f"| DuckDB `read_json` of the same payloads (fresh process and file) | "
        f"{seconds(s['duckdb_s'])} (peak RSS {gib(outcome.duckdb['peak_rss_sampled'])}) |",
        f"| **normalize + load ÷ DuckDB read_json** | **{s['ratio']:.1f}×** |",
        *(
            [
                f"| &nbsp;&nbsp;of normalize + load: waiting for the warehouse (another "
                f"partition's connection) and opening it | {seconds(s['open_s'])} |",
                f"| &nbsp;&nbsp;normalize + load less that wait ÷ DuckDB read_json | "
                f"{s['ratio_less_wait']:.1f}× |",
            ]
            if s["open_s"] is not None
            else []
        ),
        *(
            [
                f"| normalize + load, process CPU (all partitions) ÷ `read_json`'s process CPU | "
                f"{seconds(s['normalize_cpu_s'])} ÷ {seconds(s['duckdb_cpu_s'])} = "
                f"{s['cpu_ratio']:.1f}× |"
            ]
            if s["cpu_ratio"] is not None
            else []
        ),
        f"| search_products step (build documents + full rebuild + swap) | "
        f"{seconds(s['search_s'])} → {s['docs_per_s']:,.0f} docs/s |",
        f"| Meilisearch's own indexing time (first task start → last task end) | "
        f"{seconds(outcome.meili_full['seconds'])} for {outcome.meili_full['documents']:,} "
        f"docs → {s['meili_docs_per_s']:,.0f} docs/s |",
        f"| Meilisearch peak RSS (VmHWM) · peak anonymous · peak file-backed (LMDB maps) | "
        f"{gib(outcome.meili_peak_rss)} · {gib(outcome.meili_peak_anon)} · "
        f"{gib(outcome.meili_peak_file)} |",
        f"| offers re-priced by the sandbox (epoch 0 → 1) | {outcome.changed_in_sandbox:,} |",
        f"| offers the pipeline saw change (`changed_offers`) | {s['changed_offers']:,} |",
        f"| documents whose `doc_hash` changed in the index | {changes['changed']:,} "
        f"({changes['offer_content']:,} own content, {changes['group_summary']:,} only the "
        f"group's summary, {changes['other']:,} other, {changes['new']:,} new) |",
        f"| documents removed from the index | {changes['removed']:,} |",
        f"| documents sent by the incremental run | {s['sent']:,} (+{s['deleted']:,} deleted) |",
        f"| incremental run: `raw_catalog` + `normalized_products` step times, summed over the "
        f"partitions (they overlap in the workers) | {seconds(s['inc_catalog_s'])} |",
        f"| partition phase, wall (fetch every catalog, 304 where conditional; store and "
        f"normalize the new payloads): full · incremental | {seconds(full_phase)} · "
        f"{seconds(inc_phase)} ({inc_phase / full['wall_s']:.1%} of the full run) |",
        f"| downstream run, wall: full · incremental | {seconds(full['wall_s'] - full_phase)} · "
        f"{seconds(inc['wall_s'] - inc_phase)} "
        f"({(inc['wall_s'] - inc_phase) / full['wall_s']:.1%} of the full run) |",
        "",
    ]
    per_marketplace = marketplace_rows(full, inc)
    if per_marketplace:
        lines += [*per_marketplace, ""]
    lines += [
        "| target | met? |",
        "|---|---|",
    ]
    for name, met in s["targets"].items():
        lines.append(f"| {name} | {'yes' if met else '**no**'} |")
    if outcome.notes:
        lines += ["", *[f"- {note}" for note in outcome.notes]]
    return "\n".join(lines) + "\n"


def print_table(outcome: Outcome) -> None:
    """The same numbers on the console."""
    print()
    print(render_markdown(outcome))


def replace_section(text: str, section: str) -> str:
    """`text` with its "## Catalog pipeline" section replaced by `section` (appended if absent);
    other engineers' sections are left exactly as they are."""
    # The heading may carry a suffix ("## Catalog pipeline — <date>"); the section runs to the
    # next "## " heading.
    pattern = re.compile(rf"^{re.escape(SECTION_HEADING)}\b[^\n]*\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(text):
        return pattern.sub(lambda _match: section + "\n", text, count=1).rstrip("\n") + "\n"
    if not text.strip():
        return "# Benchmark results\n\n" + section
    return text.rstrip("\n") + "\n\n" + section


def write_results(section: str) -> None:
    """Replace (or append) this benchmark's section of bench/RESULTS.md."""
    text = RESULTS_FILE.read_text(encoding="utf-8") if RESULTS_FILE.exists() else ""
    RESULTS_FILE.write_text(replace_section(text, section), encoding="utf-8")


def snapshot_code(destination: Path) -> str:
    """Extract the committed tree (``git archive HEAD``) into `destination`, with this file as
    it is now, and return the commit.

    Other engineers commit to the same checkout while a run takes most of an hour; without a
    snapshot the full and the incremental run could execute different code (a changed index
    setting alone turns the incremental sync into a rebuild).
    """
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
        tar.extractall(destination, filter="data")
    shutil.copy2(Path(__file__), destination / "bench" / "pipeline_bench.py")
    # The Meilisearch binary is found under the repository's node_modules.
    (destination / "node_modules").symlink_to(REPO_ROOT / "node_modules")
    return commit


class MemoryWatch:
    """Samples another process's anonymous and file-backed resident memory (Meilisearch maps its
    LMDB files, so its VmRSS mixes heap with page cache the kernel can drop)."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_anon = 0
        self.peak_file = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="meili-memory", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_anon = max(self.peak_anon, _status_bytes(self.pid, "RssAnon"))
            self.peak_file = max(self.peak_file, _status_bytes(self.pid, "RssFile"))
            self._stop.wait(self.interval)

    def start(self) -> None:
        """Begin sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (the peaks stay readable)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def run_benchmark(args: argparse.Namespace) -> int:
    """Start the services, run the phases, report, and stop everything it started."""
    machine = machine_description()
    home = Path(tempfile.mkdtemp(prefix="onecart-pipeline-bench-"))
    code_root = home / "code"
    commit = snapshot_code(code_root)
    # Every OneCart module, here and in the children (cwd), comes from the snapshot.
    sys.path.insert(0, str(code_root))
    from onecart.settings import Settings

    if Path(sys.modules[Settings.__module__].__file__ or "").resolve().parents[1] != code_root:
        raise RuntimeError(f"onecart was imported before the snapshot in {code_root}")
    meili_key = "onecart-bench-master-key-0123456789"
    settings = Settings(
        ONECART_HOME=home, MEILI_MASTER_KEY=meili_key, MEILI_MAX_INDEXING_MEMORY=args.meili_memory
    )
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    log_path = home / "bench.log"
    services = Services()
    meili_watch: MemoryWatch | None = None
    notes: list[str] = list(args.note or [])
    print(f"pipeline benchmark: {args.offers:,} offers, home {home}", flush=True)
    try:
        start_services(
            settings,
            offers=args.offers,
            seed=args.seed,
            indexing_memory=args.meili_memory,
            services=services,
        )
        env = child_environment(home, services, meili_key)
        meili_watch = MemoryWatch(services.meili_pid or 0)
        meili_watch.start()
        print(
            f"code {commit[:12]} in {code_root}; sandbox {services.sandbox_url}, "
            f"meilisearch {services.meili_url}",
            flush=True,
        )

        if args.profile == "incremental":
            # The full run as usual, then the incremental run profiled: where the refresh's time
            # goes when ~1% of prices changed.
            run_child(
                ["--phase", "ingest", "--result-file", str(home / "full.json")],
                env,
                log_path,
                cwd=code_root,
            )
            httpx.post(
                f"{services.sandbox_url}/_sandbox/knobs/all", json={"price_epoch": 1}, timeout=30
            ).raise_for_status()
        if args.profile:
            profile_path = home / "ingest.prof"
            code, _ = run_child(
                [
                    "--phase",
                    "ingest",
                    "--result-file",
                    str(home / "profile.json"),
                    "--profile-to",
                    str(profile_path),
                ],
                env,
                log_path,
                cwd=code_root,
            )
            print_profile(profile_path)
            profiled = json.loads((home / "profile.json").read_text())
            print(f"wall {profiled['wall_s']:.1f} s; steps:")
            for window in sorted(profiled["steps"], key=lambda w: w["start"]):
                print(f"  {window['step']:<50} {window['end'] - window['start']:7.1f} s")
            return code

        full_since = datetime.now(UTC)
        print("== full run", flush=True)
        sandbox_cpu = process_cpu_seconds(services.sandbox_pid or 0)
        code, _ = run_child(
            ["--phase", "ingest", "--result-file", str(home / "full.json")],
            env,
            log_path,
            cwd=code_root,
        )
        full = json.loads((home / "full.json").read_text())
        full["sandbox_cpu_s"] = process_cpu_seconds(services.sandbox_pid or 0) - sandbox_cpu
        if code != 0:
            notes.append(
                f"the full run did not fully succeed: {full['failed_partitions']} "
                f"{full['failed_downstream_assets']}"
            )
        meili_full = meili_indexing_span(services.meili_url, meili_key, full_since)

        print("== exporting raw payloads to NDJSON", flush=True)
        started = time.perf_counter()
        exported = export_raw_payloads(home / "pipeline.duckdb", home / "ndjson")
        print(f"   exported in {time.perf_counter() - started:.1f} s: {exported}", flush=True)
        print("== DuckDB read_json baseline", flush=True)
        code, _ = run_child(
            [
                "--phase",
                "duckdb",
                "--ndjson-dir",
                str(home / "ndjson"),
                "--duckdb-file",
                str(home / "baseline.duckdb"),
                "--result-file",
                str(home / "duckdb.json"),
            ],
            env,
            log_path,
            cwd=code_root,
        )
        duckdb_result = json.loads((home / "duckdb.json").read_text())
        print(f"   read_json: {duckdb_result['seconds']:.1f} s", flush=True)
        shutil.rmtree(home / "ndjson", ignore_errors=True)
        (home / "baseline.duckdb").unlink(missing_ok=True)

        before = snapshot_index(services.meili_url, meili_key)
        response = httpx.post(
            f"{services.sandbox_url}/_sandbox/knobs/all", json={"price_epoch": 1}, timeout=30
        )
        response.raise_for_status()
        print("== incremental run (price_epoch 0 → 1)", flush=True)
        incremental_since = datetime.now(UTC)
        sandbox_cpu = process_cpu_seconds(services.sandbox_pid or 0)
        code, _ = run_child(
            ["--phase", "ingest", "--result-file", str(home / "incremental.json")],
            env,
            log_path,
            cwd=code_root,
        )
        incremental = json.loads((home / "incremental.json").read_text())
        incremental["sandbox_cpu_s"] = process_cpu_seconds(services.sandbox_pid or 0) - sandbox_cpu
        if code != 0:
            notes.append(
                f"the incremental run did not fully succeed: {incremental['failed_partitions']} "
                f"{incremental['failed_downstream_assets']}"
            )
        meili_incremental = meili_indexing_span(services.meili_url, meili_key, incremental_since)
        after = snapshot_index(services.meili_url, meili_key)
        document_changes = compare_snapshots(before, after)
        del before, after
        meili_peak = peak_rss_of(services.meili_pid or 0)
        sandbox_peak = peak_rss_of(services.sandbox_pid or 0)
        changed_in_sandbox = sandbox_changed_offers(args.offers, args.seed, 1)
    finally:
        if meili_watch is not None:
            meili_watch.stop()
        stop_services(services)
    for phase in (full, incremental):
        if Path(phase.get("code_root", "")) != code_root:
            notes.append(f"a pipeline run imported OneCart from {phase.get('code_root')}")

    outcome = Outcome(
        params={
            "offers": args.offers,
            "seed": args.seed,
            "indexing_memory": args.meili_memory,
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit,
        },
        machine=machine,
        full=full,
        incremental=incremental,
        duckdb=duckdb_result,
        exported=exported,
        meili_full=meili_full,
        meili_incremental=meili_incremental,
        meili_peak_rss=meili_peak,
        meili_peak_anon=meili_watch.peak_anon if meili_watch else 0,
        meili_peak_file=meili_watch.peak_file if meili_watch else 0,
        sandbox_peak_rss=sandbox_peak,
        changed_in_sandbox=changed_in_sandbox,
        document_changes=document_changes,
        notes=notes,
    )
    (home / "outcome.json").write_text(json.dumps(outcome.__dict__, default=str, indent=1))
    print_table(outcome)
    if not args.no_append:
        write_results(render_markdown(outcome))
        print(f"wrote the '{SECTION_HEADING}' section of {RESULTS_FILE}")
    if args.keep:
        print(f"kept {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    print(result_line(outcome), flush=True)
    return 0


def result_line(outcome: Outcome) -> str:
    """The benchmark's one machine-readable line."""
    summary = summarize(outcome)
    return (
        f"RESULT offers={outcome.params.get('offers')} full_s={outcome.full['wall_s']:.1f} "
        f"normalize_load_vs_duckdb={summary['ratio']:.2f} "
        f"incremental_share={summary['share']:.3f} "
        f"peak_rss_gb={summary['peak_rss'] / 1000**3:.2f} "
        f"docs_sent={summary['sent']} docs_changed={outcome.document_changes['changed']}"
        + (
            f" normalize_load_less_wait_vs_duckdb={summary['ratio_less_wait']:.2f}"
            if summary["ratio_less_wait"] is not None
            else ""
        )
        + (
            f" normalize_load_cpu_vs_duckdb={summary['cpu_ratio']:.2f}"
            if summary["cpu_ratio"] is not None
            else ""
        )
    )


def print_profile(profile_path: Path, limit: int = 40) -> None:
    """The profile's top functions by cumulative and by own time."""
    import pstats

    stats = pstats.Stats(str(profile_path))
    stats.sort_stats("cumulative").print_stats(limit)
    stats.sort_stats("tottime").print_stats(limit)


def build_parser() -> argparse.ArgumentParser:
    """The command line (the --phase options are for the benchmark's own child processes)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--offers",
        type=int,
        default=DEFAULT_OFFERS,
        help="total sandbox offers over all marketplaces (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--meili-memory",
        default=DEFAULT_MEILI_INDEXING_MEMORY,
        help="Meilisearch --max-indexing-memory (default %(default)s)",
    )
    parser.add_argument(
        "--no-append", action="store_true", help="print only; leave bench/RESULTS.md alone"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary ONECART_HOME")
    parser.add_argument(
        "--profile",
        nargs="?",
        const="full",
        choices=("full", "incremental"),
        help=(
            "run one ingest under cProfile and print the hot spots: the full one (default), or "
            "the incremental one after a full run and a price_epoch bump"
        ),
    )
    parser.add_argument("--note", action="append", help="a note to add to the results section")
    parser.add_argument("--phase", choices=("ingest", "duckdb"), help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ndjson-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--duckdb-file", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m bench.pipeline_bench`."""
    args = build_parser().parse_args(argv)
    if args.phase == "ingest":
        return run_ingest_phase(args.result_file, profile_to=args.profile_to)
    if args.phase == "duckdb":
        return run_duckdb_phase(args.ndjson_dir, args.duckdb_file, args.result_file)
    return run_benchmark(args)


if __name__ == "__main__":
    sys.exit(main())

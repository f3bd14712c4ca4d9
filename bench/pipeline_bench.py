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
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

# README runs it as a script (`bench/pipeline_bench.py`), which puts bench/ rather than the
# checkout on sys.path.
REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.pipeline_phases import run_duckdb_phase, run_ingest_phase  # noqa: E402
from bench.pipeline_report import (  # noqa: E402
    RESULTS_FILE,
    SECTION_HEADING,
    Outcome,
    print_table,
    render_markdown,
    result_line,
    write_results,
)
from bench.pipeline_setup import (  # noqa: E402
    INDEX_UID,
    Services,
    child_environment,
    machine_description,
    snapshot_code,
    start_services,
    stop_services,
)
from bench.process_metrics import MemoryWatch, peak_rss_of, process_cpu_seconds  # noqa: E402

DEFAULT_OFFERS = 1_000_000
DEFAULT_SEED = 42
DEFAULT_MEILI_INDEXING_MEMORY = "2GiB"


# ---------------------------------------------------------------------------------------------
# The orchestrator.


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
    indexed, in how many tasks and batches (its cost per batch grows with the index, see
    search_index.indexing.TASK_DOCUMENTS), and the time from the first task's start to the last
    task's end."""
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
        return {"tasks": 0, "batches": 0, "documents": 0, "seconds": 0.0}

    def parse(stamp: str) -> float:
        # Meilisearch writes nanoseconds; datetime takes microseconds.
        stamp = re.sub(r"(\.\d{6})\d*", r"\1", stamp.replace("Z", "+00:00"))
        return datetime.fromisoformat(stamp).timestamp()

    first = min(parse(task["startedAt"]) for task in tasks)
    last = max(parse(task["finishedAt"]) for task in tasks)
    documents = sum(int((task.get("details") or {}).get("indexedDocuments") or 0) for task in tasks)
    batches = len({task.get("batchUid") for task in tasks})
    return {
        "tasks": len(tasks),
        "batches": batches,
        "documents": documents,
        "seconds": last - first,
    }


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


def bump_price_epoch(sandbox_url: str, epoch: int) -> None:
    """Set every sandbox marketplace's ``price_epoch`` knob: about 1% of prices change per step."""
    httpx.post(
        f"{sandbox_url}/_sandbox/knobs/all", json={"price_epoch": epoch}, timeout=30
    ).raise_for_status()


@dataclass(frozen=True, slots=True)
class MeasuredRuns:
    """Where the benchmark's pipeline runs happen (child processes from the code snapshot, with
    their own log) and the services they use."""

    home: Path
    code_root: Path
    env: Mapping[str, str]
    log_path: Path
    services: Services
    meili_key: str

    def ingest(self, label: str, notes: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """One pipeline run (`onecart ingest`'s work) in a child process, measured for the
        report: its result (`<home>/<label>.json`) with the sandbox's and Meilisearch's CPU
        seconds spent meanwhile, and Meilisearch's own indexing span since it started. A run
        that did not fully succeed adds to `notes`."""
        services = self.services
        since = datetime.now(UTC)
        sandbox_cpu = process_cpu_seconds(services.sandbox_pid or 0)
        meili_cpu = process_cpu_seconds(services.meili_pid or 0)
        result_file = self.home / f"{label}.json"
        code, _ = run_child(
            ["--phase", "ingest", "--result-file", str(result_file)],
            self.env,
            self.log_path,
            cwd=self.code_root,
        )
        result = json.loads(result_file.read_text())
        result["sandbox_cpu_s"] = process_cpu_seconds(services.sandbox_pid or 0) - sandbox_cpu
        result["meili_cpu_s"] = process_cpu_seconds(services.meili_pid or 0) - meili_cpu
        if code != 0:
            notes.append(
                f"the {label} run did not fully succeed: {result['failed_partitions']} "
                f"{result['failed_downstream_assets']}"
            )
        return result, meili_indexing_span(services.meili_url, self.meili_key, since)


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
        measured = MeasuredRuns(home, code_root, env, log_path, services, meili_key)
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
            bump_price_epoch(services.sandbox_url, 1)
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

        print("== full run", flush=True)
        full, meili_full = measured.ingest("full", notes)

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
        bump_price_epoch(services.sandbox_url, 1)
        print("== incremental run (price_epoch 0 → 1)", flush=True)
        incremental, meili_incremental = measured.ingest("incremental", notes)
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

"""CPU of the catalog normalization, marketplace by marketplace, in one process (issue 11).

    .venv/bin/python -m bench.normalize_cpu build --offers 100000 --out /tmp/x/raw.duckdb
    .venv/bin/python -m bench.normalize_cpu measure --raw /tmp/x/raw.duckdb [--threads 1]

`build` starts a sandbox (prices held still), fetches every marketplace's catalog through its
adapter and stores the raw records exactly as the pipeline's raw_catalog step does. `measure`
copies that warehouse and runs, for each marketplace in turn, what `normalized_products` runs
on a first full run: `normalize_stored_catalog`, then `replace_products` and `write_sources`
and a CHECKPOINT. It prints CPU seconds (time.process_time: every thread of the process, so
DuckDB's included) and wall seconds per phase, and the records that went through the
adapter's per-record path. Run it with PYTHONPATH at another checkout to measure that code
(the A/B of bench/RESULTS.md): the pipeline bench's figures move with the machine's load; CPU
time moves much less.

`measure --stages` also times the step's parts (the parts a checkout has), the connection's
open and close and the step's remaining writes; `--memory-limit` sets DuckDB's (the step's
512MB by default: scale it with the catalog to see a bigger marketplace's pressure);
`--pad-products N` first adds N products of another marketplace (a bigger warehouse's tables
and primary-key indexes). `baseline` prints the CPU and wall of DuckDB's own read_json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

SEED = 42


def start_sandbox(offers: int) -> tuple[subprocess.Popen[bytes], str]:
    """A sandbox of `offers` offers (seed SEED, prices held still) on a free port, and its URL."""
    from onecart import processes

    port = processes.free_port()
    sandbox = subprocess.Popen(
        processes.sandbox_argv(
            "127.0.0.1",
            port,
            offers=offers,
            seed=SEED,
            options=("--price-epoch-seconds", "0", "--quiet"),
        )
    )
    url = f"http://127.0.0.1:{port}"
    processes.wait_for_http(f"{url}/_sandbox/health", timeout=300)
    return sandbox, url


def build(offers: int, out: Path) -> None:
    """Fetch the sandbox's catalogs at `offers` and store them as raw_catalog in `out`."""
    import warehouse
    from adapters.registry import build_adapter, load_marketplaces
    from onecart.services import sandbox_credentials
    from onecart.settings import get_settings
    from warehouse.catalog import stage_raw_catalog, upsert_marketplace
    from warehouse.records import load_changed_records

    sandbox, url = start_sandbox(offers)
    try:
        env = {
            **os.environ,
            **sandbox_credentials(get_settings(), environ={}),
            "ONECART_SANDBOX_URL": url,
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        for config in load_marketplaces(Path("marketplaces.toml"), env):
            started = time.perf_counter()
            adapter = build_adapter(config)
            staging = out.parent / f"{config.slug}.parquet"
            try:
                stats = stage_raw_catalog(
                    adapter.fetch_catalog_pages(), staging, marketplace=config.slug, run_id="build"
                )
            finally:
                close = getattr(adapter, "close", None)
                if callable(close):
                    close()
            with warehouse.connect(out) as conn:
                upsert_marketplace(conn, config, now=datetime.now(UTC))
                load_changed_records(
                    conn, config.slug, staging, stats.page_hashes, replace_all=True
                )
            staging.unlink()
            print(
                f"{config.slug}: {stats.records} records, {stats.bytes} bytes, "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)


class StageTimer:
    """CPU (time.process_time) and wall seconds spent in the named functions of the step,
    patched in place for the measurement; nested stages are counted in their callers too."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, module: object, name: str, label: str | None = None) -> None:
        """Time `module.name`, when the checkout under test has it (an A/B runs this file
        over another checkout's modules)."""
        original = getattr(module, name, None)
        if original is None:
            return
        totals = self.totals.setdefault(label or name, [0.0, 0.0, 0.0])

        def timed(*args: object, **kwargs: object) -> object:
            cpu, wall = time.process_time(), time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                totals[0] += time.process_time() - cpu
                totals[1] += time.perf_counter() - wall
                totals[2] += 1

        setattr(module, name, timed)
        self._undo.append((module, name, original))

    def add(self, label: str, cpu: float, wall: float) -> None:
        totals = self.totals.setdefault(label, [0.0, 0.0, 0.0])
        totals[0] += cpu
        totals[1] += wall
        totals[2] += 1

    def restore(self) -> None:
        for module, name, original in reversed(self._undo):
            setattr(module, name, original)
        self._undo.clear()

    def report(self) -> None:
        for label, (cpu, wall, calls) in self.totals.items():
            print(f"  {label:34} {cpu:7.2f} s CPU {wall:7.2f} s wall  ({calls:.0f} calls)")


def pad(db: Path, rows: int) -> None:
    """Give the warehouse `rows` more products and product sources, of a marketplace 'pad'
    (keys in their own branch of the primary-key indexes, as another marketplace's): the
    tables and indexes a partition writes into at a bigger catalog, without fetching it."""
    import warehouse

    started = time.perf_counter()
    with warehouse.connect(db) as conn:
        conn.execute(
            "INSERT INTO products (marketplace, external_id, title, description, price_minor, "
            "currency, available, content_hash, first_seen_at, updated_at, fetched_at) "
            "SELECT 'pad', 'pad-' || i, 'Padding offer ' || i, repeat('words ', 60), 100 + i, "
            "'USD', true, sha256(i::VARCHAR), now(), now(), now() FROM range(?) AS t(i)",
            [rows],
        )
        conn.execute(
            "INSERT INTO product_sources SELECT 'pad', 'pad-' || i, i // 100, i % 100, "
            "sha256(i::VARCHAR) FROM range(?) AS t(i)",
            [rows],
        )
        conn.execute("CHECKPOINT")
    print(f"padded with {rows} products in {time.perf_counter() - started:.1f} s", flush=True)


def marketplace_configs() -> dict:
    """The configured marketplaces by slug, as the pipeline builds them (no sandbox needed: the
    stored records are read, nothing is fetched)."""
    from adapters.registry import load_marketplaces
    from onecart.services import sandbox_credentials
    from onecart.settings import get_settings

    env = {
        **os.environ,
        **sandbox_credentials(get_settings(), environ={}),
        "ONECART_SANDBOX_URL": "http://127.0.0.1:9",
    }
    return {c.slug: c for c in load_marketplaces(Path("marketplaces.toml"), env)}


def measure(
    raw: Path,
    slugs: Sequence[str],
    threads: int | None,
    load: bool,
    *,
    memory_limit: str = "512MB",
    stages: bool = False,
    pad_products: int = 0,
) -> dict:
    """Normalize (and load) each marketplace of a copy of `raw`; CPU and wall per phase.
    `stages`: also time the step's parts (StageTimer) and the connection's open and close."""
    import warehouse
    import warehouse.normalize
    from adapters.registry import build_adapter
    from warehouse.catalog import replace_products
    from warehouse.normalize import normalize_stored_catalog
    from warehouse.records import mark_pages_normalized, place_unchanged_records, write_sources

    configs = marketplace_configs()
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    results: dict[str, dict] = {}
    timer = StageTimer()
    if stages:
        for name in (
            "_fast_frame",  # the GTIN-key scan and the format's query
            "gtin_key_counts",
            "_per_record",
            "_payloads",
            "_with_content_hash",
        ):
            timer.wrap(warehouse.normalize, name)
    with tempfile.TemporaryDirectory(prefix="normalize-cpu-") as scratch:
        db = Path(scratch) / "warehouse.duckdb"
        shutil.copyfile(raw, db)
        if pad_products:
            pad(db, pad_products)
        for slug in [s for s in slugs if s != "none"] if slugs else list(configs):
            config = configs[slug]
            adapter = build_adapter(config)
            opened = (time.process_time(), time.perf_counter())
            with warehouse.connect(db) as conn:
                timer.add(
                    "open (connect + schema)",
                    time.process_time() - opened[0],
                    time.perf_counter() - opened[1],
                )
                conn.execute(f"SET memory_limit = '{memory_limit}'")
                if threads:
                    conn.execute(f"SET threads = {threads}")
                cpu, wall = time.process_time(), time.perf_counter()
                catalog = normalize_stored_catalog(
                    conn, config, adapter.normalize_record, now=now, run_id="cpu"
                )
                row = {
                    "records": catalog.raw_records,
                    "offers": catalog.products.height,
                    "rejected": catalog.rejected.height,
                    "normalize_cpu": time.process_time() - cpu,
                    "normalize_wall": time.perf_counter() - wall,
                }
                if load:
                    cpu, wall = time.process_time(), time.perf_counter()
                    replace_products(conn, slug, catalog, run_id="cpu", loaded_at=now)
                    timer.add(
                        "replace_products",
                        time.process_time() - cpu,
                        time.perf_counter() - wall,
                    )
                    step = (time.process_time(), time.perf_counter())
                    write_sources(conn, slug, catalog)
                    timer.add(
                        "write_sources",
                        time.process_time() - step[0],
                        time.perf_counter() - step[1],
                    )
                    step = (time.process_time(), time.perf_counter())
                    # The rest of the step's writes on a first full run (moved=False).
                    place_unchanged_records(conn, slug, run_id="cpu", now=now, moved=False)
                    mark_pages_normalized(conn, slug)
                    timer.add(
                        "place_unchanged + mark_pages",
                        time.process_time() - step[0],
                        time.perf_counter() - step[1],
                    )
                    step = (time.process_time(), time.perf_counter())
                    conn.execute("CHECKPOINT")
                    timer.add(
                        "checkpoint", time.process_time() - step[0], time.perf_counter() - step[1]
                    )
                    row["load_cpu"] = time.process_time() - cpu
                    row["load_wall"] = time.perf_counter() - wall
                closing = (time.process_time(), time.perf_counter())
            timer.add("close", time.process_time() - closing[0], time.perf_counter() - closing[1])
            results[slug] = row
            print(
                f"{slug:12} {row['records']:>7} records  normalize {row['normalize_cpu']:6.2f} s CPU"
                f" {row['normalize_wall']:6.2f} s wall"
                + (
                    f"  load {row['load_cpu']:5.2f} s CPU {row['load_wall']:5.2f} s wall"
                    if load
                    else ""
                )
                + f"  ({1e6 * row['normalize_cpu'] / max(row['records'], 1):.0f} µs/record)",
                flush=True,
            )
    timer.restore()
    total_cpu = sum(r["normalize_cpu"] + r.get("load_cpu", 0.0) for r in results.values())
    total_wall = sum(r["normalize_wall"] + r.get("load_wall", 0.0) for r in results.values())
    print(f"total CPU {total_cpu:.2f} s, wall {total_wall:.2f} s", flush=True)
    if stages:
        timer.report()
    return results


def baseline(raw: Path) -> float:
    """CPU and wall of DuckDB's own read_json of the same payloads (bench.pipeline_bench's
    baseline: one table per marketplace's NDJSON export, then a CHECKPOINT)."""
    import duckdb

    from bench.pipeline_bench import export_raw_payloads

    with tempfile.TemporaryDirectory(prefix="normalize-cpu-") as scratch:
        ndjson = Path(scratch) / "ndjson"
        export_raw_payloads(raw, ndjson)
        cpu, wall = time.process_time(), time.perf_counter()
        conn = duckdb.connect(str(Path(scratch) / "read_json.duckdb"))
        for path in sorted(ndjson.glob("*.ndjson")):
            conn.execute(
                f"CREATE TABLE raw_{path.stem} AS SELECT * FROM "
                "read_json(?, format = 'newline_delimited')",
                [str(path)],
            )
        conn.execute("CHECKPOINT")
        conn.close()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"read_json: {cpu:.2f} s CPU {wall:.2f} s wall", flush=True)
    return cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.normalize_cpu")
    commands = parser.add_subparsers(dest="command", required=True)
    build_cmd = commands.add_parser("build")
    build_cmd.add_argument("--offers", type=int, default=100_000)
    build_cmd.add_argument("--out", type=Path, required=True)
    measure_cmd = commands.add_parser("measure")
    measure_cmd.add_argument("--raw", type=Path, required=True)
    measure_cmd.add_argument("--slug", action="append", default=[])
    measure_cmd.add_argument("--threads", type=int, default=None)
    measure_cmd.add_argument("--no-load", action="store_true")
    measure_cmd.add_argument("--json", type=Path, default=None)
    measure_cmd.add_argument(
        "--memory-limit",
        default="512MB",
        help="DuckDB's memory_limit (the step's NORMALIZE_MEMORY_LIMIT by default)",
    )
    measure_cmd.add_argument("--stages", action="store_true", help="time the step's parts")
    measure_cmd.add_argument(
        "--pad-products",
        type=int,
        default=0,
        help="first add this many products of another marketplace (see pad())",
    )
    baseline_cmd = commands.add_parser("baseline")
    baseline_cmd.add_argument("--raw", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.offers, args.out)
    elif args.command == "baseline":
        baseline(args.raw)
    else:
        results = measure(
            args.raw,
            args.slug,
            args.threads,
            not args.no_load,
            memory_limit=args.memory_limit,
            stages=args.stages,
            pad_products=args.pad_products,
        )
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

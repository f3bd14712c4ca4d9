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
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

SEED = 42


def build(offers: int, out: Path) -> None:
    """Fetch the sandbox's catalogs at `offers` and store them as raw_catalog in `out`."""
    import warehouse
    from adapters.registry import build_adapter, load_marketplaces
    from onecart import processes
    from onecart.services import sandbox_credentials
    from onecart.settings import get_settings
    from warehouse.catalog import stage_raw_catalog, upsert_marketplace
    from warehouse.records import load_changed_records

    port = processes.free_port()
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--offers",
            str(offers),
            "--seed",
            str(SEED),
            "--price-epoch-seconds",
            "0",
            "--quiet",
        ]
    )
    try:
        url = f"http://127.0.0.1:{port}"
        processes.wait_for_http(f"{url}/_sandbox/health", timeout=300)
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


def measure(raw: Path, slugs: Sequence[str], threads: int | None, load: bool) -> dict:
    """Normalize (and load) each marketplace of a copy of `raw`; CPU and wall per phase."""
    import warehouse
    from adapters.registry import build_adapter, load_marketplaces
    from onecart.services import sandbox_credentials
    from onecart.settings import get_settings
    from warehouse.catalog import replace_products
    from warehouse.normalize import normalize_stored_catalog
    from warehouse.records import write_sources

    env = {
        **os.environ,
        **sandbox_credentials(get_settings(), environ={}),
        "ONECART_SANDBOX_URL": "http://127.0.0.1:9",
    }
    configs = {c.slug: c for c in load_marketplaces(Path("marketplaces.toml"), env)}
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="normalize-cpu-") as scratch:
        db = Path(scratch) / "warehouse.duckdb"
        shutil.copyfile(raw, db)
        for slug in [s for s in slugs if s != "none"] if slugs else list(configs):
            config = configs[slug]
            adapter = build_adapter(config)
            with warehouse.connect(db) as conn:
                conn.execute("SET memory_limit = '512MB'")
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
                    write_sources(conn, slug, catalog)
                    conn.execute("CHECKPOINT")
                    row["load_cpu"] = time.process_time() - cpu
                    row["load_wall"] = time.perf_counter() - wall
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
    total_cpu = sum(r["normalize_cpu"] + r.get("load_cpu", 0.0) for r in results.values())
    print(f"total CPU {total_cpu:.2f} s", flush=True)
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
    baseline_cmd = commands.add_parser("baseline")
    baseline_cmd.add_argument("--raw", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.offers, args.out)
    elif args.command == "baseline":
        baseline(args.raw)
    else:
        results = measure(args.raw, args.slug, args.threads, not args.no_load)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

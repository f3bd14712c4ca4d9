"""CPU of a catalog refresh's `normalized_products` step and its five checks, partition by
partition, in one process (issue 11).

    .venv/bin/python -m bench.renormalize_cpu build --offers 200000 --out /tmp/x
    .venv/bin/python -m bench.renormalize_cpu measure --snapshot /tmp/x [--profile out.prof]

`build` starts a sandbox (prices held still), runs every marketplace's partition of
`marketplace_catalog_job` once in full (a first ingest without the downstream assets), moves the
sandbox to price epoch 1 (≈ 1% of prices change) and runs only `raw_catalog` again: the
warehouse then stands where a refresh's `normalized_products` starts. It is kept as
`<out>/refresh.duckdb`.

`measure` copies that warehouse and materializes `normalized_products` (its checks included:
they are evaluated in its step) for each marketplace in turn, through Dagster in this process as
`onecart ingest` runs a partition with one worker. It prints CPU seconds (time.process_time:
every thread, DuckDB's included) and wall seconds of the whole step, of its checks, and the
step's own `normalize_cpu_seconds`. With `--compare` it then normalizes the same raw warehouse
with `full_refresh` and compares products, rejected_products and product_sources with the
refresh's (a full run's tables). Run it with PYTHONPATH at another checkout to measure that
code (the A/B of bench/RESULTS.md). The last line is ``AB {json}``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.normalize_cpu import start_sandbox

DB_NAME = "pipeline.duckdb"
SNAPSHOT_NAME = "refresh.duckdb"
URL_NAME = "sandbox_url"
# The tables a refresh must leave as a full run does; run ids and fetch times differ by run.
COMPARED = {
    "products": "SELECT * EXCLUDE (fetched_at) FROM products ORDER BY ALL",
    "rejected_products": "SELECT * EXCLUDE (run_id, rejected_at) FROM rejected_products "
    "ORDER BY ALL",
    "product_sources": "SELECT * FROM product_sources ORDER BY ALL",
}


def _environment(home: Path, sandbox_url: str) -> None:
    from onecart.services import sandbox_credentials
    from onecart.settings import get_settings

    os.environ.update(
        {
            "ONECART_HOME": str(home),
            "ONECART_SANDBOX_URL": sandbox_url,
            "ONECART_ASSISTANT_EMBEDDINGS": "off",
            "ONECART_PIPELINE_WORKERS": "1",
            **sandbox_credentials(get_settings(), environ={}),
        }
    )
    os.environ.pop("DAGSTER_HOME", None)
    get_settings.cache_clear()


def _catalog_job() -> Any:
    from onecart.settings import get_settings
    from pipelines.definitions import build_definitions
    from pipelines.jobs import MARKETPLACE_CATALOG_JOB

    return build_definitions(get_settings()).resolve_job_def(MARKETPLACE_CATALOG_JOB)


# Both normalizations of a comparison record the same moment (first_seen_at, updated_at).
AS_OF = "2026-12-04T12:00:00+00:00"


def _run_config(full_refresh: bool, as_of: str = "") -> dict[str, Any]:
    from pipelines.run import catalog_run_config

    return catalog_run_config(full_refresh, as_of)


def _slugs(job: Any) -> list[str]:
    return list(job.partitions_def.get_partition_keys())


def build(offers: int, out: Path) -> None:
    import dagster as dg
    import httpx

    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    sandbox, url = start_sandbox(offers)
    try:
        _environment(out / "home", url)
        job = _catalog_job()
        instance = dg.DagsterInstance.ephemeral()
        for slug in _slugs(job):
            started = time.perf_counter()
            job.execute_in_process(
                partition_key=slug, instance=instance, run_config=_run_config(False)
            )
            print(f"full {slug}: {time.perf_counter() - started:.1f} s", flush=True)
        httpx.post(f"{url}/_sandbox/knobs/all", json={"price_epoch": 1}, timeout=30)
        for slug in _slugs(job):
            started = time.perf_counter()
            job.execute_in_process(
                partition_key=slug,
                instance=instance,
                run_config={
                    **_run_config(False),
                    "ops": {"raw_catalog": _run_config(False)["ops"]["raw_catalog"]},
                },
                asset_selection=[dg.AssetKey("raw_catalog")],
            )
            print(f"refresh raw {slug}: {time.perf_counter() - started:.1f} s", flush=True)
        shutil.copyfile(out / "home" / DB_NAME, out / SNAPSHOT_NAME)
        # Adapters build product URLs from it: a normalization under another URL differs.
        (out / URL_NAME).write_text(url)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)


def _normalize_all(job: Any, full_refresh: bool, timings: dict[str, Any]) -> None:
    import dagster as dg

    import pipelines.assets.catalog as catalog_asset

    original = catalog_asset.evaluate_catalog_checks
    checks = [0.0, 0.0]

    def timed_checks(*args: Any, **kwargs: Any) -> Any:
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            checks[0] += time.process_time() - cpu
            checks[1] += time.perf_counter() - wall

    catalog_asset.evaluate_catalog_checks = timed_checks
    instance = dg.DagsterInstance.ephemeral()
    whole = _run_config(full_refresh, AS_OF)
    config = {**whole, "ops": {"normalized_products": whole["ops"]["normalized_products"]}}
    from pipelines.checks import CATALOG_CHECKS, NORMALIZED_PRODUCTS

    # The partition run's step and its five checks (not the unpartitioned freshness check,
    # which runs downstream).
    step = job.get_subset(
        asset_selection={NORMALIZED_PRODUCTS},
        asset_check_selection={
            dg.AssetCheckKey(NORMALIZED_PRODUCTS, name) for name in CATALOG_CHECKS
        },
    )
    try:
        for slug in _slugs(job):
            checks[:] = [0.0, 0.0]
            cpu, wall = time.process_time(), time.perf_counter()
            result = step.execute_in_process(
                partition_key=slug, instance=instance, run_config=config
            )
            step_cpu, step_wall = time.process_time() - cpu, time.perf_counter() - wall
            metadata = {
                key: getattr(value, "value", value)
                for event in result.get_asset_materialization_events()
                for key, value in event.materialization.metadata.items()
            }
            checks_passed = [
                evaluation.passed
                for evaluation in result.get_asset_check_evaluations()
                if evaluation.severity == dg.AssetCheckSeverity.ERROR
            ]
            timings[slug] = {
                "step_cpu": round(step_cpu, 3),
                "step_wall": round(step_wall, 3),
                "checks_cpu": round(checks[0], 3),
                "checks_wall": round(checks[1], 3),
                "normalize_cpu": metadata.get("normalize_cpu_seconds"),
                "normalize_wall": metadata.get("normalize_seconds"),
                "records_read": metadata.get("records_read"),
                "error_checks_passed": all(checks_passed),
            }
    finally:
        catalog_asset.evaluate_catalog_checks = original


class _TimedRelation:
    """A DuckDB relation whose materialization is timed under its statement."""

    def __init__(self, relation: Any, trace: SqlTrace, key: str) -> None:
        self._relation, self._trace, self._key = relation, trace, key

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._relation, name)
        if name not in ("pl", "fetchall", "fetchone", "to_arrow_reader", "arrow", "to_arrow"):
            return attribute
        return lambda *args, **kwargs: self._trace.timed(self._key, attribute, *args, **kwargs)


class _TimedConnection:
    def __init__(self, conn: Any, trace: SqlTrace) -> None:
        self._conn, self._trace = conn, trace

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        return self._trace.timed(SqlTrace.key(sql), self._conn.execute, sql, *args, **kwargs)

    def sql(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        key = SqlTrace.key(sql)
        relation = self._trace.timed(key, self._conn.sql, sql, *args, **kwargs)
        return _TimedRelation(relation, self._trace, key)


class SqlTrace:
    """CPU and wall seconds per SQL statement (its first words) of every warehouse connection,
    and of opening and closing them."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}

    @staticmethod
    def key(sql: str) -> str:
        return " ".join(sql.split())[:110]

    def timed(self, key: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            totals = self.totals.setdefault(key, [0.0, 0.0, 0])
            totals[0] += time.process_time() - cpu
            totals[1] += time.perf_counter() - wall
            totals[2] += 1

    def install(self) -> None:
        import contextlib

        import warehouse

        original = warehouse.connect

        @contextlib.contextmanager
        def connect(*args: Any, **kwargs: Any) -> Any:
            manager = original(*args, **kwargs)
            conn = self.timed("<open>", manager.__enter__)
            try:
                yield _TimedConnection(conn, self)
                if not kwargs.get("read_only"):
                    # The checkpoint a close would do, timed apart from the rest of the close.
                    self.timed("<checkpoint at close>", conn.execute, "CHECKPOINT")
            finally:
                self.timed("<close>", manager.__exit__, None, None, None)

        warehouse.connect = connect

    def report(self, limit: int = 40) -> None:
        rows = sorted(self.totals.items(), key=lambda item: -item[1][0])[:limit]
        for key, (cpu, wall, calls) in rows:
            print(f"{cpu:7.3f} {wall:7.3f} {calls:4d}  {key}")


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    import warehouse

    with warehouse.connect(path, read_only=True) as conn:
        return {name: conn.execute(sql).fetchall() for name, sql in COMPARED.items()}


def measure(
    snapshot: Path, work: Path, label: str, profile: Path | None, compare: bool, trace: bool
) -> None:
    shutil.rmtree(work, ignore_errors=True)
    (work / "home").mkdir(parents=True)
    shutil.copyfile(snapshot / SNAPSHOT_NAME, work / "home" / DB_NAME)
    # Normalizing asks no marketplace; the sandbox need not run.
    _environment(work / "home", (snapshot / URL_NAME).read_text())
    job = _catalog_job()
    out: dict[str, Any] = {"label": label, "load": round(os.getloadavg()[0], 2)}
    timings: dict[str, Any] = {}
    sql_trace = SqlTrace() if trace else None
    if sql_trace:
        sql_trace.install()
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    _normalize_all(job, False, timings)
    if profiler:
        profiler.disable()
        profiler.dump_stats(str(profile))
    if sql_trace:
        sql_trace.report()
    for slug, row in timings.items():
        print(slug, json.dumps(row), flush=True)
    out["partitions"] = timings
    for key in ("step_cpu", "step_wall", "checks_cpu", "checks_wall", "normalize_cpu"):
        out[key] = round(sum(row[key] or 0 for row in timings.values()), 2)
    out["load_end"] = round(os.getloadavg()[0], 2)
    if compare:
        refreshed = _tables(work / "home" / DB_NAME)
        shutil.copyfile(snapshot / SNAPSHOT_NAME, work / "home" / DB_NAME)
        _normalize_all(job, True, {})
        full = _tables(work / "home" / DB_NAME)
        out["identical"] = {name: refreshed[name] == full[name] for name in COMPARED}
        for name in COMPARED:
            only_refresh = sorted(set(refreshed[name]) - set(full[name]), key=str)
            only_full = sorted(set(full[name]) - set(refreshed[name]), key=str)
            if only_refresh or only_full:
                print(
                    f"{name}: {len(only_refresh)} rows only in the refresh, e.g.", only_refresh[:2]
                )
                print(f"{name}: {len(only_full)} rows only in the full run, e.g.", only_full[:2])
        out["rows"] = {name: len(rows) for name, rows in full.items()}
    print("AB", json.dumps({k: v for k, v in out.items() if k != "partitions"}), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.renormalize_cpu", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build")
    build_parser.add_argument("--offers", type=int, default=200_000)
    build_parser.add_argument("--out", type=Path, required=True)
    measure_parser = commands.add_parser("measure")
    measure_parser.add_argument("--snapshot", type=Path, required=True)
    measure_parser.add_argument("--work", type=Path)
    measure_parser.add_argument("--label", default="")
    measure_parser.add_argument("--profile", type=Path)
    measure_parser.add_argument("--compare", action="store_true")
    measure_parser.add_argument("--trace-sql", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "build":
        build(args.offers, args.out)
    else:
        work = args.work or args.snapshot / f"work-{os.getpid()}"
        try:
            measure(args.snapshot, work, args.label, args.profile, args.compare, args.trace_sql)
        finally:
            if args.work is None:
                shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

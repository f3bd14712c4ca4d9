"""Where a catalog refresh's `raw_catalog` time goes, marketplace by marketplace (issue 11).

    .venv/bin/python -m bench.fetch_cpu --offers 200000 [--slug dummymart ...] [--profile SLUG]

Starts its own sandbox (prices held still), fetches and stores every selected marketplace's
catalog once as a first run does, bumps the sandbox's ``price_epoch`` (≈ 1% of prices change)
and then runs, for each marketplace in turn and in this one process, exactly the sequence of
warehouse and adapter calls of the `raw_catalog` asset's refresh (held validators, payload
hashes and feed items' source digests, fetch and stage, load, validators). For each it prints, in
CPU seconds (thread time of this process's main thread, process time for the DuckDB load,
/proc utime+stime of the sandbox):

- ``sandbox``: the sandbox server's CPU producing the pages or feed (a real marketplace's server
  would not run on our cores);
- ``fetch``: our CPU inside the adapter's page iterator (HTTP, decoding, parsing);
- ``stage``: our CPU outside it while staging (payload text, hashing, Parquet);
- ``load``: the warehouse open, reading the held hashes, and `load_changed_records`;
- and the wall time of the whole refresh, and the sandbox's resident memory after it.

``--profile SLUG`` runs that marketplace's refresh under cProfile and prints its top functions.
Run with PYTHONPATH at another checkout to measure that code; CPU moves much less with the
machine's load than wall time does.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.normalize_cpu import start_sandbox

WHOLE_READ = ("dummymart", "bazaar", "naijamall", "fakestore", "sokoni", "amazon")


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of process `pid` (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    """Resident set size of process `pid` (VmRSS), in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Timer:
    """CPU (this thread) and wall spent inside an iterator's `next`."""

    cpu: float = 0.0
    wall: float = 0.0

    def wrap(self, pages: Iterable[Any]) -> Iterator[Any]:
        iterator = iter(pages)
        while True:
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                page = next(iterator)
            except StopIteration:
                return
            finally:
                self.cpu += time.thread_time() - cpu
                self.wall += time.perf_counter() - wall
            yield page


def refresh_once(
    config: Any, db: Path, staging: Path, sandbox_pid: int, *, first: bool
) -> dict[str, Any]:
    """The raw_catalog asset's sequence for one marketplace, timed by part."""
    import warehouse
    from adapters.base import NotModified
    from adapters.registry import build_adapter
    from warehouse.catalog import stage_raw_catalog, upsert_marketplace
    from warehouse.pages import confirm_unchanged_catalog, held_validators, store_validators

    try:  # conditional pages (absent from older checkouts measured against this one)
        from warehouse.pages import held_page_validators, store_page_validators
    except ImportError:
        held_page_validators = store_page_validators = None  # type: ignore[assignment]
    from warehouse.records import held_payload_hashes, load_changed_records

    try:  # feed items not parsed again (absent from older checkouts measured against this one)
        from warehouse.records import held_sources
    except ImportError:
        held_sources = None  # type: ignore[assignment]

    row: dict[str, Any] = {}
    wall0 = time.perf_counter()
    sandbox0 = proc_cpu_seconds(sandbox_pid)
    load_cpu0 = time.process_time()
    adapter = build_adapter(config)
    with warehouse.connect(db) as conn:
        upsert_marketplace(conn, config, now=datetime.now(UTC))
        held_hashes = None if first else held_payload_hashes(conn, config.slug)
        held_pages: dict[int, list[str]] = {}
        if hasattr(adapter, "catalog_validators") and not first:
            adapter.catalog_validators = held_validators(conn, config.slug)
        if held_page_validators and hasattr(adapter, "page_validators") and held_hashes:
            adapter.page_validators, held_pages = held_page_validators(conn, config.slug)
        if held_sources and hasattr(adapter, "held_sources"):
            adapter.held_sources = held_sources(conn, config.slug, held_hashes or set())
    row["open_cpu"] = time.process_time() - load_cpu0
    timer = Timer()
    main_cpu0 = time.thread_time()
    not_modified = False
    try:
        stats = stage_raw_catalog(
            timer.wrap(adapter.fetch_catalog_pages()),
            staging,
            marketplace=config.slug,
            run_id="fetch-cpu",
            held_hashes=held_hashes,
            **({"held_pages": held_pages} if held_page_validators else {}),
        )
    except NotModified:
        not_modified = True
    finally:
        adapter.close()
    row["fetch_cpu"] = timer.cpu
    row["fetch_wall"] = timer.wall
    row["stage_cpu"] = time.thread_time() - main_cpu0 - timer.cpu
    row["sandbox_cpu"] = proc_cpu_seconds(sandbox_pid) - sandbox0
    row["sandbox_rss_mb"] = proc_rss_mb(sandbox_pid)
    load_cpu0, load_wall0 = time.process_time(), time.perf_counter()
    with warehouse.connect(db) as conn:
        if not_modified:
            confirm_unchanged_catalog(conn, config.slug, now=datetime.now(UTC))
            row.update(records=0, bytes=0, stored=0, pages=0, not_modified=0, unparsed=0)
        else:
            _, _, stored = load_changed_records(
                conn, config.slug, staging, stats.page_hashes, replace_all=first
            )
            store_validators(
                conn,
                config.slug,
                getattr(adapter, "received_validators", {}),
                now=datetime.now(UTC),
            )
            if store_page_validators:
                store_page_validators(
                    conn,
                    config.slug,
                    getattr(adapter, "received_page_validators", {}),
                    stats.page_hashes,
                )
            row.update(
                records=stats.records,
                bytes=stats.bytes,
                stored=stored,
                pages=stats.pages,
                not_modified=getattr(stats, "pages_not_modified", 0),
                unparsed=getattr(stats, "records_unparsed", 0),
            )
    staging.unlink(missing_ok=True)
    row["load_cpu"] = time.process_time() - load_cpu0 + row.pop("open_cpu")
    row["load_wall"] = time.perf_counter() - load_wall0
    row["wall"] = time.perf_counter() - wall0
    row["catalog_not_modified"] = not_modified
    return row


def print_row(slug: str, what: str, row: dict[str, Any]) -> None:
    print(
        f"{slug:10} {what:7} {row['records']:>7} rec {row['bytes'] / 1e6:7.1f} MB "
        f"stored {row['stored']:>7}  wall {row['wall']:6.2f}  sandbox {row['sandbox_cpu']:6.2f}  "
        f"fetch {row['fetch_cpu']:6.2f}  stage {row['stage_cpu']:6.2f}  "
        f"load {row['load_cpu']:6.2f} ({row['load_wall']:5.2f} wall)  "
        f"304: {row['not_modified']}/{row['pages']} pages  unparsed {row['unparsed']}  "
        f"sandbox RSS {row['sandbox_rss_mb']:.0f} MB"
        + ("  whole catalog 304" if row["catalog_not_modified"] else ""),
        flush=True,
    )


def run(
    offers: int,
    slugs: Sequence[str],
    profile: str | None,
    json_out: Path | None,
    *,
    epoch: int = 1,
    page_sizes: dict[str, int] | None = None,
) -> None:
    from adapters.registry import load_marketplaces
    from onecart.services import sandbox_credentials
    from onecart.settings import get_settings

    sandbox, url = start_sandbox(offers)
    results: dict[str, dict[str, Any]] = {}
    try:
        env = {
            **os.environ,
            **sandbox_credentials(get_settings(), environ={}),
            "ONECART_SANDBOX_URL": url,
        }
        configs = {c.slug: c for c in load_marketplaces(Path("marketplaces.toml"), env)}
        for slug, size in (page_sizes or {}).items():
            configs[slug] = replace(configs[slug], page_size=size)
        chosen = list(slugs) or list(WHOLE_READ)
        with tempfile.TemporaryDirectory(prefix="fetch-cpu-") as scratch:
            db = Path(scratch) / "warehouse.duckdb"
            for slug in chosen:
                row = refresh_once(
                    configs[slug], db, Path(scratch) / f"{slug}.parquet", sandbox.pid, first=True
                )
                print_row(slug, "full", row)
                results.setdefault(slug, {})["full"] = row
            httpx.post(f"{url}/_sandbox/knobs/all", json={"price_epoch": epoch}, timeout=30)
            for slug in chosen:
                staging = Path(scratch) / f"{slug}.parquet"
                if slug == profile:
                    profiler = cProfile.Profile()
                    row = profiler.runcall(
                        refresh_once, configs[slug], db, staging, sandbox.pid, first=False
                    )
                else:
                    row = refresh_once(configs[slug], db, staging, sandbox.pid, first=False)
                print_row(slug, "refresh", row)
                results[slug]["refresh"] = row
                if slug == profile:
                    stats = pstats.Stats(profiler)
                    stats.sort_stats("tottime").print_stats(30)
                    stats.sort_stats("cumulative").print_stats(40)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    total = {
        key: sum(r["refresh"][key] for r in results.values())
        for key in ("wall", "sandbox_cpu", "fetch_cpu", "stage_cpu", "load_cpu")
    }
    print("refresh total: " + "  ".join(f"{k} {v:.2f}" for k, v in total.items()), flush=True)
    if json_out:
        json_out.write_text(json.dumps(results, indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fetch_cpu")
    parser.add_argument("--offers", type=int, default=100_000)
    parser.add_argument("--slug", action="append", default=[])
    parser.add_argument("--profile", default=None, help="cProfile this marketplace's refresh")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--epoch", type=int, default=1, help="price epoch of the refresh (0: nothing changes)"
    )
    parser.add_argument(
        "--page-size", action="append", default=[], help="SLUG=N: another page size"
    )
    args = parser.parse_args(argv)
    sizes = {slug: int(n) for slug, n in (item.split("=", 1) for item in args.page_size)}
    run(args.offers, args.slug, args.profile, args.json, epoch=args.epoch, page_sizes=sizes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

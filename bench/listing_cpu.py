"""The listing page's CPU in the site's own process: thread CPU per GET /search, in process.

    python -m bench.listing_cpu --reuse HOME [--rounds 8] [--path /search] [--profile OUT]

Runs against the index and DB a `bench.search_bench --keep` run left in HOME (its Meilisearch is
started here on the kept data), with the result cache off (every request reaches Meilisearch, as
the benchmark's targets do), over search_bench's 24 listing queries. Each request comes from a new
guest (no cookie), like the benchmark's, and goes through the whole WSGI app (request setup,
session, view, templates, response headers, the request log). The figure is `time.thread_time()`
per request: CPU of the thread that served it, so Meilisearch's own work and other processes'
load do not count (the machine is shared); the garbage collector is frozen after start-up as in
the site's workers (onecart.site_wsgi).

`--profile OUT` writes a cProfile of the measured rounds (read it with pstats or snakeviz);
profiling slows the code, so its total is not the figure above.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.search_queries import LISTING_QUERIES  # noqa: E402
from onecart import processes  # noqa: E402
from onecart.settings import get_settings  # noqa: E402

INDEX_UID = "bench_products"  # the offers index search_bench builds (listings read <uid>_groups)


def wsgi_get(app: object, path: str, query: str) -> tuple[int, bytes]:
    """One GET through the WSGI app as a new guest: (status, body)."""
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(path=path, query_string=query).get_environ()
    status: list[str] = []

    def start_response(code: str, headers: object, exc_info: object = None) -> None:
        status.append(code)

    chunks = app(environ, start_response)  # type: ignore[operator]
    try:
        body = b"".join(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    return int(status[0].split()[0]), body


def measure(app: object, path: str, rounds: int) -> tuple[list[float], float]:
    """Thread CPU (ms) of every request of `rounds` passes over the listing queries, and the
    minor page faults per request (memory the allocator took back from the kernel)."""
    samples = []
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        for query in LISTING_QUERIES:
            began = time.thread_time()
            status, _body = wsgi_get(app, path, query)
            samples.append((time.thread_time() - began) * 1000)
            if status != 200:
                raise SystemExit(f"GET {path}?{query} answered {status}")
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before
    return samples, faults / len(samples)


def start_kept_meilisearch(home: Path, name: str) -> tuple[str, processes.ManagedProcess]:
    """Point the settings at a kept search_bench home and start a Meilisearch on its index
    (on a free port); returns its URL and the process, which the caller stops."""
    os.environ["ONECART_HOME"] = str(home)
    get_settings.cache_clear()
    settings = get_settings()
    port = processes.free_port()
    meili_url = f"http://127.0.0.1:{port}"
    meili = processes.start_meilisearch(
        settings,
        name,
        home / "meili" / "data.ms",
        f"127.0.0.1:{port}",
    )
    try:
        processes.wait_for_http(f"{meili_url}/health", timeout=60, process=meili)
    except BaseException:
        processes.stop_pid(meili.pid)
        raise
    return meili_url, meili


def kept_home_app(home: Path, meili_url: str) -> Any:
    """The storefront app on a kept search_bench home's DB and index, result cache off, its
    request log going to a sink (as the server's stderr would take it, not the terminal)."""
    from storefront import create_app
    from storefront.db_migrate import upgrade_database
    from storefront.search_limit import BENCH_SEARCH_LIMIT
    from storefront.site_logging import site_log_handler

    database_url = f"sqlite:///{home / 'storefront.db'}"
    upgrade_database(database_url)  # a home kept by an older checkout: this code's schema
    app = create_app(
        {
            "SEARCH_CACHE_SECONDS": 0,
            # Every request comes from one address: the listings' limit runs (its cost is in
            # the figure) at a rate no run reaches (storefront.search_limit).
            "SEARCH_LIMIT": BENCH_SEARCH_LIMIT,
            "DATABASE_URL": database_url,
            "MEILI_URL": meili_url,
            "MEILI_INDEX": INDEX_UID,
        }
    )
    site_log_handler().setStream(io.StringIO())
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", metavar="HOME", required=True, help="a kept search_bench home")
    parser.add_argument("--rounds", type=int, default=8, help="passes over the 24 queries")
    parser.add_argument("--repeat", type=int, default=3, help="measured blocks (median each)")
    parser.add_argument("--path", default="/search", help="/search or /api/search")
    parser.add_argument("--profile", metavar="OUT", help="write a cProfile of the measured rounds")
    args = parser.parse_args(argv)

    home = Path(args.reuse).resolve()
    meili_url, meili = start_kept_meilisearch(home, "listing-cpu-meilisearch")
    try:
        app = kept_home_app(home, meili_url)
        measure(app, args.path, 1)  # warm-up: templates compiled, connections open, caches read
        gc.collect()
        gc.freeze()
        medians = []
        for _ in range(args.repeat):
            samples, faults = measure(app, args.path, args.rounds)
            medians.append(statistics.median(samples))
            print(
                f"GET {args.path}: {len(samples)} requests, thread CPU per request "
                f"median {medians[-1]:.3f} ms, mean {statistics.fmean(samples):.3f} ms, "
                f"{faults:.1f} page faults"
            )
        if args.profile:
            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
            measure(app, args.path, args.rounds)
            profiler.disable()
            profiler.dump_stats(args.profile)
            print(f"profile written to {args.profile}")
        print(
            f"RESULT path={args.path} median_ms={statistics.median(medians):.3f} min_ms={min(medians):.3f}"
        )
    finally:
        processes.stop_pid(meili.pid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

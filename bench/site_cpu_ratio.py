"""The site's CPU per listing against Meilisearch's, under the site's server, from /proc.

    python -m bench.site_cpu_ratio --reuse HOME [--blocks 3] [--requests 240]
        [--workers 2] [--threads 4] [--clients 1]

On the index and DB a `bench.search_bench --keep` run left in HOME: starts its Meilisearch and
the site as the benchmark does (onecart.site_server: uWSGI, 2 workers x 4 threads unless
`--workers`/`--threads` say otherwise, result cache off, no assistant model), then sends GET
/search for search_bench's 24 listing queries from one client (or `--clients` at once, threads
of this process, whose CPU is not counted), a fresh loopback connection per request as the
benchmark's clients do, and
reads utime+stime of the site's whole process group and of Meilisearch before and after each
block. Then the same for GET /api/ping (the framework floor).

Why this figure: both run on the same cores, so the page's share of raw Meilisearch's
throughput is about Meilisearch CPU / (Meilisearch CPU + site CPU) per listing; the site ÷
Meilisearch ratio moves less with the machine's load than either figure alone (the page target
of 0.80 needs a ratio of ≤ 0.25).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.listing_cpu import start_kept_meilisearch  # noqa: E402
from bench.search_bench import start_site  # noqa: E402
from bench.search_load import send  # noqa: E402
from bench.search_queries import LISTING_QUERIES  # noqa: E402
from onecart import processes  # noqa: E402
from onecart.settings import get_settings  # noqa: E402

INDEX_UID = "bench_products"
WARM_UP_REQUESTS = 48
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_ms(pids: Iterable[int]) -> float:
    """utime + stime (ms) of `pids` (processes that have exited count nothing)."""
    ticks = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks * 1000 / TICKS_PER_SECOND


def get_status(url: str) -> int:
    """GET `url` on a fresh connection (as the benchmark's clients do): its status."""
    return send(url, "GET", None, {})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", metavar="HOME", required=True, help="a kept search_bench home")
    parser.add_argument("--blocks", type=int, default=3, help="measured blocks per path")
    parser.add_argument("--requests", type=int, default=240, help="requests per block")
    parser.add_argument("--workers", type=int, default=2, help="site worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker process")
    parser.add_argument("--clients", type=int, default=1, help="requests in flight at once")
    args = parser.parse_args(argv)

    home = Path(args.reuse).resolve()
    meili_url, meili = start_kept_meilisearch(home, "cpu-ratio-meilisearch")
    settings = get_settings()
    site = None
    try:
        env = {
            "ONECART_HOME": str(home),
            "DATABASE_URL": f"sqlite:///{home / 'storefront.db'}",
            "MEILI_URL": meili_url,
            "MEILI_INDEX": INDEX_UID,
            "ONECART_ASSISTANT_WARM_UP": "0",
        }
        site = start_site(
            settings,
            "cpu-ratio-site",
            args.workers,
            args.threads,
            {"SEARCH_CACHE_SECONDS": 0},
            env,
        )
        ratios = []
        for path, queries in (("/search", LISTING_QUERIES), ("/api/ping", ("",))):
            urls = [
                f"{site.url}{path}?{query}" if query else f"{site.url}{path}" for query in queries
            ]
            for number in range(WARM_UP_REQUESTS):
                send(urls[number % len(urls)], "GET", None, {})
            for _ in range(args.blocks):
                pids = [site.pid, *processes.group_members(site.pid)]
                site_before, meili_before = cpu_ms(pids), cpu_ms([meili.pid])
                began = time.perf_counter()
                targets = [urls[number % len(urls)] for number in range(args.requests)]
                with ThreadPoolExecutor(args.clients) as clients:
                    for url, status in zip(targets, clients.map(get_status, targets), strict=True):
                        if status != 200:
                            raise SystemExit(f"{url} answered {status}")
                wall = (time.perf_counter() - began) * 1000 / args.requests
                site_ms = (cpu_ms(pids) - site_before) / args.requests
                meili_ms = (cpu_ms([meili.pid]) - meili_before) / args.requests
                line = (
                    f"GET {path}: site {site_ms:.2f} ms, Meilisearch {meili_ms:.2f} ms per request"
                )
                if meili_ms:
                    ratios.append(site_ms / meili_ms)
                    line += f", site ÷ Meilisearch {ratios[-1]:.2f}"
                print(f"{line}, wall {wall:.1f} ms, load {os.getloadavg()[0]:.2f}", flush=True)
        print(
            f"RESULT bench=site_cpu_ratio workers={args.workers} threads={args.threads} "
            f"clients={args.clients} ratios=" + ",".join(f"{r:.2f}" for r in ratios)
        )
    finally:
        if site is not None:
            processes.stop_pid(site.pid)
        processes.stop_pid(meili.pid)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

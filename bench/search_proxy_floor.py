"""What a Python site in front of Meilisearch costs before it does any work of its own.

    python -m bench.search_proxy_floor --reuse HOME [--seconds 8] [--concurrency 1,8]

Serves a WSGI app that only forwards each listing's multi-search body to Meilisearch (on a
kept-alive connection per thread, as the site does) and returns Meilisearch's bytes, under the
site's own uWSGI command line (onecart.site_server: same processes, threads and options), and
measures it against raw Meilisearch with the search benchmark's load (bench.search_load: the same
24 listing plans, fresh loopback connections, interleaved latency then throughput alone).

Why: issue 9 asks the listing page for ≥ 80% of raw Meilisearch's throughput. This separates what
the server, the extra hop and the wake-ups cost (the proxy's share) from what the page's own
Python costs (the rest of the gap), so the listing's budget is known. HOME is a kept
`bench.search_bench --keep` home. The last line is `RESULT …`.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

PROXY_MEILI_ADDRESS = "ONECART_PROXY_MEILI"  # host:port the proxy forwards to
PROXY_MEILI_KEY = "ONECART_PROXY_KEY"
PROXY = "proxy (forwards the body, returns Meilisearch's bytes)"

_local = threading.local()


def _meili_connection() -> http.client.HTTPConnection:
    connection = getattr(_local, "connection", None)
    if connection is None:
        host, port = os.environ[PROXY_MEILI_ADDRESS].rsplit(":", 1)
        connection = _local.connection = http.client.HTTPConnection(host, int(port), timeout=30)
    return connection


def application(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The proxy: POST body in, Meilisearch's multi-search answer out, nothing else."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    connection = _meili_connection()
    connection.request(
        "POST",
        "/multi-search",
        body=body,
        headers={
            "Authorization": f"Bearer {os.environ[PROXY_MEILI_KEY]}",
            "Content-Type": "application/json",
        },
    )
    response = connection.getresponse()
    data = response.read()
    start_response(
        f"{response.status} {response.reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", metavar="HOME", required=True, help="a kept search_bench home")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", default="1,8", help="comma-separated client counts")
    parser.add_argument("--workers", type=int, default=2, help="uWSGI processes (as the site)")
    args = parser.parse_args(argv)

    from bench.listing_cpu import INDEX_UID, start_kept_meilisearch
    from bench.search_bench import listing_targets
    from bench.search_load import Target, measure
    from onecart import processes
    from onecart.settings import get_settings
    from onecart.site_server import WSGI_MODULE, site_server_argv

    home = Path(args.reuse).resolve()
    meili_url, meili = start_kept_meilisearch(home, "proxy-floor-meilisearch")
    key = get_settings().meili_master_key
    port = processes.free_port()
    argv_ = site_server_argv(f"127.0.0.1:{port}", args.workers)
    argv_[argv_.index(WSGI_MODULE)] = "bench.search_proxy_floor:application"
    argv_ += ["--pythonpath", str(REPO_ROOT)]
    env = dict(
        os.environ,
        **{PROXY_MEILI_ADDRESS: meili_url.removeprefix("http://"), PROXY_MEILI_KEY: key},
    )
    server = subprocess.Popen(
        argv_, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO_ROOT
    )
    fields = []
    try:
        # A GET forwards an empty body: Meilisearch refuses it (4xx), which says the proxy is up.
        processes.wait_for_http(f"http://127.0.0.1:{port}/", timeout=60)
        raw = listing_targets("", "", meili_url, key, INDEX_UID)[0]
        proxy = Target(
            PROXY, "POST", [f"http://127.0.0.1:{port}/"] * len(raw.urls), raw.bodies, raw.headers
        )
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            results = {m.target: m for m in measure([raw, proxy], concurrency, args.seconds)}
            raw_m, proxy_m = results[raw.name], results[PROXY]
            share = proxy_m.throughput / raw_m.throughput if raw_m.throughput else 0.0
            for m in (raw_m, proxy_m):
                print(
                    f"c={concurrency:<3} {m.target:<55} p50 {m.p50:7.2f} ms  "
                    f"{m.throughput:7.0f} req/s alone (p50 {m.isolated_p50:.2f} ms)  "
                    f"errors {m.errors}"
                )
            print(f"c={concurrency:<3} proxy share of raw Meilisearch's throughput: {share:.3f}")
            fields += [
                f"c{concurrency}_raw_rps={raw_m.throughput:.0f}",
                f"c{concurrency}_proxy_rps={proxy_m.throughput:.0f}",
                f"c{concurrency}_proxy_share={share:.3f}",
                f"c{concurrency}_proxy_extra_p50_ms="
                f"{proxy_m.isolated_p50 - raw_m.isolated_p50:.2f}",
            ]
    finally:
        server.terminate()
        server.wait(timeout=30)
        processes.stop_pid(meili.pid)
    load = ",".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"RESULT bench=search_proxy_floor {' '.join(fields)} load={load} at={time.time():.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

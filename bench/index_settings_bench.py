"""What Meilisearch's indexing costs under variants of the offers index's settings.

    .venv/bin/python -m bench.index_settings_bench [--offers 100000] [--variants a,b,...]

Starts its own Meilisearch (the pinned binary, or MEILI_BIN) in a throw-away home, builds the
search bench's world documents once, then for each variant creates an index with the offers
index's declared settings (search_index.settings.INDEX_SETTINGS) plus the variant's changes,
sends the same documents in batches of 5,000 and waits for every task. It reports each variant's
wall time and Meilisearch's own CPU time (from /proc, steadier than wall time on a shared
machine) against the declared settings measured in the same run, and ends with one line:
``RESULT offers=N <variant>_cpu_share=… …`` (each variant's Meilisearch CPU ÷ the declared one's).

Why: a million offers' two indexes cost Meilisearch more indexing time than issue 11's whole
full-run target (bench/RESULTS.md); this measures which settings carry that cost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from onecart import processes  # noqa: E402
from onecart.settings import get_settings  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "declared": {},
    "facet_search_off": {"facetSearch": False},
    "proximity_by_attribute": {"proximityPrecision": "byAttribute"},
    "both": {"facetSearch": False, "proximityPrecision": "byAttribute"},
}
BATCH = 5_000
MAX_OFFERS = 2_000_000


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_task(client: httpx.Client, uid: int) -> dict[str, Any]:
    while True:
        task = client.get(f"/tasks/{uid}").json()
        if task["status"] in ("succeeded", "failed", "canceled"):
            if task["status"] != "succeeded":
                raise RuntimeError(f"Meilisearch task {uid} {task['status']}: {task.get('error')}")
            return task
        time.sleep(0.05)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offers", type=int, default=100_000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args(argv)
    if not 1 <= args.offers <= MAX_OFFERS:
        parser.error(f"--offers must be 1 to {MAX_OFFERS:,}")
    names = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    if "declared" not in names:
        names.insert(0, "declared")

    from bench.search_bench import world_documents
    from search_index.settings import INDEX_SETTINGS

    home = Path(tempfile.mkdtemp(prefix="onecart-index-settings-"))
    os.environ["ONECART_HOME"] = str(home)
    get_settings.cache_clear()
    settings = get_settings()
    port = processes.free_port()
    meili = processes.start_process(
        settings,
        "bench-meilisearch",
        processes.meilisearch_argv(settings, home / "meili" / "data.ms", f"127.0.0.1:{port}"),
    )
    try:
        url = f"http://127.0.0.1:{port}"
        processes.wait_for_http(f"{url}/health", timeout=60, process=meili)
        client = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {settings.meili_master_key}"},
            timeout=600,
        )
        documents = list(world_documents(args.offers))
        batches = [
            json.dumps(documents[start : start + BATCH]).encode()
            for start in range(0, len(documents), BATCH)
        ]
        print(f"{len(documents):,} documents, {sum(map(len, batches)) / 1e6:.0f} MB of JSON")
        measured: dict[str, tuple[float, float, float]] = {}
        for name in names:
            uid = f"settings_{name}"
            created = client.post("/indexes", json={"uid": uid, "primaryKey": "id"}).json()
            wait_task(client, created["taskUid"])
            declared = {**INDEX_SETTINGS, **VARIANTS[name]}
            wait_task(
                client, client.patch(f"/indexes/{uid}/settings", json=declared).json()["taskUid"]
            )
            load = os.getloadavg()[0]
            cpu_before, started = cpu_seconds(meili.pid), time.perf_counter()
            tasks = [
                client.post(
                    f"/indexes/{uid}/documents",
                    content=batch,
                    headers={"Content-Type": "application/json"},
                ).json()["taskUid"]
                for batch in batches
            ]
            for task in tasks:
                wait_task(client, task)
            measured[name] = (
                time.perf_counter() - started,
                cpu_seconds(meili.pid) - cpu_before,
                load,
            )
            wall, cpu, _ = measured[name]
            print(f"{name}: wall {wall:.1f} s, Meilisearch CPU {cpu:.1f} s, load {load:.1f}")
            wait_task(client, client.delete(f"/indexes/{uid}").json()["taskUid"])
    finally:
        processes.stop_pid(meili.pid)
        shutil.rmtree(home, ignore_errors=True)
    base_cpu = measured["declared"][1]
    shares = " ".join(
        f"{name}_cpu_share={cpu / base_cpu:.3f}" for name, (_, cpu, _) in measured.items()
    )
    print(f"RESULT offers={args.offers} declared_cpu_s={base_cpu:.1f} {shares}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What Meilisearch's indexing costs under variants of both indexes' settings.

    .venv/bin/python -m bench.index_settings_bench [--offers 100000] [--indexes offers,groups]
        [--variants a,b,...] [--rounds N]

Starts its own Meilisearch (the pinned binary, or MEILI_BIN) in a throw-away home, builds the
search bench's world documents once (and the product documents of the product index from them,
as the pipeline does), then for each index and variant creates an index with that index's
declared settings (search_index.settings) changed by the variant, sends the same documents in
batches of 5,000 and waits for every task. It reports each variant's wall time and
Meilisearch's own CPU time (from /proc, steadier than wall time on a shared machine) against the
declared settings measured in the same run. With `--rounds N` every variant is indexed N times,
the variants interleaved round by round, and the median counts: under a load average of 15 the
same settings measured 22.5 s and 31.0 s of CPU a few minutes apart. It ends with one line:
``RESULT offers=N <index>_<variant>_cpu_share=… …`` (each variant's Meilisearch CPU ÷ the
declared one's, per index).

The `before` variant is each index's declaration before issue 11's trim (every filter feature on
every filterable attribute, facet search on, the attributes nothing filtered or sorted by), kept
here so the saving stays measurable in one run.

Why: a million offers' two indexes cost Meilisearch more indexing time than issue 11's whole
full-run target (bench/RESULTS.md); this measures which settings carry that cost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from onecart import processes  # noqa: E402
from onecart.settings import get_settings  # noqa: E402

# The declarations before issue 11's trim (search_index/settings.py at 59ca8c4).
BEFORE: Mapping[str, Mapping[str, Any]] = {
    "offers": {
        "filterableAttributes": [
            "marketplace",
            "category",
            "brand",
            "price_usd_minor",
            "rating",
            "available",
            "currency",
            "group_id",
            "group_size",
            "gtin",
            "price_dropped_at",
        ],
        "sortableAttributes": [
            "price_usd_minor",
            "rating",
            "updated_at",
            "rating_count",
            "price_dropped_at",
        ],
        "facetSearch": True,
        "proximityPrecision": "byWord",
    },
    "groups": {
        "filterableAttributes": [
            "marketplaces",
            "available_marketplaces",
            "available",
            "category",
            "brand",
            "price_usd_minor",
            "available_price_usd_minor",
            "market_prices",
            "available_market_prices",
            "rating",
            "rating_stars",
            "rated",
            "offer_count",
            "price_gap_usd_minor",
        ],
        "sortableAttributes": [
            "price_usd_minor",
            "available_price_usd_minor",
            "market_prices",
            "available_market_prices",
            "rating_score",
            "rating_count",
            "price_gap_usd_minor",
            "updated_at",
            "id",
        ],
        "facetSearch": True,
        "proximityPrecision": "byWord",
    },
}

ENGLISH = {"localizedAttributes": [{"attributePatterns": ["*"], "locales": ["eng"]}]}
Variant = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]
VARIANTS: dict[str, Variant] = {
    "declared": lambda index, declared: declared,
    "before": lambda index, declared: {**declared, **BEFORE[index]},
    "by_word": lambda index, declared: {**declared, "proximityPrecision": "byWord"},
    "by_attribute": lambda index, declared: {**declared, "proximityPrecision": "byAttribute"},
    "no_prefix": lambda index, declared: {**declared, "prefixSearch": "disabled"},
    "english": lambda index, declared: {**declared, **ENGLISH},
}
INDEXES = ("offers", "groups")
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


def index_once(
    client: httpx.Client,
    uid: str,
    settings: Mapping[str, Any],
    batches: Sequence[bytes],
    pid: int,
) -> tuple[float, float, float]:
    """Index `batches` into a new index `uid` with `settings`, then delete it: (wall seconds,
    Meilisearch CPU seconds, load average at the start)."""
    wait_task(
        client, client.post("/indexes", json={"uid": uid, "primaryKey": "id"}).json()["taskUid"]
    )
    wait_task(
        client, client.patch(f"/indexes/{uid}/settings", json=dict(settings)).json()["taskUid"]
    )
    load = os.getloadavg()[0]
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    tasks = [
        client.post(
            f"/indexes/{uid}/documents",
            content=batch,
            headers={"Content-Type": "application/json"},
        ).json()["taskUid"]
        for batch in batches
    ]
    for task_uid in tasks:
        wait_task(client, task_uid)
    wall, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu_before
    wait_task(client, client.delete(f"/indexes/{uid}").json()["taskUid"])
    return wall, cpu, load


def _names(raw: str, known: Sequence[str], what: str, parser: argparse.ArgumentParser) -> list[str]:
    names = [name.strip() for name in raw.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown {what} {unknown}; known: {', '.join(known)}")
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--offers", type=int, default=100_000)
    parser.add_argument("--indexes", default=",".join(INDEXES))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not 1 <= args.offers <= MAX_OFFERS:
        parser.error(f"--offers must be 1 to {MAX_OFFERS:,}")
    indexes = _names(args.indexes, INDEXES, "indexes", parser)
    names = _names(args.variants, list(VARIANTS), "variants", parser)
    if "declared" not in names:
        names.insert(0, "declared")

    from bench.search_setup import world_documents
    from search_index.groups import build_group_documents
    from search_index.settings import GROUP_INDEX_SETTINGS, INDEX_SETTINGS

    declared = {"offers": INDEX_SETTINGS, "groups": GROUP_INDEX_SETTINGS}

    home = Path(tempfile.mkdtemp(prefix="onecart-index-settings-"))
    os.environ["ONECART_HOME"] = str(home)
    get_settings.cache_clear()
    settings = get_settings()
    port = processes.free_port()
    meili = processes.start_meilisearch(
        settings,
        "bench-meilisearch",
        home / "meili" / "data.ms",
        f"127.0.0.1:{port}",
    )
    measured: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    try:
        url = f"http://127.0.0.1:{port}"
        processes.wait_for_http(f"{url}/health", timeout=60, process=meili)
        client = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {settings.meili_master_key}"},
            timeout=600,
        )
        offers = list(world_documents(args.offers))
        documents = {"offers": offers}
        if "groups" in indexes:
            documents["groups"] = [dict(d) for d in build_group_documents(offers)]
        for index in indexes:
            batches = [
                json.dumps(documents[index][start : start + BATCH]).encode()
                for start in range(0, len(documents[index]), BATCH)
            ]
            print(
                f"{index}: {len(documents[index]):,} documents, "
                f"{sum(map(len, batches)) / 1e6:.0f} MB of JSON"
            )
            for round_number in range(1, args.rounds + 1):
                for name in names:
                    wall, cpu, load = index_once(
                        client,
                        f"settings_{index}_{name}",
                        VARIANTS[name](index, declared[index]),
                        batches,
                        meili.pid,
                    )
                    measured.setdefault((index, name), []).append((wall, cpu, load))
                    print(
                        f"{index} {name} (round {round_number}): wall {wall:.1f} s, "
                        f"Meilisearch CPU {cpu:.1f} s, load {load:.1f}",
                        flush=True,
                    )
    finally:
        processes.stop_pid(meili.pid)
        shutil.rmtree(home, ignore_errors=True)
    fields = [f"offers={args.offers}", f"rounds={args.rounds}"]
    for index in indexes:
        cpu = {name: statistics.median(run[1] for run in measured[(index, name)]) for name in names}
        for name in names:
            runs = measured[(index, name)]
            print(
                f"{index} {name}: median wall {statistics.median(r[0] for r in runs):.1f} s, "
                f"median Meilisearch CPU {cpu[name]:.1f} s "
                f"({', '.join(f'{r[1]:.1f}' for r in runs)}), share {cpu[name] / cpu['declared']:.3f}"
            )
        fields.append(f"{index}_declared_cpu_s={cpu['declared']:.1f}")
        fields.extend(
            f"{index}_{name}_cpu_share={cpu[name] / cpu['declared']:.3f}"
            for name in names
            if name != "declared"
        )
    print("RESULT " + " ".join(fields))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

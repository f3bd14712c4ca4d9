"""Search-index refresh after ~1% of prices changed: every document built and compared (before)
against only the documents whose inputs changed (pipelines/search_state.py,
pipelines/group_search_state.py), alternated on the same warehouse and Meilisearch.

    .venv/bin/python -m bench.search_refresh_bench --home <the home pipeline_bench kept, printed at its end>

`--home` is a pipeline home kept by ``bench.pipeline_bench --keep`` (its pipeline.duckdb and its
Meilisearch data). The warehouse is copied; Meilisearch runs on the kept data directory. Each round
moves the price of ~1% of the offers (a different 1% every round) and then syncs the offers index
and the product index one way; the two ways alternate, so both meet the same background load.
The last line printed is ``RESULT offers=… before_s=… after_s=… speedup=… sent_before=…
sent_after=…`` (medians over the rounds, offers index + product index).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def _move_prices(db_path: Path, round_number: int) -> int:
    import warehouse

    with warehouse.connect(db_path) as conn:
        conn.execute(
            "UPDATE products SET price_minor = price_minor + 1, updated_at = now() "
            "WHERE hash(external_id || ?) % 100 = 0",
            [str(round_number)],
        )
        (changed,) = conn.execute(
            "SELECT count(*) FROM products WHERE hash(external_id || ?) % 100 = 0",
            [str(round_number)],
        ).fetchall()[0]
    return int(changed)


def _sync_everything(db_path: Path, client: object, uid: str) -> tuple[float, int]:
    """The previous search_products + search_product_groups: build all, compare with the index."""
    import warehouse
    from pipelines.search_sync import build_product_documents, build_search_documents
    from search_index.indexing import sync_index
    from search_index.settings import (
        GROUP_DOCUMENT_SCHEMA_VERSION,
        GROUP_INDEX_SETTINGS,
        group_index_uid,
    )
    from warehouse.derived import read_latest_rates, read_offer_frame

    started = time.perf_counter()
    with warehouse.connect(db_path) as conn:
        offers = read_offer_frame(conn)
        rates = read_latest_rates(conn)
        cards = {
            s: {"slug": s, "name": n, "logo": lg}
            for s, n, lg in conn.execute("SELECT slug, name, logo FROM marketplaces").fetchall()
        }
    assert rates is not None
    built = build_search_documents(offers, marketplaces=cards, rates=rates.rates)
    sent = sync_index(client, uid, built.documents).sent  # type: ignore[arg-type]
    documents, _ = build_product_documents(offers, marketplaces=cards, rates=rates.rates)
    sent += sync_index(
        client,  # type: ignore[arg-type]
        group_index_uid(uid),
        documents,
        settings=GROUP_INDEX_SETTINGS,
        schema_version=GROUP_DOCUMENT_SCHEMA_VERSION,
    ).sent
    return time.perf_counter() - started, sent


def _sync_changed(db_path: Path, client: object, uid: str) -> tuple[float, int]:
    """Today's search_products + search_product_groups (their code, without Dagster)."""
    from functools import partial

    import warehouse
    from pipelines.group_search_state import sync_group_index
    from pipelines.search_state import sync_offer_index
    from search_index.settings import group_index_uid
    from warehouse.derived import read_latest_rates

    started = time.perf_counter()
    connect = partial(warehouse.connect, db_path)
    with connect() as conn:
        rates = read_latest_rates(conn)
        cards = {
            s: {"slug": s, "name": n, "logo": lg}
            for s, n, lg in conn.execute("SELECT slug, name, logo FROM marketplaces").fetchall()
        }
    assert rates is not None
    active = sorted(cards)
    offers = sync_offer_index(
        connect,
        client,  # type: ignore[arg-type]
        uid,
        rates=rates.rates,
        marketplaces=cards,
        active=active,
        vectors=None,
        progress=lambda line: None,
    )
    groups = sync_group_index(
        connect,
        client,  # type: ignore[arg-type]
        uid,
        group_index_uid(uid),
        rates=rates.rates,
        marketplaces=cards,
        active=active,
        progress=lambda line: None,
    )
    if offers.mode != "changed" or groups.mode != "changed":
        print(f"   (built everything: {offers.fallback_reason} / {groups.fallback_reason})")
    return time.perf_counter() - started, offers.result.sent + groups.result.sent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.search_refresh_bench")
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--index", default="products")
    args = parser.parse_args(argv)

    import meilisearch

    from onecart import processes
    from onecart.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="onecart-search-refresh-"))
    key = "onecart-bench-master-key-0123456789"
    settings = Settings(ONECART_HOME=work, MEILI_MASTER_KEY=key)
    db_path = work / "pipeline.duckdb"
    shutil.copyfile(args.home / "pipeline.duckdb", db_path)
    port = processes.free_port()
    meili = processes.start_meilisearch(
        settings,
        "bench-meilisearch",
        args.home / "meili" / "data.ms",
        f"127.0.0.1:{port}",
    )
    try:
        processes.wait_for_http(f"http://127.0.0.1:{port}/health", timeout=120, process=meili)
        client = meilisearch.Client(f"http://127.0.0.1:{port}", key, timeout=600)
        # The first changed-inputs sync records what the product index holds (its first run).
        _sync_changed(db_path, client, args.index)
        times: dict[str, list[float]] = {"before": [], "after": []}
        sent: dict[str, list[int]] = {"before": [], "after": []}
        for round_number in range(args.rounds):
            for way, sync in (("before", _sync_everything), ("after", _sync_changed)):
                moved = _move_prices(db_path, round_number * 2 + (way == "after"))
                seconds, count = sync(db_path, client, args.index)
                times[way].append(seconds)
                sent[way].append(count)
                if way == "before":
                    # The full comparison leaves the record behind; bring it up to date
                    # (untimed), so the next round's changed-inputs sync has only its own 1%.
                    _sync_changed(db_path, client, args.index)
                print(f"round {round_number + 1} {way}: {moved} prices moved, sent {count}, "
                      f"{seconds:.1f} s", flush=True)  # fmt: skip
        with open("/proc/loadavg") as loadavg:
            load = loadavg.read().split()[:3]
    finally:
        processes.stop_pid(meili.pid)
        shutil.rmtree(work, ignore_errors=True)
    import duckdb

    offers = (
        duckdb.connect(str(args.home / "pipeline.duckdb"), read_only=True)
        .execute("SELECT count(*) FROM products")
        .fetchall()[0][0]
    )
    before, after = statistics.median(times["before"]), statistics.median(times["after"])
    print(f"load average at the end: {' '.join(load)}")
    print(
        f"RESULT offers={offers} before_s={before:.1f} after_s={after:.1f} "
        f"speedup={before / after:.1f} sent_before={statistics.median(sent['before']):.0f} "
        f"sent_after={statistics.median(sent['after']):.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Shopping-assistant benchmark: answer latency against a plain search of the same text, and the
embedding throughput of the incremental offer_embeddings asset, in one run, on loopback.

    .venv/bin/python bench/assistant_bench.py [--offers 100000] [--rounds 2] [--no-append]

What it does:
1. Starts its own Meilisearch and builds a `--offers` index from the sandbox world (the documents
   of bench/search_bench.py) with vectors: every offer gets the real all-MiniLM-L6-v2 embedding of
   its product's template text (brand, line, descriptor, category). Embedding every one of 100,000
   offer texts would take the better part of an hour on two cores; the vectors' count, dimensions
   and spread, which is what search latency depends on, are the same.
2. Loads the model once, warms up, then asks each request of bench/assistant_eval_set.json `--rounds`
   times, alternating a plain storefront search of the same text (search_index.listings
   .search_products: product hits and facets in one multi-search) with a full assistant answer (parse,
   embed the request with the query cache emptied first, hybrid search, cheapest offers, answer).
3. Measures the incremental asset on a throw-away warehouse of 2,000 real offer texts: first run
   (all new), second run (nothing changed), third run (2% of the titles changed).
4. Prints p50/p99 and the ratio, checks the target (assistant p50 <= 3 x plain search p50),
   appends to bench/RESULTS.md and stops what it started (by pid).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

from bench.search_load import percentile  # noqa: E402
from onecart import processes  # noqa: E402
from onecart.settings import get_settings  # noqa: E402

RESULTS_FILE = REPO_ROOT / "bench" / "RESULTS.md"
SEED = 42
TARGET_FACTOR = 3.0
THROUGHPUT_OFFERS = 2000
INDEX_UID = "products"


def template_text(product: Any) -> str:
    """What every offer of a product shares: brand, line, descriptor and category."""
    return f"{product.brand} {product.line} {product.descriptor}. {product.category.name}".strip()


def build_vector_index(meili_url: str, api_key: str, total_offers: int, embedder: Any) -> dict:
    """Index the world's documents with template vectors; returns timings and counts."""
    import meilisearch
    from search_setup import world_documents

    from sandbox.marketplaces import MARKETPLACES
    from sandbox.world import World
    from search_index.groups import sync_group_index
    from search_index.indexing import sync_index

    started = time.perf_counter()
    documents = list(world_documents(total_offers))
    world = World(SEED, total_offers)
    text_of_group: dict[str, str] = {}
    for market in MARKETPLACES:
        for index in range(world.offer_count(market.slug)):
            product = world.product(world.product_key(market.slug, index))
            text_of_group[f"g-{product.key}"] = template_text(product)
    texts = sorted(set(text_of_group.values()))
    generated = time.perf_counter() - started
    started = time.perf_counter()
    vectors_of_text = dict(zip(texts, embedder.embed_documents(texts), strict=True))
    embed_seconds = time.perf_counter() - started
    vectors = {doc["id"]: vectors_of_text[text_of_group[doc["group_id"]]] for doc in documents}
    client = meilisearch.Client(meili_url, api_key, timeout=900)
    started = time.perf_counter()
    result = sync_index(
        client, INDEX_UID, documents, full_rebuild=True, batch_size=10_000, vectors=vectors
    )
    sync_group_index(client, INDEX_UID, documents, full_rebuild=True)
    index_seconds = time.perf_counter() - started
    print(
        f"{result.sent:,} documents ({len(texts):,} distinct template texts embedded in "
        f"{embed_seconds:.0f} s) indexed with vectors in {index_seconds:.0f} s",
        file=sys.stderr,
    )
    return {
        "documents": result.sent,
        "templates": len(texts),
        "generate_s": generated,
        "template_embed_s": embed_seconds,
        "index_s": index_seconds,
    }


def world_fx() -> Any:
    """The world's own exchange rates as an FxTable (what the documents were converted with)."""
    from commerce.fx import FxTable
    from sandbox.marketplaces import GBP_PER_USD, MARKETPLACES

    rates = {m.currency: m.usd_rate for m in MARKETPLACES if m.currency != "USD"}
    rates["GBP"] = GBP_PER_USD
    return FxTable(per_usd=rates)


def measure_latency(meili_url: str, api_key: str, rounds: int, embedder: Any) -> dict:
    """Alternate plain searches and assistant answers for every evaluation request."""
    import meilisearch

    from assistant.config import get_assistant_settings
    from assistant.retrieval import MODE_HYBRID
    from assistant.service import answer_prompt
    from bench.assistant_eval_labels import load_eval_set
    from search_index.listings import search_products
    from search_index.params import SearchParams
    from search_index.settings import group_index_uid

    client = meilisearch.Client(meili_url, api_key, timeout=30)
    fx = world_fx()
    settings = get_assistant_settings()
    _, requests = load_eval_set()
    prompts = [r.prompt for r in requests]
    for prompt in prompts[:10]:  # warm-up: model, index profile, Meilisearch caches
        answer_prompt(prompt, client=client, index_uid=INDEX_UID, fx=fx, use_llm=False)
        search_products(client, group_index_uid(INDEX_UID), SearchParams(q=prompt))
    plain: list[float] = []
    assistant: list[float] = []
    cached: list[float] = []
    paths: dict[str, int] = {}
    for _ in range(rounds):
        for prompt in prompts:
            started = time.perf_counter()
            search_products(client, group_index_uid(INDEX_UID), SearchParams(q=prompt[:200]))
            plain.append((time.perf_counter() - started) * 1000)
            embedder._queries.clear()  # every request embedded afresh
            started = time.perf_counter()
            answer = answer_prompt(
                prompt,
                client=client,
                index_uid=INDEX_UID,
                fx=fx,
                settings=settings,
                mode=MODE_HYBRID,
                use_llm=False,
            )
            assistant.append((time.perf_counter() - started) * 1000)
            paths[answer.path] = paths.get(answer.path, 0) + 1
            started = time.perf_counter()
            answer_prompt(prompt, client=client, index_uid=INDEX_UID, fx=fx, use_llm=False)
            cached.append((time.perf_counter() - started) * 1000)
    embed: list[float] = []
    for prompt in prompts:
        embedder._queries.clear()
        started = time.perf_counter()
        embedder.embed_query(prompt)
        embed.append((time.perf_counter() - started) * 1000)
    return {
        "samples": len(plain),
        "plain_p50": percentile(plain, 50),
        "plain_p99": percentile(plain, 99),
        "assistant_p50": percentile(assistant, 50),
        "assistant_p99": percentile(assistant, 99),
        "cached_p50": percentile(cached, 50),
        "cached_p99": percentile(cached, 99),
        "embed_p50": percentile(embed, 50),
        "paths": paths,
    }


def measure_throughput(embedder: Any, workdir: Path) -> dict:
    """The offer_embeddings refresh on a throw-away warehouse: all new, unchanged, 2% changed."""
    import warehouse
    from assistant.embedding_store import refresh_offer_embeddings
    from sandbox.marketplaces import MARKETPLACES
    from sandbox.world import World

    world = World(SEED, 12_000)
    per_market = THROUGHPUT_OFFERS // len(MARKETPLACES)
    rows = []
    now = datetime.now(UTC)
    for market in MARKETPLACES:
        for offer in world.offers(market.slug, 0, per_market):
            rows.append(
                [
                    offer.slug,
                    f"{offer.slug}-{offer.index}",
                    offer.title,
                    " ".join(offer.product.description_sentences()),
                    offer.price_minor,
                    offer.currency,
                    offer.product.category.name,
                    offer.product.brand,
                    f"h-{offer.index}",
                    now,
                    now,
                    now,
                ]
            )
    db_path = workdir / "pipeline.duckdb"
    insert = (
        "INSERT OR REPLACE INTO products (marketplace, external_id, title, description, "
        "price_minor, currency, category, brand, available, content_hash, first_seen_at, "
        "updated_at, fetched_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, true, ?, ?, ?, ?)"
    )
    with warehouse.connect(db_path) as conn:
        conn.executemany(insert, rows)

    def refresh() -> tuple[Any, float]:
        started = time.perf_counter()
        result = refresh_offer_embeddings(lambda: warehouse.connect(db_path), embedder)
        return result, time.perf_counter() - started

    first, first_s = refresh()
    second, second_s = refresh()
    changed = rows[:: len(rows) // (len(rows) // 50)]
    with warehouse.connect(db_path) as conn:
        conn.executemany(
            "UPDATE products SET title = title || ' (2026 edition)' "
            "WHERE marketplace = ? AND external_id = ?",
            [[row[0], row[1]] for row in changed],
        )
    third, third_s = refresh()
    return {
        "offers": len(rows),
        "first_embedded": first.embedded,
        "first_s": first_s,
        "first_rate": first.offers_per_second,
        "second_embedded": second.embedded,
        "second_s": second_s,
        "third_embedded": third.embedded,
        "third_s": third_s,
        "third_rate": third.offers_per_second,
    }


def format_results(offers: int, index: dict, latency: dict, throughput: dict) -> str:
    """The Markdown section appended to bench/RESULTS.md."""
    from assistant.embeddings import model_status

    versions = model_status().versions
    ratio = latency["assistant_p50"] / latency["plain_p50"] if latency["plain_p50"] else 0.0
    verdict = "meets" if ratio <= TARGET_FACTOR else "MISSES"
    return "\n".join(
        [
            f"## Shopping assistant ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
            "",
            f"Machine: {platform.machine()}, {platform.python_version()}, "
            f"{__import__('os').cpu_count()} CPUs; model all-MiniLM-L6-v2 on CPU "
            f"({', '.join(f'{k} {v}' for k, v in sorted(versions.items()))}).",
            f"Index: {index['documents']:,} offers of the sandbox world (seed {SEED}) with "
            f"384-dimension vectors ({index['templates']:,} distinct template texts, embedded in "
            f"{index['template_embed_s']:.0f} s); indexing took {index['index_s']:.0f} s.",
            "",
            f"Latency, {latency['samples']} requests per column (bench/assistant_eval_set.json prompts),"
            " one client, model loaded once:",
            "",
            "| | p50 ms | p99 ms |",
            "|---|---|---|",
            f"| plain search of the same text (search_products: product hits + facets) | "
            f"{latency['plain_p50']:.1f} | {latency['plain_p99']:.1f} |",
            f"| assistant answer, request embedded afresh | {latency['assistant_p50']:.1f} | "
            f"{latency['assistant_p99']:.1f} |",
            f"| assistant answer, request embedding cached (re-run) | {latency['cached_p50']:.1f} | "
            f"{latency['cached_p99']:.1f} |",
            f"| of which: embedding one request | {latency['embed_p50']:.1f} | |",
            "",
            f"Assistant p50 / plain search p50 = {ratio:.2f} (target ≤ {TARGET_FACTOR:.0f}: "
            f"{verdict}). Answered by: "
            + ", ".join(f"{path} {count}" for path, count in sorted(latency["paths"].items()))
            + " (requests whose every word is a constraint use filters only).",
            "",
            f"Embedding throughput of the incremental offer_embeddings refresh "
            f"({throughput['offers']:,} real offer texts): first run {throughput['first_embedded']:,} "
            f"embedded in {throughput['first_s']:.1f} s ({throughput['first_rate']:.0f} offers/s "
            f"of model time); unchanged re-run {throughput['second_embedded']} embedded in "
            f"{throughput['second_s']:.2f} s; after 2% of titles changed "
            f"{throughput['third_embedded']} embedded in {throughput['third_s']:.1f} s.",
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (see the module docstring)."""
    parser = argparse.ArgumentParser(description="OneCart assistant benchmark")
    parser.add_argument("--offers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-append", action="store_true", help="print only")
    args = parser.parse_args(argv)

    from assistant.embeddings import load_embedder, model_status

    embedder = load_embedder()
    if embedder is None:
        print(f"the assistant benchmark needs the model: {model_status().reason}", file=sys.stderr)
        return 2
    settings = get_settings()
    workdir = Path(tempfile.mkdtemp(prefix="onecart-assistant-bench-"))
    port = processes.free_port()
    url = f"http://127.0.0.1:{port}"
    meili = processes.start_meilisearch(
        settings, "meilisearch-assistant-bench", workdir / "data.ms", f"127.0.0.1:{port}"
    )
    try:
        processes.wait_for_http(f"{url}/health", timeout=60, process=meili)
        index = build_vector_index(url, settings.meili_master_key, args.offers, embedder)
        latency = measure_latency(url, settings.meili_master_key, args.rounds, embedder)
        throughput = measure_throughput(embedder, workdir)
    finally:
        processes.stop_pid(meili.pid)
        shutil.rmtree(workdir, ignore_errors=True)
    text = format_results(args.offers, index, latency, throughput)
    print(text)
    if not args.no_append:
        if not RESULTS_FILE.exists():
            RESULTS_FILE.write_text("# Benchmark results\n\nNewest runs at the bottom.\n\n")
        with RESULTS_FILE.open("a", encoding="utf-8") as handle:
            handle.write("\n" + text)
        print(f"appended to {RESULTS_FILE.relative_to(REPO_ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

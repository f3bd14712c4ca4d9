"""Page 1 of broad listing queries on the product index: today's settings against a variant.

    .venv/bin/python -m bench.listing_phrase_check [--index products_groups]
        [--variant by_attribute|by_attribute_exactness_first] [QUERY ...]

Copies the documents of an existing product index (after `onecart ingest`, at MEILI_URL) into
two throw-away indexes, one with the declared settings (search_index.settings) and one with the
variant, asks each the first page (24 products) of every query, and counts the titles that hold
the query as written ("smart tv" in "Smart TV", not in "Smart LED TV") and the products both
pages share. Why: index settings that cost less to build (bench/index_settings_bench.py) must
not change what shoppers see on page 1; this is the check the product index's proximity
setting was decided by (bench/RESULTS.md, issue 11).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

QUERIES = (
    "wireless earbuds",
    "smart tv",
    "running shoes",
    "coffee maker",
    "bluetooth speaker",
    "travel mug",
    "gaming laptop",
    "noise cancelling headphones",
    "vacuum flask",
    "smart watch",
    "wireless headphones",
    "electric kettle",
    "4k tv",
    "phone case",
    "yoga mat",
)
PAGE = 24
VARIANTS = {
    "by_attribute": {"proximityPrecision": "byAttribute"},
    "by_attribute_exactness_first": {
        "proximityPrecision": "byAttribute",
        "rankingRules": [
            "words",
            "sort",
            "typo",
            "proximity",
            "exactness",
            "attribute",
            "offer_count:desc",
            "rating_count:desc",
        ],
    },
}


def _wait(client: httpx.Client, task_uid: int) -> None:
    while True:
        task = client.get(f"/tasks/{task_uid}").json()
        if task["status"] == "succeeded" or (
            task["status"] == "failed" and task["type"] == "indexDeletion"
        ):
            return
        if task["status"] in ("failed", "canceled"):
            raise RuntimeError(f"Meilisearch task {task_uid}: {task.get('error')}")
        time.sleep(0.1)


def _documents(client: httpx.Client, index: str) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    while True:
        page = client.post(
            f"/indexes/{index}/documents/fetch", json={"limit": 5000, "offset": len(documents)}
        ).json()
        documents += page["results"]
        if not page["results"] or len(documents) >= page["total"]:
            return documents


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", default=None, help="default: <MEILI_INDEX>_groups")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="by_attribute")
    parser.add_argument("queries", nargs="*", default=list(QUERIES))
    args = parser.parse_args(argv)

    from onecart.settings import get_settings
    from search_index.settings import GROUP_INDEX_SETTINGS, group_index_uid

    settings = get_settings()
    client = httpx.Client(
        base_url=settings.meili_url,
        headers={"Authorization": f"Bearer {settings.meili_master_key}"},
        timeout=300,
    )
    documents = _documents(client, args.index or group_index_uid(settings.meili_index))
    print(f"{len(documents):,} product documents")
    declared = dict(GROUP_INDEX_SETTINGS)
    sides = {"declared": declared, args.variant: {**declared, **VARIANTS[args.variant]}}
    for name, side in sides.items():
        uid = f"listing_phrase_check_{name}"
        _wait(client, client.delete(f"/indexes/{uid}").json()["taskUid"])
        _wait(
            client, client.post("/indexes", json={"uid": uid, "primaryKey": "id"}).json()["taskUid"]
        )
        _wait(client, client.patch(f"/indexes/{uid}/settings", json=side).json()["taskUid"])
        _wait(client, client.post(f"/indexes/{uid}/documents", json=documents).json()["taskUid"])
    totals = dict.fromkeys(sides, 0)
    shared = 0
    try:
        for query in args.queries:
            pages = {
                name: client.post(
                    f"/indexes/listing_phrase_check_{name}/search",
                    json={"q": query, "limit": PAGE, "attributesToRetrieve": ["id", "title"]},
                ).json()["hits"]
                for name in sides
            }
            as_written = {
                name: sum(query.lower() in str(hit["title"]).lower() for hit in hits)
                for name, hits in pages.items()
            }
            both = len(
                {hit["id"] for hit in pages["declared"]}
                & {hit["id"] for hit in pages[args.variant]}
            )
            print(
                f"{query!r}: query as written in "
                + ", ".join(f"{name} {count}/{PAGE}" for name, count in as_written.items())
                + f"; same products {both}/{PAGE}"
            )
            for name, count in as_written.items():
                totals[name] += count
            shared += both
    finally:
        for name in sides:
            client.delete(f"/indexes/listing_phrase_check_{name}")
    pages_total = PAGE * len(args.queries)
    print(
        f"RESULT queries={len(args.queries)} "
        + " ".join(f"{name}_as_written={count}/{pages_total}" for name, count in totals.items())
        + f" same_products={shared}/{pages_total}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Two ways of listing products on raw Meilisearch, on the search benchmark's listings: the
product index (`<index>_groups`, what the site reads) against `distinct` on group_id over the
offers index plus the second round trip it needs for each product's cheapest offer."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

from bench.search_load import percentile
from bench.search_queries import LISTING_QUERIES, listing_params
from bench.search_setup import SEED

COMPARE_ROUNDS = 5

OFFER_CARD_FIELDS = (
    "id", "title", "marketplace", "marketplace_name", "price_minor", "currency",
    "price_usd_minor", "image_url", "rating", "rating_count", "available", "group_id",
    "group_size", "group_marketplaces",
)  # fmt: skip


def distinct_plan(index_uid: str, params: Any) -> list[dict[str, Any]]:
    """The same listing with `distinct` on group_id over the offers index: page of groups,
    price range, disjunctive facets counted per group. Filters are offer-level, so a group is
    listed when one of its offers matches, as the product index does."""
    quote = _quote
    clauses: dict[str, str] = {}
    for facet, values in (
        ("marketplace", params.marketplaces),
        ("category", params.categories),
        ("brand", params.brands),
    ):
        if values:
            clauses[facet] = f"{facet} IN [" + ", ".join(quote(v) for v in values) + "]"
    if params.available is not None:
        clauses["available"] = f"available = {'true' if params.available else 'false'}"
    price = []
    if params.min_price is not None:
        price.append(f"price_usd_minor >= {int(params.min_price * 100)}")
    if params.max_price is not None:
        price.append(f"price_usd_minor <= {int(params.max_price * 100)}")
    if price:
        clauses["price"] = " AND ".join(price)
    if params.min_rating:
        clauses["rating"] = f"rating >= {params.min_rating}"

    def joined(without: str | None = None) -> str | None:
        parts = [f"({c})" for k, c in clauses.items() if k != without]
        return " AND ".join(parts) if parts else None

    sort = {
        "price_asc": ["price_usd_minor:asc"],
        "price_desc": ["price_usd_minor:desc"],
        "rating": ["rating:desc", "rating_count:desc"],
    }.get(params.sort, [])
    hits: dict[str, Any] = {
        "indexUid": index_uid, "q": params.q, "page": params.page,
        "hitsPerPage": params.per_page, "distinct": "group_id",
        "attributesToRetrieve": list(OFFER_CARD_FIELDS),
    }  # fmt: skip
    queries: list[dict[str, Any]] = [hits]
    for bound in ("asc", "desc"):
        queries.append(
            {"indexUid": index_uid, "q": params.q, "limit": 1,
             "sort": [f"price_usd_minor:{bound}"], "attributesToRetrieve": ["price_usd_minor"]}
        )  # fmt: skip
    shared = [f for f in ("marketplace", "category", "brand", "available") if f not in clauses]
    facet_queries = [(joined(), shared)] + [
        (joined(f), [f]) for f in ("marketplace", "category", "brand", "available") if f in clauses
    ]
    for query in queries:
        expression = joined("price") if query.get("limit") == 1 else joined()
        if expression:
            query["filter"] = expression
    for expression, facets in facet_queries:
        facet: dict[str, Any] = {
            "indexUid": index_uid,
            "q": params.q,
            "facets": facets,
            "page": 1,
            "hitsPerPage": 0,
            "distinct": "group_id",
        }
        if expression:
            facet["filter"] = expression
        queries.append(facet)
    if sort:
        hits["sort"] = sort
    return queries


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def cheapest_offers_query(index_uid: str, group_ids: list[str], params: Any) -> dict[str, Any]:
    """The second round trip `distinct` needs: each listed group's cheapest matching offer."""
    groups = "group_id IN [" + ", ".join(_quote(g) for g in group_ids) + "]"
    offer_filter = [groups]
    if params.marketplaces:
        offer_filter.append(
            "marketplace IN [" + ", ".join(_quote(m) for m in params.marketplaces) + "]"
        )
    if params.available:
        offer_filter.append("available = true")
    return {
        "indexUid": index_uid, "q": "", "filter": " AND ".join(offer_filter),
        "sort": ["price_usd_minor:asc"], "distinct": "group_id", "limit": len(group_ids) or 1,
        "attributesToRetrieve": list(OFFER_CARD_FIELDS),
    }  # fmt: skip


def _post(meili_url: str, api_key: str, queries: list[dict[str, Any]]) -> tuple[float, dict]:
    body = json.dumps({"queries": queries}, separators=(",", ":")).encode()
    parts = urlsplit(meili_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    began = time.perf_counter()
    try:
        connection.request(
            "POST", "/multi-search", body,
            {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        )  # fmt: skip
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    if response.status != 200:
        raise SystemExit(f"Meilisearch refused a comparison query: {answer}")
    return (time.perf_counter() - began) * 1000, answer


def compare_mechanisms(
    meili_url: str, api_key: str, index_uid: str, rounds: int
) -> list[tuple[str, float, float, int, int]]:
    """Per listing query: (query, product-index ms, distinct ms, products, distinct groups), the
    p50 over `rounds` interleaved rounds on one client (raw Meilisearch only)."""
    from search_index.listings import listing_plan
    from search_index.settings import group_index_uid

    rows = []
    for query in LISTING_QUERIES:
        params = listing_params(query)
        plan = listing_plan(group_index_uid(index_uid), params).queries
        alternative = distinct_plan(index_uid, params)
        product_ms: list[float] = []
        distinct_ms: list[float] = []
        products = groups = 0
        for _ in range(rounds):
            elapsed, answer = _post(meili_url, api_key, plan)
            product_ms.append(elapsed)
            products = int(answer["results"][0].get("totalHits") or 0)
            elapsed, answer = _post(meili_url, api_key, alternative)
            first = answer["results"][0]
            groups = int(first.get("totalHits") or 0)
            listed = [str(hit["group_id"]) for hit in first.get("hits", [])]
            extra, _ = _post(meili_url, api_key, [cheapest_offers_query(index_uid, listed, params)])
            distinct_ms.append(elapsed + extra)
        rows.append(
            (query, percentile(product_ms, 50), percentile(distinct_ms, 50), products, groups)
        )
    return rows


def comparison_report(
    rows: list[tuple[str, float, float, int, int]], context: dict[str, str]
) -> str:
    """The Markdown section recording the product index vs distinct measurement."""
    lines = [
        f"## Product listings: product index vs distinct — {context['when']}",
        "",
        f"{context['offers']} offers of the sandbox world (seed {SEED}) = {context['products']} "
        f"products; Meilisearch {context['meili']}; {context['machine']}; one client, raw "
        f"Meilisearch only, p50 of {COMPARE_ROUNDS} interleaved rounds per listing; load average "
        f"before: {context['load']}. Product index = the app's listing plan on `<index>_groups` "
        "(page, price range, in-stock count, disjunctive facets: one multi-search). Distinct = the "
        "same listing on the offers index with `distinct: group_id` on the page and every facet "
        "query, plus the second round trip it needs for each product's cheapest matching offer "
        "(distinct keeps the best-ranked offer, not the cheapest).",
        "",
        "| listing | product index ms | distinct ms | products | distinct groups |",
        "|---|---:|---:|---:|---:|",
    ]
    for query, product_ms, distinct_ms, products, groups in rows:
        lines.append(
            f"| `{query}` | {product_ms:.1f} | {distinct_ms:.1f} | {products:,} | {groups:,} |"
        )
    product_total = sum(r[1] for r in rows)
    distinct_total = sum(r[2] for r in rows)
    lines += [
        "",
        f"Sum over the {len(rows)} listings: product index {product_total:.0f} ms, distinct "
        f"{distinct_total:.0f} ms ({distinct_total / max(product_total, 0.001):.1f}×). "
        "Counts differ where the offer-level filters of `distinct` and the product-level "
        "filters of the product index disagree (price and rating filters apply to the cheapest "
        "matching offer and to the review-weighted product rating on the product index).",
        "",
    ]
    return "\n".join(lines)

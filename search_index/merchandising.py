"""The signed-in home page's featured rows: categories, best deals, price drops, top rated.

Categories, deals and top rated come from the product index (counts of products; a deal is a
product whose in-stock offers differ most in price; top rated orders by the review-weighted
Bayesian score); price drops come from the offers index, newest first, one per product.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import meilisearch

from search_index.cache import ResultCache
from search_index.client import run_multi_search
from search_index.documents import OFFER_FIELDS
from search_index.filters import withheld_marketplaces_clause
from search_index.listings import CARD_FIELDS, FacetValue, ProductHit, facet_query

# Price drops come from the index newest first (`price_dropped_at` is filterable and sortable);
# reading a few per featured card leaves room for several drops in one product group.
DROP_SCAN_PER_CARD: Final = 8
TOP_RATED_MIN_STARS: Final = 4


@dataclass(frozen=True, slots=True)
class Deal:
    """A product sold at very different prices: its cheapest offer and how much it saves."""

    hit: ProductHit
    highest_price_usd_minor: int
    saving_usd_minor: int

    @property
    def saving_percent(self) -> int:
        """The saving against the dearest offer, in whole percent (rounded down)."""
        if self.highest_price_usd_minor <= 0:
            return 0
        return self.saving_usd_minor * 100 // self.highest_price_usd_minor


@dataclass(frozen=True, slots=True)
class HomeShowcase:
    """What the signed-in home page features."""

    categories: list[FacetValue]
    best_deals: list[Deal]
    price_drops: list[ProductHit]
    top_rated: list[ProductHit]
    total_products: int


def pick_price_drops(documents: Iterable[Mapping[str, Any]], limit: int) -> list[ProductHit]:
    """Offers whose price fell (previous price above the current one), most recent drop first,
    one per product group."""
    dropped = []
    for document in documents:
        previous = document.get("previous_price_minor")
        current = document.get("price_minor")
        when = document.get("price_dropped_at")
        if not all(isinstance(v, int) for v in (previous, current, when)) or previous <= current:
            continue
        dropped.append((when, document))
    dropped.sort(key=lambda item: (-item[0], str(item[1].get("id"))))
    seen: set[str] = set()
    picked: list[ProductHit] = []
    for _when, document in dropped:
        hit = ProductHit.from_offer_document(document)
        if hit.group_id in seen:
            continue
        seen.add(hit.group_id)
        picked.append(hit)
        if len(picked) == limit:
            break
    return picked


def home_showcase(
    client: meilisearch.Client,
    offers_index_uid: str,
    products_index_uid: str,
    *,
    limit: int = 8,
    cache: ResultCache | None = None,
    withheld: Collection[str] = (),
) -> HomeShowcase:
    """Categories with product counts, best deals, recent price drops and top-rated products,
    in one multi-search round trip.

    `withheld` are the marketplaces an admin disabled: the product index already leaves their
    offers out (search_index.marketplace_visibility); the offers index, where price drops come
    from, still holds them, so the drops leave them out by filter (none disabled: no filter)."""
    drops_filter = "available = true AND price_dropped_at > 0"
    withheld_clause = withheld_marketplaces_clause(withheld)
    if withheld_clause:
        drops_filter += f" AND {withheld_clause}"
    queries = [
        facet_query(products_index_uid, "", None, ["category"]),
        {
            "indexUid": products_index_uid,
            "q": "",
            "filter": "available = true AND price_gap_usd_minor > 0",
            "sort": ["price_gap_usd_minor:desc"],
            "limit": limit,
            "attributesToRetrieve": [*CARD_FIELDS, "price_gap_usd_minor"],
        },
        {
            "indexUid": offers_index_uid,
            "q": "",
            # A numeric comparison skips the null `price_dropped_at` of offers that never fell.
            "filter": drops_filter,
            "sort": ["price_dropped_at:desc"],
            "limit": limit * DROP_SCAN_PER_CARD,
            "attributesToRetrieve": list(OFFER_FIELDS),
        },
        {
            "indexUid": products_index_uid,
            "q": "",
            "filter": f"available = true AND rating >= {TOP_RATED_MIN_STARS}",
            "sort": ["rating_score:desc", "rating_count:desc"],
            "limit": limit,
            "attributesToRetrieve": list(CARD_FIELDS),
        },
    ]
    categories_result, deals_result, drops_result, top_result = run_multi_search(
        client, queries, cache
    )
    distribution = (categories_result.get("facetDistribution") or {}).get("category") or {}
    categories = [
        FacetValue(value=value, count=int(count))
        for value, count in sorted(distribution.items(), key=lambda item: (-item[1], item[0]))
    ]
    deals: list[Deal] = []
    for document in deals_result.get("hits", []):
        hit = ProductHit.from_group_document(document, available_only=True)
        gap = int(document.get("price_gap_usd_minor") or 0)
        if hit is None or gap <= 0:
            continue
        highest = hit.offer.price_usd_minor + gap
        deals.append(Deal(hit=hit, highest_price_usd_minor=highest, saving_usd_minor=gap))
    top_rated = [
        hit
        for hit in (
            ProductHit.from_group_document(document, available_only=True)
            for document in top_result.get("hits", [])
        )
        if hit is not None
    ]
    price_drops = pick_price_drops(drops_result.get("hits", []), limit)
    return HomeShowcase(
        categories=categories,
        best_deals=deals,
        price_drops=price_drops,
        top_rated=top_rated,
        total_products=int(categories_result.get("totalHits") or 0),
    )

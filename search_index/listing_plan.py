"""What one product listing asks Meilisearch: the queries of its first multi-search, named.

Also what the benchmark sends to raw Meilisearch (bench/search_bench.py), so the two stay the
same request. Running the plan and reading the answers is search_index.listings.

The queries, all on the product index:
- the page of products: one query sorted by the product's price field, or, for a price sort with
  several marketplaces chosen, a count plus one stream per marketplace that
  search_index.price_order merges;
- the price range hint: the cheapest and the dearest product ignoring the price filter (two
  one-hit sorted queries, or streams again with several marketplaces);
- the in-stock count (and, with an availability filter, the count without it);
- facet counts, disjunctive: a facet is counted without its own filter, so the other choices
  stay visible;
- with a price filter, one count per marketplace: a product counts under a marketplace only when
  that marketplace's offer is in the price range (one facet query cannot say that: the facet
  would count a product under every marketplace selling it once any of its offers is in range).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from search_index.filters import (
    PriceScale,
    build_filter_clauses,
    in_stock_clause,
    join_clauses,
    price_fields,
    range_clause,
    sort_for,
    usd_price_bounds,
)
from search_index.groups import OFFER_CARD_FIELDS
from search_index.params import SearchParams
from search_index.price_order import BOUND_DEPTH, PRICE_FIELDS, PriceOrder

# What a listing card needs from a product document: of the offer summaries, only what picks
# and shows the cheapest matching offer (the answer is parsed on every listing).
PRODUCT_CARD_FIELDS: Final = (
    "id",
    "title",
    "brand",
    "category",
    "image_url",
    "offer_count",
    "marketplace_count",
    "available_offer_count",
    "available_marketplace_count",
    "rating",
    "rating_count",
)
CARD_FIELDS: Final = (
    *PRODUCT_CARD_FIELDS,
    *(f"offers.{name}" for name in OFFER_CARD_FIELDS),
)
# Without a marketplace filter the card's offer is the one the document names (`shown_offer`,
# search_index.groups): the answer carries one offer per product instead of all of them.
SHOWN_OFFER_CARD_FIELDS: Final = (*PRODUCT_CARD_FIELDS, "shown_offer")

# The facet attributes counted for each filter dimension.
FACETS_OF: Final[Mapping[str, tuple[str, ...]]] = {
    "marketplace": ("marketplaces",),
    "category": ("category",),
    "brand": ("brand",),
    "rating": ("rating_stars", "rated"),
}


def facet_query(
    index_uid: str, q: str, filter_expression: str | None, facets: Iterable[str]
) -> dict[str, Any]:
    """A count-only query: exact totalHits and the facet distributions asked for."""
    query: dict[str, Any] = {
        "indexUid": index_uid,
        "q": q,
        "facets": list(facets),
        # page/hitsPerPage (not limit) so totalHits is exact rather than estimated.
        "page": 1,
        "hitsPerPage": 0,
    }
    if filter_expression:
        query["filter"] = filter_expression
    return query


def _price_bound_query(
    index_uid: str, q: str, filter_expression: str | None, price_field: str, direction: str
) -> dict[str, Any]:
    query: dict[str, Any] = {
        "indexUid": index_uid,
        "q": q,
        "limit": 1,
        "sort": [f"{price_field}:{direction}"],
        "attributesToRetrieve": [price_field.split(".")[0]],
    }
    if filter_expression:
        query["filter"] = filter_expression
    return query


@dataclass(frozen=True, slots=True)
class Streams:
    """Where one merged ordering's streams sit in the plan, and how deep they read."""

    order: PriceOrder
    first: int
    depth: int
    wanted: int
    filter_expression: str | None
    fields: tuple[str, ...]
    with_matches: bool

    @property
    def positions(self) -> range:
        return range(self.first, self.first + len(self.order.marketplaces))

    def queries(self, index_uid: str, q: str, depth: int) -> list[dict[str, Any]]:
        return self.order.streams(
            index_uid,
            q,
            self.filter_expression,
            depth=depth,
            fields=self.fields,
            with_matches=self.with_matches,
        )


@dataclass(frozen=True, slots=True)
class ListingPlan:
    """The first multi-search of a listing, with the position of each kind of query.

    `hits_at` is the page query, or the products count when `page_streams` merges the page;
    `price_field` is the field the one-hit range queries (`low_at`, `high_at`) read, or None
    when `low_streams`/`high_streams` give the range. `market_counts` are (marketplace, position)
    of the per-marketplace counts under a price filter (they replace the marketplace facet).
    """

    index_uid: str
    q: str
    queries: list[dict[str, Any]]
    hits_at: int
    page_streams: Streams | None
    price_field: str | None
    low_at: int | None
    high_at: int | None
    low_streams: Streams | None
    high_streams: Streams | None
    count_at: list[int]
    facet_at: list[tuple[int, list[str]]]
    market_counts: list[tuple[str, int]] = field(default_factory=list)
    market_count_attribute: str = "marketplaces"


def listing_plan(
    index_uid: str,
    params: SearchParams,
    scale: PriceScale = PriceScale(),
    *,
    marketplaces: Sequence[str] = (),
    shown_offer: bool = True,
) -> ListingPlan:
    """The exact first multi-search of a listing on the product index `index_uid`.

    `marketplaces` are those the marketplace facet may show; they are needed (only) to count
    each marketplace under a price filter. Without a marketplace filter the page's products
    carry their `shown_offer` rather than every offer (`shown_offer=False`: every offer, for a
    product index built before documents had it). Facets no filter touches are counted in one query
    under the full filter; a facet that is itself filtered is counted without its own clause.
    The marketplace facet under "in stock only" counts products in stock on each marketplace.
    The price range ignores the price filter.
    """
    clauses = build_filter_clauses(params, scale)
    full_filter = join_clauses(clauses)
    without_price = join_clauses(clauses, without="price")
    queries: list[dict[str, Any]] = []
    fields = price_fields(params)
    available_only = params.available is True
    several = len(fields) > 1

    page_streams = None
    hits_at = 0
    if several and params.sort in ("price_asc", "price_desc"):
        order = PriceOrder(
            params.marketplaces,
            available_only,
            params.sort == "price_desc",
            stocked_first=params.available is None,
        )
        wanted = params.page * params.per_page
        page_streams = Streams(
            order,
            first=1,
            depth=wanted,
            wanted=wanted,
            filter_expression=full_filter,
            fields=CARD_FIELDS,
            with_matches=True,
        )
        # The count (and the pages) come from a count-only query under the same filter.
        queries.append(facet_query(index_uid, params.q, full_filter, []))
        queries.extend(page_streams.queries(index_uid, params.q, wanted))
    else:
        hits_query: dict[str, Any] = {
            "indexUid": index_uid,
            "q": params.q,
            "page": params.page,
            "hitsPerPage": params.per_page,
            "attributesToRetrieve": list(
                SHOWN_OFFER_CARD_FIELDS if shown_offer and not params.marketplaces else CARD_FIELDS
            ),
        }
        if params.q:
            hits_query["showMatchesPosition"] = True
        if full_filter:
            hits_query["filter"] = full_filter
        sort = sort_for(params)
        if sort:
            hits_query["sort"] = sort
        queries.append(hits_query)

    price_field = low_at = high_at = None
    low_streams = high_streams = None
    if several:
        for descending in (False, True):
            order = PriceOrder(params.marketplaces, available_only, descending)
            depth = BOUND_DEPTH if descending else 1
            streams = Streams(order, len(queries), depth, 1, without_price, PRICE_FIELDS, False)
            queries.extend(streams.queries(index_uid, params.q, depth))
            if descending:
                high_streams = streams
            else:
                low_streams = streams
    else:
        price_field = fields[0]
        low_at, high_at = len(queries), len(queries) + 1
        queries.append(_price_bound_query(index_uid, params.q, without_price, price_field, "asc"))
        queries.append(_price_bound_query(index_uid, params.q, without_price, price_field, "desc"))

    without_available = join_clauses(clauses, without="available")
    stocked = in_stock_clause(params.marketplaces)
    if without_available:
        stocked = f"({without_available}) AND ({stocked})"
    count_at = [len(queries)]
    queries.append(facet_query(index_uid, params.q, stocked, []))
    if params.available is not None:
        count_at.append(len(queries))
        queries.append(facet_query(index_uid, params.q, without_available, []))

    per_market = "price" in clauses
    dims = [dim for dim in FACETS_OF if not (per_market and dim == "marketplace")]
    shared = [dim for dim in dims if dim not in clauses]
    separate = [dim for dim in dims if dim in clauses]
    facet_at: list[tuple[int, list[str]]] = []
    if shared:
        attributes = [attribute for dim in shared for attribute in _facet_attributes(dim, params)]
        facet_at.append((len(queries), attributes))
        queries.append(facet_query(index_uid, params.q, full_filter, attributes))
    for dim in separate:
        attributes = list(_facet_attributes(dim, params))
        facet_at.append((len(queries), attributes))
        queries.append(facet_query(index_uid, params.q, _without(clauses, dim, params), attributes))

    market_counts: list[tuple[str, int]] = []
    if per_market:
        low, high = usd_price_bounds(params, scale)
        rest = {k: v for k, v in clauses.items() if k not in ("marketplace", "price", "available")}
        if params.available is False:
            rest["available"] = f"NOT ({in_stock_clause(())})"
        base = join_clauses(rest)
        chosen = set(params.marketplaces)
        for slug in sorted(set(marketplaces) | chosen):
            # The marketplace's own offer in range (in stock there under "in stock only").
            own = range_clause(PriceOrder((slug,), available_only, False).field(slug), low, high)
            market_counts.append((slug, len(queries)))
            queries.append(
                facet_query(index_uid, params.q, f"({base}) AND ({own})" if base else own, [])
            )
    return ListingPlan(
        index_uid=index_uid,
        q=params.q,
        queries=queries,
        hits_at=hits_at,
        page_streams=page_streams,
        price_field=price_field,
        low_at=low_at,
        high_at=high_at,
        low_streams=low_streams,
        high_streams=high_streams,
        count_at=count_at,
        facet_at=facet_at,
        market_counts=market_counts,
        market_count_attribute="available_marketplaces" if available_only else "marketplaces",
    )


def _facet_attributes(dim: str, params: SearchParams) -> tuple[str, ...]:
    if dim == "marketplace" and params.available is True:
        return ("available_marketplaces",)
    return FACETS_OF[dim]


def _without(clauses: Mapping[str, str], dim: str, params: SearchParams) -> str | None:
    """The filter without one dimension's clause; without the marketplace clause, the
    availability clause no longer names the chosen marketplaces either."""
    if dim != "marketplace" or "available" not in clauses:
        return join_clauses(clauses, without=dim)
    rest = {k: v for k, v in clauses.items() if k not in ("marketplace", "available")}
    rest["available"] = in_stock_clause(()) if params.available else f"NOT ({in_stock_clause(())})"
    return join_clauses(rest)


def needs_marketplaces(params: SearchParams) -> bool:
    """Whether the plan counts each marketplace on its own (a price filter is set)."""
    return params.min_price is not None or params.max_price is not None


__all__ = [
    "CARD_FIELDS",
    "FACETS_OF",
    "OFFER_CARD_FIELDS",
    "PRODUCT_CARD_FIELDS",
    "SHOWN_OFFER_CARD_FIELDS",
    "ListingPlan",
    "Streams",
    "facet_query",
    "listing_plan",
    "needs_marketplaces",
]

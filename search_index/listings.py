"""Product listings: one card per product, counted in products, from the product index.

A listing is one multi-search on the `<index>_groups` index (search_index.groups): the page of
products, the price range (two one-hit sorted queries), the facet counts (disjunctive: a facet
is counted without its own filter, so the other choices stay visible) and the in-stock count.
Every count is a count of products. Each card shows the product's cheapest offer that matches the
filters, picked from the document's offer summary by the same rule the index's price fields
follow, so the shown price, the price filter and the price sort agree.

Why a product index and not `distinct` on the offers index: measured on 100,000 offers (bench/
RESULTS.md, "Product listings: product index vs distinct"), `distinct` costs several times more
per listing, and its card would be the best-ranked offer rather than the cheapest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import meilisearch

from search_index.cache import ResultCache
from search_index.client import run_multi_search
from search_index.documents import OFFER_FIELDS, OfferDocument
from search_index.filters import (
    FACET_FIELDS,
    PriceScale,
    build_filter_clauses,
    in_stock_clause,
    join_clauses,
    price_fields,
    quote_filter_value,
    sort_for,
)
from search_index.groups import cheapest_matching_offer, market_key
from search_index.params import SearchParams

USD: Final = "USD"
RATING_STARS: Final = (4, 3, 2, 1)

# What a listing card needs from a product document: of the offer summaries, only what picks
# and shows the cheapest matching offer (the answer is parsed on every listing).
OFFER_CARD_FIELDS: Final = (
    "id",
    "marketplace",
    "marketplace_name",
    "marketplace_logo",
    "price_minor",
    "currency",
    "price_usd_minor",
    "available",
)
CARD_FIELDS: Final = (
    "id",
    "title",
    "brand",
    "category",
    "image_url",
    "offer_count",
    "marketplace_count",
    "rating",
    "rating_count",
    *(f"offers.{name}" for name in OFFER_CARD_FIELDS),
)


def _optional_int(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _optional_rating(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        rating = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        return None
    return rating.quantize(Decimal("0.1")) if rating.is_finite() else None


@dataclass(frozen=True, slots=True)
class ShownOffer:
    """The offer a card shows (the cheapest matching one): where, and at what price."""

    id: str
    marketplace: str
    marketplace_name: str
    marketplace_logo: str | None
    price_minor: int
    currency: str
    price_usd_minor: int
    available: bool
    previous_price_minor: int | None = None

    @classmethod
    def from_mapping(cls, offer: Mapping[str, Any]) -> ShownOffer:
        """From an offer summary of a product document, or an offer document."""
        return cls(
            id=str(offer.get("id") or ""),
            marketplace=str(offer.get("marketplace") or ""),
            marketplace_name=str(offer.get("marketplace_name") or offer.get("marketplace") or ""),
            marketplace_logo=offer.get("marketplace_logo") or None,
            price_minor=_optional_int(offer.get("price_minor")) or 0,
            currency=str(offer.get("currency") or USD),
            price_usd_minor=_optional_int(offer.get("price_usd_minor")) or 0,
            available=bool(offer.get("available", True)),
            previous_price_minor=_optional_int(offer.get("previous_price_minor")),
        )


@dataclass(frozen=True, slots=True)
class ProductHit:
    """One product as a listing card shows it (plain data; money in integer minor units).

    `title_matches` are the (start, length) UTF-8 byte ranges of the title that matched the
    query (Meilisearch's `_matchesPosition`); the storefront highlights them after escaping.
    Positions rather than `_formatted`, which would repeat every retrieved field in the answer.
    """

    group_id: str
    title: str
    title_matches: tuple[tuple[int, int], ...]
    brand: str | None
    category: str | None
    image_url: str | None
    offer_count: int
    marketplace_count: int
    rating: Decimal | None
    rating_count: int
    offer: ShownOffer

    @property
    def has_other_offers(self) -> bool:
        """Sold more than once: the card says "N offers on M marketplaces"."""
        return self.offer_count > 1

    @classmethod
    def from_group_document(
        cls,
        document: Mapping[str, Any],
        *,
        marketplaces: Iterable[str] = (),
        available_only: bool = False,
    ) -> ProductHit | None:
        """A card from a product document, showing its cheapest offer under the filters (None
        when no offer matches, which the filters rule out for listed products)."""
        offers = document.get("offers") or []
        chosen = cheapest_matching_offer(
            offers, marketplaces=marketplaces, available_only=available_only
        )
        if chosen is None:
            chosen = cheapest_matching_offer(offers)
        if chosen is None:
            return None
        title = str(document.get("title") or "")
        return cls(
            group_id=str(document.get("id") or ""),
            title=title,
            title_matches=_title_matches(document),
            brand=document.get("brand") or None,
            category=document.get("category") or None,
            image_url=document.get("image_url") or None,
            offer_count=_optional_int(document.get("offer_count")) or len(offers),
            marketplace_count=_optional_int(document.get("marketplace_count")) or 1,
            rating=_optional_rating(document.get("rating")),
            rating_count=_optional_int(document.get("rating_count")) or 0,
            offer=ShownOffer.from_mapping(chosen),
        )

    @classmethod
    def from_offer_document(cls, document: OfferDocument | Mapping[str, Any]) -> ProductHit:
        """A card for one offer document (home page price drops): its product's counts and
        this offer's own rating."""
        title = str(document.get("title") or "")
        return cls(
            group_id=str(document.get("group_id") or document.get("id") or ""),
            title=title,
            title_matches=(),
            brand=document.get("brand") or None,
            category=document.get("category") or None,
            image_url=document.get("image_url") or None,
            offer_count=_optional_int(document.get("group_size")) or 1,
            marketplace_count=_optional_int(document.get("group_marketplaces")) or 1,
            rating=_optional_rating(document.get("rating")),
            rating_count=_optional_int(document.get("rating_count")) or 0,
            offer=ShownOffer.from_mapping(document),
        )


def _title_matches(document: Mapping[str, Any]) -> tuple[tuple[int, int], ...]:
    positions = (document.get("_matchesPosition") or {}).get("title") or []
    matches = []
    for position in positions:
        start, length = position.get("start"), position.get("length")
        if isinstance(start, int) and isinstance(length, int) and start >= 0 and length > 0:
            matches.append((start, length))
    return tuple(sorted(matches))


@dataclass(frozen=True, slots=True)
class FacetValue:
    """One value of a facet with how many products carry it, and whether it is selected."""

    value: str
    count: int
    selected: bool = False


@dataclass(frozen=True, slots=True)
class SearchPage:
    """What a listing page shows: products, counts, facets and the price range of the result."""

    params: SearchParams
    hits: list[ProductHit]
    total_hits: int
    page: int
    total_pages: int
    facets: dict[str, list[FacetValue]]
    price_min_usd_minor: int | None
    price_max_usd_minor: int | None
    processing_ms: int
    corrections: tuple[str, ...] = field(default=())

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.total_pages

    def page_numbers(self, window: int = 2) -> list[int | None]:
        """Page links around the current one, with None where a gap ("…") goes."""
        if self.total_pages <= 1:
            return [1] if self.total_pages == 1 else []
        shown = {1, self.total_pages, *range(self.page - window, self.page + window + 1)}
        numbers = sorted(n for n in shown if 1 <= n <= self.total_pages)
        result: list[int | None] = []
        previous = 0
        for number in numbers:
            if number - previous > 1:
                result.append(None)
            result.append(number)
            previous = number
        return result


# --- The plan ----------------------------------------------------------------------------------


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


# The facet attributes counted for each filter dimension.
_FACETS_OF: Final[Mapping[str, tuple[str, ...]]] = {
    "marketplace": ("marketplaces",),
    "category": ("category",),
    "brand": ("brand",),
    "rating": ("rating_stars", "rated"),
}


@dataclass(frozen=True, slots=True)
class ListingPlan:
    """The multi-search one listing sends, in this order: the page of products, the cheapest
    and the dearest product (the price range), the in-stock count (and, with an availability
    filter, the count without it), then the facet queries with the attributes each counts."""

    queries: list[dict[str, Any]]
    price_field: str
    count_queries: int
    facet_attributes: list[list[str]]


def listing_plan(
    index_uid: str, params: SearchParams, scale: PriceScale = PriceScale()
) -> ListingPlan:
    """The exact Meilisearch queries of a listing (also what the benchmark sends to raw
    Meilisearch). `index_uid` is the product index.

    Facets no filter touches are counted in one query under the full filter; a facet that is
    itself filtered is counted without its own clause. The marketplace facet under "in stock
    only" counts products in stock on each marketplace. The price range ignores the price filter.
    """
    clauses = build_filter_clauses(params, scale)
    full_filter = join_clauses(clauses)
    hits_query: dict[str, Any] = {
        "indexUid": index_uid,
        "q": params.q,
        "page": params.page,
        "hitsPerPage": params.per_page,
        "attributesToRetrieve": list(CARD_FIELDS),
    }
    if params.q:
        hits_query["showMatchesPosition"] = True
    if full_filter:
        hits_query["filter"] = full_filter
    sort = sort_for(params)
    if sort:
        hits_query["sort"] = sort
    fields = price_fields(params)
    # With several marketplaces the range comes from the overall price (see sort_for).
    price_field = fields[0] if len(fields) == 1 else price_fields(SearchParams())[0]
    without_price = join_clauses(clauses, without="price")
    queries = [
        hits_query,
        _price_bound_query(index_uid, params.q, without_price, price_field, "asc"),
        _price_bound_query(index_uid, params.q, without_price, price_field, "desc"),
    ]
    without_available = join_clauses(clauses, without="available")
    stocked = f"({without_available}) AND ({in_stock_clause(params.marketplaces)})"
    queries.append(
        facet_query(
            index_uid,
            params.q,
            stocked if without_available else in_stock_clause(params.marketplaces),
            [],
        )
    )
    count_queries = 1
    if params.available is not None:
        queries.append(facet_query(index_uid, params.q, without_available, []))
        count_queries = 2
    shared = [dim for dim in _FACETS_OF if dim not in clauses]
    separate = [dim for dim in _FACETS_OF if dim in clauses]
    facet_attributes: list[list[str]] = []
    if shared:
        attributes = [attribute for dim in shared for attribute in _facet_attributes(dim, params)]
        queries.append(facet_query(index_uid, params.q, full_filter, attributes))
        facet_attributes.append(attributes)
    for dim in separate:
        without_own = _without(clauses, dim, params)
        attributes = list(_facet_attributes(dim, params))
        queries.append(facet_query(index_uid, params.q, without_own, attributes))
        facet_attributes.append(attributes)
    return ListingPlan(
        queries=queries,
        price_field=price_field,
        count_queries=count_queries,
        facet_attributes=facet_attributes,
    )


def _facet_attributes(dim: str, params: SearchParams) -> tuple[str, ...]:
    if dim == "marketplace" and params.available is True:
        return ("available_marketplaces",)
    return _FACETS_OF[dim]


def _without(clauses: Mapping[str, str], dim: str, params: SearchParams) -> str | None:
    """The filter without one dimension's clause; without the marketplace clause, the
    availability clause no longer names the chosen marketplaces either."""
    if dim != "marketplace" or "available" not in clauses:
        return join_clauses(clauses, without=dim)
    rest = {k: v for k, v in clauses.items() if k not in ("marketplace", "available")}
    rest["available"] = in_stock_clause(()) if params.available else f"NOT ({in_stock_clause(())})"
    return join_clauses(rest)


# --- Running it --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _ListingAnswer:
    """Meilisearch's answer to one listing plan, parsed once (and cached in that form)."""

    documents: list[dict[str, Any]]
    total_hits: int
    total_pages: int
    in_stock: int
    without_availability: int
    distributions: dict[str, dict[str, int]]
    price_min_usd_minor: int | None
    price_max_usd_minor: int | None
    processing_ms: int


def _price_of(document: Mapping[str, Any], price_field: str) -> int | None:
    value: Any = document
    for part in price_field.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return _optional_int(value)


def _fetch_listing(
    client: meilisearch.Client, plan: ListingPlan, cache: ResultCache | None
) -> _ListingAnswer:
    key = json.dumps({"listing": plan.queries}, separators=(",", ":")).encode()
    if cache is not None:
        cached = cache.get(key)
        if cached is not None:
            return cached
    results = run_multi_search(client, plan.queries)
    hits_result, low, high = results[0], results[1], results[2]
    counts = results[3 : 3 + plan.count_queries]
    facets = results[3 + plan.count_queries :]
    distributions: dict[str, dict[str, int]] = {}
    for result, attributes in zip(facets, plan.facet_attributes, strict=True):
        for attribute in attributes:
            distribution = (result.get("facetDistribution") or {}).get(attribute) or {}
            distributions[attribute] = {str(k): int(v) for k, v in distribution.items()}
    total = int(hits_result.get("totalHits") or 0)
    answer = _ListingAnswer(
        documents=list(hits_result.get("hits", [])),
        total_hits=total,
        total_pages=int(hits_result.get("totalPages") or 0),
        in_stock=int(counts[0].get("totalHits") or 0),
        without_availability=int(counts[1].get("totalHits") or 0) if len(counts) > 1 else total,
        distributions=distributions,
        price_min_usd_minor=_bound(low, plan.price_field),
        price_max_usd_minor=_bound(high, plan.price_field),
        processing_ms=sum(int(r.get("processingTimeMs") or 0) for r in results),
    )
    if cache is not None:
        cache.put(key, answer)
    return answer


def _bound(result: Mapping[str, Any], price_field: str) -> int | None:
    hits = result.get("hits") or []
    return _price_of(hits[0], price_field) if hits else None


def _facet_values(
    counts: Mapping[str, int], chosen: set[str], *, order: Sequence[str] | None = None
) -> list[FacetValue]:
    merged = dict(counts)
    for value in chosen:
        merged.setdefault(value, 0)  # a chosen value with no products stays un-selectable
    if order is not None:
        items = [(value, merged.get(value, 0)) for value in order]
    else:
        items = sorted(merged.items(), key=lambda item: (-item[1], item[0].lower()))
    return [FacetValue(value=v, count=c, selected=v in chosen) for v, c in items]


def search_products(
    client: meilisearch.Client,
    index_uid: str,
    params: SearchParams,
    *,
    scale: PriceScale = PriceScale(),
    cache: ResultCache | None = None,
) -> SearchPage:
    """Run one listing on the product index `index_uid`: a page of products with the cheapest
    matching offer each, product counts, disjunctive facets and the price range, in one
    multi-search request.

    With a `cache`, the parsed answer is reused for identical listings. A page past the last one
    is corrected to the last page (one extra request, only then).
    """
    answer = _fetch_listing(client, listing_plan(index_uid, params, scale), cache)
    if answer.total_pages and params.page > answer.total_pages:
        note = f"There are only {answer.total_pages} pages; showing the last one."
        params = replace(params, page=answer.total_pages, corrections=(*params.corrections, note))
        answer = _fetch_listing(client, listing_plan(index_uid, params, scale), cache)

    facets: dict[str, list[FacetValue]] = {}
    for facet, attribute in FACET_FIELDS.items():
        source = attribute
        if facet == "marketplace" and params.available is True:
            source = "available_marketplaces"
        facets[facet] = _facet_values(
            answer.distributions.get(source, {}), set(params.selected(facet))
        )
    chosen_availability = set()
    if params.available is not None:
        chosen_availability = {"true" if params.available else "false"}
    facets["available"] = _facet_values(
        {
            "true": answer.in_stock,
            "false": max(answer.without_availability - answer.in_stock, 0),
        },
        chosen_availability,
        order=("true", "false"),
    )
    stars = answer.distributions.get("rating_stars", {})
    facets["rating"] = [
        FacetValue(
            value=str(minimum),
            count=sum(int(count) for value, count in stars.items() if int(value) >= minimum),
            selected=params.min_rating == minimum,
        )
        for minimum in RATING_STARS
    ]
    facets["rating"].append(
        FacetValue(
            value="unrated",
            count=answer.distributions.get("rated", {}).get("false", 0),
            selected=params.unrated,
        )
    )

    available_only = params.available is True
    hits = []
    for document in answer.documents:
        hit = ProductHit.from_group_document(
            document, marketplaces=params.marketplaces, available_only=available_only
        )
        if hit is not None:
            hits.append(hit)
    return SearchPage(
        params=params,
        hits=hits,
        total_hits=answer.total_hits,
        page=params.page,
        total_pages=answer.total_pages,
        facets=facets,
        price_min_usd_minor=answer.price_min_usd_minor,
        price_max_usd_minor=answer.price_max_usd_minor,
        processing_ms=answer.processing_ms,
        corrections=params.corrections,
    )


# --- One product group -------------------------------------------------------------------------

MAX_GROUP_OFFERS: Final = 100


def offers_in_group(
    client: meilisearch.Client, index_uid: str, group_id: str
) -> list[OfferDocument]:
    """Every offer document of one product group in the offers index, cheapest (in USD) first.

    The product page reads offers from the storefront DB when it has them; this is its source
    when the DB sync has not run yet.
    """
    query = {
        "indexUid": index_uid,
        "q": "",
        "filter": f"group_id = {quote_filter_value(group_id)}",
        "sort": ["price_usd_minor:asc"],
        "limit": MAX_GROUP_OFFERS,
        "attributesToRetrieve": list(OFFER_FIELDS),
    }
    result = run_multi_search(client, [query])[0]
    return [OfferDocument(**hit) for hit in result.get("hits", [])]  # type: ignore[typeddict-item]


__all__ = [
    "FacetValue",
    "ListingPlan",
    "ProductHit",
    "SearchPage",
    "ShownOffer",
    "listing_plan",
    "market_key",
    "offers_in_group",
    "search_products",
]

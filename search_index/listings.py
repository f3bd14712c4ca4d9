"""Product listings: one card per product, counted in products, from the product index.

A listing is one multi-search on the `<index>_groups` index (search_index.groups), planned by
search_index.listing_plan: the page of products, the price range, the facet counts and the
in-stock count. Every count is a count of products. Each card shows the product's cheapest offer
that matches the filters, picked from the document's offer summary by the same rule the index's
price fields follow, so the shown price, the price filter, the price sort and the facet counts
under a price filter agree. A price sort over several chosen marketplaces merges one stream per
marketplace (search_index.price_order).

Why a product index and not `distinct` on the offers index: measured on 100,000 offers (bench/
RESULTS.md, "Product listings: product index vs distinct"), `distinct` costs several times more
per listing, and its card would be the best-ranked offer rather than the cheapest.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Final, NamedTuple

import meilisearch

from search_index.cache import ResultCache
from search_index.client import request_body, run_multi_search
from search_index.documents import OFFER_FIELDS, OfferDocument
from search_index.filters import (
    FACET_FIELDS,
    PriceScale,
    quote_filter_value,
    withheld_marketplaces_clause,
)
from search_index.groups import cheapest_matching_offer, market_key
from search_index.listing_plan import (
    CARD_FIELDS,
    OFFER_CARD_FIELDS,
    ListingPlan,
    Streams,
    facet_query,
    listing_plan,
    needs_marketplaces,
)
from search_index.params import MAX_TOTAL_HITS, SearchParams, deep_page_note, max_page_for
from search_index.price_order import merge, next_depth

USD: Final = "USD"
RATING_STARS: Final = (4, 3, 2, 1)
RATING_STEP: Final = Decimal("0.1")  # a rating is shown to one decimal (made once, not per card)


def hit_int(value: object) -> int | None:
    """An integer field of a search hit: an int, or an integral float as JSON may carry it;
    None for anything else (missing, a bool, a fraction, text)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def offers_summary(
    offer_count: int,
    marketplace_count: int,
    available_offers: int | None = None,
    available_marketplaces: int | None = None,
) -> str:
    """How many offers a product has, as the listing card, the product page and the assistant
    say it: the offers a shopper can buy now and their marketplaces, then the ones listed but
    unavailable ("2 offers in stock on 2 marketplaces, 1 unavailable"); "3 offers on 2
    marketplaces" when every offer can be bought, "3 offers, none in stock" when none can.

    The available counts are the product document's (search_index.groups); None (a document
    built before it carried them) counts every offer as available, as the cards then did."""
    if available_offers is None or available_offers >= offer_count:
        return f"{_counted(offer_count, 'offer')} on {_counted(marketplace_count, 'marketplace')}"
    if available_offers <= 0:
        return (
            "1 offer, not in stock" if offer_count == 1 else f"{offer_count} offers, none in stock"
        )
    markets = available_marketplaces if available_marketplaces is not None else marketplace_count
    return (
        f"{_counted(available_offers, 'offer')} in stock on {_counted(markets, 'marketplace')}, "
        f"{offer_count - available_offers} unavailable"
    )


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _optional_rating(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        rating = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        return None
    return rating.quantize(RATING_STEP) if rating.is_finite() else None


# The two records below are built for every card of every listing: NamedTuples, which Python
# builds in one step, where a frozen dataclass sets each field through object.__setattr__ (that
# was ~8% of a listing page's instructions, bench/RESULTS.md "The interpreter, context proxies
# and card records"). Immutable either way.


class ShownOffer(NamedTuple):
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
            price_minor=hit_int(offer.get("price_minor")) or 0,
            currency=str(offer.get("currency") or USD),
            price_usd_minor=hit_int(offer.get("price_usd_minor")) or 0,
            available=bool(offer.get("available", True)),
            previous_price_minor=hit_int(offer.get("previous_price_minor")),
        )


class ProductHit(NamedTuple):
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
    # A marketplace filter left out a cheaper offer of this product: the card's offer is the
    # cheapest of the chosen marketplaces, not the cheapest anywhere.
    cheaper_elsewhere: bool = False
    # Of `offer_count` and `marketplace_count`, those a shopper can buy now (the product
    # document's counts); None for a document built before it carried them.
    available_offer_count: int | None = None
    available_marketplace_count: int | None = None

    @property
    def offers_text(self) -> str:
        """ "2 offers in stock on 2 marketplaces, 1 unavailable" (offers_summary)."""
        return offers_summary(
            self.offer_count,
            self.marketplace_count,
            self.available_offer_count,
            self.available_marketplace_count,
        )

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
        when no offer matches, which the filters rule out for listed products). Without a
        marketplace filter that is the document's `shown_offer` when it carries one."""
        offers = document.get("offers") or []
        chosen = None if marketplaces else document.get("shown_offer")
        if chosen is None:
            chosen = cheapest_matching_offer(
                offers, marketplaces=marketplaces, available_only=available_only
            )
        if chosen is None:
            chosen = cheapest_matching_offer(offers)
        if chosen is None:
            return None
        cheaper_elsewhere = False
        if marketplaces:
            anywhere = cheapest_matching_offer(offers, available_only=available_only)
            cheaper_elsewhere = anywhere is not None and int(anywhere["price_usd_minor"]) < int(
                chosen["price_usd_minor"]
            )
        title = str(document.get("title") or "")
        return cls(
            group_id=str(document.get("id") or ""),
            title=title,
            title_matches=_title_matches(document),
            brand=document.get("brand") or None,
            category=document.get("category") or None,
            image_url=document.get("image_url") or None,
            offer_count=hit_int(document.get("offer_count")) or len(offers),
            marketplace_count=hit_int(document.get("marketplace_count")) or 1,
            rating=_optional_rating(document.get("rating")),
            rating_count=hit_int(document.get("rating_count")) or 0,
            offer=ShownOffer.from_mapping(chosen),
            cheaper_elsewhere=cheaper_elsewhere,
            available_offer_count=hit_int(document.get("available_offer_count")),
            available_marketplace_count=hit_int(document.get("available_marketplace_count")),
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
            offer_count=hit_int(document.get("group_size")) or 1,
            marketplace_count=hit_int(document.get("group_marketplaces")) or 1,
            rating=_optional_rating(document.get("rating")),
            rating_count=hit_int(document.get("rating_count")) or 0,
            offer=ShownOffer.from_mapping(document),
            available_offer_count=hit_int(document.get("group_available")),
            available_marketplace_count=hit_int(document.get("group_available_marketplaces")),
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
    return hit_int(value)


def _merged(
    client: meilisearch.Client,
    plan: ListingPlan,
    streams: Streams,
    results: Sequence[Mapping[str, Any]],
) -> tuple[list[dict[str, Any]], int]:
    """The first `wanted` products of a merged ordering, reading deeper while unsettled.

    Returns them and the Meilisearch processing time of the extra rounds.
    """
    depth = streams.depth
    hits = [list(results[i].get("hits") or []) for i in streams.positions]
    extra_ms = 0
    while True:
        merged = merge(streams.order, hits, depth=depth, wanted=streams.wanted)
        if merged.settled:
            return merged.hits, extra_ms
        depth = next_depth(depth)
        deeper = run_multi_search(client, streams.queries(plan.index_uid, plan.q, depth))
        hits = [list(result.get("hits") or []) for result in deeper]
        extra_ms += sum(int(r.get("processingTimeMs") or 0) for r in deeper)


def _merged_price(
    client: meilisearch.Client,
    plan: ListingPlan,
    streams: Streams | None,
    results: Sequence[Mapping[str, Any]],
) -> tuple[int | None, int]:
    if streams is None:
        return None, 0
    top, extra_ms = _merged(client, plan, streams, results)
    if not top:
        return None, extra_ms
    order = streams.order
    offer = cheapest_matching_offer(
        top[0].get("offers") or [],
        marketplaces=order.marketplaces,
        available_only=order.available_only,
    )
    return (hit_int(offer.get("price_usd_minor")) if offer else None), extra_ms


def _fetch_listing(
    client: meilisearch.Client,
    plan: ListingPlan,
    per_page: int,
    cache: ResultCache | None,
    while_waiting: Callable[[], object] | None = None,
) -> _ListingAnswer:
    key = b"listing:" + request_body(plan.queries) if cache is not None else b""
    if cache is not None:
        cached = cache.get(key)
        if cached is not None:
            if while_waiting is not None:
                while_waiting()
            return cached
    results = run_multi_search(client, plan.queries, while_waiting=while_waiting)
    processing_ms = sum(int(r.get("processingTimeMs") or 0) for r in results)
    distributions: dict[str, dict[str, int]] = {}
    for position, attributes in plan.facet_at:
        for attribute in attributes:
            distribution = (results[position].get("facetDistribution") or {}).get(attribute) or {}
            distributions[attribute] = {str(k): int(v) for k, v in distribution.items()}
    if plan.market_counts:
        distributions[plan.market_count_attribute] = {
            slug: count
            for slug, position in plan.market_counts
            if (count := int(results[position].get("totalHits") or 0))
        }
    hits_result = results[plan.hits_at]
    total = int(hits_result.get("totalHits") or 0)
    if plan.page_streams is not None:
        wanted, extra = _merged(client, plan, plan.page_streams, results)
        processing_ms += extra
        documents = wanted[plan.page_streams.wanted - per_page :]
        total_pages = -(-min(total, MAX_TOTAL_HITS) // per_page)
    else:
        documents = list(hits_result.get("hits", []))
        total_pages = int(hits_result.get("totalPages") or 0)
    if plan.price_field is not None:
        low = _bound(results[plan.low_at or 0], plan.price_field)
        high = _bound(results[plan.high_at or 0], plan.price_field)
    else:
        low, extra_low = _merged_price(client, plan, plan.low_streams, results)
        high, extra_high = _merged_price(client, plan, plan.high_streams, results)
        processing_ms += extra_low + extra_high
    counts = [results[position] for position in plan.count_at]
    answer = _ListingAnswer(
        documents=documents,
        total_hits=total,
        total_pages=total_pages,
        in_stock=int(counts[0].get("totalHits") or 0),
        without_availability=int(counts[1].get("totalHits") or 0) if len(counts) > 1 else total,
        distributions=distributions,
        price_min_usd_minor=low,
        price_max_usd_minor=high,
        processing_ms=processing_ms,
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


def catalog_marketplaces(
    client: meilisearch.Client, index_uid: str, cache: ResultCache | None = None
) -> tuple[str, ...]:
    """Every marketplace with a product in the index (for callers that do not know them)."""
    (result,) = run_multi_search(
        client, [facet_query(index_uid, "", None, ["marketplaces"])], cache
    )
    return tuple(sorted((result.get("facetDistribution") or {}).get("marketplaces") or {}))


def past_last_page_note(total_pages: int) -> str:
    """The note for a page past the last page of results."""
    if total_pages == 1:
        return "There is only one page of results; showing it."
    return f"There are only {total_pages} pages; showing the last one."


def search_products(
    client: meilisearch.Client,
    index_uid: str,
    params: SearchParams,
    *,
    scale: PriceScale = PriceScale(),
    cache: ResultCache | None = None,
    marketplaces: Sequence[str] | None = None,
    while_waiting: Callable[[], object] | None = None,
) -> SearchPage:
    """Run one listing on the product index `index_uid`: a page of products with the cheapest
    matching offer each, product counts, disjunctive facets and the price range, in one
    multi-search request (a price sort over several marketplaces rarely needs a second).

    `marketplaces` are those the marketplace facet may show (the site's active ones); under a
    price filter each is counted on its own, and without them the index is asked which exist.
    With a `cache`, the parsed answer is reused for identical listings. A page past the last one
    is corrected to the last page (one extra request, only then). `while_waiting` is called once
    while Meilisearch works on the first request (the search page renders its frame then).
    """
    if marketplaces is None:
        marketplaces = (
            catalog_marketplaces(client, index_uid, cache) if needs_marketplaces(params) else ()
        )

    def fetch(
        params: SearchParams, while_waiting: Callable[[], object] | None = None
    ) -> _ListingAnswer:
        plan = listing_plan(index_uid, params, scale, marketplaces=marketplaces)
        answer = _fetch_listing(client, plan, params.per_page, cache, while_waiting)
        asked = plan.queries[plan.hits_at].get("attributesToRetrieve") or ()
        if "shown_offer" in asked and any("shown_offer" not in d for d in answer.documents):
            # A product index built before its documents named their shown offer (the
            # pipeline rebuilds it on its next run): ask for every offer instead.
            plan = listing_plan(
                index_uid, params, scale, marketplaces=marketplaces, shown_offer=False
            )
            answer = _fetch_listing(client, plan, params.per_page, cache)
        return answer

    answer = fetch(params, while_waiting)
    if answer.total_pages and params.page > answer.total_pages:
        # The results end before the deep-paging cap: that note (if any) named a page that
        # does not exist, so this one replaces it.
        capped = deep_page_note(max_page_for(params.per_page))
        notes = tuple(note for note in params.corrections if note != capped)
        note = past_last_page_note(answer.total_pages)
        params = replace(params, page=answer.total_pages, corrections=(*notes, note))
        answer = fetch(params)

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
    client: meilisearch.Client, index_uid: str, group_id: str, withheld: Collection[str] = ()
) -> list[OfferDocument]:
    """Every offer document of one product group in the offers index, cheapest (in USD) first,
    but those of the `withheld` (disabled) marketplaces.

    The product page reads offers from the storefront DB when it has them; this is its source
    when the DB sync has not run yet.
    """
    group_filter = f"group_id = {quote_filter_value(group_id)}"
    withheld_clause = withheld_marketplaces_clause(withheld)
    query = {
        "indexUid": index_uid,
        "q": "",
        "filter": f"{group_filter} AND {withheld_clause}" if withheld_clause else group_filter,
        "sort": ["price_usd_minor:asc"],
        "limit": MAX_GROUP_OFFERS,
        "attributesToRetrieve": list(OFFER_FIELDS),
    }
    result = run_multi_search(client, [query])[0]
    return [OfferDocument(**hit) for hit in result.get("hits", [])]  # type: ignore[typeddict-item]


__all__ = [
    "CARD_FIELDS",
    "OFFER_CARD_FIELDS",
    "FacetValue",
    "ListingPlan",
    "ProductHit",
    "SearchPage",
    "ShownOffer",
    "catalog_marketplaces",
    "listing_plan",
    "market_key",
    "offers_in_group",
    "search_products",
]

"""Product documents: one per product group, for listings that compare products, not offers.

The `<index>_groups` index holds one document per product group (a product sold by one
marketplace is a group of one), built from the offers' search documents and kept in step with the
offers index by the same incremental sync. A document carries what a listing card and its filters
need: the best title and image, the brand and category, which marketplaces sell it (and which
have it in stock), the cheapest price overall and per marketplace (the price range and the price
sort use them), the review-weighted rating, and a compact summary of every offer, from which the
listing picks the cheapest offer that matches the shopper's filters. The offer a card shows when no
marketplace is chosen is worked out here once (`shown_offer`), so most listings retrieve that one
offer rather than every offer's summary (the summaries were two thirds of a listing's answer).

Ratings are review-weighted: the group's rating is the mean of its offers' ratings weighted by
their review counts, and its sort score is a Bayesian average that pulls it towards the catalog's
mean as if every product also had :data:`RATING_PRIOR_REVIEWS` reviews at that mean, so one
5-star review does not beat 626 reviews averaging 4.9.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final, TypedDict

from search_index.documents import DOCUMENT_HASH_FIELD, OfferDocument, compute_document_hash

RATING_PRIOR_REVIEWS: Final = 20
# The catalog mean when the catalog has no rating at all (nothing to pull towards but the middle).
DEFAULT_RATING_PRIOR_MEAN: Final = Decimal("3.5")
MAX_EXTRA_TITLES: Final = 4
GROUP_DESCRIPTION_MAX_CHARS: Final = 300


# What a listing card reads of an offer summary: enough to show the offer and, among several,
# to pick the cheapest that matches the filters.
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


class OfferSummary(TypedDict):
    """One offer as a product document carries it (enough for a card and the filters)."""

    id: str
    marketplace: str
    marketplace_name: str
    marketplace_logo: str | None
    price_minor: int
    currency: str
    price_usd_minor: int
    available: bool
    rating: float | None
    rating_count: int | None
    match_method: str | None
    match_confidence: float | None


class GroupDocument(TypedDict, total=False):
    """The product document of one group (see the module docstring); `id` is the group id."""

    id: str
    title: str
    titles: list[str]
    brand: str | None
    model: str | None
    category: str | None
    description: str | None
    image_url: str | None
    marketplaces: list[str]
    available_marketplaces: list[str]
    available: bool
    offer_count: int
    marketplace_count: int
    # The offers a shopper can buy now and their marketplaces: what "N offers on M
    # marketplaces" counts (search_index.listings.offers_summary).
    available_offer_count: int
    available_marketplace_count: int
    price_usd_minor: int
    available_price_usd_minor: int | None
    market_prices: dict[str, int]
    available_market_prices: dict[str, int]
    price_gap_usd_minor: int
    rating: float | None
    rating_count: int
    rating_score: float
    rating_stars: int
    rated: bool
    offers: list[OfferSummary]
    shown_offer: dict[str, Any]
    updated_at: int | None
    doc_hash: str


def market_key(slug: str) -> str:
    """A marketplace slug as a field name inside `market_prices` (filters cannot hold '-').

    Slugs are `[a-z0-9-]` (adapters.registry), so mapping '-' to '_' cannot make two collide.
    """
    return slug.replace("-", "_")


def catalog_rating_mean(offers: Iterable[Mapping[str, Any]]) -> Decimal:
    """The review-weighted mean rating of every rated offer in the catalog (the Bayesian prior)."""
    weighted = Decimal(0)
    reviews = 0
    for offer in offers:
        rating, count = offer.get("rating"), offer.get("rating_count")
        if rating is None:
            continue
        weight = max(int(count or 0), 1)
        weighted += Decimal(str(rating)) * weight
        reviews += weight
    if not reviews:
        return DEFAULT_RATING_PRIOR_MEAN
    return (weighted / reviews).quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN)


def bayesian_rating(
    rating: Decimal, reviews: int, prior_mean: Decimal, prior_reviews: int = RATING_PRIOR_REVIEWS
) -> Decimal:
    """A rating pulled towards the catalog mean when it rests on few reviews."""
    return (rating * reviews + prior_mean * prior_reviews) / (reviews + prior_reviews)


def group_rating(offers: Sequence[Mapping[str, Any]]) -> tuple[Decimal | None, int]:
    """(review-weighted mean rating, total reviews) of the offers that publish a rating.

    An offer with a rating but no review count weighs as one review. None when no offer of the
    group publishes a rating (the "no rating published" facet value).
    """
    weighted = Decimal(0)
    reviews = 0
    weight_total = 0
    for offer in offers:
        rating = offer.get("rating")
        if rating is None:
            continue
        count = int(offer.get("rating_count") or 0)
        weight = max(count, 1)
        weighted += Decimal(str(rating)) * weight
        weight_total += weight
        reviews += count
    if not weight_total:
        return None, 0
    return weighted / weight_total, reviews


def _cheapest(offers: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The cheapest offer, preferring one in stock: a shopper can buy it (id breaks ties)."""
    ranked = sorted(
        offers, key=lambda o: (not o.get("available"), int(o["price_usd_minor"]), str(o["id"]))
    )
    return ranked[0] if ranked else None


def market_offer(
    offers: Sequence[Mapping[str, Any]], slug: str, *, available_only: bool = False
) -> Mapping[str, Any] | None:
    """The offer behind `market_prices.<slug>` (or `available_market_prices.<slug>`): the
    marketplace's cheapest offer, in stock if it has one (only in stock with `available_only`)."""
    return _cheapest(
        o for o in offers if o["marketplace"] == slug and (not available_only or o["available"])
    )


def cheapest_matching_offer(
    offers: Sequence[Mapping[str, Any]],
    *,
    marketplaces: Iterable[str] = (),
    available_only: bool = False,
) -> Mapping[str, Any] | None:
    """The offer a listing card shows: the cheapest that matches the shopper's filters.

    The same rule as the document's price fields, so the card, the price filter and the price
    sort agree: without a marketplace filter, the cheapest in-stock offer (else the cheapest);
    with one, the cheapest such offer of each chosen marketplace, and the cheapest of those.
    """
    chosen = set(marketplaces)
    candidates = [
        o
        for o in offers
        if (not chosen or o["marketplace"] in chosen) and (not available_only or o["available"])
    ]
    if not chosen:
        return _cheapest(candidates)
    by_market: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for offer in candidates:
        by_market[offer["marketplace"]].append(offer)
    picks = [_cheapest(group) for group in by_market.values()]
    return min(
        (p for p in picks if p is not None),
        key=lambda o: (int(o["price_usd_minor"]), str(o["id"])),
        default=None,
    )


def lead_offer(offers: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The offer whose title and image stand for the product: in stock, with an image and a
    brand, most reviewed, then the shortest title (store decorations make titles longer).

    Its title is the group's best title, the one a listing card shows; the product page names
    the product by the same rule (storefront.catalog.routes), so a card and the page it leads to
    read alike. Reads id, available, image_url, brand, rating_count and title."""
    return min(
        offers,
        key=lambda o: (
            not o.get("available"),
            not o.get("image_url"),
            not o.get("brand"),
            -int(o.get("rating_count") or 0),
            len(str(o.get("title") or "")),
            str(o["id"]),
        ),
    )


def _most_common(values: Iterable[str | None], preferred: str | None) -> str | None:
    counts = Counter(v for v in values if v)
    if not counts:
        return None
    best = max(counts.values())
    if preferred and counts.get(preferred) == best:
        return preferred
    return sorted(value for value, count in counts.items() if count == best)[0]


def _summary(offer: Mapping[str, Any], match: tuple[str, Decimal] | None) -> OfferSummary:
    rating = offer.get("rating")
    return {
        "id": str(offer["id"]),
        "marketplace": str(offer["marketplace"]),
        "marketplace_name": str(offer.get("marketplace_name") or offer["marketplace"]),
        "marketplace_logo": offer.get("marketplace_logo"),
        "price_minor": int(offer["price_minor"]),
        "currency": str(offer["currency"]),
        "price_usd_minor": int(offer["price_usd_minor"]),
        "available": bool(offer.get("available")),
        "rating": float(rating) if rating is not None else None,
        "rating_count": offer.get("rating_count"),
        "match_method": match[0] if match else None,
        "match_confidence": float(match[1]) if match and match[1] is not None else None,
    }


def _card_fields(summary: OfferSummary) -> dict[str, Any]:
    return {name: summary[name] for name in OFFER_CARD_FIELDS}  # type: ignore[literal-required]


def build_group_document(
    group_id: str,
    offers: Sequence[Mapping[str, Any]],
    *,
    prior_mean: Decimal,
    matches: Mapping[str, tuple[str, Decimal]] | None = None,
) -> GroupDocument:
    """The product document of one group from its offers' search documents.

    `matches` maps an offer document id to (method, confidence) from product_groups.
    """
    if not offers:
        raise ValueError(f"group {group_id} has no offers")
    matches = matches or {}
    lead = lead_offer(offers)
    ordered = sorted(offers, key=lambda o: (int(o["price_usd_minor"]), str(o["id"])))
    summaries = [_summary(o, matches.get(str(o["id"]))) for o in ordered]
    marketplaces = sorted({str(o["marketplace"]) for o in offers})
    in_stock = [o for o in offers if o.get("available")]
    cheapest = _cheapest(offers)
    assert cheapest is not None
    market_prices: dict[str, int] = {}
    available_market_prices: dict[str, int] = {}
    for slug in marketplaces:
        here = [o for o in offers if o["marketplace"] == slug]
        pick = _cheapest(here)
        if pick is not None:
            market_prices[market_key(slug)] = int(pick["price_usd_minor"])
        stocked = [int(o["price_usd_minor"]) for o in here if o.get("available")]
        if stocked:
            available_market_prices[market_key(slug)] = min(stocked)
    stocked_prices = [int(o["price_usd_minor"]) for o in in_stock]
    rating, reviews = group_rating(offers)
    titles = []
    for offer in sorted(offers, key=lambda o: str(o["id"])):
        title = str(offer.get("title") or "")
        if title and title != lead.get("title") and title not in titles:
            titles.append(title)
    description = lead.get("description")
    document: GroupDocument = {
        "id": group_id,
        "title": str(lead.get("title") or ""),
        "titles": titles[:MAX_EXTRA_TITLES],
        "brand": _most_common((o.get("brand") for o in offers), lead.get("brand")),
        "model": _most_common((o.get("model") for o in offers), lead.get("model")),
        "category": _most_common((o.get("category") for o in offers), lead.get("category")),
        "description": str(description)[:GROUP_DESCRIPTION_MAX_CHARS] if description else None,
        "image_url": lead.get("image_url")
        or next((o.get("image_url") for o in ordered if o.get("image_url")), None),
        "marketplaces": marketplaces,
        "available_marketplaces": sorted({str(o["marketplace"]) for o in in_stock}),
        "available": bool(in_stock),
        "offer_count": len(offers),
        "marketplace_count": len(marketplaces),
        "available_offer_count": len(in_stock),
        "available_marketplace_count": len({str(o["marketplace"]) for o in in_stock}),
        "price_usd_minor": int(cheapest["price_usd_minor"]),
        "available_price_usd_minor": min(stocked_prices) if stocked_prices else None,
        "market_prices": market_prices,
        "available_market_prices": available_market_prices,
        "price_gap_usd_minor": max(stocked_prices) - min(stocked_prices) if stocked_prices else 0,
        "rating_count": reviews,
        "rated": rating is not None,
        "offers": summaries,
        # The card's offer without a marketplace filter, "in stock only" or not: the cheapest,
        # preferring one in stock (cheapest_matching_offer's rule; under "in stock only" every
        # listed product has an offer in stock, so the preference picks the same one).
        "shown_offer": _card_fields(_summary(cheapest, matches.get(str(cheapest["id"])))),
        "updated_at": max((o.get("updated_at") or 0 for o in offers), default=None) or None,
    }
    if rating is not None:
        # Unrated products carry no score or stars: sorts put them last, filters leave them out
        # unless the shopper asks for "no rating published".
        document["rating"] = float(rating.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))
        document["rating_stars"] = int(rating)
        document["rating_score"] = float(
            bayesian_rating(rating, reviews, prior_mean).quantize(
                Decimal("0.0001"), rounding=ROUND_HALF_EVEN
            )
        )
    else:
        document["rating"] = None
    document[DOCUMENT_HASH_FIELD] = compute_document_hash(document)
    return document


# The offer-document fields a product document is built from.
GROUPED_OFFER_FIELDS: Final = (
    "id",
    "marketplace",
    "marketplace_name",
    "marketplace_logo",
    "title",
    "description",
    "brand",
    "model",
    "category",
    "image_url",
    "price_minor",
    "currency",
    "price_usd_minor",
    "available",
    "rating",
    "rating_count",
    "updated_at",
)


def build_group_documents(
    offers: Iterable[OfferDocument | Mapping[str, Any]],
    *,
    matches: Mapping[str, tuple[str, Decimal]] | None = None,
    prior_mean: Decimal | None = None,
) -> list[GroupDocument]:
    """One product document per group of the given offer documents, by group id.

    An offer without a group id stands alone (its own document id is its group). `prior_mean`
    is the catalog's rating mean when `offers` are only some groups of it (by default, the mean
    of `offers`).
    """
    members: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    kept: list[Mapping[str, Any]] = []
    for offer in offers:
        # Only what a product document uses: a million offer documents stay compact.
        slim = {name: offer.get(name) for name in GROUPED_OFFER_FIELDS}
        slim["id"] = offer["id"]
        if slim.get("description"):
            slim["description"] = str(slim["description"])[:GROUP_DESCRIPTION_MAX_CHARS]
        members[str(offer.get("group_id") or offer["id"])].append(slim)
        kept.append(slim)
    prior = catalog_rating_mean(kept) if prior_mean is None else prior_mean
    return [
        build_group_document(group_id, members[group_id], prior_mean=prior, matches=matches)
        for group_id in sorted(members)
    ]


def sync_group_index(
    client: Any,
    offers_index_uid: str,
    offer_documents: Iterable[OfferDocument | Mapping[str, Any]],
    *,
    matches: Mapping[str, tuple[str, Decimal]] | None = None,
    full_rebuild: bool = False,
    progress: Any = None,
    task_timeout: float | None = None,
) -> Any:
    """Make the product index of `offers_index_uid` hold the groups of `offer_documents`.

    The same incremental sync as the offers index (search_index.indexing.sync_index): only
    product documents whose content changed are sent, vanished groups are deleted, and a changed
    declaration rebuilds with zero downtime. Returns its IndexSyncResult.
    """
    from search_index.indexing import DEFAULT_TASK_TIMEOUT_SECONDS, sync_index
    from search_index.settings import (
        GROUP_DOCUMENT_SCHEMA_VERSION,
        GROUP_INDEX_SETTINGS,
        group_index_uid,
    )

    return sync_index(
        client,
        group_index_uid(offers_index_uid),
        build_group_documents(offer_documents, matches=matches),
        full_rebuild=full_rebuild,
        progress=progress,
        task_timeout=task_timeout or DEFAULT_TASK_TIMEOUT_SECONDS,
        settings=GROUP_INDEX_SETTINGS,
        schema_version=GROUP_DOCUMENT_SCHEMA_VERSION,
    )

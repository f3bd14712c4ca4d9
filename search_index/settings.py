"""The `products` index configuration, declared once.

Every process that creates or checks the index uses :data:`INDEX_SETTINGS`; its fingerprint is
stored beside the index so a changed declaration triggers a zero-downtime rebuild instead of a
slow in-place re-indexing that would leave searches on half-applied settings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

PRIMARY_KEY: Final = "id"

# Bump when the *shape* of documents changes (a new field, another id scheme) so existing
# indexes are rebuilt even though the Meilisearch settings themselves stayed the same.
# 2: offer documents carry `group_available` and `group_available_marketplaces`.
DOCUMENT_SCHEMA_VERSION: Final = 2

SEARCHABLE_ATTRIBUTES: Final = ("title", "brand", "model", "category", "description")

# What each filterable attribute is asked for, and by whom (nothing else is built: every filter
# feature and every sortable attribute costs Meilisearch indexing time, bench/RESULTS.md):
# - equality (`=`, `IN`, `NOT`, facet counts, `distinct`): the assistant filters and counts
#   marketplace, category and brand, filters availability and reads the cheapest offer of each
#   group (`distinct` on group_id); the product page reads a group's offers by group_id.
# - comparison (`<`, `>=`, `TO`, `EXISTS`, facet stats): the assistant's budget (and the cheapest
#   match's price in its "nothing fits" answer) and minimum rating; the home page's price drops
#   (`price_dropped_at > 0`).
# No /facet-search route is used, so facet search is off for every attribute and the index.
FILTERABLE_EQUALITY: Final = ("marketplace", "category", "brand", "available", "group_id")
FILTERABLE_COMPARISON: Final = (
    "price_usd_minor",
    "rating",
    # Unix seconds of the offer's last price drop (null when its price did not fall): the home
    # page asks the index for the newest drops instead of scanning recently updated offers.
    "price_dropped_at",
)
FILTERABLE_ATTRIBUTES: Final = FILTERABLE_EQUALITY + FILTERABLE_COMPARISON
# The assistant's price and rating orders, the product page's offers by price, the home page's
# newest price drops.
SORTABLE_ATTRIBUTES: Final = (
    "price_usd_minor",
    "rating",
    "rating_count",
    "price_dropped_at",
)

EQUALITY_ONLY: Final[Mapping[str, Any]] = {
    "facetSearch": False,
    "filter": {"equality": True, "comparison": False},
}
COMPARISON_ONLY: Final[Mapping[str, Any]] = {
    "facetSearch": False,
    "filter": {"equality": False, "comparison": True},
}


def granular_filters(equality: Iterable[str], comparison: Iterable[str]) -> list[dict[str, Any]]:
    """Meilisearch's filterableAttributes with only the features each attribute is used with.

    A pattern names one attribute exactly; `name.*` covers an object's fields (a plain
    `name` pattern would not).
    """
    return [
        {"attributePatterns": list(equality), "features": dict(EQUALITY_ONLY)},
        {"attributePatterns": list(comparison), "features": dict(COMPARISON_ONLY)},
    ]


# Words shoppers use interchangeably. Each group is made mutual below: searching any member
# finds documents that contain any other member (Meilisearch synonyms are one-way otherwise).
SYNONYM_GROUPS: Final[tuple[tuple[str, ...], ...]] = (
    ("tv", "television", "tvs", "televisions"),
    ("phone", "smartphone", "mobile", "mobile phone", "cellphone"),
    ("headphones", "earphones", "headset", "earbuds"),
    ("laptop", "notebook"),
    ("sneakers", "trainers", "running shoes"),
    ("flask", "thermos", "insulated bottle", "vacuum flask"),
    ("mug", "cup", "tumbler"),
    ("speaker", "loudspeaker"),
    ("smartwatch", "smart watch"),
    ("backpack", "rucksack"),
    ("coffee maker", "coffee machine"),
    ("t-shirt", "tee", "tshirt"),
    ("hoodie", "sweatshirt"),
)


def mutual_synonyms(groups: Iterable[Iterable[str]]) -> dict[str, list[str]]:
    """Expand groups of interchangeable words into Meilisearch's one-way synonym map."""
    synonyms: dict[str, set[str]] = {}
    for group in groups:
        words = [word.lower() for word in group]
        for word in words:
            synonyms.setdefault(word, set()).update(other for other in words if other != word)
    return {word: sorted(others) for word, others in sorted(synonyms.items())}


INDEX_SETTINGS: Final[Mapping[str, Any]] = {
    "searchableAttributes": list(SEARCHABLE_ATTRIBUTES),
    "filterableAttributes": granular_filters(FILTERABLE_EQUALITY, FILTERABLE_COMPARISON),
    "sortableAttributes": list(SORTABLE_ATTRIBUTES),
    "facetSearch": False,
    "displayedAttributes": ["*"],
    # Proximity only tells "in the same field" from "not", instead of counting the words between
    # two query words: word-pair distances were about 40% of this index's indexing CPU
    # (bench/RESULTS.md, issue 11). Exactness then ranks before attribute, so an offer naming
    # the query's own words ("wireless earbuds") stays above one that matches through a synonym
    # ("wireless ... headphones"), which adjacency used to settle. The assistant evaluation kept
    # its figures with both (keyword recall@10 0.902 -> 0.907, hybrid 0.973 -> 0.974).
    "rankingRules": ["words", "typo", "proximity", "exactness", "attribute", "sort"],
    "proximityPrecision": "byAttribute",
    "typoTolerance": {
        "enabled": True,
        "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9},
        # Identifiers must match exactly: a one-character typo in a model number is another
        # product, not a misspelling.
        "disableOnNumbers": True,
    },
    "synonyms": mutual_synonyms(SYNONYM_GROUPS),
    "faceting": {"maxValuesPerFacet": 200, "sortFacetValuesBy": {"*": "count"}},
    "pagination": {"maxTotalHits": 10_000},
}


# --- The product (group) index ------------------------------------------------------------------

GROUP_INDEX_SUFFIX: Final = "_groups"
# 2: product documents carry `shown_offer` (search_index.groups); 3: `available_offer_count`
# and `available_marketplace_count`.
GROUP_DOCUMENT_SCHEMA_VERSION: Final = 3

GROUP_SEARCHABLE_ATTRIBUTES: Final = (
    "title",
    "titles",
    "brand",
    "model",
    "category",
    "description",
)
# Listings (search_index.listing_plan, filters, price_order) and the home page (merchandising):
# - equality: the marketplace, category and brand facets and filters (counted too), in stock
#   (overall or on chosen marketplaces), the rating facet's whole stars and "no rating published";
# - comparison: the price range on the product's price field (overall, in stock, per marketplace
#   with `NOT EXISTS` for marketplaces that do not sell it), the minimum rating, best deals.
GROUP_FILTERABLE_EQUALITY: Final = (
    "marketplaces",
    "available_marketplaces",
    "available",
    "category",
    "brand",
    "rating_stars",
    "rated",
)
GROUP_FILTERABLE_COMPARISON: Final = (
    "price_usd_minor",
    "available_price_usd_minor",
    # Nested per marketplace: market_prices.<slug with '-' as '_'> (search_index.groups).
    "market_prices.*",
    "available_market_prices.*",
    "rating",
    "price_gap_usd_minor",
)
GROUP_FILTERABLE_ATTRIBUTES: Final = GROUP_FILTERABLE_EQUALITY + GROUP_FILTERABLE_COMPARISON
GROUP_SORTABLE_ATTRIBUTES: Final = (
    "price_usd_minor",
    "available_price_usd_minor",
    "market_prices",
    "available_market_prices",
    "rating_score",
    "rating_count",
    "price_gap_usd_minor",
    # The last key of a price sort over several marketplaces (search_index.price_order): equal
    # prices then come in one order in every marketplace's stream, so streams merge exactly.
    "id",
)

# Products matching more of the query's words first; then the shopper's sort when one is chosen
# (a price sort must order the whole page by price, not only ties of relevance), else typos,
# proximity, attribute and exactness. Ties then go to what a shopper cares about: products
# sold by more marketplaces (more to compare) and with more reviews, never to document order,
# which follows the marketplaces.
GROUP_RANKING_RULES: Final = (
    "words",
    "sort",
    "typo",
    "proximity",
    "attribute",
    "exactness",
    "offer_count:desc",
    "rating_count:desc",
)

GROUP_INDEX_SETTINGS: Final[Mapping[str, Any]] = {
    "searchableAttributes": list(GROUP_SEARCHABLE_ATTRIBUTES),
    "filterableAttributes": granular_filters(
        GROUP_FILTERABLE_EQUALITY, GROUP_FILTERABLE_COMPARISON
    ),
    "sortableAttributes": list(GROUP_SORTABLE_ATTRIBUTES),
    "facetSearch": False,
    "displayedAttributes": ["*"],
    "rankingRules": list(GROUP_RANKING_RULES),
    # Word distances, not only "same field": shoppers' listings rank "Smart TV" above "Smart LED
    # TV" by them. By attribute, page 1 of 15 broad queries on the demo catalog held the query
    # as written in 171 of 360 titles instead of 216 (bench/RESULTS.md, issue 11), so the
    # listings keep paying for them.
    "proximityPrecision": "byWord",
    "typoTolerance": INDEX_SETTINGS["typoTolerance"],
    "synonyms": INDEX_SETTINGS["synonyms"],
    "faceting": INDEX_SETTINGS["faceting"],
    "pagination": INDEX_SETTINGS["pagination"],
}


def group_index_uid(offers_index_uid: str) -> str:
    """The product index that goes with an offers index (`products` -> `products_groups`)."""
    return f"{offers_index_uid}{GROUP_INDEX_SUFFIX}"


# Offer embeddings (all-MiniLM-L6-v2 sentence vectors, computed by the pipeline's
# offer_embeddings asset) travel in each document's `_vectors.default`. The embedder is declared
# only when the indexer is given vectors: Meilisearch refuses an embedder while documents carry
# no `_vectors`, and once it exists every document needs `_vectors.default` (an array, or null).
EMBEDDER_NAME: Final = "default"
EMBEDDING_DIMENSIONS: Final = 384
EMBEDDERS_SETTING: Final[Mapping[str, Any]] = {
    EMBEDDER_NAME: {"source": "userProvided", "dimensions": EMBEDDING_DIMENSIONS}
}


def index_settings(*, with_vectors: bool = False) -> Mapping[str, Any]:
    """The declared settings, plus the user-provided embedder when documents carry vectors.

    The embedder is not part of the fingerprint (:func:`settings_fingerprint` of
    :data:`INDEX_SETTINGS` either way): search_index.indexing adds it in place once the
    documents carry their vectors, and removes it when they no longer do. Counted in, the first
    refresh that saw vectors (an ingest while the background embeddings run was still
    embedding) rebuilt the whole index.
    """
    if not with_vectors:
        return INDEX_SETTINGS
    return {**INDEX_SETTINGS, "embedders": dict(EMBEDDERS_SETTING)}


def settings_fingerprint(
    settings: Mapping[str, Any] = INDEX_SETTINGS, *, schema_version: int = DOCUMENT_SCHEMA_VERSION
) -> str:
    """A stable hash of the declared settings and document schema, stored beside the index.

    Comparing it with the stored one tells the indexer whether the live index was built with
    today's declaration; JSON with sorted keys keeps it independent of dict ordering.
    """
    canonical = json.dumps(
        {
            "settings": settings,
            "primary_key": PRIMARY_KEY,
            "document_schema": schema_version,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


# The fingerprint indexes built with vectors stored while the embedder counted in it: still the
# same declaration, so such an index is not rebuilt once for the change.
EARLIER_VECTORS_FINGERPRINT: Final = settings_fingerprint(
    {**INDEX_SETTINGS, "embedders": dict(EMBEDDERS_SETTING)}
)

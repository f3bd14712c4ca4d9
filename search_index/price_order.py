"""Ordering products by their cheapest offer on several chosen marketplaces.

With one marketplace (or none) chosen, a product's price under the shopper's filters is one field
of its document (`price_usd_minor`, `market_prices.<slug>`, ...) and Meilisearch sorts by it.
With several, the price is the smallest of the chosen marketplaces' fields, and Meilisearch can
neither sort by a minimum of fields nor would a field per combination of marketplaces scale
(2^n - 1 of them for n marketplaces, in every document). So the listing asks one *stream* per
chosen marketplace, each sorted by that marketplace's price, and merges them here.

Each stream is ordered by (words matched desc, that marketplace's price, id) - the index's
ranking rules put `words` before `sort`, and `id` is the last sort key so equal prices come in
one order in every stream. A product's place in the listing is (words matched desc, its price,
id), where its price is the smallest of its chosen marketplaces' prices, i.e. its key is the
smallest (ascending) or, for a descending sort, the largest of its stream keys. This is the
threshold algorithm (Fagin et al.): every product also appears in the documents of the streams
it was read from with all its offers, so its exact key is known as soon as it is seen once, and
a product not yet seen in any stream has a key beyond the last key read from one of its streams.
The first `wanted` products are final once the `wanted`-th key seen is not beyond the smallest
last key of the streams that still have hits.

For an ascending sort, reading `wanted` hits of each stream always settles it (a product's first
appearance in the merged streams is at its own key); a descending sort may need deeper reads
(:func:`next_depth`), which the listing does in further rounds, rarely.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from search_index.filters import quote_filter_value
from search_index.groups import cheapest_matching_offer, market_key, market_offer
from search_index.params import MAX_TOTAL_HITS

# The hint's descending streams read this many products each at first (usually enough).
BOUND_DEPTH: Final = 8
# Offer-summary fields a stream must retrieve to know a product's price under the filters.
PRICE_FIELDS: Final = (
    "id",
    "offers.id",
    "offers.marketplace",
    "offers.price_usd_minor",
    "offers.available",
)

# (words matched, negated; out of stock first-or-last; price, negated when descending; id).
Key = tuple[int, int, int, str]


@dataclass(frozen=True, slots=True)
class PriceOrder:
    """Which products' prices order a listing: the chosen marketplaces, in stock or not, and the
    direction."""

    marketplaces: tuple[str, ...]
    available_only: bool
    descending: bool
    # A listing's page (not the price range hint) puts the products whose card offer is in
    # stock first, then the others, each by price (search_index.filters.sort_for does the same
    # with one price field). The product's key is then its card offer's stream key, so the
    # merge's threshold argument holds as before.
    stocked_first: bool = False

    def field(self, slug: str) -> str:
        """The document field holding the price of `slug`'s offer under the filters."""
        prefix = "available_market_prices" if self.available_only else "market_prices"
        return f"{prefix}.{market_key(slug)}"

    def streams(
        self,
        index_uid: str,
        q: str,
        filter_expression: str | None,
        *,
        depth: int,
        fields: Sequence[str],
        with_matches: bool = False,
    ) -> list[dict[str, Any]]:
        """One query per chosen marketplace: its products with an offer there (in stock there,
        with `available_only`), under the filter, by that offer's price, then id."""
        attribute = "available_marketplaces" if self.available_only else "marketplaces"
        direction = "desc" if self.descending else "asc"
        queries = []
        for slug in self.marketplaces:
            own = f"{attribute} = {quote_filter_value(slug)}"
            query: dict[str, Any] = {
                "indexUid": index_uid,
                "q": q,
                "filter": f"({filter_expression}) AND {own}" if filter_expression else own,
                "sort": [
                    *self._stock_sort(slug, direction),
                    f"{self.field(slug)}:{direction}",
                    "id:asc",
                ],
                "limit": depth,
                "offset": 0,
                "attributesToRetrieve": list(fields),
            }
            if q:
                # `words` ranks before `sort`: the merge needs each hit's number of words.
                query["showRankingScoreDetails"] = True
                if with_matches:
                    query["showMatchesPosition"] = True
            queries.append(query)
        return queries

    def _stock_sort(self, slug: str, direction: str) -> list[str]:
        """In-stock offers of `slug` first: their price field is null (sorted last) otherwise."""
        if not self.stocked_first or self.available_only:
            return []
        return [f"available_market_prices.{market_key(slug)}:{direction}"]

    def _key(self, hit: Mapping[str, Any], offer: Mapping[str, Any] | None) -> Key:
        price = int(offer["price_usd_minor"]) if offer is not None else 0
        unstocked = int(self.stocked_first and offer is not None and not offer.get("available"))
        return (
            -_words(hit),
            unstocked,
            -price if self.descending else price,
            str(hit.get("id") or ""),
        )

    def key(self, hit: Mapping[str, Any]) -> Key:
        """The product's place in the listing (smaller first)."""
        offer = cheapest_matching_offer(
            hit.get("offers") or [],
            marketplaces=self.marketplaces,
            available_only=self.available_only,
        )
        return self._key(hit, offer)

    def stream_key(self, hit: Mapping[str, Any], slug: str) -> Key:
        """The product's place in `slug`'s stream (smaller first)."""
        offer = market_offer(hit.get("offers") or [], slug, available_only=self.available_only)
        return self._key(hit, offer)


def _words(hit: Mapping[str, Any]) -> int:
    details = hit.get("_rankingScoreDetails") or {}
    words = details.get("words") if isinstance(details, Mapping) else None
    if isinstance(words, Mapping):
        return int(words.get("matchingWords") or 0)
    return 0


@dataclass(frozen=True, slots=True)
class Merged:
    """The first `wanted` products of the merged streams, and whether they are final."""

    hits: list[dict[str, Any]]
    settled: bool


def merge(
    order: PriceOrder, results: Iterable[Sequence[dict[str, Any]]], *, depth: int, wanted: int
) -> Merged:
    """Merge the streams' hits (each read `depth` deep) into the first `wanted` products."""
    seen: dict[str, tuple[Key, dict[str, Any]]] = {}
    thresholds: list[Key] = []
    for slug, hits in zip(order.marketplaces, results, strict=True):
        for hit in hits:
            product = str(hit.get("id") or "")
            if product not in seen:
                seen[product] = (order.key(hit), hit)
        if len(hits) >= depth and depth < MAX_TOTAL_HITS:
            thresholds.append(order.stream_key(hits[-1], slug))
    ranked = sorted(seen.values(), key=lambda pair: pair[0])
    top = ranked[:wanted]
    if not thresholds:
        return Merged(hits=[hit for _, hit in top], settled=True)
    settled = len(top) == wanted and top[-1][0] <= min(thresholds)
    return Merged(hits=[hit for _, hit in top], settled=settled)


def next_depth(depth: int) -> int:
    """How deep the next round reads each stream when a merge did not settle."""
    return min(depth * 4, MAX_TOTAL_HITS)


__all__ = ["BOUND_DEPTH", "PRICE_FIELDS", "Merged", "PriceOrder", "merge", "next_depth"]

"""The merge of per-marketplace price streams (search_index.price_order) against brute force.

Pure logic: each stream is built the way Meilisearch orders it (words matched desc, then that
marketplace's price, then id), read to some depth, and the merge must put the first products in
exactly the order of their cheapest matching offer, reading deeper only when it says it must.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from search_index.groups import cheapest_matching_offer, market_offer
from search_index.price_order import PriceOrder, merge, next_depth

MARKETS = ("alpha", "beta", "gamma", "delta")


def catalog(seed: int, products: int = 300) -> list[dict[str, Any]]:
    """Products on 1-4 marketplaces, many at equal prices (ties must merge exactly too)."""
    rng = random.Random(seed)
    documents = []
    for number in range(products):
        markets = rng.sample(MARKETS, rng.randint(1, len(MARKETS)))
        offers = []
        for slug in markets:
            for copy in range(rng.randint(1, 2)):
                offers.append(
                    {
                        "id": f"{slug}-{number}-{copy}",
                        "marketplace": slug,
                        # A coarse price grid: plenty of equal prices across products.
                        "price_usd_minor": rng.randrange(100, 5000, 100),
                        "available": rng.random() < 0.7,
                    }
                )
        documents.append(
            {
                "id": f"g-{number:04d}",
                "offers": offers,
                "_rankingScoreDetails": {"words": {"matchingWords": rng.choice((1, 2, 2))}},
            }
        )
    return documents


def stream(order: PriceOrder, documents: list[dict[str, Any]], slug: str) -> list[dict[str, Any]]:
    """What Meilisearch answers for `slug`'s stream: its products, ranked words, price, id."""
    there = [
        d
        for d in documents
        if market_offer(d["offers"], slug, available_only=order.available_only) is not None
    ]
    return sorted(there, key=lambda d: order.stream_key(d, slug))


def brute_force(order: PriceOrder, documents: list[dict[str, Any]]) -> list[str]:
    listed = [
        d
        for d in documents
        if cheapest_matching_offer(
            d["offers"], marketplaces=order.marketplaces, available_only=order.available_only
        )
        is not None
    ]
    return [d["id"] for d in sorted(listed, key=order.key)]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("available_only", [False, True])
@pytest.mark.parametrize("markets", [("alpha", "beta"), ("alpha", "gamma", "delta")])
@pytest.mark.parametrize("stocked_first", [False, True])
def test_merged_streams_list_products_by_their_cheapest_matching_offer(
    seed: int,
    descending: bool,
    available_only: bool,
    markets: tuple[str, ...],
    stocked_first: bool,
) -> None:
    documents = catalog(seed)
    order = PriceOrder(markets, available_only, descending, stocked_first=stocked_first)
    streams = {slug: stream(order, documents, slug) for slug in markets}
    expected = brute_force(order, documents)
    rounds = []
    for page in (1, 2, 5):
        wanted = page * 24
        depth = wanted
        while True:
            merged = merge(order, [streams[s][:depth] for s in markets], depth=depth, wanted=wanted)
            if merged.settled:
                break
            depth = next_depth(depth)
        rounds.append(depth // wanted)
        assert [d["id"] for d in merged.hits] == expected[:wanted], (page, depth)
        shown = merged.hits[-1]
        offer = cheapest_matching_offer(
            shown["offers"], marketplaces=markets, available_only=available_only
        )
        assert offer is not None and offer["marketplace"] in markets
    if not descending:
        # Ascending: the first `wanted` of each stream always suffice (one round).
        assert rounds == [1, 1, 1]


def test_an_unsettled_merge_says_so_instead_of_guessing() -> None:
    # Product "g-b" is the dearest on beta but cheap on alpha; "g-c" sits only on beta, just
    # below it. Descending, one hit per stream shows g-b (price 1 = min) and g-a (alpha only, 50):
    # g-c (90 on beta) is not yet seen but outranks both.
    def doc(product: str, **prices: int) -> dict[str, Any]:
        offers = [
            {"id": f"{product}-{m}", "marketplace": m, "price_usd_minor": p, "available": True}
            for m, p in prices.items()
        ]
        return {"id": product, "offers": offers}

    a, b, c = doc("g-a", alpha=50), doc("g-b", alpha=1, beta=100), doc("g-c", beta=90)
    order = PriceOrder(("alpha", "beta"), False, True)
    shallow = merge(order, [[a], [b]], depth=1, wanted=1)
    assert not shallow.settled
    deep = merge(order, [[a, b], [b, c]], depth=4, wanted=1)
    assert deep.settled and [d["id"] for d in deep.hits] == ["g-c"]


@pytest.mark.parametrize("descending", [False, True])
def test_a_page_lists_products_in_stock_first_then_the_others_each_by_price(
    descending: bool,
) -> None:
    """Shopper QA: "price: low to high" opened on products nobody can buy (out of stock
    everywhere, and cheap). In stock first, then out of stock, each by its card's price."""
    documents = catalog(4)
    markets = ("alpha", "beta")
    order = PriceOrder(markets, False, descending, stocked_first=True)
    streams = [stream(order, documents, slug) for slug in markets]
    wanted = len(documents)
    merged = merge(order, [s[:wanted] for s in streams], depth=wanted, wanted=wanted)
    depth = wanted
    while not merged.settled:
        depth = next_depth(depth)
        merged = merge(order, [s[:depth] for s in streams], depth=depth, wanted=wanted)

    cards = [(d, cheapest_matching_offer(d["offers"], marketplaces=markets)) for d in merged.hits]
    for words in {-order.key(d)[0] for d, _ in cards}:
        tier = [offer for d, offer in cards if -order.key(d)[0] == words]
        stock = [bool(offer and offer["available"]) for offer in tier]
        assert stock == sorted(stock, reverse=True), words  # every in-stock card first
        for in_stock in (True, False):
            prices = [o["price_usd_minor"] for o in tier if o and bool(o["available"]) == in_stock]
            assert prices == sorted(prices, reverse=descending)
        assert False in stock and True in stock  # both kinds are listed

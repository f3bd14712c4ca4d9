"""The world's affiliate marketplaces (Amazon, Sokoni): added on top of the six without changing
them, overlapping them by product, with identifiers that stay unique across all eight."""

from __future__ import annotations

import pytest

from sandbox.amazon import asin_for, index_for
from sandbox.marketplaces import AFFILIATE_SLUGS, MARKETPLACE_SLUGS, SERVED_SLUGS
from sandbox.world import World


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, total_offers=1200)


def test_affiliates_list_a_third_of_one_share_and_leave_the_total_to_the_six(world: World) -> None:
    assert [world.offer_count(slug) for slug in AFFILIATE_SLUGS] == [66, 66]
    assert sum(world.offer_count(slug) for slug in MARKETPLACE_SLUGS) == world.total_offers == 1200


def test_every_shared_product_an_affiliate_lists_is_sold_by_two_of_the_six(world: World) -> None:
    sold_by: dict[str, set[str]] = {}
    for slug in MARKETPLACE_SLUGS:
        for index in range(world.offer_count(slug)):
            sold_by.setdefault(world.product_key(slug, index), set()).add(slug)
    for slug in AFFILIATE_SLUGS:
        keys = [world.product_key(slug, index) for index in range(world.offer_count(slug))]
        shared = [key for key in keys if key.startswith("s")]
        assert len(shared) == len(keys) // 2
        assert all(len(sold_by.get(key, set())) >= 2 for key in shared), slug
        own_prefix = "a7-" if slug == "sokoni" else "a6-"
        assert all(key.startswith(own_prefix) for key in keys if key not in shared)


def test_gtins_and_models_stay_unique_across_all_eight(world: World) -> None:
    gtins: dict[str, str] = {}
    models: dict[tuple[str, str], str] = {}
    for slug in SERVED_SLUGS:
        for index in range(world.offer_count(slug)):
            product = world.offer(slug, index).product
            assert gtins.setdefault(product.gtin, product.key) == product.key
            if not product.category.is_book:
                assert models.setdefault((product.brand, product.model), product.key) == product.key


def test_sokoni_prices_in_kes_and_some_ngn(world: World) -> None:
    currencies = {world.offer("sokoni", index).currency for index in range(66)}
    assert currencies == {"KES", "NGN"}


def test_asins_are_reversible_and_amazon_shaped() -> None:
    for index in (0, 35, 36, 55_554, 999_999):
        asin = asin_for(index)
        assert len(asin) == 10 and asin.startswith("B0") and asin.isalnum() and asin.isupper()
        assert index_for(asin) == index
    assert index_for("B0ZZZZZZZ!") is None and index_for("X000000001") is None

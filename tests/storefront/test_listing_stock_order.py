"""The price sorts list the products a shopper can buy first, on a real Meilisearch product index.

Shopper QA: "price: low to high" opened on products out of stock everywhere (the cheapest ones,
as nobody buys them): in-stock products first, then the out-of-stock ones, each by the price of
the offer its card shows (the cheapest matching offer), with no marketplace, one or several
chosen, and on every page.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import meilisearch
import pytest

from search_index.groups import build_group_documents, cheapest_matching_offer, sync_group_index
from search_index.indexing import connect, sync_index
from search_index.listings import search_products
from search_index.params import SearchParams
from search_index.settings import group_index_uid
from tests.storefront.sample_catalog import SampleOffer, delete_sample_catalog, search_documents


def _offer(market: str, ident: str, cents: int, group: str, available: bool) -> SampleOffer:
    return SampleOffer(
        market, ident, f"Lamp {group}", cents, "USD", "lamps", "Lumo", group, available=available
    )


OFFERS = (
    _offer("shopwave", "A", 500, "g-a", False),  # cheapest, out of stock
    _offer("shopwave", "B", 3000, "g-b", True),
    _offer("dummymart", "C", 2000, "g-c", True),
    _offer("dummymart", "D", 2500, "g-d", False),
    # E: out of stock on ShopWave (8.00), in stock on DummyMart (41.00).
    _offer("shopwave", "E1", 800, "g-e", False),
    _offer("dummymart", "E2", 4100, "g-e", True),
    _offer("shopwave", "F", 1000, "g-f", True),
    _offer("dummymart", "G", 9900, "g-g", False),  # dearest, out of stock
)


@pytest.fixture(scope="module")
def uid(meili_server: str) -> Iterator[str]:
    client = connect()
    uid = f"test_stock_order_{uuid.uuid4().hex[:10]}"
    documents = search_documents(OFFERS)
    sync_index(client, uid, documents, full_rebuild=True, task_timeout=120)
    sync_group_index(client, uid, documents, full_rebuild=True, task_timeout=120)
    yield uid
    delete_sample_catalog(client, uid)


def _expected(marketplaces: tuple[str, ...], descending: bool) -> list[str]:
    """Each listed product by (its card's offer out of stock, its price), worked out by hand's
    rule from its offers."""
    keys = {}
    for document in build_group_documents(search_documents(OFFERS)):
        offer = cheapest_matching_offer(document["offers"], marketplaces=marketplaces)
        if offer is not None:
            price = offer["price_usd_minor"]
            keys[document["id"]] = (not offer["available"], -price if descending else price)
    return sorted(keys, key=keys.__getitem__)


@pytest.mark.parametrize("sort", ["price_asc", "price_desc"])
@pytest.mark.parametrize("marketplaces", [(), ("shopwave",), ("shopwave", "dummymart")])
def test_price_sorts_list_in_stock_products_first_then_the_others_each_by_price(
    meili_server: str, uid: str, sort: str, marketplaces: tuple[str, ...]
) -> None:
    client: meilisearch.Client = connect()
    expected = _expected(marketplaces, sort == "price_desc")
    for q in ("", "lamp"):
        pages = [
            search_products(
                client,
                group_index_uid(uid),
                SearchParams(q=q, marketplaces=marketplaces, sort=sort, page=n, per_page=3),
            )
            for n in range(1, -(-len(expected) // 3) + 1)
        ]
        listed = [hit.group_id for page in pages for hit in page.hits]
        assert listed == expected, (q, marketplaces, sort)
        first = pages[0].hits[0]
        assert first.offer.available, "the first card of a price sort can be bought"


def test_no_marketplace_chosen_low_to_high_reads_as_a_shopper_expects(
    meili_server: str, uid: str
) -> None:
    page = search_products(
        connect(), group_index_uid(uid), SearchParams(sort="price_asc", per_page=12)
    )
    # F 10.00, C 20.00, B 30.00, E 41.00 (its in-stock offer); then A 5.00, D 25.00, G 99.00.
    assert [hit.group_id for hit in page.hits] == [
        "g-f", "g-c", "g-b", "g-e", "g-a", "g-d", "g-g",
    ]  # fmt: skip

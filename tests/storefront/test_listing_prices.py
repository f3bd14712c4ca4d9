"""Prices with several marketplaces chosen, on a real Meilisearch product index.

The card price, the price filter, the price sort, the "These results" price range and the
marketplace facet's counts all use the product's cheapest offer among the chosen marketplaces
(issue 9). The catalog is built so that the product's cheapest offer overall (on another
marketplace) would give a different order, range and counts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import meilisearch
import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from search_index.groups import build_group_documents, cheapest_matching_offer, sync_group_index
from search_index.indexing import connect, sync_index
from search_index.listings import SearchPage, search_products
from search_index.params import SearchParams
from search_index.settings import group_index_uid
from tests.storefront.conftest import text_of
from tests.storefront.sample_catalog import (
    SampleOffer,
    delete_sample_catalog,
    insert_sample_catalog,
    search_documents,
)

CHOSEN = ["shopwave", "bazaar"]
OFFERS = (
    # P1: dear on a chosen marketplace, very cheap elsewhere.
    SampleOffer("shopwave", "P1-S", "Widget One", 5000, "USD", "widgets", "Acme", "g-p1"),
    SampleOffer("dummymart", "P1-D", "Widget One", 500, "USD", "widgets", "Acme", "g-p1"),
    # P2: only on Bazaar (20 EUR = 21.74 USD).
    SampleOffer("bazaar", "P2-B", "Widget Two", 2000, "EUR", "widgets", "Acme", "g-p2"),
    # P3: on both chosen marketplaces (30 USD, 40 EUR = 43.48 USD).
    SampleOffer("shopwave", "P3-S", "Widget Three", 3000, "USD", "widgets", "Acme", "g-p3"),
    SampleOffer("bazaar", "P3-B", "Widget Three", 4000, "EUR", "widgets", "Acme", "g-p3"),
    # P4: only elsewhere (never listed with the chosen marketplaces).
    SampleOffer("kiondo", "P4-K", "Widget Four", 100000, "KES", "widgets", "Acme", "g-p4"),
    # P5: two offers on Shopwave, the cheaper one out of stock.
    SampleOffer("shopwave", "P5-S1", "Widget Five", 2500, "USD", "widgets", "Acme", "g-p5",
                available=False),
    SampleOffer("shopwave", "P5-S2", "Widget Five", 4500, "USD", "widgets", "Acme", "g-p5"),
    # P6: cheap on Shopwave, dear on Bazaar (60 EUR = 65.22 USD).
    SampleOffer("shopwave", "P6-S", "Widget Six", 3000, "USD", "widgets", "Acme", "g-p6"),
    SampleOffer("bazaar", "P6-B", "Widget Six", 6000, "EUR", "widgets", "Acme", "g-p6"),
    # P7: very cheap on DummyMart, 35 EUR (38.04 USD) on Bazaar.
    SampleOffer("dummymart", "P7-D", "Widget Seven", 500, "USD", "widgets", "Acme", "g-p7"),
    SampleOffer("bazaar", "P7-B", "Widget Seven", 3500, "EUR", "widgets", "Acme", "g-p7"),
)  # fmt: skip


@pytest.fixture(scope="module")
def uid(meili_server: str) -> Iterator[str]:
    client = connect()
    uid = f"test_prices_{uuid.uuid4().hex[:10]}"
    documents = search_documents(OFFERS)
    sync_index(client, uid, documents, full_rebuild=True, task_timeout=120)
    sync_group_index(client, uid, documents, full_rebuild=True, task_timeout=120)
    yield uid
    delete_sample_catalog(client, uid)


@pytest.fixture(scope="module")
def meili(meili_server: str) -> meilisearch.Client:
    return connect()


@pytest.fixture
def app_config_overrides(meili_server: str, uid: str) -> dict[str, Any]:
    return {"MEILI_URL": meili_server, "MEILI_INDEX": uid, "FX_CACHE_SECONDS": 0}


def run(client: meilisearch.Client, uid: str, **args: object) -> SearchPage:
    pairs = [
        (key, str(item))
        for key, value in args.items()
        for item in (value if isinstance(value, list) else [value])
    ]
    params = SearchParams.from_query_args(MultiDict(pairs))
    return search_products(client, group_index_uid(uid), params)


def expected_prices(available_only: bool = False) -> dict[str, int]:
    """Each listed product's price among the chosen marketplaces, worked out from its offers."""
    prices = {}
    for document in build_group_documents(search_documents(OFFERS)):
        offer = cheapest_matching_offer(
            document["offers"], marketplaces=CHOSEN, available_only=available_only
        )
        if offer is not None:
            prices[document["id"]] = offer["price_usd_minor"]
    return prices


@pytest.mark.parametrize("sort", ["price_asc", "price_desc"])
@pytest.mark.parametrize("available", [None, "1"])
def test_price_sort_over_several_marketplaces_uses_their_cheapest_offer(
    meili: meilisearch.Client, uid: str, sort: str, available: str | None
) -> None:
    extra = {"available": available} if available else {}
    page = run(meili, uid, q="widget", marketplace=CHOSEN, sort=sort, **extra)

    prices = expected_prices(available_only=available is not None)
    sign = -1 if sort == "price_desc" else 1
    order = sorted(prices, key=lambda g: (sign * prices[g], g))  # equal prices: by id
    assert [hit.group_id for hit in page.hits] == order
    assert page.total_hits == len(order)
    for hit in page.hits:
        assert hit.offer.marketplace in CHOSEN
        assert hit.offer.price_usd_minor == prices[hit.group_id]
    # The cheapest offer overall would have put P1 (5.00 USD on DummyMart) first.
    if sort == "price_asc":
        assert page.hits[0].group_id != "g-p1"


def test_pages_of_a_multi_marketplace_price_sort_follow_on(
    meili: meilisearch.Client, uid: str
) -> None:
    # per_page is at least 12 in URLs; SearchParams directly allows pages of two.
    pages = []
    for number in (1, 2, 3, 4):
        params = SearchParams(
            q="widget", marketplaces=tuple(CHOSEN), sort="price_desc", page=number, per_page=2
        )
        pages.append(search_products(meili, group_index_uid(uid), params))
    prices = expected_prices()
    order = sorted(prices, key=lambda g: (-prices[g], g))
    assert len(order) == 6
    assert [[h.group_id for h in p.hits] for p in pages] == [
        order[0:2],
        order[2:4],
        order[4:6],
        order[4:6],
    ]
    assert pages[0].total_pages == 3 and pages[3].corrections  # page 4 was corrected to 3


def test_the_price_range_and_filter_use_the_chosen_marketplaces(
    meili: meilisearch.Client, uid: str
) -> None:
    prices = expected_prices()
    page = run(meili, uid, q="widget", marketplace=CHOSEN)
    assert (page.price_min_usd_minor, page.price_max_usd_minor) == (
        min(prices.values()),
        max(prices.values()),
    )
    # 25..45 USD: P3 (30.00 on Shopwave) and P5 (45.00 in stock); P1 (50.00 on Shopwave, 5.00
    # on DummyMart) is out, though its cheapest offer overall is not above the range.
    filtered = run(meili, uid, q="widget", marketplace=CHOSEN, min_price="25", max_price="45")
    inside = {g for g, p in prices.items() if 2500 <= p <= 4500}
    assert {hit.group_id for hit in filtered.hits} == inside


def test_marketplace_counts_under_a_price_filter_count_that_marketplace_s_offer(
    meili: meilisearch.Client, uid: str
) -> None:
    # 25..45 USD. On Shopwave P3 (30.00), P5 (45.00) and P6 (30.00) are in range, P1 (50.00)
    # is not. On Bazaar P3 (43.48) and P7 (38.04) are, though P7's cheapest offer overall
    # (5.00 on DummyMart) is not; P6 (65.22) is not, though its cheapest offer overall is.
    for extra in ({}, {"marketplace": CHOSEN}, {"available": "1"}):
        page = run(meili, uid, q="widget", min_price="25", max_price="45", **extra)
        counts = {f.value: f.count for f in page.facets["marketplace"]}
        for slug in ("shopwave", "bazaar", "dummymart", "kiondo"):
            only = run(
                meili, uid, q="widget", min_price="25", max_price="45", marketplace=slug,
                **{k: v for k, v in extra.items() if k != "marketplace"},
            )  # fmt: skip
            # Ticking the box gives exactly the products the count promised.
            assert counts.get(slug, 0) == only.total_hits, (extra, slug)
        if not extra or extra.get("available"):
            assert counts == {"shopwave": 3, "bazaar": 2}


def test_the_no_rating_value_and_review_counts_reach_the_cards(
    meili: meilisearch.Client, uid: str
) -> None:
    # None of these offers publishes a rating: all seven are "no rating published".
    page = run(meili, uid, q="widget")
    rating = {f.value: f.count for f in page.facets["rating"]}
    assert rating["unrated"] == page.total_hits == 7 and rating["1"] == 0
    assert all(hit.rating is None and hit.rating_count == 0 for hit in page.hits)


def test_the_search_page_shows_the_counts_and_the_unrated_products_honestly(
    client: FlaskClient, db_session: Session
) -> None:
    insert_sample_catalog(db_session)  # the marketplaces (facet labels) and the FX rates
    db_session.commit()

    html = client.get("/search?q=widget&min_price=25&max_price=45").get_data(as_text=True)
    text = text_of(html)

    assert "3 products for “widget”" in text  # P3, P5, P6 (cheapest offer in range)
    # Each marketplace counts the products whose offer there is in the range.
    assert "ShopWave (3)" in text and "Euro Bazaar (2)" in text
    assert 'value="dummymart"' not in html and 'value="kiondo"' not in html
    # Unrated products are a facet value and say so on their cards, never dropped.
    assert "No rating published (3)" in text
    assert html.count("No rating published</p>") == html.count('<article class="product-card') == 3

"""Product listings, filters, the home page and the search client against a real Meilisearch
index (offers + product index) built with the contract's settings.

Changed with issue 9 (intentionally): listings are products, so counts, facets and pages count
products; a card shows the product's cheapest offer that matches the filters; the price filter
and the price sort use that offer; "Highest rated" orders by the review-weighted score.
"""

from __future__ import annotations

import random
import socket
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import meilisearch
import pytest
from werkzeug.datastructures import MultiDict

import search_index.client as search_client_module
from search_index.cache import ResultCache
from search_index.client import SearchUnavailable, make_client, run_multi_search
from search_index.filters import PriceScale, display_to_usd_minor, quote_filter_value
from search_index.groups import (
    OFFER_CARD_FIELDS,
    bayesian_rating,
    build_group_documents,
    cheapest_matching_offer,
    sync_group_index,
)
from search_index.indexing import connect, sync_index
from search_index.listings import SearchPage, offers_in_group, search_products
from search_index.merchandising import home_showcase, pick_price_drops
from search_index.params import DEFAULT_PER_PAGE, MAX_QUERY_CHARS, SearchParams
from search_index.settings import GROUP_INDEX_SETTINGS, group_index_uid
from storefront.catalog.highlight import highlight_title
from tests.storefront.sample_catalog import (
    FLASK_GROUP,
    NOW,
    OFFERS,
    SCRIPT_TITLE,
    SONY_GROUP,
    TV_GROUP,
    SampleOffer,
    by_external_id,
    delete_sample_catalog,
    index_sample_catalog,
    search_documents,
)


@pytest.fixture(scope="module")
def client(meili_server: str) -> meilisearch.Client:
    return connect()


@pytest.fixture(scope="module")
def index_uid(client: meilisearch.Client) -> Iterator[str]:
    uid = f"test_queries_{uuid.uuid4().hex[:10]}"
    index_sample_catalog(client, uid)
    yield uid
    delete_sample_catalog(client, uid)


def run(
    client: meilisearch.Client, uid: str, scale: PriceScale = PriceScale(), **args: object
) -> SearchPage:
    """A product listing with URL-style arguments, as the site does."""
    pairs: list[tuple[str, str]] = []
    for key, value in args.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, str(item)))
    params = SearchParams.from_query_args(MultiDict(pairs))
    return search_products(client, group_index_uid(uid), params, scale=scale)


PRODUCTS = len({offer.document_group_id for offer in OFFERS})


# --- Parameters (pure) -------------------------------------------------------------------------


def test_query_args_are_read_and_written_back_canonically() -> None:
    args = MultiDict(
        [
            ("q", "  sony   headphones "),
            ("marketplace", "kiondo"),
            ("marketplace[]", "shopwave"),
            ("marketplace", "kiondo"),
            ("available", "1"),
            ("min_price", "10.50"),
            ("max_price", "300"),
            ("min_rating", "4"),
            ("sort", "price_asc"),
            ("page", "2"),
            ("per_page", "12"),
        ]
    )
    params = SearchParams.from_query_args(args)

    assert params.q == "sony headphones"
    assert params.marketplaces == ("kiondo", "shopwave")
    assert params.available is True
    assert params.min_price == Decimal("10.50") and params.max_price == Decimal("300")
    assert params.min_rating == 4 and params.sort == "price_asc"
    assert (params.page, params.per_page) == (2, 12)
    assert params.corrections == ()
    assert params.to_query_args() == [
        ("q", "sony headphones"),
        ("marketplace", "kiondo"),
        ("marketplace", "shopwave"),
        ("available", "1"),
        ("min_price", "10.5"),
        ("max_price", "300"),
        ("min_rating", "4"),
        ("sort", "price_asc"),
        ("per_page", "12"),
        ("page", "2"),
    ]
    # Changing a filter goes back to page 1; toggling a facet value removes it.
    assert ("page", "2") not in params.to_query_args(sort="rating")
    assert ("marketplace", "kiondo") not in params.toggled("marketplace", "kiondo")


@pytest.mark.parametrize(
    ("args", "expected", "note"),
    [
        ({"page": "abc"}, {"page": 1}, "page number"),
        ({"page": "-3"}, {"page": 1}, "page number"),
        ({"page": "0"}, {"page": 1}, "page number"),
        ({"page": "99999999"}, {"page": 10_000 // DEFAULT_PER_PAGE}, "Results stop"),
        ({"per_page": "1000"}, {"per_page": DEFAULT_PER_PAGE}, "per page"),
        ({"sort": "price; DROP"}, {"sort": "relevance"}, "sort order"),
        ({"min_price": "cheap"}, {"min_price": None}, "minimum price"),
        ({"max_price": "-5"}, {"max_price": None}, "maximum price"),
        ({"max_price": "1e9"}, {"max_price": None}, "maximum price"),
        ({"min_price": "50", "max_price": "10"}, {"min_price": 10, "max_price": 50}, "swapped"),
        ({"min_rating": "9"}, {"min_rating": 5}, "5 stars"),
        ({"min_rating": "x"}, {"min_rating": None}, "not a number"),
        ({"min_rating": "NaN"}, {"min_rating": None}, "not a number"),
        ({"available": "maybe"}, {"available": None}, "availability"),
    ],
)
def test_bad_parameters_are_corrected_with_a_note(
    args: dict[str, str], expected: dict[str, object], note: str
) -> None:
    params = SearchParams.from_query_args(MultiDict(list(args.items())))

    for name, value in expected.items():
        assert getattr(params, name) == value
    assert any(note in text for text in params.corrections), params.corrections


def test_overlong_query_and_control_characters_are_cleaned() -> None:
    params = SearchParams.from_query_args({"q": "tv\x00\x1b" + "x" * 500, "brand": ["\x07"] * 3})

    assert len(params.q) == MAX_QUERY_CHARS and "\x00" not in params.q
    assert params.brands == ()
    assert any("shortened" in note for note in params.corrections)


def test_filter_values_are_quoted_so_they_cannot_change_the_expression() -> None:
    assert quote_filter_value('O"Neill') == '"O\\"Neill"'
    assert quote_filter_value("a\\") == '"a\\\\"'


def test_display_prices_convert_to_usd_bounds_without_losing_an_exact_match() -> None:
    # 100 EUR at 0.92 EUR per USD is 108.6956… USD: the lower bound rounds down, the upper up.
    assert display_to_usd_minor(Decimal("100"), "EUR", Decimal("0.92"), round_up=False) == 10869
    assert display_to_usd_minor(Decimal("100"), "EUR", Decimal("0.92"), round_up=True) == 10870
    assert display_to_usd_minor(Decimal("12.34"), "USD", Decimal(1), round_up=True) == 1234


def test_highlights_are_applied_after_escaping() -> None:
    html = highlight_title('<b>Sony</b> & "x"\x00', [(3, 4)])

    assert str(html) == "&lt;b&gt;<mark>Sony</mark>&lt;/b&gt; &amp; &#34;x&#34;"
    # Positions are UTF-8 bytes (as Meilisearch gives them): "é" takes two.
    assert str(highlight_title("Café Déjà headphones", [(6, 6), (13, 10)])) == (
        "Café <mark>Déjà</mark> <mark>headphones</mark>"
    )
    assert str(highlight_title("short", [(3, 50), (99, 2)])) == "sho<mark>rt</mark>"


def test_the_result_cache_expires_and_evicts_the_least_recently_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr("search_index.cache.time.monotonic", lambda: clock[0])
    cache = ResultCache(ttl_seconds=30, max_entries=2)
    cache.put(b"a", [{"n": 1}])
    cache.put(b"b", [{"n": 2}])
    assert cache.get(b"a") == [{"n": 1}]  # "a" is now the most recently used
    cache.put(b"c", [{"n": 3}])
    assert cache.get(b"b") is None and cache.get(b"c") == [{"n": 3}]
    clock[0] += 31
    assert cache.get(b"a") is None
    off = ResultCache(ttl_seconds=0)
    off.put(b"a", [])
    assert off.get(b"a") is None


def test_review_weighting_puts_many_good_reviews_above_one_perfect_one() -> None:
    prior = Decimal("4.2")
    assert bayesian_rating(Decimal("5.0"), 1, prior) < bayesian_rating(Decimal("4.9"), 626, prior)
    assert bayesian_rating(Decimal("5.0"), 1, prior) < bayesian_rating(Decimal("4.6"), 40, prior)
    documents = build_group_documents(
        [
            {"id": "a", "group_id": "g", "marketplace": "m1", "price_minor": 100,
             "currency": "USD", "price_usd_minor": 100, "available": True,
             "rating": 5.0, "rating_count": 10},
            {"id": "b", "group_id": "g", "marketplace": "m2", "price_minor": 90,
             "currency": "USD", "price_usd_minor": 90, "available": True,
             "rating": 4.0, "rating_count": 30},
            {"id": "c", "group_id": "h", "marketplace": "m3", "price_minor": 90,
             "currency": "USD", "price_usd_minor": 90, "available": True,
             "rating": None, "rating_count": None},
        ]
    )  # fmt: skip
    by_id = {document["id"]: document for document in documents}
    # The group's rating weighs each marketplace's rating by its reviews: (5*10 + 4*30) / 40.
    assert by_id["g"]["rating"] == 4.25 and by_id["g"]["rating_count"] == 40
    assert by_id["h"]["rated"] is False and by_id["h"]["rating"] is None
    assert "rating_score" not in by_id["h"]


def test_the_shown_offer_is_the_cheapest_that_matches_the_filters() -> None:
    offers = [
        {"id": "1", "marketplace": "a", "price_usd_minor": 500, "available": False},
        {"id": "2", "marketplace": "a", "price_usd_minor": 700, "available": True},
        {"id": "3", "marketplace": "b", "price_usd_minor": 600, "available": True},
        {"id": "4", "marketplace": "c", "price_usd_minor": 400, "available": True},
    ]
    assert cheapest_matching_offer(offers)["id"] == "4"
    assert cheapest_matching_offer(offers, marketplaces=["a"])["id"] == "2"  # in stock first
    assert cheapest_matching_offer(offers, marketplaces=["a", "b"])["id"] == "3"
    assert cheapest_matching_offer(offers, marketplaces=["a"], available_only=True)["id"] == "2"
    assert cheapest_matching_offer(offers, marketplaces=["z"]) is None


def test_a_product_document_names_the_offer_its_card_shows_without_a_marketplace_filter() -> None:
    rng = random.Random(9)
    offers = []
    for number in range(400):
        for copy in range(rng.randint(1, 5)):
            price = rng.randrange(100, 2000, 100)  # equal prices: the id must break ties alike
            offers.append(
                {"id": f"o-{number}-{copy}", "group_id": f"g-{number}",
                 "marketplace": rng.choice(("a", "b", "c")), "marketplace_name": "A",
                 "marketplace_logo": None, "price_minor": price, "currency": "USD",
                 "price_usd_minor": price, "available": rng.random() < 0.6}
            )  # fmt: skip
    for document in build_group_documents(offers):
        cheapest = cheapest_matching_offer(document["offers"])
        assert cheapest is not None
        assert document["shown_offer"] == {name: cheapest[name] for name in OFFER_CARD_FIELDS}
        if document["available"]:  # what "in stock only" lists shows the same offer
            in_stock = cheapest_matching_offer(document["offers"], available_only=True)
            assert in_stock is not None and in_stock["id"] == document["shown_offer"]["id"]


def test_a_listing_reads_every_offer_from_a_product_index_built_before_shown_offer(
    client: meilisearch.Client, index_uid: str
) -> None:
    uid = f"{index_uid}_old_groups"
    older = [
        {key: value for key, value in document.items() if key != "shown_offer"}
        for document in build_group_documents(search_documents())
    ]
    client.create_index(uid, {"primaryKey": "id"})
    index = client.index(uid)
    index.update_settings(GROUP_INDEX_SETTINGS)
    task = index.add_documents(older)
    client.wait_for_task(task.task_uid, timeout_in_ms=60_000)
    try:
        params = SearchParams.from_query_args(MultiDict([("q", "sony")]))
        page = search_products(client, uid, params)
        current = run(client, index_uid, q="sony")
        assert [hit.offer for hit in page.hits] == [hit.offer for hit in current.hits]
        assert page.hits and page.hits[0].offer.marketplace == "kiondo"
    finally:
        client.wait_for_task(client.delete_index(uid).task_uid, timeout_in_ms=60_000)


def test_price_drops_need_a_lower_current_price_and_keep_one_offer_per_group() -> None:
    documents = [
        {"id": "1", "group_id": "g", "price_minor": 80, "previous_price_minor": 100, "price_dropped_at": 5},
        {"id": "2", "group_id": "g", "price_minor": 70, "previous_price_minor": 90, "price_dropped_at": 9},
        {"id": "3", "group_id": "h", "price_minor": 120, "previous_price_minor": 100, "price_dropped_at": 7},
        {"id": "4", "group_id": "i", "price_minor": 50, "previous_price_minor": 60, "price_dropped_at": None},
    ]  # fmt: skip
    assert [hit.offer.id for hit in pick_price_drops(documents, 5)] == ["2"]


# --- Against Meilisearch -----------------------------------------------------------------------


def test_a_typo_still_finds_the_product(client: meilisearch.Client, index_uid: str) -> None:
    page = run(client, index_uid, q="hedphones sny")

    assert page.hits, "typo-tolerant search found nothing"
    assert {hit.group_id for hit in page.hits} == {SONY_GROUP}


def test_synonyms_come_from_the_index_settings(client: meilisearch.Client, index_uid: str) -> None:
    page = run(client, index_uid, q="tv")

    assert [hit.group_id for hit in page.hits] == [TV_GROUP]


def test_listings_show_one_card_per_product_with_its_cheapest_offer(
    client: meilisearch.Client, index_uid: str
) -> None:
    page = run(client, index_uid, q="sony")

    # Four offers match; the listing counts and shows one product.
    assert page.total_hits == 1
    (card,) = page.hits
    assert (card.offer_count, card.marketplace_count) == (4, 4) and card.has_other_offers
    cheapest = min((o for o in OFFERS if o.group_id == SONY_GROUP), key=lambda o: o.usd_minor)
    assert card.offer.marketplace == cheapest.marketplace == "kiondo"
    assert (card.offer.price_minor, card.offer.currency) == (cheapest.price_minor, "KES")
    # The review-weighted rating of the three marketplaces that publish one (NaijaMall doesn't).
    assert card.rating == Decimal("4.7") and card.rating_count == 1200 + 87 + 300


def test_facets_count_products_and_stay_disjunctive(
    client: meilisearch.Client, index_uid: str
) -> None:
    everything = run(client, index_uid)
    counts = {f.value: f.count for f in everything.facets["marketplace"]}
    assert counts == {
        "shopwave": 3,
        "kiondo": 2,
        "dummymart": 2,
        "fakestore": 3,
        "naijamall": 1,
        "bazaar": 3,
    }
    assert everything.total_hits == PRODUCTS
    available = {f.value: f.count for f in everything.facets["available"]}
    # The TV's Fake Store offer is out of stock, but the TV is in stock elsewhere.
    assert available == {"true": PRODUCTS, "false": 0}

    narrowed = run(client, index_uid, marketplace="kiondo")
    by_value = {f.value: f for f in narrowed.facets["marketplace"]}
    # The other marketplaces keep their counts so the shopper can add them to the filter...
    assert by_value["shopwave"].count == 3 and not by_value["shopwave"].selected
    assert by_value["kiondo"].selected
    # ...while the other facets count only what the filter leaves.
    assert {f.value: f.count for f in narrowed.facets["category"]} == {"headphones": 1, "flasks": 1}
    assert narrowed.total_hits == 2


def test_a_marketplace_filter_keeps_products_with_an_offer_there_and_shows_that_offer(
    client: meilisearch.Client, index_uid: str
) -> None:
    page = run(client, index_uid, marketplace=["shopwave", "fakestore"], category="televisions")
    (tv,) = page.hits
    # Dummymart's offer is cheaper but not on a chosen marketplace; Fake Store's is dearer.
    assert tv.offer.marketplace == "shopwave" and tv.offer.price_minor == 59999
    assert tv.offer_count == 3  # the card still says how many offers the product has

    in_stock = run(client, index_uid, category="televisions", available="1")
    assert [hit.offer.marketplace for hit in in_stock.hits] == ["dummymart"]

    nothing_in_stock_there = run(
        client, index_uid, category="televisions", available="0", marketplace="fakestore"
    )
    assert [hit.offer.marketplace for hit in nothing_in_stock_there.hits] == ["fakestore"]
    assert run(client, index_uid, category="televisions", available="0").hits == []

    quoted = run(client, index_uid, brand='O"Neill')
    assert [hit.title for hit in quoted.hits] == ['O"Neill Logo Hoodie']

    rated = run(client, index_uid, min_rating="4", category="televisions")
    assert [hit.group_id for hit in rated.hits] == [TV_GROUP]


def test_products_without_a_published_rating_are_a_facet_value_not_dropped(
    client: meilisearch.Client,
) -> None:
    unrated = SampleOffer("naijamall", "NM-1", "Tecno Spark 20 Phone", 9000000, "NGN",
                          "smartphones", "Tecno")  # fmt: skip
    rated = SampleOffer("shopwave", "R-1", "Nokia G42 Phone", 19999, "USD", "smartphones",
                        "Nokia", rating=Decimal("4.5"), rating_count=30)  # fmt: skip
    uid = f"test_unrated_{uuid.uuid4().hex[:10]}"
    documents = search_documents([unrated, rated])
    sync_index(client, uid, documents, full_rebuild=True, task_timeout=120)
    sync_group_index(client, uid, documents, full_rebuild=True, task_timeout=120)
    try:
        everything = run(client, uid, q="phone")
        assert everything.total_hits == 2
        rating = {f.value: f.count for f in everything.facets["rating"]}
        assert rating["4"] == 1 and rating["unrated"] == 1
        assert [h.title for h in run(client, uid, q="phone", min_rating="4").hits] == [rated.title]
        both = run(client, uid, q="phone", min_rating="4", unrated="1")
        assert {h.title for h in both.hits} == {rated.title, unrated.title}
        assert [h.title for h in run(client, uid, unrated="1").hits] == [unrated.title]
    finally:
        delete_sample_catalog(client, uid)


def test_price_filter_uses_the_cheapest_matching_offer_in_the_display_currency(
    client: meilisearch.Client, index_uid: str
) -> None:
    # 25..40 EUR at 0.92 EUR per USD is 27.17..43.48 USD. The Asics (39.99 USD) is in. The flask
    # is out: its cheapest offer (3,500 KES on Kiondo = 27.03 USD) is below the range, even
    # though its Bazaar offer (29.99 EUR = 32.60 USD) is inside it...
    eur = PriceScale(currency="EUR", per_usd=Decimal("0.92"))
    page = run(client, index_uid, scale=eur, min_price="25", max_price="40")
    assert {hit.title for hit in page.hits} == {by_external_id("44").title}
    # ...unless the shopper only looks at Bazaar, whose offer is then the flask's price.
    bazaar = run(client, index_uid, scale=eur, min_price="25", max_price="40", marketplace="bazaar")
    assert [(hit.group_id, hit.offer.marketplace) for hit in bazaar.hits] == [
        (FLASK_GROUP, "bazaar")
    ]
    # With two marketplaces the product's price is the smaller of theirs.
    both = run(
        client, index_uid, scale=eur, min_price="25", max_price="40",
        marketplace=["bazaar", "kiondo"],
    )  # fmt: skip
    assert FLASK_GROUP not in {hit.group_id for hit in both.hits}
    # The price range ignores the price filter itself (so the shopper sees what exists).
    flasks = run(client, index_uid, category="flasks")
    cheapest_flask = min(o.usd_minor for o in OFFERS if o.group_id == FLASK_GROUP)
    assert flasks.price_min_usd_minor == flasks.price_max_usd_minor == cheapest_flask


@pytest.mark.parametrize("descending", [False, True])
def test_price_sort_orders_products_by_their_cheapest_offer(
    client: meilisearch.Client, index_uid: str, descending: bool
) -> None:
    page = run(client, index_uid, sort="price_desc" if descending else "price_asc", per_page="48")

    assert len(page.hits) == PRODUCTS
    prices = [hit.offer.price_usd_minor for hit in page.hits]
    assert prices == sorted(prices, reverse=descending)
    for hit in page.hits:
        group = [o for o in OFFERS if o.document_group_id == hit.group_id and o.available]
        assert hit.offer.price_usd_minor == min(o.usd_minor for o in group)

    shopwave = run(client, index_uid, sort="price_asc", marketplace="shopwave", per_page="48")
    assert [hit.offer.marketplace for hit in shopwave.hits] == ["shopwave"] * 3
    shown = [hit.offer.price_usd_minor for hit in shopwave.hits]
    assert shown == sorted(shown)


def test_highest_rated_weighs_ratings_by_their_reviews(
    client: meilisearch.Client, index_uid: str
) -> None:
    page = run(client, index_uid, sort="rating", per_page="48")

    documents = {d["id"]: d for d in build_group_documents(search_documents())}
    scores = [documents[hit.group_id].get("rating_score") for hit in page.hits]
    rated = [score for score in scores if score is not None]
    assert rated == sorted(rated, reverse=True) and len(rated) == PRODUCTS
    # The O'Neill hoodie (3.5 from 4 reviews) and the Asics (4.9 from 950) bracket the list.
    assert page.hits[0].title == by_external_id("44").title


def test_a_script_title_is_escaped_and_still_highlighted(
    client: meilisearch.Client, index_uid: str
) -> None:
    page = run(client, index_uid, q="speaker")

    (hit,) = page.hits
    assert hit.title == SCRIPT_TITLE
    html = str(highlight_title(hit.title, hit.title_matches))
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    assert "<mark>Speaker</mark>" in html


def test_pages_past_the_end_are_corrected_to_the_last_page(
    client: meilisearch.Client, index_uid: str
) -> None:
    page = run(client, index_uid, per_page="12", page="7")

    # 8 products at 12 per page: one page.
    assert page.total_pages == 1 and page.page == 1
    assert len(page.hits) == PRODUCTS
    assert page.corrections == ("There is only one page of results; showing it.",)


def test_a_page_past_the_deep_paging_cap_names_only_the_real_last_page(
    client: meilisearch.Client, index_uid: str
) -> None:
    # page=99999 is first capped at the last page Meilisearch serves (416 at 24 per page), then
    # at the last page of these results: the shopper is told of that one only, not of both.
    page = run(client, index_uid, per_page="24", page="99999")

    assert page.total_pages == 1 and page.page == 1
    assert page.corrections == ("There is only one page of results; showing it.",)


def test_no_results_is_an_empty_page_not_an_error(
    client: meilisearch.Client, index_uid: str
) -> None:
    page = run(client, index_uid, q="qqqqzzzzxxxx", page="3")

    assert page.total_hits == 0 and page.hits == [] and page.total_pages == 0
    assert page.page_numbers() == []


def test_offers_in_group_are_cheapest_first(client: meilisearch.Client, index_uid: str) -> None:
    offers = offers_in_group(client, index_uid, SONY_GROUP)

    assert len(offers) == 4
    prices = [offer["price_usd_minor"] for offer in offers]
    assert prices == sorted(prices)
    assert offers[0]["marketplace"] == "kiondo"
    assert offers_in_group(client, index_uid, 'nope" OR group_id EXISTS') == []


def test_home_showcase_features_deals_drops_top_rated_and_categories(
    client: meilisearch.Client, index_uid: str
) -> None:
    showcase = home_showcase(client, index_uid, group_index_uid(index_uid))

    categories = {facet.value: facet.count for facet in showcase.categories}
    assert categories["headphones"] == 1 and categories["televisions"] == 1
    assert showcase.total_products == PRODUCTS

    gaps = {}
    for group in (SONY_GROUP, TV_GROUP, FLASK_GROUP):
        prices = [o.usd_minor for o in OFFERS if o.group_id == group and o.available]
        gaps[group] = max(prices) - min(prices)
    best = max(gaps, key=gaps.__getitem__)
    assert showcase.best_deals[0].hit.group_id == best
    assert showcase.best_deals[0].saving_usd_minor == gaps[best]
    assert showcase.best_deals[0].hit.offer.price_usd_minor == min(
        o.usd_minor for o in OFFERS if o.group_id == best and o.available
    )

    assert [hit.title for hit in showcase.price_drops] == [by_external_id("3001").title]
    assert showcase.top_rated[0].title == by_external_id("44").title  # 4.9 from 950 reviews
    assert all(hit.rating is not None and hit.rating >= 4 for hit in showcase.top_rated)
    assert len({hit.group_id for hit in showcase.top_rated}) == len(showcase.top_rated)


def test_home_price_drops_come_newest_drop_first_whatever_was_updated_last(
    client: meilisearch.Client,
) -> None:
    def offer(external_id: str, **history: object) -> SampleOffer:
        return SampleOffer(
            "shopwave", external_id, f"Offer {external_id}", 1000, "USD", "chargers", "Anker",
            **history,  # type: ignore[arg-type]
        )  # fmt: skip

    days = lambda n: NOW - timedelta(days=n)  # noqa: E731
    # Listed most recently updated first (search_documents spaces updated_at an hour apart), so
    # the order of updates differs from the order of drops.
    offers = [
        offer("fresh"),  # updated last, never dropped
        offer("rise", previous_price_minor=800),  # price went up: no drop time
        offer("gone", previous_price_minor=1500, price_dropped_at=days(0), available=False),
        offer("old-drop", previous_price_minor=1500, price_dropped_at=days(3)),
        offer("new-drop", previous_price_minor=1500, price_dropped_at=days(1)),
        SampleOffer("bazaar", "g-1", "Grouped 1", 900, "EUR", "chargers", "Anker", "g-same",
                    previous_price_minor=1200, price_dropped_at=days(2)),
        SampleOffer("kiondo", "g-2", "Grouped 2", 90000, "KES", "chargers", "Anker", "g-same",
                    previous_price_minor=120000, price_dropped_at=days(2.5)),
    ]  # fmt: skip
    uid = f"test_drops_{uuid.uuid4().hex[:10]}"
    documents = search_documents(offers)
    sync_index(client, uid, documents, full_rebuild=True, task_timeout=120)
    sync_group_index(client, uid, documents, full_rebuild=True, task_timeout=120)
    try:
        showcase = home_showcase(client, uid, group_index_uid(uid))
        assert [hit.title for hit in showcase.price_drops] == [
            "Offer new-drop",
            "Grouped 1",
            "Offer old-drop",
        ]
        shorter = home_showcase(client, uid, group_index_uid(uid), limit=2)
        assert [hit.title for hit in shorter.price_drops] == ["Offer new-drop", "Grouped 1"]
    finally:
        delete_sample_catalog(client, uid)


def test_cached_answers_are_reused_for_the_same_listing(
    client: meilisearch.Client, index_uid: str
) -> None:
    cache = ResultCache(ttl_seconds=60)
    params = SearchParams.from_query_args({"q": "thermos"})
    products = group_index_uid(index_uid)
    first = search_products(client, products, params, cache=cache)
    down = make_client("http://127.0.0.1:9", "any-key-of-sixteen-bytes")

    again = search_products(down, products, params, cache=cache)  # answered from the cache

    assert [hit.group_id for hit in again.hits] == [hit.group_id for hit in first.hits]
    with pytest.raises(SearchUnavailable):
        search_products(down, products, SearchParams(q="flask"), cache=cache)


def test_a_refused_query_is_reported_as_search_unavailable(
    client: meilisearch.Client, index_uid: str
) -> None:
    with pytest.raises(SearchUnavailable) as caught:
        run_multi_search(client, [{"indexUid": index_uid, "q": "", "filter": "nope = 1"}])
    assert caught.value.reason == "error" and "400" in str(caught.value)


def test_a_missing_index_is_reported_as_search_unavailable(client: meilisearch.Client) -> None:
    with pytest.raises(SearchUnavailable) as caught:
        search_products(client, "no_such_index_here", SearchParams())
    assert caught.value.reason == "index_missing"


def test_a_server_that_is_down_is_reported_as_search_unavailable(unreachable_url: str) -> None:
    down = make_client(unreachable_url, "any-key-of-sixteen-bytes")
    with pytest.raises(SearchUnavailable) as caught:
        search_products(down, "products_groups", SearchParams(q="tv"))
    assert caught.value.reason == "unreachable"
    with pytest.raises(SearchUnavailable):
        home_showcase(down, "products", "products_groups")


def test_a_search_after_the_kept_connection_died_is_sent_again(
    client: meilisearch.Client, index_uid: str
) -> None:
    params = SearchParams.from_query_args({"q": "thermos"})
    products = group_index_uid(index_uid)
    first = search_products(client, products, params)
    kept = list(search_client_module._local.open.values())
    assert kept, "the first search keeps its connection open for the next one"
    for connection in kept:  # as when Meilisearch closes an idle connection
        connection.sock.shutdown(socket.SHUT_RDWR)

    again = search_products(client, products, params)

    assert [hit.group_id for hit in again.hits] == [hit.group_id for hit in first.hits]
    assert again.total_hits == first.total_hits


def test_work_given_to_while_waiting_runs_once_per_listing_cached_or_not(
    client: meilisearch.Client, index_uid: str
) -> None:
    calls: list[str] = []
    params = SearchParams.from_query_args({"q": "flask"})
    products = group_index_uid(index_uid)
    cache = ResultCache(ttl_seconds=60)

    fresh = search_products(
        client, products, params, cache=cache, while_waiting=lambda: calls.append("a")
    )
    cached = search_products(
        client, products, params, cache=cache, while_waiting=lambda: calls.append("b")
    )

    assert calls == ["a", "b"]
    assert [hit.group_id for hit in cached.hits] == [hit.group_id for hit in fresh.hits]

    def fails() -> None:
        raise LookupError("the page could not render its frame")

    with pytest.raises(LookupError):
        search_products(client, products, SearchParams(q="sony"), while_waiting=fails)
    # The connection whose answer was never read is dropped; the next search is not confused.
    assert search_products(client, products, params).total_hits == fresh.total_hits

"""search_index.queries against a real Meilisearch index built with the contract's settings."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import meilisearch
import pytest
from werkzeug.datastructures import MultiDict

from search_index.indexing import connect, index_exists, sync_index
from search_index.queries import (
    DEFAULT_PER_PAGE,
    MAX_QUERY_CHARS,
    PriceScale,
    ResultCache,
    SearchHit,
    SearchParams,
    SearchUnavailable,
    display_to_usd_minor,
    home_showcase,
    make_client,
    offers_in_group,
    pick_price_drops,
    quote_filter_value,
    rank_deals,
    rank_top_rated,
    rated_score,
    render_highlight,
    run_multi_search,
    search_offers,
)
from tests.storefront.sample_catalog import (
    FLASK_GROUP,
    NOW,
    OFFERS,
    SCRIPT_TITLE,
    SONY_GROUP,
    TV_GROUP,
    SampleOffer,
    by_external_id,
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
    if index_exists(client, uid):
        client.wait_for_task(client.delete_index(uid).task_uid, timeout_in_ms=30_000)


def run(client: meilisearch.Client, uid: str, scale: PriceScale = PriceScale(), **args: object):
    """Search with URL-style arguments, as the site does."""
    pairs: list[tuple[str, str]] = []
    for key, value in args.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, str(item)))
    return search_offers(client, uid, SearchParams.from_query_args(MultiDict(pairs)), scale=scale)


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
    html = render_highlight('<b>\x00mark\x00Sony\x00/mark\x00</b> & "x"\x00')

    assert str(html) == "&lt;b&gt;<mark>Sony</mark>&lt;/b&gt; &amp; &#34;x&#34;"


def test_the_result_cache_expires_and_evicts_the_least_recently_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [100.0]
    monkeypatch.setattr("search_index.queries.time.monotonic", lambda: clock[0])
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


def test_deals_rank_groups_by_their_largest_gap() -> None:
    documents = [
        {"group_id": "a", "price_usd_minor": 1000, "group_min_price_usd_minor": 900},
        {"group_id": "a", "price_usd_minor": 1500, "group_min_price_usd_minor": 900},
        {"group_id": "b", "price_usd_minor": 5000, "group_min_price_usd_minor": 4900},
        {"group_id": "c", "price_usd_minor": 700, "group_min_price_usd_minor": 700},
        {"group_id": None, "price_usd_minor": 9999, "group_min_price_usd_minor": 1},
    ]
    assert rank_deals(documents, 5) == [("a", 1500, 600), ("b", 5000, 100)]


def test_top_rated_weighs_ratings_by_their_number_of_reviews() -> None:
    def hit(hit_id: str, rating: str, reviews: int, group: str | None = None) -> SearchHit:
        return SearchHit.from_document(
            {"id": hit_id, "rating": rating, "rating_count": reviews, "group_id": group or hit_id}
        )

    hits = [
        hit("one-review", "5.0", 1),
        hit("many-reviews", "4.8", 300),
        hit("same-group", "4.9", 500, group="many-reviews"),
        hit("some-reviews", "4.6", 40),
        hit("unrated", "0", 0),
    ]
    ranked = [h.id for h in rank_top_rated(hits, 3)]

    assert ranked == ["same-group", "some-reviews", "one-review"]
    assert rated_score(Decimal("5.0"), 1) < rated_score(Decimal("4.6"), 40)


def test_price_drops_need_a_lower_current_price_and_keep_one_offer_per_group() -> None:
    documents = [
        {"id": "1", "group_id": "g", "price_minor": 80, "previous_price_minor": 100, "price_dropped_at": 5},
        {"id": "2", "group_id": "g", "price_minor": 70, "previous_price_minor": 90, "price_dropped_at": 9},
        {"id": "3", "group_id": "h", "price_minor": 120, "previous_price_minor": 100, "price_dropped_at": 7},
        {"id": "4", "group_id": "i", "price_minor": 50, "previous_price_minor": 60, "price_dropped_at": None},
    ]  # fmt: skip
    assert [hit.id for hit in pick_price_drops(documents, 5)] == ["2"]


# --- Against Meilisearch -----------------------------------------------------------------------


def test_a_typo_still_finds_the_product(client: meilisearch.Client, index_uid: str) -> None:
    page = run(client, index_uid, q="hedphones sny")

    assert page.hits, "typo-tolerant search found nothing"
    assert {hit.group_id for hit in page.hits} == {SONY_GROUP}


def test_synonyms_come_from_the_index_settings(client: meilisearch.Client, index_uid: str) -> None:
    page = run(client, index_uid, q="tv")

    assert [hit.group_id for hit in page.hits] == [TV_GROUP]


def test_listings_show_one_card_per_product_with_its_offer_count(
    client: meilisearch.Client, index_uid: str
) -> None:
    page = run(client, index_uid, q="sony")

    # Four offers match; the page shows them as one product card.
    assert page.total_hits == 4
    (card,) = page.hits
    assert card.group_size == 4 and card.group_marketplaces == 4
    assert card.has_other_offers
    cheapest = min(o.usd_minor for o in OFFERS if o.group_id == SONY_GROUP)
    assert card.group_min_price_usd_minor == cheapest

    ungrouped = run(client, index_uid, q="sony", group="0")
    assert ungrouped.total_hits == 4 and len(ungrouped.hits) == 4


def test_facets_count_offers_and_stay_disjunctive(
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
    assert everything.total_hits == len(OFFERS)
    available = {f.value: f.count for f in everything.facets["available"]}
    assert available == {"true": len(OFFERS) - 1, "false": 1}

    narrowed = run(client, index_uid, marketplace="kiondo")
    by_value = {f.value: f for f in narrowed.facets["marketplace"]}
    # The other marketplaces keep their counts so the shopper can add them to the filter...
    assert by_value["shopwave"].count == 3 and not by_value["shopwave"].selected
    assert by_value["kiondo"].selected
    # ...while the other facets count only what the filter leaves.
    assert {f.value: f.count for f in narrowed.facets["category"]} == {"headphones": 1, "flasks": 1}
    assert narrowed.total_hits == 2


def test_filters_combine_marketplaces_category_brand_availability_and_rating(
    client: meilisearch.Client, index_uid: str
) -> None:
    page = run(
        client, index_uid, marketplace=["shopwave", "fakestore"], category="televisions", group="0"
    )
    assert sorted(hit.marketplace for hit in page.hits) == ["fakestore", "shopwave"]

    in_stock = run(client, index_uid, category="televisions", available="1", group="0")
    assert {hit.marketplace for hit in in_stock.hits} == {"shopwave", "dummymart"}

    out_of_stock = run(client, index_uid, category="televisions", available="0", group="0")
    assert [hit.marketplace for hit in out_of_stock.hits] == ["fakestore"]

    quoted = run(client, index_uid, brand='O"Neill')
    assert [hit.title for hit in quoted.hits] == ['O"Neill Logo Hoodie']

    rated = run(client, index_uid, min_rating="4", category="televisions", group="0")
    assert {hit.marketplace for hit in rated.hits} == {"shopwave", "dummymart"}


def test_price_filter_is_in_the_display_currency(
    client: meilisearch.Client, index_uid: str
) -> None:
    # 25..40 EUR at 0.92 EUR per USD is 27.17..43.48 USD: the Thermos on Bazaar (29.99 EUR =
    # 32.60 USD) and the Asics (39.99 USD) are in; the Thermos on Kiondo (3,500 KES = 27.03 USD)
    # and the Contigo mug (18 GBP = 22.78 USD) are out.
    eur = PriceScale(currency="EUR", per_usd=Decimal("0.92"))
    page = run(client, index_uid, scale=eur, min_price="25", max_price="40", group="0")

    matched = {"BZ-TH1", "44"}
    assert {hit.title for hit in page.hits} == {by_external_id(e).title for e in matched}
    low = min(o.usd_minor for o in OFFERS if o.external_id in matched)
    high = max(o.usd_minor for o in OFFERS if o.external_id in matched)
    # The price range ignores the price filter itself (so the shopper sees what exists)...
    assert page.price_min_usd_minor is not None and page.price_min_usd_minor <= low
    assert page.price_max_usd_minor is not None and page.price_max_usd_minor >= high
    # ...and without a price filter it spans every matching offer.
    flasks = run(client, index_uid, category="flasks", group="0")
    flask_prices = [o.usd_minor for o in OFFERS if o.group_id == FLASK_GROUP]
    assert (flasks.price_min_usd_minor, flasks.price_max_usd_minor) == (
        min(flask_prices),
        max(flask_prices),
    )


@pytest.mark.parametrize(
    ("sort", "key", "descending"),
    [
        ("price_asc", "price_usd_minor", False),
        ("price_desc", "price_usd_minor", True),
        ("rating", "rating", True),
    ],
)
def test_sorts_order_the_hits(
    client: meilisearch.Client, index_uid: str, sort: str, key: str, descending: bool
) -> None:
    page = run(client, index_uid, sort=sort, group="0", per_page="48", min_rating="1")

    values = [getattr(hit, key) for hit in page.hits]
    assert len(values) == len([o for o in OFFERS if o.rating is not None])
    assert values == sorted(values, reverse=descending)


def test_a_script_title_is_escaped_and_still_highlighted(
    client: meilisearch.Client, index_uid: str
) -> None:
    page = run(client, index_uid, q="speaker")

    (hit,) = page.hits
    assert hit.title == SCRIPT_TITLE
    html = str(hit.title_html)
    assert "<script" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    assert "<mark>Speaker</mark>" in html


def test_pages_past_the_end_are_corrected_to_the_last_page(
    client: meilisearch.Client, index_uid: str
) -> None:
    page = run(client, index_uid, per_page="12", page="7")

    # 14 offers at 12 per page: two pages.
    assert page.total_pages == 2 and page.page == 2
    assert len(page.hits) == 2
    assert any("only 2 pages" in note for note in page.corrections)


def test_no_results_is_an_empty_page_not_an_error(
    client: meilisearch.Client, index_uid: str
) -> None:
    page = run(client, index_uid, q="qqqqzzzzxxxx", page="3")

    assert page.total_hits == 0 and page.hits == [] and page.total_pages == 0
    assert page.page_numbers() == []


def test_offers_in_group_are_cheapest_first(client: meilisearch.Client, index_uid: str) -> None:
    offers = offers_in_group(client, index_uid, SONY_GROUP)

    assert len(offers) == 4
    prices = [offer.price_usd_minor for offer in offers]
    assert prices == sorted(prices)
    assert offers[0].marketplace == "kiondo"
    assert offers_in_group(client, index_uid, 'nope" OR group_id EXISTS') == []


def test_home_showcase_features_deals_drops_top_rated_and_categories(
    client: meilisearch.Client, index_uid: str
) -> None:
    showcase = home_showcase(client, index_uid)

    categories = {facet.value: facet.count for facet in showcase.categories}
    assert categories["headphones"] == 4 and categories["televisions"] == 3
    assert showcase.total_offers == len(OFFERS)

    # The largest absolute gap: the Sony group (bazaar 347.82 USD vs kiondo 324.32 USD) beats the
    # TV (shopwave 599.99 vs dummymart 549.99 → 50.00) only if larger; compute it here.
    gaps = {}
    for group in (SONY_GROUP, TV_GROUP, FLASK_GROUP):
        prices = [o.usd_minor for o in OFFERS if o.group_id == group and o.available]
        gaps[group] = max(prices) - min(prices)
    best = max(gaps, key=gaps.__getitem__)
    assert showcase.best_deals[0].hit.group_id == best
    assert showcase.best_deals[0].saving_usd_minor == gaps[best]
    assert showcase.best_deals[0].hit.price_usd_minor == min(
        o.usd_minor for o in OFFERS if o.group_id == best and o.available
    )

    assert [hit.title for hit in showcase.price_drops] == [by_external_id("3001").title]
    assert showcase.top_rated[0].title == by_external_id("44").title  # 4.9 stars
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
    sync_index(client, uid, search_documents(offers), full_rebuild=True, task_timeout=120)
    try:
        showcase = home_showcase(client, uid)
        assert [hit.title for hit in showcase.price_drops] == [
            "Offer new-drop",
            "Grouped 1",
            "Offer old-drop",
        ]
        shorter = home_showcase(client, uid, limit=2)
        assert [hit.title for hit in shorter.price_drops] == ["Offer new-drop", "Grouped 1"]
    finally:
        client.wait_for_task(client.delete_index(uid).task_uid, timeout_in_ms=30_000)


def test_cached_answers_are_reused_for_the_same_listing(
    client: meilisearch.Client, index_uid: str
) -> None:
    cache = ResultCache(ttl_seconds=60)
    params = SearchParams.from_query_args({"q": "thermos"})
    first = search_offers(client, index_uid, params, cache=cache)
    down = make_client("http://127.0.0.1:9", "any-key-of-sixteen-bytes")

    again = search_offers(down, index_uid, params, cache=cache)  # answered from the cache

    assert [hit.id for hit in again.hits] == [hit.id for hit in first.hits]
    with pytest.raises(SearchUnavailable):
        search_offers(down, index_uid, SearchParams(q="flask"), cache=cache)


def test_a_refused_query_is_reported_as_search_unavailable(
    client: meilisearch.Client, index_uid: str
) -> None:
    with pytest.raises(SearchUnavailable) as caught:
        run_multi_search(client, [{"indexUid": index_uid, "q": "", "filter": "nope = 1"}])
    assert caught.value.reason == "error" and "400" in str(caught.value)


def test_a_missing_index_is_reported_as_search_unavailable(client: meilisearch.Client) -> None:
    with pytest.raises(SearchUnavailable) as caught:
        search_offers(client, "no_such_index_here", SearchParams())
    assert caught.value.reason == "index_missing"


def test_a_server_that_is_down_is_reported_as_search_unavailable(unreachable_url: str) -> None:
    down = make_client(unreachable_url, "any-key-of-sixteen-bytes")
    with pytest.raises(SearchUnavailable) as caught:
        search_offers(down, "products", SearchParams(q="tv"))
    assert caught.value.reason == "unreachable"
    with pytest.raises(SearchUnavailable):
        home_showcase(down, "products")

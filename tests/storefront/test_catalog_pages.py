"""Catalog pages through the Flask test client: the real app, the real storefront DB and a real
Meilisearch index built from the same sample catalog."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest
from flask import Flask, render_template_string, request
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.models import FxRate, Marketplace, Product, User
from onecart.settings import Settings
from search_index.client import KeptConnection
from search_index.listings import ProductHit, ShownOffer
from search_index.params import SearchParams
from storefront import format_money
from storefront.catalog import shopper
from storefront.catalog.cards import build_cards
from storefront.catalog.search_urls import page_url, search_url
from tests.storefront.conftest import text_of
from tests.storefront.sample_catalog import (
    FX_AS_OF,
    MARKETPLACES,
    OFFERS,
    SCRIPT_TITLE,
    SONY_GROUP,
    TV_GROUP,
    by_external_id,
)


@pytest.fixture
def app_config_overrides(meili_server: str, sample_index: str) -> dict[str, Any]:
    return {"MEILI_URL": meili_server, "MEILI_INDEX": sample_index, "FX_CACHE_SECONDS": 0}


def break_search(app: Flask, url: str) -> None:
    """Point the running app at a Meilisearch that is not there."""
    app.config["MEILI_URL"] = url
    app.extensions.pop("onecart_search_client", None)
    app.extensions.pop("onecart_search_cache", None)


def money(minor: int, currency: str) -> str:
    """A price as the site renders it (the layout's formatter, whatever its spacing)."""
    return format_money(minor, currency)


# --- Landing and home --------------------------------------------------------------------------


def test_the_landing_page_explains_onecart_and_shows_the_marketplaces(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    response = client.get("/")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for facts in MARKETPLACES.values():
        assert facts["name"] in html
    for slug in MARKETPLACES:
        assert f"/static/logos/{slug}.svg" in html
    assert 'action="/search"' in html and "How it works" in html
    assert html.count('class="step"') == 3


def test_signed_in_shoppers_are_sent_home(
    client: FlaskClient, make_user: Callable[..., User], login: Callable[..., Any]
) -> None:
    login(client, make_user())
    response = client.get("/")
    assert response.status_code == 302 and response.location.endswith("/home")


def test_home_requires_signing_in(client: FlaskClient) -> None:
    response = client.get("/home")
    assert response.status_code == 302 and "/login" in response.location


def test_home_features_categories_deals_drops_and_top_rated(
    client: FlaskClient,
    catalog: dict[str, Product],
    make_user: Callable[..., User],
    login: Callable[..., Any],
) -> None:
    login(client, make_user(first_name="Ada"))
    html = client.get("/home").get_data(as_text=True)
    page = text_of(html)

    assert "Welcome back, Ada" in page
    # Categories count products (issue 9): the four Sony offers are one product.
    assert "headphones (1)" in page and "televisions (1)" in page
    assert "Best deals" in page and "Recent price drops" in page and "Top rated" in page
    assert by_external_id("3001").title in page  # the price drop
    assert "Was $29.99" in page
    assert by_external_id("44").title in page  # 4.9 stars
    assert "<script>alert" not in html


def test_home_deal_savings_are_amounts_a_card_can_be_charged(
    client: FlaskClient,
    db_session: Session,
    catalog: dict[str, Product],
    make_user: Callable[..., User],
    login: Callable[..., Any],
) -> None:
    # Every price the site shows in KWD is rounded down to the card step of 10 fils (the cart,
    # the cards beside it); the deals' "Save up to" said KWD0.617-style amounts no price has.
    db_session.add(FxRate(currency="KWD", rate=Decimal("0.30705000"), as_of=date(2026, 12, 1)))
    db_session.commit()
    login(client, make_user(display_currency="KWD"))

    page = text_of(client.get("/home").get_data(as_text=True))

    savings = re.findall(r"Save up to KWD([\d,]+\.\d{3})", page)
    assert savings, "no deal on the home page"
    assert [amount for amount in savings if not amount.endswith("0")] == []


def test_home_still_works_without_search(
    app: Flask,
    client: FlaskClient,
    catalog: dict[str, Product],
    make_user: Callable[..., User],
    login: Callable[..., Any],
    unreachable_url: str,
) -> None:
    login(client, make_user())
    break_search(app, unreachable_url)

    response = client.get("/home")

    assert response.status_code == 200
    page = text_of(response.get_data(as_text=True))
    assert "Featured products are unavailable" in page
    assert "headphones (4)" in page  # categories from the DB


# --- Listings ----------------------------------------------------------------------------------


def test_search_with_a_typo_lists_the_product_with_facets_and_offers(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    response = client.get("/search?q=hedphones")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = text_of(html)
    assert "1 product for “hedphones”" in page  # counts are products (issue 9)
    assert html.count('<article class="product-card') == 1  # the four offers are one product
    # One link per card, the title's in its heading (the offers line is not a second one).
    card = html[html.index('<article class="product-card') : html.index("</article>")]
    assert card.count("<a ") == 1
    assert re.search(
        r'<h3 class="product-card-title"><a class="product-card-link" href="/product/', card
    )
    assert '<p class="product-card-offers">4 offers on 4 marketplaces</p>' in card
    assert "<mark>" in html
    # The cheapest offer (Kiondo, KES 42,000.00) in the display currency, with the original.
    assert f"$324.32 {money(4200000, 'KES')}" in page
    assert "4 offers on 4 marketplaces" in page and "Cheapest on Kiondo Market" in page
    assert "(1,587 reviews)" in page  # the review count beside the rating
    for facet in (
        "Marketplace",
        "Category",
        "Brand",
        "Availability",
        "Price (USD)",
        "Minimum rating",
    ):
        assert facet in page
    assert 'name="marketplace" value="kiondo"' in html
    assert "Kiondo Market (1)" in page
    assert "/static/logos/" in html


def test_cards_show_the_display_currency_and_the_original_price(
    client: FlaskClient,
    catalog: dict[str, Product],
    make_user: Callable[..., User],
    login: Callable[..., Any],
) -> None:
    login(client, make_user(display_currency="EUR"))

    page = text_of(client.get("/search?q=thermos&group=0").get_data(as_text=True))

    # KES 3,500.00 at 129.50 KES and 0.92 EUR per USD = €24.86.
    assert f"€24.86 {money(350000, 'KES')}" in page
    assert "Price (EUR)" in page


def test_search_results_escape_marketplace_markup(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    html = client.get("/search?q=speaker").get_data(as_text=True)

    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    assert SCRIPT_TITLE not in html


def test_a_query_with_bidi_controls_is_isolated_wherever_the_page_shows_it(
    app: Flask, client: FlaskClient, catalog: dict[str, Product], unreachable_url: str
) -> None:
    # A right-to-left override (U+202E) typed into the box would otherwise run past the query:
    # the closing quote and the words after it render reversed. In the page the query sits in
    # its own <bdi>; a <title> holds no markup, so there the controls are dropped.
    query = "sony \u202ex\u2067y"
    html = client.get("/search", query_string={"q": query}).get_data(as_text=True)

    assert f'<h1 id="results-heading">Results for “<bdi>{query}</bdi>”</h1>' in html
    assert f"product for “<bdi>{query}</bdi>”" in html
    (title,) = re.findall(r"<title>(.*?)</title>", html, re.S)
    assert title == "sony xy — Search · OneCart"
    search_boxes = re.findall(r"<input [^>]*type=\"search\"[^>]*>", html, re.S)
    assert len(search_boxes) == 2 and all('dir="auto"' in box for box in search_boxes)

    break_search(app, unreachable_url)
    unavailable = client.get("/search", query_string={"q": query}).get_data(as_text=True)
    assert f"Your search “<bdi>{query}</bdi>” will work again" in unavailable


def test_filters_sort_and_pages_live_in_the_url(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    response = client.get(
        "/search?marketplace=shopwave&marketplace=dummymart&min_price=500&sort=price_desc&per_page=12"
    )

    html = response.get_data(as_text=True)
    page = text_of(html)
    assert response.status_code == 200
    # One product (the TV), shown at its cheapest offer on the chosen marketplaces (issue 9).
    assert "1 product" in page
    assert "$549.99" in page and "Cheapest on DummyMart" in page
    assert "among the marketplaces you chose" not in page  # the cheapest anywhere too
    assert 'value="shopwave" checked' in html and 'value="price_desc" selected' in html
    assert 'id="min-price" name="min_price"' in html and 'value="500"' in html


def test_pagination_links_keep_the_query(client: FlaskClient, catalog: dict[str, Product]) -> None:
    # The sample catalog's 14 offers are 8 products: one page of 12 (issue 9: pages count
    # products); paging across pages is covered on the pipeline-built catalog
    # (tests/pipelines/test_product_listings.py).
    products = len({offer.document_group_id for offer in OFFERS})
    html = client.get("/search?per_page=12&sort=price_asc").get_data(as_text=True)

    assert f"{products} products" in text_of(html)
    assert 'class="pagination"' not in html
    second = client.get("/search?sort=price_asc&per_page=12&page=2").get_data(as_text=True)
    assert "There is only one page of results" in second and 'value="price_asc" selected' in second


@pytest.mark.parametrize(
    ("query", "note"),
    [
        ("page=abc", "showing the first page"),
        ("page=500", "only one page of results"),
        ("sort=cheapest", "That sort order does not exist"),
        ("min_price=lots", "minimum price was not a valid amount"),
        ("min_price=90&max_price=10", "were swapped"),
        ("min_rating=11", "set to 5 stars"),
        ("available=perhaps", "availability filter was not understood"),
        ("per_page=7", "results per page"),
    ],
)
def test_bad_listing_parameters_are_corrected_never_an_error(
    client: FlaskClient, catalog: dict[str, Product], query: str, note: str
) -> None:
    response = client.get(f"/search?q=sony&{query}")

    assert response.status_code == 200
    assert note in response.get_data(as_text=True)


def test_search_is_a_friendly_503_when_meilisearch_is_down(
    app: Flask, client: FlaskClient, unreachable_url: str
) -> None:
    break_search(app, unreachable_url)

    response = client.get("/search?q=tv")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    page = text_of(response.get_data(as_text=True))
    assert "Search is temporarily unavailable" in page and "Review your cart" in page


# --- JSON API ----------------------------------------------------------------------------------


def test_api_search_returns_hits_facets_and_prices_as_minor_units(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    response = client.get("/api/search?q=sony")

    assert response.status_code == 200 and response.is_json
    body = response.get_json()
    assert body["total_hits"] == 1  # one product (issue 9)
    (hit,) = body["hits"]
    assert (hit["id"], hit["offers"], hit["marketplaces"]) == (SONY_GROUP, 4, 4)
    offer = hit["offer"]
    assert offer["marketplace"]["slug"] == "kiondo"
    assert offer["price"] == {"minor": 4200000, "currency": "KES"}
    assert offer["display_price"] == {
        "minor": min(o.usd_minor for o in OFFERS if o.group_id == SONY_GROUP),
        "currency": "USD",
    }
    assert hit["url"] == f"/product/{SONY_GROUP}"
    assert {f["value"]: f["count"] for f in body["facets"]["brand"]} == {"Sony": 1}
    assert "results_html" not in body
    assert body["url"] == "/search?q=sony"


def test_api_search_can_render_the_fragments_for_search_as_you_type(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    body = client.get("/api/search?q=televsion&html=1").get_json()

    assert "Hisense" in body["results_html"] and 'name="marketplace"' in body["facets_html"]


def test_search_as_you_type_gets_the_clear_filters_link_of_its_own_query(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    # search.js swaps the results of a new query or filter in place: the answer carries what the
    # page shows around them, or "Clear all filters" keeps the first query's link (and is
    # missing when the shopper ticks a first filter).
    plain = client.get("/api/search?q=sony&html=1").get_json()
    filtered = client.get(
        "/api/search?q=sony&marketplace=kiondo&min_price=1&sort=price_asc&per_page=48&html=1"
    ).get_json()

    assert plain["query"] == "sony" and plain["clear_filters_url"] is None
    assert filtered["clear_filters_url"] == "/search?q=sony&sort=price_asc&per_page=48"


def test_the_clear_filters_link_is_on_every_listing_hidden_until_a_filter_is_on(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    plain = client.get("/search?q=sony").get_data(as_text=True)
    filtered = client.get("/search?q=sony&brand=Sony").get_data(as_text=True)

    assert '<p id="clear-filters" hidden><a href="/search">Clear all filters</a></p>' in plain
    assert '<p id="clear-filters"><a href="/search?q=sony">Clear all filters</a></p>' in filtered


def test_api_search_corrects_bad_parameters(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    body = client.get("/api/search?q=sony&page=-1&sort=nope").get_json()

    assert body["page"] == 1 and len(body["corrections"]) == 2


def test_api_search_answers_json_503_when_search_is_down(
    app: Flask, client: FlaskClient, unreachable_url: str
) -> None:
    break_search(app, unreachable_url)

    response = client.get("/api/search?q=tv")

    assert response.status_code == 503 and response.is_json
    assert response.get_json()["error"]["status"] == 503


def test_api_ping_is_the_frameworks_floor(client: FlaskClient) -> None:
    response = client.get("/api/ping")
    assert response.status_code == 200 and response.get_json() == {"ok": True}


# --- Product page ------------------------------------------------------------------------------


def test_the_product_page_compares_every_offer_cheapest_first(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    response = client.get(f"/product/{SONY_GROUP}")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = text_of(html)
    order = [page.index(name) for name in ("Kiondo Market", "NaijaMall", "Euro Bazaar", "ShopWave")]
    assert order == sorted(order)
    assert f"$324.32 {money(4200000, 'KES')}" in page and "Best price" in page
    assert html.count('action="/cart/add"') == 4
    assert "4 offers on 4 marketplaces; prices shown in USD" in page  # not "Sold by 4 offers"
    assert "Checkout happens on NaijaMall" in page
    assert "Store rating 4.30/5" in page
    assert 'href="http://127.0.0.1:9/kiondo/KD-55"' in html
    assert '<svg class="price-chart"' in html and "<polyline" in html
    assert "Price history as a table" in page and "$399.99" in page  # the oldest ShopWave price


def _best_row(html: str) -> str:
    """The offers table's row marked as the suggested offer."""
    match = re.search(r'<tr class="[^"]*is-best[^"]*">(.*?)</tr>', html, re.S)
    assert match, "no suggested offer"
    return text_of(match.group(1))


def test_a_product_reached_from_a_marketplace_filtered_listing_suggests_one_of_those(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    """Shopper QA: a listing filtered to ShopWave and Euro Bazaar showed the Sony headphones at
    Euro Bazaar's price, but the product page led with Kiondo Market's offer (the cheapest
    anywhere) as "Best price": the marketplace the shopper had left out was the suggestion."""
    listing = client.get("/search?q=sony&marketplace=shopwave&marketplace=bazaar")
    links = set(re.findall(r'href="(/product/g-sonyxm5[^"]*)"', listing.get_data(as_text=True)))
    assert links == {"/product/g-sonyxm5?marketplace=shopwave&amp;marketplace=bazaar"}
    # The card does not call it the cheapest outright: Kiondo Market sells it for less.
    card = text_of(listing.get_data(as_text=True))
    assert "Cheapest on Euro Bazaar among the marketplaces you chose" in card
    # With one marketplace chosen there is no "cheapest" to claim among them.
    one = text_of(client.get("/search?q=sony&marketplace=bazaar").get_data(as_text=True))
    assert "On Euro Bazaar, the marketplace you chose (cheaper elsewhere)" in one
    assert "Cheapest on Euro Bazaar" not in one

    html = client.get("/product/g-sonyxm5?marketplace=shopwave&marketplace=bazaar").get_data(
        as_text=True
    )
    page = text_of(html)
    best = _best_row(html)
    assert "Euro Bazaar" in best and "Kiondo Market" not in best
    # Not the cheapest anywhere: the badge says among which marketplaces it is.
    assert "Best price on the marketplaces you chose" in best
    # The chosen marketplaces' offers first, cheapest first; then the others, still for sale.
    order = [page.index(name) for name in ("Euro Bazaar", "ShopWave", "Other marketplaces")]
    assert order == sorted(order)
    assert page.index("Other marketplaces") < page.index("Kiondo Market")
    assert html.count('action="/cart/add"') == 4
    assert 'href="/product/g-sonyxm5">' in html  # every offer, cheapest first
    # The suggested offer is presented under its own title; the page is named as the card was
    # (the group's best title: test_the_product_page_is_named_like_the_card_that_led_to_it).
    assert "Casque Sony WH-1000XM5 headphones" in best

    # Unfiltered, the cheapest anywhere leads as before.
    plain = client.get("/product/g-sonyxm5").get_data(as_text=True)
    assert "Kiondo Market" in _best_row(plain) and "Best price" in _best_row(plain)
    assert "Other marketplaces" not in text_of(plain)


def _card_titles(listing_html: str) -> dict[str, str]:
    """Product page link → the title of the card that links to it."""
    return {
        link.split("?")[0]: text_of(title)
        for link, title in re.findall(
            r'<h3 class="product-card-title"><a class="product-card-link" href="([^"]+)">'
            r"(.*?)</a></h3>",
            listing_html,
            re.S,
        )
    }


def _heading(html: str) -> str:
    match = re.search(r'<h1 id="product-heading">(.*?)</h1>', html, re.S)
    assert match, "no heading"
    return text_of(match.group(1))


def test_the_product_page_is_named_like_the_card_that_led_to_it(
    client: FlaskClient, catalog: dict[str, Product], db_session: Session
) -> None:
    """Shopper QA: the card read "On-Ear Wireless Headphones Sony WH-7220HF2 – Midnight Blue"
    (the group's best title) and the page it led to "SONY WH7220HF2 Headphones Midnight Blue"
    (the cheapest offer's own): the shopper could not tell they had landed on the same product.
    The heading is the group's best title; the suggested offer keeps its own title in its row,
    and the picture stays the suggested offer's (it is the item the page offers first)."""
    for external_id in ("1001", "KD-55", "BZ-XM5", "NM-77"):
        product = catalog[external_id]
        product.image_url = f"http://127.0.0.1:9/{product.marketplace.slug}/{external_id}.jpg"
    db_session.commit()
    best_title = by_external_id("1001").title  # most reviewed: the group's best title

    for query in ("", "?marketplace=shopwave&marketplace=bazaar"):
        listing = client.get(f"/search?q=sony{query.replace('?', '&')}").get_data(as_text=True)
        assert _card_titles(listing)[f"/product/{SONY_GROUP}"] == best_title
        html = client.get(f"/product/{SONY_GROUP}{query}").get_data(as_text=True)
        assert _heading(html) == best_title
        assert f"<title>{best_title}" in html
        assert f"Price history of {best_title}" in html

    plain = client.get(f"/product/{SONY_GROUP}").get_data(as_text=True)
    assert "SONY WH1000XM5 Headphones Black" in _best_row(plain)  # Kiondo's own title, its row
    assert 'src="http://127.0.0.1:9/kiondo/KD-55.jpg"' in plain
    filtered = client.get(f"/product/{SONY_GROUP}?marketplace=bazaar").get_data(as_text=True)
    assert "Casque Sony WH-1000XM5 headphones" in _best_row(filtered)
    assert 'src="http://127.0.0.1:9/bazaar/BZ-XM5.jpg"' in filtered


@pytest.mark.parametrize(
    "query",
    [
        "marketplace=nowhere",  # sells nothing of this product: as unfiltered
        "marketplace=kiondo&marketplace=" + "x" * 5000,
        "&".join(f"marketplace=m{n}" for n in range(200)) + "&marketplace=kiondo",
    ],
)
def test_a_tampered_marketplace_filter_on_the_product_page_is_harmless(
    client: FlaskClient, catalog: dict[str, Product], query: str
) -> None:
    response = client.get(f"/product/g-sonyxm5?{query}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Kiondo Market" in _best_row(html)
    assert html.count('action="/cart/add"') == 4


def test_the_price_history_says_which_rates_convert_it(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    """Under the chart: "Converted to USD at today's rates." while the heading said "rates of
    2026-11-20" — not today's, and not the rates of each past day either (the shopper may read
    a move of the line as a price change when it is none)."""
    page = text_of(client.get(f"/product/{SONY_GROUP}").get_data(as_text=True))

    assert "today's rates" not in page
    assert (
        f"Past prices are converted to USD at the latest rates (of {FX_AS_OF.isoformat()}), "
        "not at the rates of their day." in page
    )


def test_the_product_page_says_how_its_offers_were_matched_and_how_surely(
    client: FlaskClient, catalog: dict[str, Product], db_session: Session
) -> None:
    for external_id, method, confidence in (
        ("1001", "gtin", "1.00"),
        ("KD-55", "gtin", "1.00"),
        ("BZ-XM5", "brand_model", "0.90"),
        ("NM-77", "title", "0.72"),
    ):
        catalog[external_id].match_method = method
        catalog[external_id].match_confidence = Decimal(confidence)
    db_session.commit()

    page = text_of(client.get(f"/product/{SONY_GROUP}").get_data(as_text=True))

    # Each offer was matched one way: "by same barcode, same brand and model number and
    # similar title" read as one test all of them passed, and had no article (shop20).
    assert (
        "These offers were matched as one product by their barcode, by their brand and model "
        "number or by a similar title (confidence 72% or more)." in page
    )
    assert "Matched by" in page
    assert "similar title (72% confidence)" in page and "same barcode (100% confidence)" in page


def test_offers_all_matched_for_certain_are_not_said_to_be_100_percent_or_more(
    client: FlaskClient, catalog: dict[str, Product], db_session: Session
) -> None:
    for external_id in ("1001", "KD-55", "BZ-XM5", "NM-77"):
        catalog[external_id].match_method = "gtin"
        catalog[external_id].match_confidence = Decimal("1.00")
    db_session.commit()

    page = text_of(client.get(f"/product/{SONY_GROUP}").get_data(as_text=True))

    assert "These offers were matched as one product by their barcode (confidence 100%)." in page
    assert "or more" not in page


def test_unavailable_offers_are_listed_last_without_add_to_cart(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    html = client.get(f"/product/{TV_GROUP}").get_data(as_text=True)
    page = text_of(html)

    assert page.index("Fake Store Berlin") > page.index("ShopWave") > page.index("DummyMart")
    assert "Unavailable" in page
    assert html.count('action="/cart/add"') == 2


def test_the_product_page_works_while_search_is_down(
    app: Flask, client: FlaskClient, catalog: dict[str, Product], unreachable_url: str
) -> None:
    break_search(app, unreachable_url)
    response = client.get(f"/product/{SONY_GROUP}")
    assert response.status_code == 200 and "Kiondo Market" in response.get_data(as_text=True)


def test_an_unknown_product_is_a_404(client: FlaskClient, catalog: dict[str, Product]) -> None:
    assert client.get("/product/g-does-not-exist").status_code == 404
    assert client.get("/product/" + "x" * 300).status_code == 404


def test_a_group_known_only_to_the_index_is_shown_without_add_to_cart(
    client: FlaskClient, meili_server: str, sample_index: str
) -> None:
    # The DB sync has not run (no rows), but the index knows the group.
    response = client.get(f"/product/{SONY_GROUP}")

    assert response.status_code == 200
    page = text_of(response.get_data(as_text=True))
    assert "still being added" in page and "Kiondo Market" in page
    assert 'action="/cart/add"' not in response.get_data(as_text=True)


# --- Stores and currency -----------------------------------------------------------------------


def test_the_stores_page_describes_every_active_marketplace(
    app: Flask, client: FlaskClient, catalog: dict[str, Product], unreachable_url: str
) -> None:
    break_search(app, unreachable_url)  # it reads the DB only

    response = client.get("/stores")

    assert response.status_code == 200
    page = text_of(response.get_data(as_text=True))
    for facts in MARKETPLACES.values():
        assert facts["name"] in page and facts["description"] in page
    assert "3 offers (3 in stock)" in page  # ShopWave
    assert "3 offers (2 in stock)" in page  # Fake Store Berlin (the TV is out of stock)
    assert "Ordering through OneCart" in page and "Checkout on NaijaMall" in page
    assert "Order tracking" in page and "No tracking" in page
    assert "headphones (1)" in page


def test_the_stores_page_names_every_currency_a_store_prices_in(
    client: FlaskClient,
    make_marketplace: Callable[..., Marketplace],
    make_product: Callable[..., Product],
) -> None:
    """An affiliate feed such as Sokoni's sells in KES and NGN: "prices in KES" alone is wrong."""
    sokoni = make_marketplace(name="Sokoni", currency="KES", country="KE")
    make_product(sokoni, currency="KES")
    make_product(sokoni, currency="NGN")
    make_product(sokoni, currency="NGN")
    shopwave = make_marketplace(name="ShopWave", currency="USD")
    make_product(shopwave)

    page = text_of(client.get("/stores").get_data(as_text=True))

    assert "KE · prices in KES and NGN" in page
    assert "US · prices in USD ·" in page


def test_a_guest_can_choose_the_display_currency(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    response = client.post("/currency", data={"currency": "KES", "next": "/search?q=sony"})
    assert response.status_code == 303 and response.location.endswith("/search?q=sony")

    page = text_of(client.get("/search?q=sony").get_data(as_text=True))
    # The cheapest offer is Kiondo's, already in KES: shown as it is (issue 9).
    assert f"{money(4200000, 'KES')}" in page and "4 offers on 4 marketplaces" in page


def test_the_currency_menu_lists_currencies_in_the_order_of_their_names(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    """The menu names each currency ("£ British Pound", "Kenyan Shilling (KES)") but listed them
    by ISO code: with the pipeline's 44 currencies a shopper scanning for the pound found "British
    Pound" after "Euro", "South Korean Won" between the Kenyan Shilling and the Kuwaiti Dinar."""
    html = client.get("/stores").get_data(as_text=True)
    header = html[html.index('<details class="header-menu currency-menu') :]
    header = header[: header.index("</details>")]
    labels = [
        text_of(label)
        for label in re.findall(r'name="currency" value="[A-Z]{3}"[^>]*>(.*?)</button>', header)
    ]
    assert labels == [
        "£ British Pound",
        "€ Euro",
        "Kenyan Shilling (KES)",
        "Nigerian Naira (NGN)",
        "$ US Dollar",
    ]


@pytest.mark.parametrize(
    ("data", "target"),
    [
        ({"currency": "XXX", "next": "/stores"}, "/stores"),
        ({"currency": "EUR", "next": "//evil.example/"}, "/"),
    ],
)
def test_currency_choice_rejects_unknown_currencies_and_foreign_redirects(
    client: FlaskClient, catalog: dict[str, Product], data: dict[str, str], target: str
) -> None:
    response = client.post("/currency", data=data)

    assert response.status_code == 303
    assert response.location == target or response.location.endswith(target)
    assert "evil.example" not in response.location


def test_a_signed_in_shopper_s_currency_is_saved_on_the_account(
    client: FlaskClient,
    db_session: Session,
    catalog: dict[str, Product],
    make_user: Callable[..., User],
    login: Callable[..., Any],
) -> None:
    user = make_user()
    login(client, user)

    client.post("/currency", data={"currency": "NGN", "next": "/stores"})

    db_session.expire_all()
    assert db_session.get(User, user.id).display_currency == "NGN"


def test_search_results_link_to_meilisearch_documents_only_through_safe_urls(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    html = client.get('/search?q="><img src=x onerror=alert(1)>').get_data(as_text=True)

    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html or "&#34;&gt;&lt;img" in html


def test_every_catalog_page_renders_in_the_shared_layout(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    for path in (
        "/",
        "/search",
        "/search?q=tv",
        f"/product/{SONY_GROUP}",
        "/stores",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        assert 'class="site-header"' in html and 'class="cart-count"' in html, path


def test_while_catalogs_load_search_says_how_far_instead_of_being_down(
    app: Flask, client: FlaskClient, settings: Settings
) -> None:
    """A first `onecart ingest` records its progress; until the index exists the site says
    "Loading catalogs: 3 of 6 marketplaces" instead of "search is down"."""
    from onecart import progress

    app.config["MEILI_INDEX"] = f"not_built_yet_{uuid.uuid4().hex[:8]}"
    app.extensions.pop("onecart_search_cache", None)
    progress.write_status(settings, "catalogs", 3, 6, "loading catalogs: 3 of 6 marketplaces")
    try:
        api = client.get("/api/search?q=tv")
        page = client.get("/search?q=tv")
    finally:
        progress.clear_status(settings, "catalogs")

    assert api.status_code == 503
    assert api.get_json()["error"]["message"].startswith("Loading catalogs: 3 of 6 marketplaces.")
    assert page.status_code == 503
    assert "Loading catalogs: 3 of 6 marketplaces" in text_of(page.get_data(as_text=True))
    # Without an ingest running, a missing index is "being built", never "down".
    assert "being built" in client.get("/api/search?q=tv").get_json()["error"]["message"]


def test_the_more_facet_values_summary_uses_the_plural(app: Flask) -> None:
    """ "More brands (4)", never "More brand (4)" (the partial rendered with twelve brands)."""
    from types import SimpleNamespace

    from storefront.catalog.routes import FACET_TITLES

    brands = [SimpleNamespace(value=f"Brand {n}", count=n, selected=False) for n in range(1, 13)]
    params = SimpleNamespace(
        available=False, min_price=None, max_price=None, min_rating=None, unrated=False
    )
    with app.test_request_context("/search"):
        html = app.jinja_env.get_template("catalog/_facets.html").render(
            page=SimpleNamespace(facets={"brand": brands}),
            params=params,
            facet_titles=FACET_TITLES,
            marketplace_names={},
            rating_counts={},
            price_low_minor=None,
            price_high_minor=None,
        )
    assert "More brands (4)" in html and "More brand " not in html


@pytest.mark.parametrize(
    "query",
    [
        "",
        "q=tv",
        "q=tv&page=3",
        "q=caf%C3%A9+%26+more&marketplace=kiondo&marketplace=bazaar&sort=price_desc&page=2",
        "category=Running+Shoes&min_price=10.5&max_price=60&available=1&unrated=1&per_page=48",
    ],
)
def test_pagination_links_are_the_listing_s_url_with_that_page(app: Flask, query: str) -> None:
    with app.test_request_context(f"/search?{query}"):
        params = SearchParams.from_query_args(request.args)
        # page_url encodes the query once per listing; every link must be search_url's.
        for number in (1, 2, 3, 17, 1):
            assert page_url(params, number) == search_url(params, page=number)


def test_a_card_rated_without_a_review_count_does_not_say_0_reviews(app: Flask) -> None:
    """DummyJSON publishes a rating with no reviews behind it: the card shows the rating (as
    the product page does) without a "(0 reviews)" that contradicts it."""
    offer = ShownOffer(
        id="dummymart--1",
        marketplace="dummymart",
        marketplace_name="DummyMart",
        marketplace_logo=None,
        price_minor=147499,
        currency="USD",
        price_usd_minor=147499,
        available=True,
    )
    hits = [
        ProductHit(
            group_id=f"g-{count}",
            title=f"Laptop {count}",
            title_matches=(),
            brand="Apple",
            category="Laptops",
            image_url=None,
            offer_count=1,
            marketplace_count=1,
            rating=Decimal("4.5"),
            rating_count=count,
            offer=offer,
        )
        for count in (0, 1, 1587)
    ]
    with app.test_request_context("/search"):
        cards = build_cards(hits)
        html = render_template_string(
            '{% from "catalog/_product_card.html" import product_grid %}{{ product_grid(cards) }}',
            cards=cards,
        )

    assert [card.rating_text for card in cards] == [None, "1 review", "1,587 reviews"]
    page = text_of(html)
    assert "0 reviews" not in page and "()" not in page
    assert page.count("4.5 out of 5") == 3
    assert "(1 review)" in page and "(1,587 reviews)" in page


def test_an_empty_result_suggests_removing_a_filter_only_when_one_is_set(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    """ "No products found" always added "Try fewer words, another spelling, or removing a
    filter.", also when no filter was set: the shopper looked for a filter to remove."""
    bare = text_of(client.get("/search?q=zzzzqqqxx").get_data(as_text=True))
    assert "No products found" in bare
    assert "Try fewer words or another spelling." in bare and "removing a filter" not in bare

    filtered = text_of(
        client.get("/search?q=zzzzqqqxx&marketplace=shopwave").get_data(as_text=True)
    )
    assert "Try fewer words, another spelling, or removing a filter." in filtered


def _heading_levels(html: str) -> list[int]:
    return [int(level) for level in re.findall(r"<h([1-6])\b", html)]


@pytest.mark.parametrize("query", ["hedphones", "zzzzqqqxx"])
def test_the_search_page_outline_starts_at_its_h1_and_skips_no_level(
    client: FlaskClient, catalog: dict[str, Product], query: str
) -> None:
    """Shopper QA, fifth pass: the "Filters" h2 came before the page's h1, and the result
    cards' h3s had no h2 above them, so a screen reader's list of headings started mid-outline
    and put the cards under the filters."""
    html = client.get(f"/search?q={query}").get_data(as_text=True)
    main = html[html.index('id="search-form"') :]
    levels = _heading_levels(main)
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(later <= earlier + 1 for earlier, later in pairwise(levels))
    if query == "hedphones":
        # The cards are under a heading of the results, not under "Filters".
        results = main[main.index('id="results"') :]
        assert _heading_levels(results)[:2] == [2, 3]


def test_an_empty_result_offers_no_sort_or_page_size(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    """Shopper QA, fifth pass: "No products found" still offered Sort by and Per page. They
    stay in the form (hidden), so a later query keeps the shopper's choice; search.js shows
    them again from /api/search's total_hits."""
    controls = re.compile(r'<div class="toolbar-controls" id="toolbar-controls"( hidden)?>')
    empty = controls.search(client.get("/search?q=zzzzqqqxx&sort=price_asc").get_data(True))
    found = controls.search(client.get("/search?q=hedphones").get_data(as_text=True))
    assert empty is not None and empty.group(1) == " hidden"
    assert found is not None and found.group(1) is None


def test_a_listing_asks_meilisearch_before_looking_up_the_shopper_unless_a_price_is_typed(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The display currency (the shopper's account or session) only converts a typed price
    bound: without one the listing's request is sent first, and the shopper is looked up while
    Meilisearch works (by the page's frame), off the shopper's wait (issue 9)."""
    events: list[str] = []
    real_send = KeptConnection.send
    real_choose = shopper._choose_display_currency

    def send(connection: KeptConnection, request: bytes) -> None:
        events.append("sent to Meilisearch")
        real_send(connection, request)

    def choose() -> str:
        events.append("shopper looked up")
        return real_choose()

    monkeypatch.setattr(KeptConnection, "send", send)
    monkeypatch.setattr(shopper, "_choose_display_currency", choose)

    assert client.get("/search?q=headphones").status_code == 200
    assert events[:2] == ["sent to Meilisearch", "shopper looked up"]

    events.clear()
    assert client.get("/search?q=headphones&max_price=100").status_code == 200
    assert events[:2] == ["shopper looked up", "sent to Meilisearch"]

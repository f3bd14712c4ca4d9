"""The layout's display-currency switcher, through the Flask test client: the real app, the real
storefront DB and (for /search) a real Meilisearch index of the sample catalog."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.models import Product, User
from storefront import format_money
from tests.storefront.conftest import text_of
from tests.storefront.sample_catalog import (
    FX_PER_USD,
    insert_sample_catalog,
)

# The header renders the switcher twice (the wide header's disclosure and the phone's Menu, one
# of them hidden by CSS); both are the same form, so the first one is read.
SWITCHER = re.compile(r'<form class="currency-choices"(?P<attrs>[^>]*)>(?P<body>.*?)</form>', re.S)
BUTTON = re.compile(
    r'<button type="submit" name="currency" value="([^"]+)"([^>]*)>([^<]*)</button>'
)


@pytest.fixture
def app_config_overrides(meili_server: str, sample_index: str) -> dict[str, Any]:
    return {"MEILI_URL": meili_server, "MEILI_INDEX": sample_index, "FX_CACHE_SECONDS": 0}


def switcher_of(page_html: str) -> dict[str, Any]:
    """The header's switcher as a browser sees it: action, hidden fields, options, selection."""
    match = SWITCHER.search(page_html)
    assert match, "no currency switcher in the layout"
    attrs, body = match.group("attrs"), match.group("body")
    action = re.search(r'action="([^"]*)"', attrs)
    assert action and 'method="post"' in attrs
    hidden = {
        name: unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', body)
    }
    buttons = BUTTON.findall(body)
    values = [value for value, _attrs, _label in buttons]
    selected = [value for value, attrs, _label in buttons if 'aria-current="true"' in attrs]
    return {
        "action": action.group(1),
        "hidden": hidden,
        "options": values,
        "labels": {value: unescape(label) for value, _attrs, label in buttons},
        "selected": selected,
        "has_button": bool(buttons),
        # The site's CSP forbids inline scripts and event handlers.
        "has_script": "<script" in body or re.search(r"\son\w+\s*=", body) is not None,
    }


def submit_switcher(client: FlaskClient, path: str, currency: str) -> str:
    """Choose `currency` in the header of `path` and post the form as a browser would."""
    form = switcher_of(client.get(path).get_data(as_text=True))
    assert currency in form["options"]
    response = client.post(form["action"], data={**form["hidden"], "currency": currency})
    assert response.status_code == 303
    return response.location


def test_every_page_offers_the_supported_currencies_with_the_current_one_selected(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    form = switcher_of(client.get("/stores").get_data(as_text=True))

    assert form["action"] == "/currency"
    # In the order of the names the menu shows (test_catalog_pages), not of the codes.
    assert sorted(form["options"]) == sorted({"USD", *FX_PER_USD})
    assert form["options"][:2] == ["GBP", "EUR"]  # "£ British Pound", then "€ Euro"
    # Named currencies, not bare codes.
    assert form["labels"]["EUR"] == "€ Euro" and form["labels"]["USD"] == "$ US Dollar"
    assert form["selected"] == ["USD"]
    assert form["hidden"]["next"].startswith("/stores")
    assert form["has_button"] and not form["has_script"]

    submit_switcher(client, "/stores", "EUR")
    assert switcher_of(client.get("/stores").get_data(as_text=True))["selected"] == ["EUR"]


def test_the_switcher_names_each_currency_as_its_prices_print(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    """Prices print "KES1,500.00" and "NGN2,000.00" (format_money): the menu must not offer
    "Ksh" and "₦" for them."""
    form = switcher_of(client.get("/stores").get_data(as_text=True))

    assert form["labels"]["KES"] == "Kenyan Shilling (KES)"
    assert form["labels"]["NGN"] == "Nigerian Naira (NGN)"
    for code, label in form["labels"].items():
        printed = format_money(150000, code)
        symbol = label.split(" ")[0]
        assert label.endswith(f"({code})") or printed.startswith(symbol), (code, label, printed)


def test_the_switcher_is_on_every_page_including_the_profile_and_form_errors(
    client: FlaskClient,
    catalog: dict[str, Product],
    make_user: Callable[..., User],
    login: Callable[..., Any],
) -> None:
    # A form page answered by POST (here: the login form with an error) returns to its GET.
    failed_login = client.post("/login", data={"login": "nobody", "password": "wrong"})
    assert failed_login.status_code == 422
    assert switcher_of(failed_login.get_data(as_text=True))["hidden"]["next"] == "/login"

    login(client, make_user())
    profile = switcher_of(client.get("/profile").get_data(as_text=True))
    assert profile["hidden"]["next"].startswith("/profile")

    location = submit_switcher(client, "/profile", "GBP")

    assert location.endswith("/profile") or location.endswith("/profile?")
    assert switcher_of(client.get("/stores").get_data(as_text=True))["selected"] == ["GBP"]


def test_error_pages_do_not_echo_the_url_in_a_switcher(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    response = client.get("/no-such-page-secret-looking-token")

    assert response.status_code == 404
    html = response.get_data(as_text=True)
    assert 'class="site-header"' in html
    assert switcher_of(html)["hidden"]["next"] == ""
    assert "secret-looking-token" not in html


def test_switching_currency_reprices_search_results_and_returns_to_the_page(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    before = text_of(client.get("/search?q=sony").get_data(as_text=True))
    # The cheapest Sony offer is Kiondo's KES 42,000.00: in USD it shows as $324.32 with the
    # original beside it; in KES it shows as itself (issue 9: cards show the cheapest offer).
    kes_price = format_money(4200000, "KES")
    assert f"$324.32 {kes_price}" in before

    location = submit_switcher(client, "/search?q=sony", "KES")

    assert location.endswith("/search?q=sony")
    after = text_of(client.get(location).get_data(as_text=True))
    assert "$324.32" not in after
    assert kes_price in after and "4 offers on 4 marketplaces" in after


def test_the_switcher_needs_its_csrf_token(csrf_client: FlaskClient, db_session: Session) -> None:
    products = insert_sample_catalog(db_session)
    db_session.commit()
    thermos = products["KD-90"]  # KES, ordered through OneCart: in the OneCart total
    form = switcher_of(csrf_client.get("/cart").get_data(as_text=True))
    assert form["hidden"]["csrf_token"]
    added = csrf_client.post(
        "/cart/add",
        data={
            "product_id": str(thermos.id),
            "quantity": "1",
            "csrf_token": form["hidden"]["csrf_token"],
        },
    )
    assert added.status_code == 303

    forged = csrf_client.post("/currency", data={"currency": "EUR", "next": "/cart"})
    assert forged.status_code == 400
    unchanged = csrf_client.get("/cart").get_data(as_text=True)
    assert switcher_of(unchanged)["selected"] == ["USD"]
    assert "Total (USD)" in text_of(unchanged) and cart_total(unchanged).startswith("$")

    location = submit_switcher(csrf_client, "/cart", "EUR")

    assert location.endswith("/cart") or location.endswith("/cart?")
    page = csrf_client.get("/cart").get_data(as_text=True)
    assert switcher_of(page)["selected"] == ["EUR"]
    assert "Total (EUR)" in text_of(page) and cart_total(page).startswith("€")


def cart_total(page_html: str) -> str:
    """The text of the cart's grand total cell."""
    match = re.search(r'<dd id="cart-total">(.*?)</dd>', page_html, re.S)
    assert match, "no cart total"
    return text_of(match.group(1))


# --- A guest's listing creates no session (storefront.form_protection) --------------------------


def test_a_guest_listing_sets_no_cookie_and_mints_no_token(
    csrf_client: FlaskClient, catalog: dict[str, Product]
) -> None:
    response = csrf_client.get("/search?q=sony")

    assert response.status_code == 200
    assert response.headers.getlist("Set-Cookie") == []
    html = response.get_data(as_text=True)
    assert "4 offers on 4 marketplaces" in text_of(html)
    assert switcher_of(html)["hidden"]["csrf_token"] == ""
    assert '<meta name="csrf-token" content="">' in html
    # Other pages still issue a token (and so a session) as before.
    stores = csrf_client.get("/stores")
    assert switcher_of(stores.get_data(as_text=True))["hidden"]["csrf_token"]
    assert any(c.startswith("onecart_session=") for c in stores.headers.getlist("Set-Cookie"))


def test_a_guest_switches_currency_from_a_tokenless_listing(
    csrf_client: FlaskClient, catalog: dict[str, Product]
) -> None:
    html = csrf_client.get("/search?q=sony").get_data(as_text=True)
    form = switcher_of(html)

    # What a browser sends when the shopper presses the button on our own page.
    chosen = csrf_client.post(
        form["action"],
        data={**form["hidden"], "currency": "KES"},
        headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},
    )

    assert chosen.status_code == 303 and chosen.location.endswith("/search?q=sony")
    after = csrf_client.get(chosen.location).get_data(as_text=True)
    assert "Prices are now shown in" in after
    assert switcher_of(after)["selected"] == ["KES"]
    assert format_money(4200000, "KES") in text_of(after) and "$324.32" not in text_of(after)
    # From now on the session holds a CSRF secret, and its pages' forms carry the token.
    assert switcher_of(after)["hidden"]["csrf_token"]


@pytest.mark.parametrize(
    "headers",
    [
        {},  # no word from the browser at all
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another origin
        {"Sec-Fetch-Site": "none"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        # Fetch Metadata decides when present, whatever Origin says.
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
    ],
)
def test_a_sessionless_post_the_browser_does_not_vouch_for_is_refused(
    csrf_client: FlaskClient, catalog: dict[str, Product], headers: dict[str, str]
) -> None:
    forged = csrf_client.post(
        "/currency", data={"currency": "EUR", "next": "/search"}, headers=headers
    )

    assert forged.status_code == 400
    assert "expired or was not sent by OneCart" in forged.get_data(as_text=True)
    assert "EUR" not in csrf_client.get_cookie("onecart_session").value  # type: ignore[union-attr]


def test_an_origin_naming_this_host_stands_for_a_browser_without_fetch_metadata(
    csrf_client: FlaskClient, catalog: dict[str, Product]
) -> None:
    chosen = csrf_client.post(
        "/currency",
        data={"currency": "EUR", "next": "/search"},
        headers={"Origin": "http://localhost"},
    )

    assert chosen.status_code == 303
    assert switcher_of(csrf_client.get("/stores").get_data(as_text=True))["selected"] == ["EUR"]


def test_once_a_session_holds_a_token_same_origin_headers_do_not_replace_it(
    csrf_client: FlaskClient, catalog: dict[str, Product]
) -> None:
    token = switcher_of(csrf_client.get("/stores").get_data(as_text=True))["hidden"]["csrf_token"]
    assert token
    listing = switcher_of(csrf_client.get("/search?q=sony").get_data(as_text=True))
    assert listing["hidden"]["csrf_token"]  # the session's token is on the listing too

    without_token = csrf_client.post(
        "/currency",
        data={"currency": "EUR", "next": "/stores"},
        headers={"Sec-Fetch-Site": "same-origin"},
    )
    assert without_token.status_code == 400
    for path in ("/cart/add", "/login"):
        assert (
            csrf_client.post(path, data={}, headers={"Sec-Fetch-Site": "same-origin"}).status_code
            == 400
        )

"""The shared layout (header, account menu, footer, accessibility basics), security headers and
structured request logs that never carry secrets."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from commerce.models import Product, User
from storefront.request_log import JsonLogFormatter
from tests.storefront.conftest import DEFAULT_PASSWORD, csrf_token_from
from tests.storefront.sample_catalog import SONY_GROUP


def _html(response: Any) -> str:
    return response.get_data(as_text=True)


def test_layout_for_visitors(client: FlaskClient) -> None:
    html = _html(client.get("/about"))
    assert '<a class="skip-link" href="#main">' in html and '<main id="main"' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert re.search(
        r'<form class="header-search" role="search" action="/search" method="get">', html
    )
    assert '<label for="site-search" class="visually-hidden">' in html
    assert 'href="/login"' in html and 'href="/signup"' in html
    assert 'class="cart-count">0<' in html
    for link in ('href="/about"', 'href="/support"', 'href="/stores"'):
        assert link in html
    assert 'action="/logout"' not in html


def test_layout_for_signed_in_shoppers(
    client: FlaskClient, make_user: Callable[..., User], login: Callable[..., Any]
) -> None:
    login(client, make_user(username="zawadi", first_name="Zawadi"))
    html = _html(client.get("/about"))
    assert "Zawadi" in html
    assert 'href="/profile"' in html and 'href="/support/tickets"' in html
    assert 'action="/logout"' in html
    assert 'href="/login"' not in html


def test_the_layout_s_links_follow_the_script_root_the_site_is_mounted_at(
    client: FlaskClient,
) -> None:
    # The layout's fixed links are worked out once per application and script root
    # (storefront.fixed_url): a site mounted under /shop must not get the root's, nor back.
    for root in ("", "/shop", ""):
        html = _html(client.get("/about", environ_overrides={"SCRIPT_NAME": root}))
        assert f'href="{root}/static/css/site.css"' in html
        assert f'href="{root}/login"' in html and f'href="{root}/about"' in html


def test_a_session_cookie_signed_with_a_retired_key_is_refused_unless_it_is_a_fallback(
    app: Flask,
) -> None:
    client = app.test_client()
    with client.session_transaction() as session:
        session["guest_cart"] = [{"product_id": 7, "quantity": 3}]
    cookie = client.get_cookie("onecart_session")
    assert cookie is not None

    def cart_shown() -> bool:
        browser = app.test_client()
        browser.set_cookie("onecart_session", cookie.value)
        return 'class="cart-count">3<' in _html(browser.get("/about"))

    old_key = app.secret_key
    assert cart_shown()
    # The cookie's serializer is built once per key (storefront.sessions): a new key must
    # still take effect at once, and a fallback key keep the old cookies valid.
    app.secret_key = "a-new-secret-key-for-this-test-only-0123456789"
    try:
        assert not cart_shown()
        app.config["SECRET_KEY_FALLBACKS"] = [old_key]
        assert cart_shown()
    finally:
        app.config["SECRET_KEY_FALLBACKS"] = []
        app.secret_key = old_key


def test_no_external_assets(client: FlaskClient) -> None:
    html = _html(client.get("/about"))
    assert not re.search(r'<(link|script)[^>]+(href|src)="(https?:)?//', html)
    css = _html(client.get("/static/css/site.css"))
    assert "@import" not in css and "url(http" not in css
    assert "@media (min-width" in css


def test_search_box_keeps_the_query_escaped_on_the_search_page(client: FlaskClient) -> None:
    response = client.get('/search?q="><script>alert(1)</script>')
    html = _html(response)
    assert "<script>alert(1)</script>" not in html


def test_security_headers(client: FlaskClient) -> None:
    response = client.get("/about")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_request_logs_are_json_with_id_status_and_duration(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="onecart.requests"):
        response = client.get(
            "/about?utm=secret-campaign", headers={"X-Request-ID": "req-12345678"}
        )
        assert response.headers["X-Request-ID"] == "req-12345678"
        # The line is written once the answer is sent (the server closes it), not before.
        assert not [r for r in caplog.records if r.name == "onecart.requests"]
        response.close()
    records = [r for r in caplog.records if r.name == "onecart.requests"]
    assert len(records) == 1
    line = json.loads(JsonLogFormatter().format(records[0]))
    assert line["method"] == "GET" and line["path"] == "/about" and line["status"] == 200
    assert line["request_id"] == "req-12345678"
    assert isinstance(line["duration_ms"], float)
    assert "secret-campaign" not in caplog.text


def test_a_malformed_request_id_is_replaced(client: FlaskClient) -> None:
    response = client.get("/about", headers={"X-Request-ID": "bad id <script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_passwords_never_reach_the_logs(
    client: FlaskClient, make_user: Callable[..., User], caplog: pytest.LogCaptureFixture
) -> None:
    user = make_user()
    with caplog.at_level(logging.DEBUG):
        # Each answer closed, as the server closes what it sent: its log line is written then.
        client.post("/login", data={"login": user.username, "password": "Wrong-guess-123"}).close()
        client.post("/login", data={"login": user.username, "password": DEFAULT_PASSWORD}).close()
        client.post(
            "/signup",
            data={
                "username": "logcheck",
                "email": "logcheck@example.com",
                "password": "Sign-up-secret-77",
                "confirm_password": "Sign-up-secret-77",
            },
        ).close()
    formatted = "\n".join(JsonLogFormatter().format(record) for record in caplog.records)
    for secret in ("Wrong-guess-123", DEFAULT_PASSWORD, "Sign-up-secret-77"):
        assert secret not in caplog.text and secret not in formatted
    assert '"path": "/login"' in formatted


@pytest.mark.parametrize("path", [f"/product/{SONY_GROUP}", "/profile", "/assistant", "/cart"])
def test_pages_with_many_forms_give_every_element_its_own_id(
    csrf_client: FlaskClient,
    catalog: dict[str, Product],
    make_user: Callable[..., User],
    path: str,
) -> None:
    """One form per offer (or per action) must not repeat the hidden fields' ids (CSRF token
    included, so CSRF is on as in production): duplicate ids are invalid HTML, and assistive
    technology resolving an id finds the wrong element."""
    user = make_user()
    token = csrf_token_from(csrf_client, "/login")
    signed_in = csrf_client.post(
        "/login", data={"login": user.username, "password": DEFAULT_PASSWORD, "csrf_token": token}
    )
    assert signed_in.status_code == 302
    # Two cart lines, each with its quantity, remove and cheaper-offer forms.
    for product in (catalog["1001"], catalog["BZ-XM5"]):
        added = csrf_client.post(
            "/cart/add",
            data={
                "product_id": str(product.id),
                "quantity": "1",
                "csrf_token": csrf_token_from(csrf_client, f"/product/{SONY_GROUP}"),
            },
        )
        assert added.status_code == 303

    html = csrf_client.get(path).get_data(as_text=True)

    ids = Counter(re.findall(r'\sid="([^"]+)"', html))
    assert [name for name, count in ids.items() if count > 1] == []

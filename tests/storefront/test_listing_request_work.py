"""Work a listing request no longer repeats (issue 9, branch i9cpu), each shown to give the same
answer as the work it replaces: the page's slots filled in one join, the currency menu's order
worked out once per set of currencies, session protection skipped for a guest without a session,
the security headers set once each, the request id read from the environ; and what a listing
asks its context many times read from the objects behind Flask's proxies (storefront.current)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask, Response, current_app, g, request, session
from werkzeug.local import LocalProxy

from search_index.params import SearchParams
from storefront import fixed_url, path_exists
from storefront.catalog.routes import (
    FACETS_SLOT,
    RESULTS_SLOT,
    TOOLBAR_CONTROLS_SLOT,
    fill_slots,
)
from storefront.catalog.search_urls import page_url, search_url
from storefront.catalog.shopper import display_currency, marketplace_names
from storefront.currency.routes import _menu_choices
from storefront.current import request_globals, this_app, this_request
from storefront.extensions import login_manager
from storefront.form_protection import keep_guest_sessionless, page_csrf_token
from storefront.security import DEFAULT_CONTENT_SECURITY_POLICY, set_security_headers


def chained_replace(frame: str, fillings: tuple[tuple[str, str], ...]) -> str:
    for slot, filling in fillings:
        frame = frame.replace(slot, filling, 1)
    return frame


FILLINGS = (
    (str(TOOLBAR_CONTROLS_SLOT), '<div class="toolbar-controls" id="toolbar-controls">'),
    (str(FACETS_SLOT), "<p>facets ★ “a”</p>"),
    (str(RESULTS_SLOT), f"<ol><li>{RESULTS_SLOT} stays as text of a card</li></ol>"),
)


def test_filling_the_slots_in_one_join_gives_what_one_replace_per_slot_gave() -> None:
    frames = [
        f"<head>€</head>{TOOLBAR_CONTROLS_SLOT}<aside>{FACETS_SLOT}</aside><main>{RESULTS_SLOT}</main>",
        f"{TOOLBAR_CONTROLS_SLOT}{FACETS_SLOT}{RESULTS_SLOT}",
        # A slot twice: only the first occurrence is filled.
        f"a{TOOLBAR_CONTROLS_SLOT}b{FACETS_SLOT}c{RESULTS_SLOT}d{RESULTS_SLOT}e",
        # Out of order, or missing: left to str.replace as before.
        f"a{RESULTS_SLOT}b{FACETS_SLOT}c{TOOLBAR_CONTROLS_SLOT}d",
        f"a{FACETS_SLOT}b{RESULTS_SLOT}c",
        "no slots at all",
    ]
    for frame in frames:
        assert fill_slots(frame, FILLINGS) == chained_replace(frame, FILLINGS), frame


def test_the_currency_menu_follows_the_published_currencies_in_name_order() -> None:
    assert [code for code, _label in _menu_choices(["USD", "EUR", "GBP"])] == [
        "GBP",  # British Pound
        "EUR",  # Euro
        "USD",  # US Dollar
    ]
    # Another set of currencies (a pipeline run published a new rate) is its own menu.
    with_krw = _menu_choices(["USD", "KRW", "EUR", "GBP"])
    assert [code for code, _label in with_krw] == ["GBP", "EUR", "KRW", "USD"]
    assert dict(with_krw)["KRW"] == "₩ South Korean Won"
    # Each call gets its own list: a caller changing it changes no later page's menu.
    with_krw.clear()
    assert len(_menu_choices(["USD", "KRW", "EUR", "GBP"])) == 4


def test_a_guest_without_a_session_skips_session_protection_without_hashing_the_client(
    app: Flask,
) -> None:
    def no_identifier() -> str:
        raise AssertionError("the client's identifier was worked out for an empty session")

    original = login_manager._session_identifier_generator
    login_manager._session_identifier_generator = no_identifier
    try:
        with app.test_request_context("/search", headers={"User-Agent": "browser A"}):
            assert not session
            assert login_manager._session_protection_failed() is False
    finally:
        login_manager._session_identifier_generator = original


def test_a_signed_in_session_seen_from_another_client_is_still_no_longer_fresh(
    app: Flask,
) -> None:
    with app.test_request_context("/", headers={"User-Agent": "browser A"}):
        identifier_a = login_manager._session_identifier_generator()
    with app.test_request_context("/", headers={"User-Agent": "browser B"}):
        session.update({"_user_id": "1", "_fresh": True, "_id": identifier_a})
        assert login_manager._session_protection_failed() is False  # "basic" protection
        assert session["_fresh"] is False
    with app.test_request_context("/", headers={"User-Agent": "browser A"}):
        session.update({"_user_id": "1", "_fresh": True, "_id": identifier_a})
        assert login_manager._session_protection_failed() is False
        assert session["_fresh"] is True


def test_security_headers_are_added_once_and_never_replace_a_views_own() -> None:
    response = Response("page")
    response.headers["x-frame-options"] = "SAMEORIGIN"  # a view's own, in any case
    set_security_headers(
        response, content_security_policy=DEFAULT_CONTENT_SECURITY_POLICY, hsts_max_age=60
    )
    set_security_headers(response, content_security_policy="default-src 'none'", hsts_max_age=0)
    assert response.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert response.headers.getlist("Content-Security-Policy") == [DEFAULT_CONTENT_SECURITY_POLICY]
    assert response.headers.getlist("Strict-Transport-Security") == [
        "max-age=60; includeSubDomains"
    ]
    assert response.headers.getlist("X-Content-Type-Options") == ["nosniff"]
    assert response.headers.getlist("Referrer-Policy") == ["strict-origin-when-cross-origin"]
    # Same order as the header-by-header setdefault calls gave.
    assert [name for name, _value in response.headers][-4:] == [
        "Strict-Transport-Security",
        "X-Content-Type-Options",
        "Referrer-Policy",
        "Content-Security-Policy",
    ]


def test_the_request_id_is_taken_from_the_header_or_made_up(app: Flask) -> None:
    client = app.test_client()
    sent = client.get("/api/ping", headers={"X-Request-ID": "req-12345678"})
    assert sent.headers["X-Request-ID"] == "req-12345678"
    made = client.get("/api/ping", headers={"X-Request-ID": "bad id!"})
    assert made.headers["X-Request-ID"] != "bad id!"
    assert len(made.headers["X-Request-ID"]) == 32
    assert len(client.get("/api/ping").headers["X-Request-ID"]) == 32


def test_the_context_helpers_give_the_objects_behind_the_proxies(app: Flask) -> None:
    with app.test_request_context("/search?q=tv"):
        assert this_app() is current_app._get_current_object() is app
        assert this_request() is request._get_current_object()
        assert not isinstance(this_request(), LocalProxy)
        assert request_globals() is g._get_current_object()
        request_globals().seen = 1
        assert g.seen == 1
    with pytest.raises(RuntimeError):  # outside a request, as the proxies themselves
        this_request()


def test_what_every_listing_asks_its_context_reads_no_proxy_attribute(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fixed_url, the catalog cache, the display currency, the listing's URLs and the CSRF token
    run many times per listing: each read through a context proxy builds and drops an
    AttributeError in C first (storefront.current)."""
    forwarded: list[str] = []
    forward = LocalProxy.__getattr__

    class CountingForward:
        def __get__(self, proxy: LocalProxy, owner: type) -> Callable[[str], object]:
            bound = forward.__get__(proxy, owner)

            def read(name: str) -> object:
                forwarded.append(name)
                return bound(name)

            return read

    def ask_as_a_listing_does(params: SearchParams) -> None:
        fixed_url("static", filename="css/site.css")
        path_exists("/stores")
        display_currency()
        marketplace_names()
        search_url(params, page=3)
        page_url(params, 4)
        page_csrf_token()

    with app.test_request_context("/search?q=tv&page=2"):
        params = SearchParams.from_query_args(request.args)
        keep_guest_sessionless()  # as GET /search does for a guest
        ask_as_a_listing_does(params)  # the first time works out and remembers (url_for, user)
        monkeypatch.setattr(LocalProxy, "__getattr__", CountingForward())
        for _ in range(3):
            ask_as_a_listing_does(params)
        monkeypatch.undo()
    assert forwarded == []

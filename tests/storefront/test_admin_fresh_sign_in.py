"""The admin area asks for the password again when the sign-in came from "keep me signed in".

Security review, fourth pass: an admin signed in by the remember cookie alone (a browser
restarted days later, or a copy of that cookie) had the whole admin area: refunds to wallets,
resolving flags, marketplace URLs and keys. Flask-Login marks such a session not fresh; the
admin area now sends it to the sign-in form first (the password proves the person), then on to
the page asked for. A shopper's own pages are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from commerce import accounts
from commerce.models import User
from tests.storefront.conftest import DEFAULT_PASSWORD


def _remembered_browser(app: Flask, client: FlaskClient, user: User) -> FlaskClient:
    """A browser that has only the remember cookie of `user`'s sign-in (restarted since)."""
    response = client.post(
        "/login", data={"login": user.username, "password": DEFAULT_PASSWORD, "remember": "y"}
    )
    assert response.status_code == 302
    remember = client.get_cookie("onecart_remember")
    assert remember is not None
    browser = app.test_client()
    browser.set_cookie("onecart_remember", remember.value)
    return browser


def test_a_remembered_admin_signs_in_again_before_the_admin_area(
    app: Flask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    admin = make_user(is_admin=True)
    browser = _remembered_browser(app, client, admin)
    assert browser.get("/profile").status_code == 200  # still signed in as a shopper

    asked = browser.get("/admin/wallets")
    assert asked.status_code == 302
    assert asked.headers["Location"].startswith("/login?next=/admin/wallets")
    # The sign-in form is shown (not skipped because someone is signed in already) ...
    form = browser.get(asked.headers["Location"])
    assert form.status_code == 200 and 'name="password"' in form.get_data(as_text=True)
    # ... and the password leads on to the page asked for.
    signed_in = browser.post(
        "/login",
        data={"login": admin.username, "password": DEFAULT_PASSWORD, "next": "/admin/wallets"},
    )
    assert signed_in.headers["Location"] == "/admin/wallets"
    assert browser.get("/admin/wallets").status_code == 200


def test_a_remembered_admin_cannot_act_without_the_password(
    app: Flask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    browser = _remembered_browser(app, client, make_user(is_admin=True))
    response = browser.post("/admin/marketplaces/1/disable")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_an_admin_who_typed_the_password_goes_straight_in(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    admin = make_user(is_admin=True)
    client.post("/login", data={"login": admin.username, "password": DEFAULT_PASSWORD})
    assert client.get("/admin/wallets").status_code == 200
    assert client.get("/login").status_code == 302  # signed in and fresh: nothing to ask


def test_an_admin_password_typed_hours_ago_is_asked_again(
    client: FlaskClient, make_user: Callable[..., User], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Security review, sixth pass: a session cookie stays "fresh" for as long as the sign-in
    lives (30 days), and browsers that restore the last session keep session cookies across
    restarts: an admin who closed the browser on a shared computer left refunds and marketplace
    keys to the next person for a month. The admin area now wants the password typed within
    ADMIN_FRESH_SIGN_IN (12 hours); a shopper's own pages are unchanged."""
    admin = make_user(is_admin=True)
    real_now = accounts.utc_now
    monkeypatch.setattr(accounts, "utc_now", lambda: real_now() - timedelta(hours=13))
    client.post("/login", data={"login": admin.username, "password": DEFAULT_PASSWORD})
    monkeypatch.setattr(accounts, "utc_now", real_now)
    assert client.get("/profile").status_code == 200  # still signed in as a shopper

    asked = client.get("/admin/wallets")
    assert asked.status_code == 302
    assert asked.headers["Location"].startswith("/login?next=/admin/wallets")
    form = client.get(asked.headers["Location"])  # shown, not skipped as "signed in already"
    assert form.status_code == 200 and 'name="password"' in form.get_data(as_text=True)
    assert client.post("/admin/marketplaces/1/disable").headers["Location"].startswith("/login")
    signed_in = client.post(
        "/login",
        data={"login": admin.username, "password": DEFAULT_PASSWORD, "next": "/admin/wallets"},
    )
    assert signed_in.headers["Location"] == "/admin/wallets"
    assert client.get("/admin/wallets").status_code == 200

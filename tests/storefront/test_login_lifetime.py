"""A sign-in lasts at most LOGIN_LIFETIME (30 days), whatever cookie carries it.

Security review, fourth pass: Flask-Login's "keep me signed in" cookie holds the account id and
an HMAC, no time, and the browser was told to keep it for 365 days; the server accepted it for as
long as it was presented. A copy of it (a shared computer, a synced profile, a leaked backup)
signed its holder in for good, until the shopper happened to sign out or change the password.
Now the login cookies carry the time of the sign-in, the server refuses them once it is older
than the lifetime, and the browser keeps the remember cookie no longer than that.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from commerce import accounts
from commerce.models import User
from tests.storefront.conftest import DEFAULT_PASSWORD

LIFETIME = timedelta(days=30)


@pytest.fixture
def later(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[timedelta], None]]:
    """Move the accounts service's clock (the one the sign-in time is checked against) ahead."""

    def move(by: timedelta) -> None:
        real = datetime.now(UTC)
        monkeypatch.setattr(accounts, "utc_now", lambda: real + by)

    yield move


def _sign_in(client: FlaskClient, user: User, *, remember: bool) -> dict[str, str]:
    data = {"login": user.username, "password": DEFAULT_PASSWORD}
    if remember:
        data["remember"] = "y"
    assert client.post("/login", data=data).status_code == 302
    cookies = {}
    for name in ("onecart_session", "onecart_remember"):
        cookie = client.get_cookie(name)
        if cookie is not None:
            cookies[name] = cookie.value
    return cookies


def _signed_in_with(app: Flask, name: str, value: str) -> bool:
    browser = app.test_client()
    browser.set_cookie(name, value)
    return browser.get("/profile").status_code == 200


def test_a_remember_cookie_stops_working_after_the_login_lifetime(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., User],
    later: Callable[[timedelta], None],
) -> None:
    remember = _sign_in(client, make_user(), remember=True)["onecart_remember"]
    later(LIFETIME - timedelta(days=1))
    assert _signed_in_with(app, "onecart_remember", remember)
    later(LIFETIME + timedelta(days=1))
    assert not _signed_in_with(app, "onecart_remember", remember)


def test_a_copied_session_cookie_stops_working_after_the_login_lifetime(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., User],
    later: Callable[[timedelta], None],
) -> None:
    """Flask refuses a session cookie signed more than 31 days ago, but a signed-in session is
    signed again whenever it changes (a CSRF token, a cart line): the sign-in's own time counts."""
    session_cookie = _sign_in(client, make_user(), remember=False)["onecart_session"]
    later(LIFETIME + timedelta(days=1))
    assert not _signed_in_with(app, "onecart_session", session_cookie)


def test_the_browser_keeps_the_remember_cookie_for_the_login_lifetime(
    client: FlaskClient, make_user: Callable[..., User]
) -> None:
    user = make_user()
    response = client.post(
        "/login", data={"login": user.username, "password": DEFAULT_PASSWORD, "remember": "y"}
    )
    cookie = client.get_cookie("onecart_remember")
    assert response.status_code == 302 and cookie is not None and cookie.expires is not None
    kept_for = cookie.expires - datetime.now(UTC)
    assert LIFETIME - timedelta(hours=1) < kept_for <= LIFETIME


def test_a_sign_in_cookie_of_the_old_form_no_longer_signs_in(
    app: Flask, make_user: Callable[..., User]
) -> None:
    """A cookie made before sign-in times were recorded (`<id>.<nonce>`) has no age to check."""
    from flask_login.utils import encode_cookie

    user = make_user()
    with app.test_request_context():
        old_form = encode_cookie(f"{user.id}.{user.session_nonce}")
    assert not _signed_in_with(app, "onecart_remember", old_form)


def test_changing_the_password_keeps_this_browser_signed_in_with_a_new_sign_in_time(
    client: FlaskClient, make_user: Callable[..., User], later: Callable[[timedelta], None]
) -> None:
    _sign_in(client, make_user(), remember=False)
    later(LIFETIME - timedelta(days=1))
    response = client.post(
        "/profile/password",
        data={
            "current_password": DEFAULT_PASSWORD,
            "new_password": "Brand-new-pass-42",
            "confirm_new_password": "Brand-new-pass-42",
        },
    )
    assert response.status_code == 302
    later(LIFETIME + timedelta(days=2))  # past the first sign-in, within the second
    assert client.get("/profile").status_code == 200

"""Password reset by e-mail (issue 12): single-use, expiring link, rate-limited, the same answer
whether or not the address has an account, every session signed out after the change. The mail
goes through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous.encoding import base64_decode
from sqlalchemy.orm import Session

from commerce.models import User
from commerce.password_reset import make_reset_token, user_for_reset_token
from storefront.auth.known_devices import known_device_for
from tests.storefront.conftest import DEFAULT_PASSWORD, wait_for_mail

NEW_PASSWORD = "Fresh-start-2026-pass"
_LINK = re.compile(r"http://localhost(/password/reset/[A-Za-z0-9_.\-]+)")


@pytest.fixture
def app_config_overrides(mailbox: tuple[int, list[Any]]) -> dict[str, Any]:
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": mailbox[0], "PUBLIC_URL": "http://localhost"}


def _visible(response: Any) -> str:
    html = response.get_data(as_text=True)
    # CSRF tokens (the form's and the layout's meta tag) carry a timestamp: not page content.
    return re.sub(r"<[^>]*csrf[-_]token[^>]*>", "", html)


def _request_reset(client: FlaskClient, email: str) -> Any:
    return client.post("/password/forgot", data={"email": email})


def test_a_reset_link_changes_the_password_once_and_signs_every_session_out(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[..., User],
    login: Callable[..., Any],
    mailbox: tuple[int, list[Any]],
) -> None:
    user = make_user(email="reset.me@example.com")
    other_device = app.test_client()
    login(other_device, user)
    assert other_device.get("/profile").status_code == 200

    answer = _request_reset(client, "Reset.Me@example.com")
    assert answer.status_code == 200
    assert "If an account uses that address" in answer.get_data(as_text=True)
    message = wait_for_mail(mailbox[1], 1)[0]
    assert message["To"] == "reset.me@example.com"
    body = message.get_payload(decode=True).decode()
    link = _LINK.search(body)
    assert link, body
    path = link.group(1)

    page = client.get(path)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    done = client.post(
        path, data={"new_password": NEW_PASSWORD, "confirm_new_password": NEW_PASSWORD}
    )
    assert done.status_code == 302 and done.headers["Location"] == "/login"

    # Every session that existed is signed out; the new password works, the old one not.
    assert other_device.get("/profile").status_code == 302
    old = app.test_client().post(
        "/login", data={"login": user.username, "password": DEFAULT_PASSWORD}
    )
    assert old.status_code == 422
    new = app.test_client().post("/login", data={"login": user.username, "password": NEW_PASSWORD})
    assert new.status_code == 302

    # Single use: the same link is dead now.
    again = client.get(path)
    assert again.status_code == 404
    assert "expired or was already used" in again.get_data(as_text=True)


def test_the_answer_is_the_same_whether_or_not_the_address_has_an_account(
    client: FlaskClient, make_user: Callable[..., User], mailbox: tuple[int, list[Any]]
) -> None:
    make_user(email="known@example.com")
    unknown = _request_reset(client, "nobody@example.com")
    known = _request_reset(client, "known@example.com")
    assert unknown.status_code == known.status_code == 200
    assert _visible(unknown) == _visible(known)
    # Only the account's address gets mail (the unknown request came first: had it sent
    # anything, it would have been sent before the known address's mail).
    received = wait_for_mail(mailbox[1], 1)
    assert [message["To"] for message in received] == ["known@example.com"]


@pytest.mark.parametrize(
    "app_config_overrides",
    [{"PASSWORD_RESET_ADDRESS_LIMIT": "2/3600", "SMTP_HOST": None}],
)
@pytest.mark.parametrize("email", ["known@example.com", "nobody@example.com"])
def test_reset_requests_are_rate_limited_per_address_alike(
    client: FlaskClient, make_user: Callable[..., User], email: str
) -> None:
    make_user(email="known@example.com")
    statuses = [_request_reset(client, email).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


@pytest.mark.parametrize(
    "app_config_overrides", [{"PASSWORD_RESET_IP_LIMIT": "2/900", "SMTP_HOST": None}]
)
def test_reset_requests_are_rate_limited_per_client(client: FlaskClient) -> None:
    statuses = [_request_reset(client, f"a{n}@example.com").status_code for n in range(3)]
    assert statuses == [200, 200, 429]


def test_expired_forged_and_stale_tokens_are_refused(
    app: Flask, make_user: Callable[..., User], db_session: Session
) -> None:
    user = make_user()
    secret = app.config["SECRET_KEY"]
    token = make_reset_token(user, secret)
    assert user_for_reset_token(db_session, token, secret) is not None
    assert user_for_reset_token(db_session, token, secret, max_age_s=-1) is None  # expired
    assert user_for_reset_token(db_session, token, "another-secret") is None  # forged
    assert user_for_reset_token(db_session, token[:-2] + "xx", secret) is None
    user.session_nonce = "rotated-elsewhere"  # e.g. signed out everywhere since
    db_session.commit()
    assert user_for_reset_token(db_session, token, secret) is None
    assert app.test_client().get("/password/reset/not-a-token").status_code == 404


def _from(app: Flask, address: str) -> FlaskClient:
    """A test client whose requests come from `address` (as the socket's peer)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_strangers_spending_an_address_s_reset_mails_do_not_lock_its_owner_out(
    app: Flask,
    make_user: Callable[..., User],
    login: Callable[..., Any],
    mailbox: tuple[int, list[Any]],
) -> None:
    app.config["PASSWORD_RESET_ADDRESS_LIMIT"] = "4/3600"  # read per request (a small cap)
    user = make_user(email="victim@example.com")
    owner_browser = _from(app, "198.51.100.7")
    login(owner_browser, user)
    owner_browser.post("/logout")  # forgot the password since: signed out

    # One stranger gets 3 an hour for this address, not the address's whole allowance.
    stranger = _from(app, "203.0.113.1")
    assert [_request_reset(stranger, "victim@example.com").status_code for _ in range(4)] == [
        200,
        200,
        200,
        429,
    ]
    # A second stranger uses up what is left of the shared cap (4): the inbox is protected.
    other = _from(app, "203.0.113.2")
    assert [_request_reset(other, "victim@example.com").status_code for _ in range(2)] == [
        200,
        429,
    ]
    refused = _request_reset(_from(app, "198.51.100.8"), "victim@example.com")
    assert refused.status_code == 429
    assert "signed in to this account before" in refused.get_data(as_text=True)
    wait_for_mail(mailbox[1], 4)

    # The owner's browser, where the account signed in before, still gets its link.
    answer = _request_reset(owner_browser, "victim@example.com")
    assert answer.status_code == 200
    received = wait_for_mail(mailbox[1], 5)
    assert received[4]["To"] == "victim@example.com"
    assert _LINK.search(received[4].get_payload(decode=True).decode())


@pytest.mark.parametrize(
    "app_config_overrides",
    [{"PASSWORD_RESET_ADDRESS_LIMIT": "1/3600", "SMTP_HOST": None}],
)
def test_a_forged_or_foreign_known_device_cookie_does_not_lift_the_address_cap(
    app: Flask, make_user: Callable[..., User], login: Callable[..., Any]
) -> None:
    victim = make_user(email="victim@example.com")
    attacker = make_user(email="attacker@example.com")
    assert _request_reset(_from(app, "203.0.113.1"), "victim@example.com").status_code == 200

    # Signed in as another account: the cookie names that account, not the victim's.
    browser = _from(app, "203.0.113.3")
    login(browser, attacker)
    assert _request_reset(browser, "victim@example.com").status_code == 429
    forged = _from(app, "203.0.113.4")
    forged.set_cookie("onecart_known_device", f'{{"d": "x", "u": [{victim.id}]}}')
    assert _request_reset(forged, "victim@example.com").status_code == 429


def test_the_known_device_cookie_names_no_account_and_outlives_the_sign_out(
    app: Flask, make_user: Callable[..., User], login: Callable[..., Any]
) -> None:
    """Security review, fifth pass: the cookie carried the ids of the accounts that signed in
    on the browser, readable by anyone at that computer (it is signed, not encrypted). It is
    kept at sign-out on purpose: it marks the device, not a session, and the owner who forgot a
    password is signed out by then."""
    user = make_user(username="shared.pc", email="shared.pc@example.com")
    browser = _from(app, "198.51.100.9")
    login(browser, user)
    cookie = browser.get_cookie("onecart_known_device")
    assert cookie is not None
    payload = cookie.value.rsplit(".", 2)[0]
    compressed = payload.startswith(".")
    decoded = base64_decode(payload.lstrip("."))
    text = (zlib.decompress(decoded) if compressed else decoded).decode()
    stored = json.loads(text)
    assert user.id not in stored["u"]
    assert all(isinstance(tag, str) and len(tag) == 32 for tag in stored["u"])
    assert user.username not in text and user.email not in text

    browser.post("/logout")
    assert browser.get_cookie("onecart_known_device") is not None
    with app.test_request_context(headers={"Cookie": f"onecart_known_device={cookie.value}"}):
        assert known_device_for(user.id) == stored["d"]
        assert known_device_for(user.id + 1) is None


def test_a_short_and_mismatched_new_password_reports_both_problems(
    app: Flask, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    user = make_user(email="both.problems@example.com")
    token = make_reset_token(user, app.config["SECRET_KEY"])

    response = client.post(
        f"/password/reset/{token}", data={"new_password": "ab1", "confirm_new_password": "ab2"}
    )

    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "match" in html  # "The two passwords don't match." (escaped apostrophe)
    assert "Use at least" in html
    assert re.search(r'id="new_password"[^>]*aria-invalid="true"', html) or re.search(
        r'aria-invalid="true"[^>]*id="new_password"', html
    )

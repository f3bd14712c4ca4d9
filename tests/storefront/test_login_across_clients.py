"""Password guesses at one account from many clients (sixth security review).

Sign-in was limited per client and per (account, client) only, so that no stranger could lock
an owner out. A guesser with many addresses (a botnet, a cloud's pool, IPv4 proxies) then had
5 guesses per address per 15 minutes at one account without end. Now failed attempts at an
account are capped across all clients too (LOGIN_LIMIT_ACROSS_CLIENTS an hour); while that cap
is full, a browser that signed in to the account before, or that set its password through a
reset link, still gets its own attempts (storefront.auth.known_devices), as the password reset
limit does. Real Redis.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from commerce.models import User
from commerce.password_reset import make_reset_token
from tests.storefront.conftest import DEFAULT_PASSWORD, wait_for_mail

LIMITS = {"LOGIN_LIMIT_PER_ACCOUNT": 3, "LOGIN_LIMIT_ACROSS_CLIENTS": 4}


def _sign_in(client: FlaskClient, login: str, password: str, address: str) -> Any:
    return client.post(
        "/login",
        data={"login": login, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def _spread_guesses(app: Flask, login: str, count: int = 4) -> list[int]:
    """One failed guess from each of `count` new addresses."""
    return [
        _sign_in(app.test_client(), login, "wrong-password-1", f"198.51.100.{n}").status_code
        for n in range(1, count + 1)
    ]


@pytest.mark.parametrize("app_config_overrides", [LIMITS])
def test_guesses_spread_over_many_addresses_are_capped_per_account(
    app: Flask, make_user: Callable[..., User]
) -> None:
    user = make_user()
    assert _spread_guesses(app, user.username) == [422] * 4
    # Before: every new address had LOGIN_LIMIT_PER_ACCOUNT more guesses, the right one included.
    refused = _sign_in(app.test_client(), user.email, DEFAULT_PASSWORD, "198.51.100.50")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    text = refused.get_data(as_text=True)
    assert "browser where you have signed in" in text and "reset" in text


@pytest.mark.parametrize("app_config_overrides", [LIMITS])
def test_the_cap_reads_the_same_for_an_account_that_does_not_exist(
    app: Flask, make_user: Callable[..., User]
) -> None:
    user = make_user()
    _spread_guesses(app, user.username)
    _spread_guesses(app, "nobody-by-this-name")
    known = _sign_in(app.test_client(), user.username, "x-wrong-1", "198.51.100.60")
    unknown = _sign_in(app.test_client(), "nobody-by-this-name", "x-wrong-1", "198.51.100.61")
    assert known.status_code == unknown.status_code == 429
    assert _without_csrf_tokens(known) == _without_csrf_tokens(unknown)


def _without_csrf_tokens(response: Any) -> str:
    # Each page carries its own CSRF token and error reference; everything else is the same.
    text = re.sub(r'(content|value)="[\w.-]{40,}"', "", response.get_data(as_text=True))
    return re.sub(r"<code>[0-9a-f]{32}</code>", "", text)


@pytest.mark.parametrize("app_config_overrides", [LIMITS])
def test_the_owner_s_own_browser_still_signs_in_while_the_cap_is_full(
    app: Flask, make_user: Callable[..., User]
) -> None:
    user = make_user()
    owner = app.test_client()
    assert _sign_in(owner, user.username, DEFAULT_PASSWORD, "192.0.2.10").status_code == 302
    owner.post("/logout")

    assert _spread_guesses(app, user.username) == [422] * 4
    assert _sign_in(owner, user.username, DEFAULT_PASSWORD, "192.0.2.11").status_code == 302
    owner.post("/logout")
    # Its own attempts are limited like any client's on the account.
    assert [
        _sign_in(owner, user.username, "wrong-password-1", "192.0.2.12").status_code
        for _ in range(3)
    ] == [422] * 3
    assert _sign_in(owner, user.username, DEFAULT_PASSWORD, "192.0.2.13").status_code == 429


@pytest.mark.parametrize("app_config_overrides", [LIMITS])
def test_a_browser_that_reset_the_password_signs_in_while_the_cap_is_full(
    app: Flask, make_user: Callable[..., User]
) -> None:
    user = make_user(email="locked.out@example.com")
    assert _spread_guesses(app, user.username) == [422] * 4
    browser = app.test_client()
    token = make_reset_token(user, app.config["SECRET_KEY"])
    new_password = "a-new-Password-42"
    done = browser.post(
        f"/password/reset/{token}",
        data={"new_password": new_password, "confirm_new_password": new_password},
    )
    assert done.status_code == 302
    assert _sign_in(browser, user.username, new_password, "192.0.2.20").status_code == 302
    # Anyone else still waits.
    other = _sign_in(app.test_client(), user.username, new_password, "192.0.2.21")
    assert other.status_code == 429


@pytest.mark.parametrize("app_config_overrides", [LIMITS])
def test_the_lockout_page_says_what_to_do_and_links_to_the_reset_form(
    app: Flask, make_user: Callable[..., User]
) -> None:
    user = make_user()
    _spread_guesses(app, user.username)
    page = _sign_in(app.test_client(), user.username, DEFAULT_PASSWORD, "198.51.100.70")
    assert page.status_code == 429
    text = page.get_data(as_text=True)
    assert "wait an hour" in text
    assert 'href="/password/forgot"' in text  # the way out is one click away


LINK = re.compile(r"/password/reset/[\w.-]+")


@pytest.fixture
def app_config_overrides(mailbox: tuple[int, list[Any]]) -> dict[str, Any]:
    """For the tests not parametrized with their own: the small limits, and reset mails sent."""
    return {
        **LIMITS,
        "PASSWORD_RESET_ADDRESS_LIMIT": "2/3600",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": mailbox[0],
        "PUBLIC_URL": "http://localhost",
    }


def test_a_new_browser_gets_in_with_a_link_the_strangers_had_mailed(
    mailbox: tuple[int, list[Any]],
    app: Flask,
    make_user: Callable[..., User],
) -> None:
    """Strangers fill both the sign-in cap and the address's reset mails: the owner, on a
    browser the account never signed in on (a new phone), can neither sign in nor get a new
    mail. The mails the strangers asked for went to the owner's inbox, though, and each link
    works for an hour: the refusal says so, and the latest link lets this browser in."""
    user = make_user(email="owner@example.com")
    assert _spread_guesses(app, user.username) == [422] * 4
    for n in (1, 2):
        stranger = app.test_client()
        answer = stranger.post(
            "/password/forgot",
            data={"email": user.email},
            environ_base={"REMOTE_ADDR": f"203.0.113.{n}"},
        )
        assert answer.status_code == 200
    received = wait_for_mail(mailbox[1], 2)

    phone = app.test_client()
    assert _sign_in(phone, user.username, DEFAULT_PASSWORD, "192.0.2.30").status_code == 429
    refused = phone.post(
        "/password/forgot", data={"email": user.email}, environ_base={"REMOTE_ADDR": "192.0.2.30"}
    )
    assert refused.status_code == 429
    assert "latest one" in refused.get_data(as_text=True)

    link = LINK.search(received[-1].get_payload(decode=True).decode())
    assert link is not None
    new_password = "a-new-Password-43"
    done = phone.post(
        link.group(0), data={"new_password": new_password, "confirm_new_password": new_password}
    )
    assert done.status_code == 302
    assert _sign_in(phone, user.username, new_password, "192.0.2.30").status_code == 302

"""Sign-up confirmed by e-mail (issue 12, finding 6): the sign-up answer is the same whether or
not the address has an account; the account exists only once the e-mailed link is used, once.
The mail goes through a real SMTP server (aiosmtpd), the pending sign-ups through real Redis."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.models import User
from onecart.settings import Settings
from tests.storefront.conftest import wait_for_mail

PASSWORD = "Confirm-me-2026-pass"
_LINK = re.compile(r"http://localhost(/signup/confirm/[A-Za-z0-9_\-]+)")


@pytest.fixture
def app_config_overrides(mailbox: tuple[int, list[Any]]) -> dict[str, Any]:
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": mailbox[0],
        "PUBLIC_URL": "http://localhost",
        "SIGNUP_CONFIRMATION": True,
    }


def _sign_up(client: FlaskClient, username: str, email: str) -> Any:
    return client.post(
        "/signup",
        data={
            "username": username,
            "email": email,
            "password": PASSWORD,
            "confirm_password": PASSWORD,
        },
    )


def _visible(response: Any, *hide: str) -> str:
    html = response.get_data(as_text=True)
    html = re.sub(r"<[^>]*csrf[-_]token[^>]*>", "", html)
    for text in hide:
        html = html.replace(text, "")
    return html


def _users(db_session: Session, email: str) -> list[User]:
    db_session.expire_all()
    return list(db_session.scalars(sa.select(User).where(User.email == email)))


def test_a_known_and_an_unknown_address_get_the_same_answer(
    client: FlaskClient,
    make_user: Callable[..., User],
    mailbox: tuple[int, list[Any]],
    db_session: Session,
) -> None:
    owner = make_user(username="alreadyhere", email="taken@example.com")

    known = _sign_up(client, "newname1", "taken@example.com")
    unknown = _sign_up(client, "newname2", "free@example.com")

    assert known.status_code == unknown.status_code == 200
    assert "already exists" not in known.get_data(as_text=True)
    assert _visible(known, "taken@example.com") == _visible(unknown, "free@example.com")
    # No account yet for the new address; the owner's account is untouched.
    assert _users(db_session, "free@example.com") == []
    assert [user.username for user in _users(db_session, "taken@example.com")] == [owner.username]

    messages = {message["To"]: message for message in wait_for_mail(mailbox[1], 2)}
    to_owner = messages["taken@example.com"].get_payload()
    assert "already has one (username: alreadyhere)" in to_owner
    assert "/signup/confirm/" not in to_owner
    assert "http://localhost/password/forgot" in to_owner
    assert _LINK.search(messages["free@example.com"].get_payload())


def test_the_link_creates_the_account_once_and_signs_in(
    app: Flask,
    client: FlaskClient,
    mailbox: tuple[int, list[Any]],
    db_session: Session,
) -> None:
    assert _sign_up(client, "linkuser", "link.user@example.com").status_code == 200
    [message] = wait_for_mail(mailbox[1], 1)
    path = _LINK.search(message.get_payload()).group(1)

    # Opening the link (what a mail scanner does) creates nothing.
    opened = client.get(path)
    assert opened.status_code == 200
    assert opened.headers["Cache-Control"] == "no-store"
    assert _users(db_session, "link.user@example.com") == []

    confirmed = client.post(path)
    assert confirmed.status_code == 302
    [user] = _users(db_session, "link.user@example.com")
    assert user.username == "linkuser"
    assert client.get("/profile").status_code == 200  # signed in

    # The link works once, for anyone.
    assert app.test_client().post(path).status_code == 404
    assert app.test_client().get(path).status_code == 404
    assert len(_users(db_session, "link.user@example.com")) == 1


def test_a_forged_or_oversized_link_is_a_404(client: FlaskClient) -> None:
    assert client.get("/signup/confirm/not-a-real-token").status_code == 404
    assert client.post("/signup/confirm/" + "x" * 5000).status_code == 404


def test_form_errors_still_show_and_nothing_is_sent(
    client: FlaskClient, make_user: Callable[..., User], mailbox: tuple[int, list[Any]]
) -> None:
    make_user(username="publichandle", email="handle@example.com")
    response = client.post(
        "/signup",
        data={
            "username": "publichandle",
            "email": "someone.else@example.com",
            "password": "short",
            "confirm_password": "short",
        },
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "This username is already taken." in page  # usernames are public handles
    assert "Check your inbox" not in page
    assert mailbox[1] == []


def test_confirmation_is_on_in_production_and_off_in_development() -> None:
    assert Settings(ONECART_ENV="production").signup_confirmation_enabled is True
    assert Settings(ONECART_ENV="development").signup_confirmation_enabled is False
    assert Settings(ONECART_SIGNUP_CONFIRMATION="1").signup_confirmation_enabled is True


@pytest.mark.parametrize("owner_exists", [False, True])
def test_sign_up_mails_to_one_address_are_capped_across_clients(
    app: Flask,
    make_user: Callable[..., User],
    mailbox: tuple[int, list[Any]],
    owner_exists: bool,
) -> None:
    """Security review, sixth pass: every sign-up with an address mailed it (a link, or "you
    already have an account"), limited only per client, so anyone with a few addresses could
    flood a stranger's inbox from the shop's mail server. Now SIGNUP_ADDRESS_LIMIT per address
    from all clients (3 an hour here), the same for an address with or without an account."""
    app.config["SIGNUP_ADDRESS_LIMIT"] = "3/3600"
    victim = "flooded@example.com"
    if owner_exists:
        make_user(username="floodedowner", email=victim)

    def sign_up_from(n: int) -> Any:
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = f"198.51.100.{n}"
        return _sign_up(client, f"flooder{n}", victim.upper() if n % 2 else victim)

    answers = [sign_up_from(n) for n in range(1, 6)]
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429, 429]
    assert "sign-up e-mails were sent to this address" in answers[3].get_data(as_text=True)
    assert len(wait_for_mail(mailbox[1], 3)) == 3
    # Nothing more arrives for the refused two.
    time.sleep(0.5)
    assert len(mailbox[1]) == 3

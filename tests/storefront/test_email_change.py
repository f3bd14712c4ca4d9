"""An e-mail change waits for the new address to confirm (with address confirmation on, as in
production); the old address is told, with no link that changes anything. Real SMTP (aiosmtpd),
the storefront database on SQLite or PostgreSQL."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.email_change import (
    EMAIL_CHANGE_MAX_AGE_S,
    make_email_change_token,
    user_for_email_change_token,
)
from commerce.models import User, utc_now
from tests.storefront.conftest import DEFAULT_PASSWORD, wait_for_mail

_CONFIRM_LINK = re.compile(r"http://localhost(/profile/email/confirm/[A-Za-z0-9_.\-]+)")
DETAILS = {
    "first_name": "Ama",
    "last_name": "Mensah",
    "phone_number": "",
    "display_currency": "USD",
    "email_password": DEFAULT_PASSWORD,
}


@pytest.fixture
def app_config_overrides(mailbox: tuple[int, list[Any]]) -> dict[str, Any]:
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": mailbox[0],
        "PUBLIC_URL": "http://localhost",
        "SIGNUP_CONFIRMATION": True,
    }


@pytest.fixture
def user(make_user: Callable[..., User]) -> User:
    return make_user(username="ama", email="ama@example.com")


@pytest.fixture
def signed_in(client: FlaskClient, user: User, login: Callable[..., Any]) -> FlaskClient:
    login(client, user)
    return client


def _change_to(client: FlaskClient, address: str) -> Any:
    return client.post("/profile", data={**DETAILS, "email": address})


def _mail_to(received: list[Any], address: str) -> list[Any]:
    return [message for message in received if message["To"] == address]


def _body(message: Any) -> str:
    return str(message.get_payload(decode=True).decode())


def _confirm_path(received: list[Any], address: str) -> str:
    found = _CONFIRM_LINK.search(_body(_mail_to(received, address)[-1]))
    assert found, _body(_mail_to(received, address)[-1])
    return found.group(1)


def _stored(db_session: Session, user: User) -> User:
    db_session.expire_all()
    stored = db_session.get(User, user.id)
    assert stored is not None
    return stored


def test_a_change_waits_for_the_new_address_and_the_old_one_is_told(
    app: Flask,
    signed_in: FlaskClient,
    user: User,
    db_session: Session,
    mailbox: tuple[int, list[Any]],
) -> None:
    answer = _change_to(signed_in, "Ama.New@Example.com")
    assert answer.status_code == 302
    page = signed_in.get("/profile").get_data(as_text=True)
    assert "We sent a link to ama.new@example.com" in page
    assert 'data-testid="pending-email"' in page
    stored = _stored(db_session, user)
    assert (stored.email, stored.pending_email) == ("ama@example.com", "ama.new@example.com")

    received = wait_for_mail(mailbox[1], 2)
    notice = _mail_to(received, "ama@example.com")
    assert len(notice) == 1
    assert "ama.new@example.com" in _body(notice[0])
    assert "/profile/email/confirm/" not in _body(notice[0])  # no secret for the old address
    path = _confirm_path(received, "ama.new@example.com")

    # Meanwhile the account signs in with its old address, not the new one.
    assert (
        app.test_client()
        .post("/login", data={"login": "ama.new@example.com", "password": DEFAULT_PASSWORD})
        .status_code
        == 422
    )
    assert (
        app.test_client()
        .post("/login", data={"login": "ama@example.com", "password": DEFAULT_PASSWORD})
        .status_code
        == 302
    )

    # Opened on another device (not signed in): a mail scanner's GET changes nothing.
    elsewhere = app.test_client()
    shown = elsewhere.get(path)
    assert shown.status_code == 200
    assert shown.headers["Cache-Control"] == "no-store"
    assert shown.headers["Referrer-Policy"] == "no-referrer"
    assert _stored(db_session, user).email == "ama@example.com"
    done = elsewhere.post(path)
    assert done.status_code == 302
    stored = _stored(db_session, user)
    assert (stored.email, stored.pending_email) == ("ama.new@example.com", None)
    assert (
        app.test_client()
        .post("/login", data={"login": "ama.new@example.com", "password": DEFAULT_PASSWORD})
        .status_code
        == 302
    )

    # Used: the link is dead.
    assert elsewhere.get(path).status_code == 404
    assert elsewhere.post(path).status_code == 404


def test_a_second_change_replaces_the_first(
    app: Flask,
    signed_in: FlaskClient,
    user: User,
    db_session: Session,
    mailbox: tuple[int, list[Any]],
) -> None:
    _change_to(signed_in, "first@example.com")
    first = _confirm_path(wait_for_mail(mailbox[1], 2), "first@example.com")
    _change_to(signed_in, "second@example.com")
    second = _confirm_path(wait_for_mail(mailbox[1], 4), "second@example.com")

    other = app.test_client()
    assert other.get(first).status_code == 404
    assert other.post(first).status_code == 404
    assert _stored(db_session, user).email == "ama@example.com"
    assert other.post(second).status_code == 302
    assert _stored(db_session, user).email == "second@example.com"


def test_expired_forged_and_replaced_tokens_are_refused(
    app: Flask, user: User, db_session: Session
) -> None:
    secret = app.config["SECRET_KEY"]
    user.pending_email, user.pending_email_nonce = "new@example.com", "nonce-one"
    user.pending_email_since = utc_now()
    db_session.commit()
    token = make_email_change_token(user, secret)
    assert user_for_email_change_token(db_session, token, secret) is not None
    assert user_for_email_change_token(db_session, token, secret, max_age_s=-1) is None
    assert user_for_email_change_token(db_session, token, "another-secret") is None
    user.pending_email_nonce = "nonce-two"  # the same address asked again: a new link
    db_session.commit()
    assert user_for_email_change_token(db_session, token, secret) is None
    assert app.test_client().get("/profile/email/confirm/not-a-token").status_code == 404


def test_an_address_taken_while_the_link_waited_is_not_applied(
    app: Flask,
    signed_in: FlaskClient,
    user: User,
    make_user: Callable[..., User],
    db_session: Session,
    mailbox: tuple[int, list[Any]],
) -> None:
    _change_to(signed_in, "wanted@example.com")
    path = _confirm_path(wait_for_mail(mailbox[1], 2), "wanted@example.com")
    make_user(username="quicker", email="wanted@example.com")
    answer = app.test_client().post(path)
    assert answer.status_code == 302
    stored = _stored(db_session, user)
    assert (stored.email, stored.pending_email) == ("ama@example.com", None)


def test_a_new_password_drops_a_waiting_change(
    app: Flask,
    signed_in: FlaskClient,
    user: User,
    db_session: Session,
    mailbox: tuple[int, list[Any]],
) -> None:
    _change_to(signed_in, "thief@example.com")
    path = _confirm_path(wait_for_mail(mailbox[1], 2), "thief@example.com")
    new_password = "Another-strong-9-pass"
    changed = signed_in.post(
        "/profile/password",
        data={
            "current_password": DEFAULT_PASSWORD,
            "new_password": new_password,
            "confirm_new_password": new_password,
        },
    )
    assert changed.status_code == 302
    assert app.test_client().post(path).status_code == 404
    stored = _stored(db_session, user)
    assert (stored.email, stored.pending_email) == ("ama@example.com", None)


def test_an_expired_change_no_longer_shows_as_waiting(
    app: Flask,
    signed_in: FlaskClient,
    user: User,
    db_session: Session,
    mailbox: tuple[int, list[Any]],
) -> None:
    """Security review, fifth pass: the profile said "Waiting for confirmation" for an address
    whose link had expired a day before, though nothing could apply it any more."""
    _change_to(signed_in, "late@example.com")
    path = _confirm_path(wait_for_mail(mailbox[1], 2), "late@example.com")
    page = signed_in.get("/profile").get_data(as_text=True)
    assert 'data-testid="pending-email"' in page

    stored = _stored(db_session, user)
    assert stored.pending_email_since is not None
    stored.pending_email_since -= timedelta(seconds=EMAIL_CHANGE_MAX_AGE_S + 60)
    db_session.commit()

    page = signed_in.get("/profile").get_data(as_text=True)
    assert 'data-testid="pending-email"' not in page
    assert "late@example.com" not in page
    # The link is refused with the page (whatever the token's own clock says).
    assert app.test_client().post(path).status_code == 404
    assert _stored(db_session, user).email == "ama@example.com"

    # Asked again: a fresh change that shows and works.
    _change_to(signed_in, "late@example.com")
    again = _confirm_path(wait_for_mail(mailbox[1], 4), "late@example.com")
    assert 'data-testid="pending-email"' in signed_in.get("/profile").get_data(as_text=True)
    assert app.test_client().post(again).status_code == 302
    assert _stored(db_session, user).email == "late@example.com"


def test_change_mails_to_one_address_are_capped_across_accounts(
    app: Flask,
    make_user: Callable[..., User],
    login: Callable[..., Any],
    mailbox: tuple[int, list[Any]],
    db_session: Session,
) -> None:
    """Security review, sixth pass (its sign-up fix, for e-mail changes): each change mails the
    new address a link, limited per account only, so a few accounts could flood a stranger's
    inbox. Changes and sign-ups share the per-address cap (SIGNUP_ADDRESS_LIMIT, 2 here); the
    refused change keeps the account as it was."""
    app.config["SIGNUP_ADDRESS_LIMIT"] = "2/3600"
    victim = "not.mine@example.com"
    answers = []
    changers = [
        make_user(username=f"changer{n}", email=f"changer{n}@example.com") for n in range(3)
    ]
    for n, changer in enumerate(changers):
        browser = app.test_client()
        login(browser, changer)
        answers.append(_change_to(browser, victim.upper() if n % 2 else victim).status_code)
    assert answers == [302, 302, 429]
    assert _stored(db_session, changers[2]).pending_email is None
    wait_for_mail(mailbox[1], 4)  # two links, two notices to the old addresses
    time.sleep(0.5)
    assert len(_mail_to(mailbox[1], victim)) == 2


def test_the_mail_to_a_new_address_carries_no_text_the_account_chose(
    signed_in: FlaskClient, mailbox: tuple[int, list[Any]]
) -> None:
    """The new address is anyone's the account types in, so its mail is a stranger's way to
    have OneCart, from its own address, greet a victim with the stranger's words: the first name
    ("Hello Your order is held: pay at https://…") and the username. It names neither."""
    bait = "Your parcel is held, pay the fee at https://evil.example/pay"
    answer = signed_in.post(
        "/profile", data={**DETAILS, "first_name": bait, "email": "victim@example.org"}
    )
    assert answer.status_code == 302

    received = wait_for_mail(mailbox[1], 2)
    body = _body(_mail_to(received, "victim@example.org")[0])
    assert _CONFIRM_LINK.search(body)
    words = _CONFIRM_LINK.sub("<link>", body)
    assert "evil.example" not in words and "parcel" not in words
    assert "ama" not in words.lower()  # the username


@pytest.mark.parametrize(
    "field, value",
    [
        ("first_name", "Ama\n\nYour account is locked: https://evil.example"),
        ("last_name", "Mensah\r\nBcc: someone@example.org"),
        ("first_name", "Ama\tMensah"),
        ("last_name", "Men\x1bsah"),
    ],
)
def test_a_name_with_a_line_break_or_control_character_is_refused(
    signed_in: FlaskClient,
    user: User,
    db_session: Session,
    mailbox: tuple[int, list[Any]],
    field: str,
    value: str,
) -> None:
    """Names go into every e-mail's greeting ("Hello Ama,") and into the pages: a line break
    in one starts a paragraph of the typer's own in OneCart's mail. Refused with the field's
    message; nothing is changed or sent."""
    answer = signed_in.post(
        "/profile", data={**DETAILS, field: value, "email": "ama.new@example.com"}
    )

    assert answer.status_code == 422
    assert "line breaks" in answer.get_data(as_text=True)
    stored = _stored(db_session, user)
    assert getattr(stored, field) != value and stored.pending_email is None
    assert mailbox[1] == []  # a refused form queues no mail

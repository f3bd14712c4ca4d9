"""Names stored before they were checked reach OneCart's e-mail headers and greetings safely.

Security review, eighth pass: sec9 refused line breaks and control characters in first and last
names from then on, but names saved before (and the names a marketplace or an admin gives a
store or a product, which reach a notification's subject) may still hold them. A subject's line
breaks were folded already; a NUL, an escape or DEL went into the Subject header raw, and a bidi
override reversed what a mail client shows after it. A greeting's line break opened a
paragraph of the typer's own words. Now each is made one plain line where it is used."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy.orm import Session

from commerce.db import get_session_factory
from commerce.email_change import old_address_notice
from commerce.mail import WIRE_POLICY
from commerce.models import Marketplace, User
from commerce.notification_models import Notification
from commerce.notifications import email_subject, send_notification_emails
from commerce.order_models import OrderStatus, PaymentMethod
from commerce.password_reset import MailSettings, reset_email
from commerce.signup_confirmation import existing_account_email
from onecart.settings import Settings
from tests.storefront.order_factories import add_order, add_sub_order

BAD_NAMES = [
    "Shop\r\nBcc: victim@example.com",
    "Shop\x00Mart",
    "Shop\x1b[2J\x1b[31mMart",
    "Shop\x7fMart\x9b",
    "Shop\u202eMart\u2066",
    "Shop\u2028Mart\x0b\x0c\x1c",
]
# What both databases can store (PostgreSQL refuses a NUL in text: SQLite keeps it).
STORABLE_BAD_NAMES = [name.replace("\x00", "\x01") for name in BAD_NAMES]
MAIL = MailSettings(host=None, port=25, sender="OneCart <orders@shop.example.com>")


def _unsafe(text: str) -> list[str]:
    """The control, line-separating and bidi formatting characters in `text`."""
    return [
        ch
        for ch in text
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp")
        or unicodedata.bidirectional(ch)
        in ("LRE", "RLE", "PDF", "LRO", "RLO", "LRI", "RLI", "FSI", "PDI")
        or ch in "\u061c\u200e\u200f"
    ]


def _subject_line(message: EmailMessage) -> bytes:
    [line] = [
        line
        for line in message.as_bytes(policy=WIRE_POLICY).split(b"\r\n")
        if line.startswith(b"Subject:")
    ]
    return line


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_subject_naming_a_stored_name_is_one_plain_line(name: str) -> None:
    subject = email_subject(f"{name} placed your part. More news follows.", "OC-7K3M-9Q2P", [name])
    assert _unsafe(subject) == [], repr(subject)
    assert subject.startswith("OneCart order OC-7K3M-9Q2P: Shop") and "placed your part." in subject
    message = EmailMessage()
    message["Subject"] = subject
    line = _subject_line(message)
    assert not any(byte < 0x20 or byte == 0x7F for byte in line), line
    # A long headline still cuts the (cleaned) name first, keeping the amount whole.
    long_name = name + " Superstore of Everything Under the Sun" * 3
    long = email_subject(f"{long_name} refunded NGN1,371,742.00 to your wallet.", None, [long_name])
    assert _unsafe(long) == [] and long.endswith("refunded NGN1,371,742.00 to your wallet.")


@pytest.mark.parametrize("name", STORABLE_BAD_NAMES)
def test_a_notification_mail_about_a_store_with_a_stored_bad_name_has_a_clean_subject(
    db_session: Session,
    storefront_db_url: str,
    settings: Settings,
    mailbox: tuple[int, list[Any]],
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
    name: str,
) -> None:
    user = make_user()
    market = make_marketplace(name=name)
    order = add_order(
        db_session,
        user,
        status=OrderStatus.SHIPPED,
        total_minor=1000,
        payment_method=PaymentMethod.WALLET,
    )
    add_sub_order(db_session, order, market, amount_minor=1000)
    notification = Notification(
        user_id=user.id,
        order_id=order.id,
        kind="order_shipped",
        message=f"{name} shipped your part.",
    )
    db_session.add(notification)
    db_session.commit()
    port, received = mailbox
    mail_settings = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
    sent = send_notification_emails(
        get_session_factory(storefront_db_url), mail_settings, [notification.id]
    )
    assert sent == 1
    [message] = received
    subject = str(make_header(decode_header(message["Subject"])))
    assert _unsafe(subject) == [] and "shipped your part." in subject
    assert message["Bcc"] is None


@pytest.mark.parametrize(
    "first_name",
    ["Ama\r\nYour parcel is held: pay at https://evil.example", "Ama\x1b[8m\u2029Kofi"],
)
def test_a_greeting_with_a_stored_line_break_stays_one_line(first_name: str) -> None:
    user = User(
        username="ama",
        email="ama@example.com",
        first_name=first_name,
        last_name="",
        pending_email="new@example.com",
    )
    for message in (
        reset_email(user, "https://shop.example.com/password/reset/t", MAIL),
        existing_account_email(
            user, "https://shop.example.com/login", "https://shop.example.com/reset", MAIL
        ),
        old_address_notice(user, "https://shop.example.com/reset", MAIL),
    ):
        body = message.get_content()
        first_line = body.split("\n", 1)[0]
        assert first_line.startswith("Hello Ama") and first_line.endswith(","), body
        assert body.split("\n")[1] == ""  # the greeting's paragraph is that one line
        assert _unsafe(first_line) == [], repr(first_line)

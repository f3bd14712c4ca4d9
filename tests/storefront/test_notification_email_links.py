"""The links in notification e-mails (an order's status link, a price alert's product page) point
at the shop's public address, ONECART_PUBLIC_URL, like every other link that leaves the site.

Security review, fourth pass: they were built on the address the site binds to
(`http://ONECART_SITE_HOST:ONECART_SITE_PORT`), so in production a shopper got
`http://0.0.0.0:5000/order-status/<token>` — a dead link, and one that would send the order's
token in clear text over plain http wherever it did lead.
"""

from __future__ import annotations

from collections.abc import Callable
from email.header import decode_header, make_header
from typing import Any

import pytest
from sqlalchemy.orm import Session

from commerce.db import get_session_factory
from commerce.models import Marketplace, User
from commerce.notification_models import Notification
from commerce.notifications import email_subject, send_notification_emails
from commerce.order_models import Order, OrderStatus, PaymentMethod, SubOrderStatus
from onecart.settings import Settings
from tests.storefront.order_factories import add_order, add_sub_order

PUBLIC_URL = "https://shop.example.com"


def _mail_settings(settings: Settings, port: int, **changes: Any) -> Settings:
    """The test run's settings with the local mailbox and a web host's bind address."""
    update = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "site_host": "0.0.0.0",
        "site_port": 5000,
        **changes,
    }
    return settings.model_copy(update=update)


def _order(session: Session, user: User) -> Order:
    return add_order(
        session,
        user,
        status=OrderStatus.SHIPPED,
        total_minor=10000,
        payment_method=PaymentMethod.WALLET,
    )


@pytest.fixture
def sent_body(
    db_session: Session,
    storefront_db_url: str,
    settings: Settings,
    mailbox: tuple[int, list[Any]],
) -> Callable[..., str]:
    """Sends one notification by e-mail, with the run's settings changed as the keywords say
    (_mail_settings), and returns the body the mailbox received."""
    port, received = mailbox

    def send(notification: Notification, **changes: Any) -> str:
        db_session.add(notification)
        db_session.commit()
        factory = get_session_factory(storefront_db_url)
        mail_settings = _mail_settings(settings, port, **changes)
        assert send_notification_emails(factory, mail_settings, [notification.id]) == 1
        return str(received[-1].get_payload(decode=True).decode())

    return send


def test_an_order_notification_links_to_the_public_status_page(
    db_session: Session, make_user: Callable[..., User], sent_body: Callable[..., str]
) -> None:
    user = make_user()
    order = _order(db_session, user)
    body = sent_body(
        Notification(
            user_id=user.id, order_id=order.id, kind="order_shipped", message="It shipped."
        ),
        public_url=PUBLIC_URL + "/",
    )
    assert f"{PUBLIC_URL}/order-status/{order.status_token}" in body
    assert "0.0.0.0" not in body and "http://" not in body


def test_a_price_alert_links_to_the_public_product_page(
    make_user: Callable[..., User], sent_body: Callable[..., str]
) -> None:
    user = make_user()
    body = sent_body(
        Notification(
            user_id=user.id, kind="price_alert", message="Cheaper now.", link_path="/product/g-1"
        ),
        public_url=PUBLIC_URL,
    )
    assert f"{PUBLIC_URL}/product/g-1" in body
    assert "0.0.0.0" not in body


def test_without_a_public_url_a_laptop_gets_the_site_address(
    make_user: Callable[..., User], sent_body: Callable[..., str]
) -> None:
    """Development: no ONECART_PUBLIC_URL, so the link is the address `onecart up` serves on."""
    user = make_user()
    body = sent_body(
        Notification(
            user_id=user.id, kind="price_alert", message="Cheaper now.", link_path="/product/g-2"
        ),
        public_url=None,
        site_host="127.0.0.1",
    )
    assert "http://127.0.0.1:5000/product/g-2" in body


def _subject_as_read(raw: str) -> str:
    """The subject as a strict reader gets it: the line breaks of a fold removed (RFC 5322
    2.2.3, nothing else), then its encoded words decoded (RFC 2047)."""
    unfolded = raw.replace("\r\n", "").replace("\n", "")
    return str(make_header(decode_header(unfolded)))


@pytest.mark.parametrize(
    "message",
    [
        "ShopWave placed your items (2 of them); DummyMart, Fake Store Berlin and Amazon are next.",
        "Your refund is on its way: Fake Store Berlin is next, €12.50.",
        "Your refund of €3.00 is on its way; DummyMart shipped with DHL, Fake Store Berlin is "
        "next, €12.50 held for them.",
        "Held for them (tracking 389): Kiondo’s part — and your refund of €3.00 €12.50, your "
        "refund of €3.00; Fake Store Berlin is next, ShopWave placed your items ….",
        "Kiondo’s part — ShopWave placed your items; DummyMart is on its way, held for them: "
        "“Thermos” €12.50 €12.50 (tracking 389).",
    ],
)
def test_a_long_subject_reads_back_exactly(
    db_session: Session,
    make_user: Callable[..., User],
    sent_body: Callable[..., str],
    mailbox: tuple[int, list[Any]],
    message: str,
) -> None:
    """Shopper QA, fifth pass: a long subject was folded by Python's `email` package, and
    Python 3.11's folder drops the space between two encoded words it folds apart ("your
    items— Fake"), so the subject read back was not the one written."""
    _, received = mailbox
    user = make_user()
    order = _order(db_session, user)
    sent_body(
        Notification(user_id=user.id, order_id=order.id, kind="order_shipped", message=message)
    )
    assert _subject_as_read(received[-1]["Subject"]) == email_subject(message, order.number)


def test_a_line_break_from_a_marketplace_neither_stops_nor_splits_the_mail(
    db_session: Session,
    make_user: Callable[..., User],
    storefront_db_url: str,
    settings: Settings,
    mailbox: tuple[int, list[Any]],
) -> None:
    """Security review, sixth pass: a marketplace's tracking number, carrier or order number
    keeps its line breaks (adapters' clean_text) and goes into the notification's first
    sentence, the e-mail's Subject. Python's `email` refuses a header with a line break
    (ValueError), which aborted the whole batch, rolled the attempt back and so came first
    again in every later batch: one marketplace reply stopped every shopper's e-mails. The
    subject is one line now; the body keeps the text as it is."""
    port, received = mailbox
    user = make_user()
    order = _order(db_session, user)
    poisoned = Notification(
        user_id=user.id,
        order_id=order.id,
        kind="sub_order_shipped",
        message="Your ShopWave items have shipped with UPS\nBcc: someone@example.net, "
        "tracking number 1Z\r\n999.",
    )
    after = Notification(
        user_id=user.id, order_id=order.id, kind="order_shipped", message="It shipped."
    )
    db_session.add_all([poisoned, after])
    db_session.commit()
    factory = get_session_factory(storefront_db_url)
    sent = send_notification_emails(
        factory, _mail_settings(settings, port), [poisoned.id, after.id]
    )
    assert sent == 2
    subjects = [_subject_as_read(message["Subject"]) for message in received[-2:]]
    assert subjects[0] == (
        f"OneCart order {order.number}: Your ShopWave items have shipped with UPS Bcc: "
        "someone@example.net, tracking number 1Z 999."
    )
    assert all(message["Bcc"] is None for message in received[-2:])
    assert [message["To"] for message in received[-2:]] == [user.email, user.email]


def test_a_shipped_part_s_tracking_number_reaches_the_body_whole_even_when_the_note_is_clipped(
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
    sent_body: Callable[..., str],
) -> None:
    """Shopper QA (shop15): a notification's message is clipped at MESSAGE_LIMIT, and several
    sentences merged into one (a cancellation, an adjustment, the shipment) can push the part's
    tracking number past it. The e-mail's body then names the part's carrier and tracking number
    itself, whole; a subject never carries it."""
    user = make_user()
    order = _order(db_session, user)
    shopwave = make_marketplace(name="ShopWave", capabilities=["catalog", "order", "track"])
    sub = add_sub_order(
        db_session,
        order,
        shopwave,
        amount_minor=5000,
        status=SubOrderStatus.SHIPPED,
        carrier="UPS",
        tracking_number="1Z 999 AA1 01 2345 6784",
    )
    clipped = ("Your Kiondo Market items were cancelled; we refunded them. " * 9)[:499] + "…"
    body = sent_body(
        Notification(
            user_id=user.id,
            order_id=order.id,
            sub_order_id=sub.id,
            kind="sub_order_shipped",
            message=clipped,
        )
    )
    assert "ShopWave: UPS, tracking number 1Z 999 AA1 01 2345 6784" in body


def test_a_tracking_number_the_message_already_gives_is_not_repeated(
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
    sent_body: Callable[..., str],
) -> None:
    user = make_user()
    order = _order(db_session, user)
    shopwave = make_marketplace(name="ShopWave", capabilities=["catalog", "order", "track"])
    sub = add_sub_order(
        db_session,
        order,
        shopwave,
        amount_minor=5000,
        status=SubOrderStatus.SHIPPED,
        carrier="UPS",
        tracking_number="1Z999",
    )
    message = "Your ShopWave items have shipped. They are with UPS, tracking number 1Z999."
    body = sent_body(
        Notification(
            user_id=user.id,
            order_id=order.id,
            sub_order_id=sub.id,
            kind="sub_order_shipped",
            message=message,
        )
    )
    assert body.count("1Z999") == 1

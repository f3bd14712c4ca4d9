"""One shipping event is one message: when the last part of an order ships, the shopper is told
that the order has shipped, with that part's carrier and tracking number, and not also that the
part has shipped.

Shopper QA (shop12, shop13) left this open: the notification said "Your Kiondo Market items
(order #7) have shipped with DHL, tracking number JD01. Your order … has shipped.", the same
news twice, and its e-mail was titled with the part's sentence, not the order's. Real database,
the checkout shop; the marketplace's answer is the state its adapter reads."""

from __future__ import annotations

from decimal import Decimal
from email.header import decode_header, make_header
from email.message import EmailMessage
from typing import Any

import sqlalchemy as sa

from adapters.base import OrderState, OrderStatus
from commerce.notification_models import Notification
from commerce.notifications import email_subject, send_notification_emails
from commerce.order_models import MarketplaceOrder, Order, SubOrderStatus
from commerce.order_models import OrderStatus as ShopperOrderStatus
from commerce.tracking import apply_marketplace_state
from onecart.settings import Settings
from tests.checkout.shop import Shop


def _placed(shop: Shop, order: Order, slug: str, number: str) -> MarketplaceOrder:
    """The order's part at `slug`, placed there as order `number` (no workers: set directly)."""
    sub = shop.sub_order(order, slug)
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == sub.id)
            .values(
                status=SubOrderStatus.PLACED,
                marketplace_order_id=f"{slug}-{number}",
                marketplace_order_number=f"#{number}",
            )
        )
        session.execute(
            sa.update(Order)
            .where(Order.id == order.id)
            .values(status=ShopperOrderStatus.PROCESSING)
        )
    return sub


def _shipped(sub: MarketplaceOrder, carrier: str | None, tracking: str | None) -> OrderState:
    return OrderState(
        marketplace_order_id=sub.marketplace_order_id or "",
        status=OrderStatus.SHIPPED,
        raw_status="shipped",
        carrier=carrier,
        tracking_number=tracking,
    )


def _notes_after(shop: Shop, user_id: int, last_id: int) -> list[tuple[str, str]]:
    with shop.session() as session:
        return [
            (note.kind, note.message)
            for note in session.scalars(
                sa.select(Notification)
                .where(Notification.user_id == user_id, Notification.id > last_id)
                .order_by(Notification.id)
            )
        ]


def _last_note_id(shop: Shop) -> int:
    with shop.session() as session:
        return int(session.scalar(sa.select(sa.func.max(Notification.id))) or 0)


def test_the_last_part_shipping_is_told_once_as_the_order_shipped(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 1), ("kiondo", 0, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    shopwave = _placed(shop, order, "shopwave", "1001")
    kiondo = _placed(shop, order, "kiondo", "7")

    before = _last_note_id(shop)
    assert apply_marketplace_state(
        shop.session_factory, shopwave.id, _shipped(shopwave, "UPS", "1Z999")
    )
    # The first part: its own news (the order is only partly shipped).
    assert _notes_after(shop, user.id, before) == [
        (
            "sub_order_shipped",
            "Your ShopWave items (order #1001) have shipped. "
            "They are with UPS, tracking number 1Z999.",
        )
    ]

    before = _last_note_id(shop)
    assert apply_marketplace_state(shop.session_factory, kiondo.id, _shipped(kiondo, "DHL", "JD01"))

    assert shop.order(order.number).status == ShopperOrderStatus.SHIPPED
    # The last part completes the order: one message, the order's, with the part's tracking.
    [(kind, message)] = _notes_after(shop, user.id, before)
    assert kind == "order_shipped"
    assert message == (
        f"Your order {order.number} has shipped. Your Kiondo Market items (order #7) "
        "are with DHL, tracking number JD01."
    )
    # The subject is the order's news; the tracking number is the body's (shop15).
    assert (
        email_subject(message, order.number) == f"OneCart: Your order {order.number} has shipped."
    )


def test_a_one_part_order_shipping_without_a_tracking_number_is_told_once(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    shopwave = _placed(shop, order, "shopwave", "1002")

    before = _last_note_id(shop)
    assert apply_marketplace_state(
        shop.session_factory, shopwave.id, _shipped(shopwave, None, None)
    )

    assert _notes_after(shop, user.id, before) == [
        ("order_shipped", f"Your order {order.number} has shipped.")
    ]


# A real carrier's reference with its spaces (DHL's and Royal Mail's print in groups) and
# a long carrier name: the subject used to be clipped at SUBJECT_HEADLINE_LIMIT in the middle.
LONG_TRACKING = "JD01 4600 0034 5678 9012 3456 7890 1234 5678 9012 3456"
LONG_CARRIER = "DHL Parcel International Express Worldwide"


def _emailed(
    shop: Shop, settings: Settings, mailbox: tuple[int, list[Any]], user_id: int, after: int
) -> list[EmailMessage]:
    """The e-mails of `user_id`'s notifications written since `after`, sent to `mailbox`."""
    port, received = mailbox
    with shop.session() as session:
        ids = list(
            session.scalars(
                sa.select(Notification.id).where(
                    Notification.user_id == user_id, Notification.id > after
                )
            )
        )
    mail = settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
    before = len(received)
    assert send_notification_emails(shop.session_factory, mail, ids) == len(ids)
    return list(received[before:])


def _subject(message: EmailMessage) -> str:
    unfolded = str(message["Subject"]).replace("\r\n", "").replace("\n", "")
    return str(make_header(decode_header(unfolded)))


def test_a_shipped_e_mail_keeps_the_tracking_number_whole_in_its_body_and_out_of_its_subject(
    shop: Shop, settings: Settings, mailbox: tuple[int, list[Any]]
) -> None:
    """Shopper QA (shop15): the subject was the message's first sentence cut at 120 characters,
    so "…with DHL Parcel International Express Worldwide, tracking number JD01 4600 0034…" ended
    in the middle of the number. The subject says whose items shipped in which order; the body
    carries the carrier and the whole tracking number."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 1), ("kiondo", 0, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    shopwave = _placed(shop, order, "shopwave", "1003")
    kiondo = _placed(shop, order, "kiondo", "8")

    subjects = {}
    for sub, kind in ((shopwave, "sub_order_shipped"), (kiondo, "order_shipped")):
        before = _last_note_id(shop)
        assert apply_marketplace_state(
            shop.session_factory, sub.id, _shipped(sub, LONG_CARRIER, LONG_TRACKING)
        )
        [(said_kind, _)] = _notes_after(shop, user.id, before)
        assert said_kind == kind  # the last part to ship: the order has shipped
        [email] = _emailed(shop, settings, mailbox, user.id, before)

        subject = subjects[kind] = _subject(email)
        assert order.number in subject and "shipped" in subject
        assert "JD01" not in subject and "tracking" not in subject and "…" not in subject
        body = email.get_payload(decode=True).decode()
        assert f"{LONG_CARRIER}, tracking number {LONG_TRACKING}" in body
    # Short and meaningful: the order, whose items, shipped.
    assert subjects == {
        "sub_order_shipped": f"OneCart order {order.number}: Your ShopWave items (order #1003) "
        "have shipped.",
        "order_shipped": f"OneCart: Your order {order.number} has shipped.",
    }

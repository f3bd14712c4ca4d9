"""Tracking placed sub-orders to delivery (notifications and e-mail on every change), marketplace
cancellations, and shopper cancellations — with real workers and the sandbox's order clock."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from commerce.notification_models import Notification
from commerce.order_models import (
    OrderStatus,
    PaymentStatus,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from tests.checkout.shop import Shop, wait_for

pytestmark = pytest.mark.slow


def _kinds(shop: Shop, user_id: int) -> list[str]:
    with shop.session() as session:
        return list(
            session.scalars(
                sa.select(Notification.kind)
                .where(Notification.user_id == user_id)
                .order_by(Notification.id)
            )
        )


def test_statuses_advance_to_delivered_with_notifications_and_emails(
    shop: Shop, smtp_server: tuple[str, int, list[Any]]
) -> None:
    host, port, received = smtp_server
    shop.worker_env.update(SMTP_HOST=host, SMTP_PORT=str(port))
    for slug in ("shopwave", "kiondo"):
        shop.knobs(slug, order_step_seconds=3, cancel_rate=0, delay_rate=0)
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 6, 1), ("kiondo", 5, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    shop.start_workers(2)

    wait_for(
        lambda: shop.order(order.number).status == OrderStatus.DELIVERED,
        what="the order to be delivered",
    )

    order = shop.order(order.number)
    for sub in order.charged_sub_orders:
        assert sub.status == SubOrderStatus.DELIVERED
        assert sub.tracking_number and sub.carrier
    kinds = _kinds(shop, user.id)
    # One notification per change: the second part to ship (and to arrive) says it for the
    # whole order; nothing is said for "processing".
    assert kinds.count("sub_order_shipped") == 1 and kinds.count("order_shipped") == 1
    assert kinds.count("sub_order_delivered") == 1 and kinds.count("order_delivered") == 1
    assert "sub_order_processing" not in kinds
    assert kinds.index("order_shipped") < kinds.index("order_delivered")

    # E-mails leave through the outbox after their notifications are written, and other mail
    # (the order's receipt) may arrive in between: wait for the delivery e-mail itself, not
    # for a count.
    def delivery_emailed() -> bool:
        subjects = [str(message["Subject"]) for message in list(received)]
        return any(order.number in subject and "delivered" in subject for subject in subjects)

    wait_for(delivery_emailed, what="the delivery to be e-mailed")
    wait_for(lambda: len(received) >= len(kinds), what="every notification to be e-mailed")
    assert all(message["To"] == user.email for message in received)
    body = received[-1].get_payload(decode=True).decode()
    assert f"/order-status/{order.status_token}" in body


def test_marketplace_cancellation_after_placement_refunds_that_share(shop: Shop) -> None:
    shop.knobs("kiondo", order_step_seconds=1, cancel_rate=1.0)
    shop.knobs("shopwave", order_step_seconds=1, cancel_rate=0, delay_rate=0)
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 7, 1), ("kiondo", 6, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    shop.start_workers(2)

    wait_for(
        lambda: shop.order(order.number).status == OrderStatus.DELIVERED,
        what="the shopwave part to be delivered",
    )
    shop.wait_until_settled()

    kiondo = shop.sub_order(order, "kiondo")
    assert kiondo.status == SubOrderStatus.CANCELLED
    payment = shop.order(order.number).payment
    assert payment is not None
    [refund] = payment.refunds
    assert refund.sub_order_id == kiondo.id and refund.amount_minor == kiondo.charge_minor
    assert refund.status == RefundStatus.SUCCEEDED
    assert "sub_order_cancelled" in _kinds(shop, user.id)


def test_shopper_cancels_before_placement_and_nothing_is_charged(shop: Shop) -> None:
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 0, 1), ("dummymart", 5, 1)])
    client = shop.client_for(user)
    order = shop.checkout(client, payment_method="stripe", test_card="pm_card_visa")

    response = client.post(f"/orders/{order.number}/cancel", data={"confirm": "yes"})
    assert response.status_code == 303
    shop.start_workers(1)
    shop.wait_until_settled()

    order = shop.order(order.number)
    assert order.status == OrderStatus.CANCELLED
    assert all(sub.status == SubOrderStatus.CANCELLED for sub in order.charged_sub_orders)
    assert all(sub.marketplace_order_id is None for sub in order.charged_sub_orders)
    assert order.payment is not None and order.payment.status == PaymentStatus.VOIDED
    assert shop.sandbox_orders_with_reference("shopwave", order.relation_token) == []


def test_shopper_cancels_after_placement_where_the_marketplace_allows_it(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 1, 1), ("dummymart", 6, 1)])
    client = shop.client_for(user)
    order = shop.checkout(client, payment_method="stripe", test_card="pm_card_visa")
    shop.start_workers(1)
    shop.wait_until_settled()
    assert shop.order(order.number).payment.status == PaymentStatus.CAPTURED

    assert client.post(f"/orders/{order.number}/cancel", data={"confirm": "yes"}).status_code == 303
    wait_for(
        lambda: "cancellation_refused" in _kinds(shop, user.id),
        what="the cancellation job to finish",
    )
    shop.wait_until_settled()

    order = shop.order(order.number)
    shopwave = shop.sub_order(order, "shopwave")
    dummymart = shop.sub_order(order, "dummymart")
    # Shopify cancels; DummyJSON carts cannot be cancelled, so that part goes ahead.
    assert shopwave.status == SubOrderStatus.CANCELLED
    assert dummymart.status == SubOrderStatus.PLACED
    payment = order.payment
    assert payment is not None and payment.status == PaymentStatus.PARTIALLY_REFUNDED
    [refund] = payment.refunds
    assert (refund.kind, refund.amount_minor) == (RefundKind.CARD_REFUND, shopwave.charge_minor)
    assert order.status == OrderStatus.PROCESSING
    # One message for what the cancellation came to (shopper QA: one per part before).
    with shop.session() as session:
        [told] = session.scalars(
            sa.select(Notification.message).where(
                Notification.order_id == order.id, Notification.kind == "cancellation_refused"
            )
        )
    assert told.startswith("Your ShopWave items were cancelled; we are refunding their ")
    # One marketplace named as one (shop20: "These marketplaces could not cancel their part of
    # your order, so it goes ahead: DummyMart.").
    assert told.endswith(" DummyMart could not cancel its part of your order, so it goes ahead.")
    assert "sub_order_cancelled" not in _kinds(shop, user.id)
    # A second cancellation is refused: the order was already cancelled as far as it could be.
    again = client.post(
        f"/orders/{order.number}/cancel", data={"confirm": "yes"}, follow_redirects=True
    )
    assert "can no longer be cancelled" in again.get_data(as_text=True)

"""A carrier that could not deliver a placed sub-order (Shopify's FAILURE / NOT_DELIVERED
shipments) is a shipment's step, not a cancellation: nothing is refunded while the marketplace
may ship again, and the order goes to an operator to ask it (real database, the checkout shop;
the marketplace's answer is the state its adapter reads)."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from adapters.base import OrderState, OrderStatus, ShipmentStatus
from commerce.notification_models import Notification
from commerce.order_models import MarketplaceOrder, Refund, SubOrderStatus
from commerce.tracking import apply_marketplace_state
from tests.checkout.shop import Shop


def test_a_failed_delivery_flags_the_order_and_refunds_nothing(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 1), ("kiondo", 0, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    shopwave = shop.sub_order(order, "shopwave")
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == shopwave.id)
            .values(
                status=SubOrderStatus.SHIPPED,
                marketplace_order_id="gid://shopify/Order/1001",
                shipment_status=ShipmentStatus.IN_TRANSIT.value,
            )
        )
    state = OrderState(
        marketplace_order_id="gid://shopify/Order/1001",
        status=OrderStatus.SHIPPED,
        raw_status="FULFILLED/FAILURE",
        shipment_status=ShipmentStatus.FAILURE,
    )

    assert apply_marketplace_state(shop.session_factory, shopwave.id, state)
    assert not apply_marketplace_state(shop.session_factory, shopwave.id, state)  # once

    assert shop.sub_order(order, "shopwave").status == SubOrderStatus.SHIPPED
    with shop.session() as session:
        assert session.scalars(sa.select(Refund)).all() == []
        told = session.scalars(
            sa.select(Notification.message).where(Notification.user_id == user.id)
        ).all()
    assert any("could not deliver" in message for message in told)
    reason = shop.order(order.number).attention_reason
    assert reason is not None and f"sub-order {shopwave.id}" in reason
    assert "could not deliver" in reason

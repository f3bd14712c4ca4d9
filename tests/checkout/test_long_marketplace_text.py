"""What a marketplace answers is stored whole on PostgreSQL as on SQLite.

SQLite stores any text in a VARCHAR(n) column; PostgreSQL refuses what is longer than n, and
the transaction with it. Two marketplace texts reached such columns unbounded: an order id
(`marketplace_order_id`, VARCHAR(120): any length a declarative API returns) and a tracking
link (`tracking_url`, VARCHAR(1000), which the adapters read up to 2,000 characters). On
PostgreSQL an order whose id did not fit was placed at the marketplace and never recorded (the
placement raised after the marketplace accepted, and every attempt after it that found the
order raised again), and a tracking answer with a long link rolled back, so the sub-order never
moved on and a later cancellation by the marketplace was never refunded. Real database, the
checkout shop and the sandbox over HTTP (the marketplace's answer as its adapter reads it)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from adapters.base import OrderRequest, OrderState, OrderStatus, PlacedOrder
from commerce.marketplace_access import adapter_for_marketplace
from commerce.order_models import (
    PLACED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Refund,
    RefundStatus,
    SubOrderStatus,
)
from commerce.placement import PlacementResult, place_sub_order
from commerce.tracking import apply_marketplace_state
from tests.checkout.shop import Shop

LONG_ID = "order-" + "7f3a" * 60  # 246 characters: an opaque id some order APIs return


class LongIds:
    """The marketplace's real adapter, whose API names its orders with long opaque ids."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        return replace(self.inner.place_order(request), marketplace_order_id=LONG_ID)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_order_id_longer_than_120_characters_is_recorded_and_the_card_captured(
    shop: Shop,
) -> None:
    user = shop.make_user()
    shop.fill_cart(user, [("kiondo", 1, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    [sub] = order.charged_sub_orders

    result = place_sub_order(
        shop.session_factory,
        sub.id,
        adapter_for=lambda marketplace: LongIds(adapter_for_marketplace(marketplace)),  # type: ignore[arg-type,return-value]
        final_attempt=True,
    )

    assert result == PlacementResult.PLACED
    placed = shop.sub_order(order, "kiondo")
    assert placed.status in PLACED_SUB_ORDER_STATUSES
    assert placed.marketplace_order_id == LONG_ID
    payment = shop.order(order.number).payment
    assert payment is not None and payment.captured_minor == placed.charge_minor


def test_a_long_tracking_link_does_not_stop_a_cancellation_being_refunded(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    shopwave = shop.sub_order(order, "shopwave")
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == shopwave.id)
            .values(status=SubOrderStatus.PLACED, marketplace_order_id="gid://shopify/Order/1001")
        )
    # A carrier link with its tracking token in the query string: 1,500 characters, within the
    # 2,000 the adapters read.
    link = "https://track.example-carrier.com/t?id=1Z999&token=" + "a" * 1449
    shipped = OrderState(
        marketplace_order_id="gid://shopify/Order/1001",
        status=OrderStatus.SHIPPED,
        raw_status="FULFILLED",
        tracking_number="1Z999",
        carrier="Example Carrier",
        tracking_url=link,
    )

    assert apply_marketplace_state(shop.session_factory, shopwave.id, shipped)
    tracked = shop.sub_order(order, "shopwave")
    assert tracked.status == SubOrderStatus.SHIPPED and tracked.tracking_url == link

    cancelled = replace(shipped, status=OrderStatus.CANCELLED, raw_status="cancelled")
    assert apply_marketplace_state(shop.session_factory, shopwave.id, cancelled)
    assert shop.sub_order(order, "shopwave").status == SubOrderStatus.CANCELLED
    with shop.session() as session:
        refunds = list(session.scalars(sa.select(Refund).where(Refund.sub_order_id == shopwave.id)))
    assert [(r.amount_minor, r.status) for r in refunds] == [
        (shopwave.charge_minor, RefundStatus.SUCCEEDED)
    ]

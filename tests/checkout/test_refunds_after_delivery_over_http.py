"""Stores refund delivered orders through the sandbox's control API (a return of one item, then
the rest; a whole order refunded), in their formats' own fields: Shopify `totalRefundedSet` and
displayFinancialStatus REFUNDED, WooCommerce `refunds` and the status `refunded`. Tracking reads
them over HTTP through the real adapters and the shopper's card is refunded through localstripe,
each refund once, the rest of a share once; the sub-orders stay delivered. Real workers place the
orders; the sandbox's step is an hour, so orders move only when advanced."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.base import OrderStatus as MarketplaceStatus
from commerce.marketplace_access import adapter_for_marketplace
from commerce.models import Marketplace
from commerce.order_models import (
    Order,
    OrderStatus,
    PaymentStatus,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.tracking import track_open_sub_orders
from commerce.tracking_schedule import TrackingPolicy
from tests.checkout.order_reading import control_store_order, refunds_of
from tests.checkout.shop import Shop

pytestmark = pytest.mark.slow

# Every delivered sub-order due at every pass, so a test need not wait a day between them.
EVERY_PASS = TrackingPolicy(delivered_poll_interval=timedelta(0))


def _track(shop: Shop, policy: TrackingPolicy | None = EVERY_PASS) -> None:
    track_open_sub_orders(shop.session_factory, adapter_for=adapter_for_marketplace, policy=policy)


def _delivered_order(shop: Shop) -> Order:
    """A card order at ShopWave and Kiondo, placed by the workers, delivered at both."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 5, 1), ("shopwave", 6, 1), ("kiondo", 5, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    shop.start_workers(1, cron=False)
    shop.wait_until_settled()
    order = shop.order(order.number)
    assert order.payment is not None and order.payment.status == PaymentStatus.CAPTURED
    for sub in order.charged_sub_orders:
        facts = control_store_order(
            shop, sub.marketplace.slug, sub.marketplace_order_id, "advance", steps=20
        )
        assert facts["status"] == "delivered"
    _track(shop, None)
    order = shop.order(order.number)
    assert order.status == OrderStatus.DELIVERED
    return order


def test_stores_refunding_delivered_orders_refund_the_card_once_and_the_rest_once(
    tracked_shop: Shop,
) -> None:
    shop = tracked_shop
    order = _delivered_order(shop)
    shopwave = shop.sub_order(order, "shopwave")
    kiondo = shop.sub_order(order, "kiondo")
    first = shopwave.items[0]

    # ShopWave takes the first item back and refunds it (PARTIALLY_REFUNDED).
    facts = control_store_order(
        shop,
        "shopwave",
        shopwave.marketplace_order_id,
        "refund",
        lines=[{"external_id": first.external_id, "quantity": 1}],
        reason="returned",
    )
    for _ in range(3):
        _track(shop)
    [refund] = refunds_of(shop, shopwave.id)
    assert (refund.kind, refund.status) == (RefundKind.CARD_REFUND, RefundStatus.SUCCEEDED)
    assert refund.amount_minor == first.charge_minor
    assert shop.sub_order(order, "shopwave").marketplace_refunded_minor == facts["refunded_minor"]

    # Then it refunds the rest of its order (REFUNDED), and Kiondo refunds its whole order
    # (WooCommerce marks it `refunded`): each share comes back in full, once.
    control_store_order(
        shop,
        "shopwave",
        shopwave.marketplace_order_id,
        "refund",
        amount_minor=facts["total_minor"] - facts["refunded_minor"],
    )
    kiondo_total = control_store_order(
        shop, "kiondo", kiondo.marketplace_order_id, "refund", amount_minor=1
    )
    control_store_order(
        shop,
        "kiondo",
        kiondo.marketplace_order_id,
        "refund",
        amount_minor=kiondo_total["total_minor"] - 1,
    )
    with shop.session() as session:
        market = session.get(Marketplace, kiondo.marketplace_id)
        assert market is not None
        said = adapter_for_marketplace(market).order_status(kiondo.marketplace_order_id)
    assert (
        said.status == MarketplaceStatus.REFUNDED
        and said.refunded_minor == (kiondo_total["total_minor"])
    )
    for _ in range(3):
        _track(shop)

    for sub in (shopwave, kiondo):
        refunds = refunds_of(shop, sub.id)
        assert sum(r.amount_minor for r in refunds) == sub.charge_minor
        assert all(r.status == RefundStatus.SUCCEEDED for r in refunds)
    assert len(refunds_of(shop, shopwave.id)) == 2
    fresh = shop.order(order.number)
    assert fresh.status == OrderStatus.DELIVERED
    assert all(sub.status == SubOrderStatus.DELIVERED for sub in fresh.charged_sub_orders)
    assert fresh.payment is not None and fresh.payment.status == PaymentStatus.REFUNDED
    assert fresh.attention_reason is None

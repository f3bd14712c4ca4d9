"""A store refunds part of a placed order (the sandbox's control API, in its format's own fields:
WooCommerce `refunds`, Shopify `totalRefundedSet`), tracking reads it over HTTP through the real
adapters, and the shopper gets that part back once — on a card through localstripe, or to the
wallet; a later cancellation returns only the rest. Real workers place the orders; the sandbox's
step is an hour, so the orders stay where they are."""

from __future__ import annotations

from decimal import Decimal

import pytest

from commerce.marketplace_access import adapter_for_marketplace
from commerce.order_models import (
    Order,
    PaymentStatus,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.tracking import track_open_sub_orders
from tests.checkout.order_reading import control_store_order, refunds_of
from tests.checkout.shop import Shop

pytestmark = pytest.mark.slow


def _placed(shop: Shop, payment_method: str) -> Order:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(
        user, [("shopwave", 3, 1), ("shopwave", 4, 1), ("kiondo", 3, 1), ("kiondo", 4, 2)]
    )
    extra = {"test_card": "pm_card_visa"} if payment_method == "stripe" else {}
    order = shop.checkout(shop.client_for(user), payment_method=payment_method, **extra)
    shop.start_workers(1, cron=False)
    shop.wait_until_settled()
    order = shop.order(order.number)
    live = (SubOrderStatus.PLACED, SubOrderStatus.PROCESSING)
    assert all(sub.status in live for sub in order.charged_sub_orders)
    return order


def _track(shop: Shop) -> None:
    track_open_sub_orders(shop.session_factory, adapter_for=adapter_for_marketplace)


def test_a_shopify_store_refunding_one_line_refunds_the_card_once(tracked_shop: Shop) -> None:
    shop = tracked_shop
    order = _placed(shop, "stripe")
    assert order.payment is not None and order.payment.status == PaymentStatus.CAPTURED
    shopwave = shop.sub_order(order, "shopwave")
    first = shopwave.items[0]

    facts = control_store_order(
        shop,
        "shopwave",
        shopwave.marketplace_order_id,
        "refund",
        lines=[{"external_id": first.external_id, "quantity": 1}],
    )
    assert facts["refunded_minor"] == first.line_total_minor  # the sandbox adds no tax here
    for _ in range(3):
        _track(shop)

    [refund] = refunds_of(shop, shopwave.id)
    assert (refund.kind, refund.status) == (RefundKind.CARD_REFUND, RefundStatus.SUCCEEDED)
    assert refund.amount_minor == first.charge_minor
    fresh = shop.sub_order(order, "shopwave")
    assert fresh.status == shopwave.status  # the rest still ships
    assert fresh.marketplace_refunded_minor == first.line_total_minor
    assert shop.order(order.number).payment.status == PaymentStatus.PARTIALLY_REFUNDED

    # The store then cancels the order (orderCancel refunds the rest): only the rest comes back.
    control_store_order(shop, "shopwave", shopwave.marketplace_order_id, "cancel")
    _track(shop)
    refunds = refunds_of(shop, shopwave.id)
    assert sum(r.amount_minor for r in refunds) == shopwave.charge_minor
    assert all(r.status == RefundStatus.SUCCEEDED for r in refunds)
    assert shop.sub_order(order, "shopwave").status == SubOrderStatus.CANCELLED


def test_a_woocommerce_store_refunding_one_item_credits_the_wallet_once(
    tracked_shop: Shop,
) -> None:
    shop = tracked_shop
    order = _placed(shop, "wallet")
    kiondo = shop.sub_order(order, "kiondo")
    assert (kiondo.currency, kiondo.charge_currency) == ("KES", "USD")
    two = kiondo.items[1]  # two of them; the store refunds one
    assert two.quantity == 2

    facts = control_store_order(
        shop,
        "kiondo",
        kiondo.marketplace_order_id,
        "refund",
        lines=[{"external_id": two.external_id, "quantity": 1}],
    )
    refunded = facts["refunded_minor"]
    assert refunded == two.unit_price_minor
    for _ in range(3):
        _track(shop)

    [refund] = refunds_of(shop, kiondo.id)
    assert (refund.kind, refund.status) == (RefundKind.WALLET_CREDIT, RefundStatus.SUCCEEDED)
    # KES refunded, USD given back at the share's own rate, rounded up.
    exact = Decimal(kiondo.charge_minor) * refunded / kiondo.amount_minor
    assert refund.currency == "USD" and exact <= refund.amount_minor < exact + 1
    assert shop.sub_order(order, "kiondo").marketplace_refunded_minor == refunded
    shopwave = shop.sub_order(order, "shopwave")
    assert refunds_of(shop, shopwave.id) == []

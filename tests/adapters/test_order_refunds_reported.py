"""What a marketplace has refunded on an order, as the adapters read it from the real formats:
WooCommerce REST v3's order `refunds` (each `total` a negative decimal string) and Shopify Admin
GraphQL's `totalRefundedSet`; cumulative, exact minor units, and "not reported" (None) when the
reply does not say, never zero as a fact."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from adapters.base import OrderStatus
from tests.adapters.test_shopify_orders import FakeShopifyAdmin, order_node, shop
from tests.adapters.test_woocommerce_orders import woo, woo_order


def _woo_state(order: dict[str, Any]) -> Any:
    adapter, _ = woo(lambda request: httpx.Response(200, json=order))
    return adapter.order_status("727")


def test_woocommerce_adds_up_the_orders_refunds_exactly() -> None:
    state = _woo_state(
        woo_order(
            refunds=[
                {"id": 731, "reason": "out of stock", "total": "-2499.50"},
                {"id": 729, "reason": "", "total": "-1000.00"},
            ]
        )
    )
    assert state.status is OrderStatus.PROCESSING
    assert (state.refunded_minor, state.refunded_currency) == (349950, "KES")


def test_woocommerce_with_an_empty_refunds_list_reports_nothing_refunded() -> None:
    state = _woo_state(woo_order(refunds=[]))
    assert (state.refunded_minor, state.refunded_currency) == (0, "KES")


@pytest.mark.parametrize(
    "refunds",
    [
        None,  # the reply has no `refunds` at all
        [{"id": 731, "reason": "", "total": "-10.005"}],  # not an exact amount of KES
        [{"id": 731, "reason": ""}],  # a refund without its total
        "refunds",
    ],
)
def test_woocommerce_refunds_it_cannot_read_are_not_reported(refunds: object) -> None:
    order = woo_order() if refunds is None else woo_order(refunds=refunds)
    state = _woo_state(order)
    assert (state.refunded_minor, state.refunded_currency) == (None, None)


def _shopify_state(**changes: Any) -> Any:
    node = order_node(**changes)
    return shop(FakeShopifyAdmin({"order": {"data": {"order": node}}})).order_status("1001")


def test_shopify_reads_total_refunded_set_of_a_partly_refunded_order() -> None:
    state = _shopify_state(
        displayFinancialStatus="PARTIALLY_REFUNDED",
        displayFulfillmentStatus="FULFILLED",
        totalRefundedSet={
            "shopMoney": {"amount": "349.99", "currencyCode": "USD"},
            "presentmentMoney": {"amount": "320.10", "currencyCode": "EUR"},
        },
    )
    # Partly refunded is not refunded: the order ships the rest.
    assert state.status is OrderStatus.SHIPPED
    assert (state.refunded_minor, state.refunded_currency) == (34999, "USD")


def test_shopify_without_total_refunded_set_reports_nothing() -> None:
    state = _shopify_state()
    assert (state.refunded_minor, state.refunded_currency) == (None, None)


def test_shopify_asks_for_the_total_refunded() -> None:
    fake = FakeShopifyAdmin({"order": {"data": {"order": order_node()}}})
    shop(fake).order_status("1001")
    assert (
        "totalRefundedSet { shopMoney { amount currencyCode } }"
        in (fake.graphql_bodies()[0]["query"])
    )

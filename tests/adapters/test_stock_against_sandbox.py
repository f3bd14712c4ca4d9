"""Orders beyond an offer's stock, through the real adapters against the sandbox over real HTTP:
ShopWave (Shopify `orderCreate` claiming inventory with DECREMENT_OBEYING_POLICY) answers
userErrors INVENTORY_CLAIM_FAILED, Kiondo (WooCommerce REST v3) answers 400
`woocommerce_rest_invalid_product_quantity`; both adapters report the refusal (Rejected), the
marketplace holds no order, and offers whose store does not track stock take any quantity."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from adapters.base import OrderRequest, Rejected
from sandbox.shopify_format import variant_id
from sandbox.world import ListedOffer
from tests.adapters.stock_orders import (
    STOCKED,
    adapter_for,
    configs,
    request_for,
    stocked_offer,
)
from tests.sandbox.conftest import shopify_graphql

__all__ = ["adapter_for", "configs"]


def in_stock_offer(slug: str, *, tracked: bool) -> ListedOffer:
    """A well-formed offer with a few units whose store does (or does not) track its stock."""
    return stocked_offer(slug, 2, 20, tracked=tracked)


def held(control: httpx.Client, slug: str, request: OrderRequest) -> list[dict[str, Any]]:
    orders = control.get(f"/_sandbox/orders/{slug}").json()["orders"]
    return [o for o in orders if o["idempotency_key"] == request.idempotency_key]


@pytest.mark.parametrize("slug", STOCKED)
def test_an_order_beyond_the_stock_is_refused_and_nothing_is_held(
    slug: str, adapter_for: Callable[[str], Any], sandbox_control: httpx.Client
) -> None:
    offer = in_stock_offer(slug, tracked=True)
    request = request_for(slug, offer, offer.stock + 1)

    with pytest.raises(Rejected) as refused:
        adapter_for(slug).place_order(request)

    assert held(sandbox_control, slug, request) == []
    if slug == "kiondo":
        assert refused.value.status == 400
        assert "woocommerce_rest_invalid_product_quantity" in (refused.value.response_text or "")
    assert f"{offer.stock} " in str(refused.value)  # the reason names what is left


@pytest.mark.parametrize("slug", STOCKED)
def test_an_order_of_exactly_the_stock_is_placed(
    slug: str, adapter_for: Callable[[str], Any], sandbox_control: httpx.Client
) -> None:
    sandbox_control.post(f"/_sandbox/knobs/{slug}", json={"cancel_rate": 0})
    offer = in_stock_offer(slug, tracked=True)
    request = request_for(slug, offer, offer.stock)

    placed = adapter_for(slug).place_order(request)

    assert [(line.quantity) for line in placed.lines or ()] == [offer.stock]
    assert len(held(sandbox_control, slug, request)) == 1


@pytest.mark.parametrize("slug", STOCKED)
def test_an_offer_whose_stock_is_not_tracked_takes_any_quantity(
    slug: str, adapter_for: Callable[[str], Any], sandbox_control: httpx.Client
) -> None:
    sandbox_control.post(f"/_sandbox/knobs/{slug}", json={"cancel_rate": 0})
    offer = in_stock_offer(slug, tracked=False)
    request = request_for(slug, offer, offer.stock + 5)

    placed = adapter_for(slug).place_order(request)

    assert [line.quantity for line in placed.lines or ()] == [offer.stock + 5]


def test_shopify_claims_inventory_only_when_asked_as_shopify_does(
    sandbox_control: httpx.Client,
) -> None:
    """orderCreate's default inventoryBehaviour is BYPASS: nothing is claimed, nothing refused;
    DECREMENT_OBEYING_POLICY fails the claim of a tracked variant without enough units."""
    offer = in_stock_offer("shopwave", tracked=True)
    line = {
        "variantId": f"gid://shopify/ProductVariant/{variant_id(offer.index)}",
        "quantity": offer.stock + 1,
    }
    query = (
        "mutation c($order: OrderCreateOrderInput!, $options: OrderCreateOptionsInput) "
        "{ orderCreate(order: $order, options: $options) "
        "{ order { id } userErrors { code field message } } }"
    )

    def order_create(**options: str) -> dict[str, Any]:
        order = {"currency": "USD", "sourceIdentifier": f"oc-{uuid.uuid4().hex[:8]}"}
        variables = {"order": {**order, "lineItems": [line]}, "options": options}
        return shopify_graphql(sandbox_control, query, variables).json()["data"]["orderCreate"]

    bypass = order_create()
    obeying = order_create(inventoryBehaviour="DECREMENT_OBEYING_POLICY")

    assert bypass["userErrors"] == [] and bypass["order"]["id"]
    assert obeying["order"] is None
    [error] = obeying["userErrors"]
    assert error["code"] == "INVENTORY_CLAIM_FAILED"
    assert error["field"] == ["order", "lineItems", "0", "quantity"]

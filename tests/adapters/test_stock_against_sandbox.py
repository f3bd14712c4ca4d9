"""Orders beyond an offer's stock, through the real adapters against the sandbox over real HTTP:
ShopWave (Shopify `orderCreate` claiming inventory with DECREMENT_OBEYING_POLICY) answers
userErrors INVENTORY_CLAIM_FAILED, Kiondo (WooCommerce REST v3) answers 400
`woocommerce_rest_invalid_product_quantity`; both adapters report the refusal (Rejected), the
marketplace holds no order, and offers whose store does not track stock take any quantity."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from adapters.base import (
    MarketplaceConfig,
    OrderLine,
    OrderRequest,
    Rejected,
    ShippingAddress,
)
from adapters.registry import build_adapter, load_marketplaces
from sandbox.knobs import Knobs
from sandbox.shopify_format import product_id as shopify_product_id
from sandbox.shopify_format import variant_id
from sandbox.woocommerce import product_id as woocommerce_product_id
from sandbox.world import ListedOffer, World
from tests.adapters.test_against_sandbox import API_KEYS
from tests.conftest import TEST_SANDBOX_OFFERS, TEST_SANDBOX_SEED
from tests.sandbox.conftest import shopify_graphql

STOCKED = ("shopwave", "kiondo")
PRODUCT_IDS: dict[str, Callable[[int], int]] = {
    "shopwave": shopify_product_id,
    "kiondo": woocommerce_product_id,
}
WORLD = World(TEST_SANDBOX_SEED, TEST_SANDBOX_OFFERS)


@pytest.fixture(scope="module")
def configs(sandbox_server: str) -> dict[str, MarketplaceConfig]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in API_KEYS.items():
            patch.setenv(name, value)
        loaded = load_marketplaces()
    return {config.slug: config for config in loaded if config.slug in STOCKED}


@pytest.fixture
def adapter_for(configs: dict[str, MarketplaceConfig]) -> Iterator[Callable[[str], Any]]:
    built: list[Any] = []

    def build(slug: str) -> Any:
        adapter = build_adapter(configs[slug])
        built.append(adapter)
        return adapter

    yield build
    for adapter in built:
        adapter.close()


def stocked_offer(slug: str, *, tracked: bool) -> ListedOffer:
    """A well-formed, in-stock offer whose store does (or does not) track its stock."""
    rate = Knobs().malformed_rate
    for index in range(WORLD.offer_count(slug)):
        offer = WORLD.offer(slug, index)
        if (
            offer.tracks_stock is tracked
            and 2 <= offer.stock <= 20
            and WORLD.malformation(slug, index, rate) is None
        ):
            return offer
    raise AssertionError(f"no {'tracked' if tracked else 'untracked'} offer on {slug}")


def request_for(slug: str, offer: ListedOffer, quantity: int) -> OrderRequest:
    reference = f"oc-stock-{uuid.uuid4().hex[:12]}"
    return OrderRequest(
        reference=reference,
        idempotency_key=f"{reference}-sub-1",
        lines=[
            OrderLine(
                str(PRODUCT_IDS[slug](offer.index)), quantity, offer.price_minor, offer.currency
            )
        ],
        shipping=ShippingAddress(
            name="Ada Lovelace", line1="1 Test St", city="Nairobi", country="KE"
        ),
        currency=offer.currency,
    )


def held(control: httpx.Client, slug: str, request: OrderRequest) -> list[dict[str, Any]]:
    orders = control.get(f"/_sandbox/orders/{slug}").json()["orders"]
    return [o for o in orders if o["idempotency_key"] == request.idempotency_key]


@pytest.mark.parametrize("slug", STOCKED)
def test_an_order_beyond_the_stock_is_refused_and_nothing_is_held(
    slug: str, adapter_for: Callable[[str], Any], sandbox_control: httpx.Client
) -> None:
    offer = stocked_offer(slug, tracked=True)
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
    offer = stocked_offer(slug, tracked=True)
    request = request_for(slug, offer, offer.stock)

    placed = adapter_for(slug).place_order(request)

    assert [(line.quantity) for line in placed.lines or ()] == [offer.stock]
    assert len(held(sandbox_control, slug, request)) == 1


@pytest.mark.parametrize("slug", STOCKED)
def test_an_offer_whose_stock_is_not_tracked_takes_any_quantity(
    slug: str, adapter_for: Callable[[str], Any], sandbox_control: httpx.Client
) -> None:
    sandbox_control.post(f"/_sandbox/knobs/{slug}", json={"cancel_rate": 0})
    offer = stocked_offer(slug, tracked=False)
    request = request_for(slug, offer, offer.stock + 5)

    placed = adapter_for(slug).place_order(request)

    assert [line.quantity for line in placed.lines or ()] == [offer.stock + 5]


def test_shopify_claims_inventory_only_when_asked_as_shopify_does(
    sandbox_control: httpx.Client,
) -> None:
    """orderCreate's default inventoryBehaviour is BYPASS: nothing is claimed, nothing refused;
    DECREMENT_OBEYING_POLICY fails the claim of a tracked variant without enough units."""
    offer = stocked_offer("shopwave", tracked=True)
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

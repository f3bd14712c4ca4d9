"""Orders draw the stock down, through the real adapters against the sandbox over real HTTP, as
the real platforms do: ShopWave (Shopify `orderCreate` with DECREMENT_OBEYING_POLICY claims the
variant's inventory; `orderCancel` with `restock: true` puts it back) and Kiondo (a paid
WooCommerce REST order reduces a managed-stock product's `stock_quantity`; a cancelled order
restores it). What the catalog endpoints publish and what the live lookups used at checkout
revalidation read both follow, and a changed-since fetch sees the change. `sandbox_control`'s
reset after each test puts the stores' inventory back."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from adapters.base import OrderLine, OrderRequest, Rejected, ShippingAddress
from adapters.registry import build_adapter
from sandbox.knobs import Knobs
from sandbox.shopify_format import product_id as shopify_product_id
from sandbox.shopify_format import variant_id
from sandbox.woocommerce import product_id as woocommerce_product_id
from sandbox.world import ListedOffer
from tests.adapters.stock_orders import (
    STOCKED,
    WORLD,
    adapter_for,
    configs,
    external_id,
    request_for,
    stocked_offer,
)
from tests.adapters.test_against_sandbox import load_sandbox_configs
from tests.sandbox.conftest import shopify_graphql

__all__ = ["adapter_for", "configs"]

WOO_AUTH = ("ck_test", "cs_test")


def published_stock(adapter: Any, slug: str, offer: ListedOffer) -> int | None:
    """The stock the catalog endpoint publishes for the offer, read as the pipeline reads it."""
    [record] = adapter.fetch_records_by_id([external_id(slug, offer)])
    return adapter.normalize_record(record).stock


@pytest.mark.parametrize("slug", STOCKED)
def test_an_order_draws_down_the_stock_the_catalog_and_the_live_lookup_publish(
    slug: str, adapter_for: Callable[[str], Any], sandbox_control: httpx.Client
) -> None:
    sandbox_control.post(f"/_sandbox/knobs/{slug}", json={"cancel_rate": 0})
    # More than Kiondo's low-stock threshold: the Store API still tells how many can be bought.
    offer = stocked_offer(slug, 12, 60)
    adapter = adapter_for(slug)
    assert adapter.lookup_offer(external_id(slug, offer)).stock == offer.stock

    adapter.place_order(request_for(slug, offer, 3))

    live = adapter.lookup_offer(external_id(slug, offer))
    assert (live.stock, live.available) == (offer.stock - 3, True)
    assert published_stock(adapter, slug, offer) == offer.stock - 3


@pytest.mark.parametrize("slug", STOCKED)
def test_the_last_units_bought_sell_the_offer_out_for_the_next_shopper(
    slug: str, adapter_for: Callable[[str], Any], sandbox_control: httpx.Client
) -> None:
    sandbox_control.post(f"/_sandbox/knobs/{slug}", json={"cancel_rate": 0})
    offer = stocked_offer(slug, 2, 9, nth=1)
    adapter = adapter_for(slug)
    adapter.place_order(request_for(slug, offer, offer.stock))

    live = adapter.lookup_offer(external_id(slug, offer))
    assert live.available is False
    assert live.stock in (0, None)
    with pytest.raises(Rejected) as refused:
        adapter.place_order(request_for(slug, offer, 1))
    assert "0 " in str(refused.value)  # the reason says none are left


@pytest.mark.parametrize("slug", STOCKED)
def test_a_cancelled_order_gives_its_units_back(
    slug: str, adapter_for: Callable[[str], Any], sandbox_control: httpx.Client
) -> None:
    sandbox_control.post(f"/_sandbox/knobs/{slug}", json={"cancel_rate": 0})
    offer = stocked_offer(slug, 6, 40, nth=2)
    adapter = adapter_for(slug)
    placed = adapter.place_order(request_for(slug, offer, 2))
    assert adapter.lookup_offer(external_id(slug, offer)).stock == offer.stock - 2

    adapter.cancel_order(placed.marketplace_order_id)

    assert adapter.lookup_offer(external_id(slug, offer)).stock == offer.stock
    assert published_stock(adapter, slug, offer) == offer.stock


@pytest.mark.parametrize("slug", STOCKED)
def test_a_replayed_placement_draws_the_stock_once(
    slug: str, adapter_for: Callable[[str], Any], sandbox_control: httpx.Client
) -> None:
    sandbox_control.post(f"/_sandbox/knobs/{slug}", json={"cancel_rate": 0})
    offer = stocked_offer(slug, 6, 40, nth=3)
    adapter = adapter_for(slug)
    request = request_for(slug, offer, 2)

    first = adapter.place_order(request)
    again = adapter.place_order(request)

    assert first.marketplace_order_id == again.marketplace_order_id
    assert adapter.lookup_offer(external_id(slug, offer)).stock == offer.stock - 2


@pytest.mark.parametrize("slug", STOCKED)
def test_a_stock_change_is_a_change_the_changed_since_fetch_sees(
    slug: str, adapter_for: Callable[[str], Any], sandbox_control: httpx.Client
) -> None:
    sandbox_control.post(f"/_sandbox/knobs/{slug}", json={"cancel_rate": 0})
    offer = stocked_offer(slug, 6, 40, nth=4)
    adapter = adapter_for(slug)
    adapter.fetch_catalog_changes(datetime.now(UTC), at_most=1000)  # the state is noted
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)

    adapter.place_order(request_for(slug, offer, 1))

    changes = adapter.fetch_catalog_changes(since, at_most=1000)
    changed = {str(record["id"]): record for record in changes.changed}
    assert external_id(slug, offer) in changed
    assert adapter.normalize_record(changed[external_id(slug, offer)]).stock == offer.stock - 1


@pytest.mark.parametrize("slug", STOCKED)
def test_concurrent_shoppers_never_buy_more_than_the_stock(
    slug: str, adapter_for: Callable[[str], Any], sandbox_control: httpx.Client
) -> None:
    sandbox_control.post(f"/_sandbox/knobs/{slug}", json={"cancel_rate": 0})
    offer = stocked_offer(slug, 3, 5, nth=5)
    shoppers = offer.stock + 5

    def buy(_: int) -> bool:
        adapter = adapter_for(slug)
        try:
            adapter.place_order(request_for(slug, offer, 1))
        except Rejected:
            return False
        return True

    with ThreadPoolExecutor(max_workers=shoppers) as pool:
        bought = list(pool.map(buy, range(shoppers)))

    assert sum(bought) == offer.stock
    live = adapter_for(slug).lookup_offer(external_id(slug, offer))
    assert live.available is False


def test_the_reset_puts_the_inventory_back(
    adapter_for: Callable[[str], Any], sandbox_control: httpx.Client
) -> None:
    offer = stocked_offer("kiondo", 6, 40, nth=6)
    adapter = adapter_for("kiondo")
    placed = adapter.place_order(request_for("kiondo", offer, 2))

    sandbox_control.post("/_sandbox/reset")

    assert adapter.lookup_offer(external_id("kiondo", offer)).stock == offer.stock
    # An order placed before the reset holds no units any more: cancelling it adds none.
    adapter.cancel_order(placed.marketplace_order_id)
    assert adapter.lookup_offer(external_id("kiondo", offer)).stock == offer.stock


ORDER_CREATE = (
    "mutation c($order: OrderCreateOrderInput!, $options: OrderCreateOptionsInput) "
    "{ orderCreate(order: $order, options: $options) { order { id } userErrors { code } } }"
)
ORDER_CANCEL = (
    "mutation x($orderId: ID!, $reason: OrderCancelReason!, $refund: Boolean!, "
    "$restock: Boolean!) { orderCancel(orderId: $orderId, reason: $reason, refund: $refund, "
    "restock: $restock) { job { id } orderCancelUserErrors { code } } }"
)


def _shopify_inventory(http: httpx.Client, offer: ListedOffer) -> int:
    product = http.get(
        f"/shopwave/admin/api/2024-10/products/{shopify_product_id(offer.index)}.json",
        headers={"X-Shopify-Access-Token": "shpat_test"},
    ).json()["product"]
    return product["variants"][0]["inventory_quantity"]


def test_shopify_draws_inventory_only_when_asked_and_restocks_only_when_asked(
    sandbox_control: httpx.Client,
) -> None:
    """BYPASS (orderCreate's default) claims nothing; orderCancel with `restock: false` keeps
    the units with the cancelled order, as Shopify does."""
    sandbox_control.post("/_sandbox/knobs/shopwave", json={"cancel_rate": 0})
    offer = stocked_offer("shopwave", 6, 40, nth=7)
    line = {"variantId": f"gid://shopify/ProductVariant/{variant_id(offer.index)}", "quantity": 2}

    def order_create(**options: str) -> str:
        order = {"currency": "USD", "sourceIdentifier": f"oc-{uuid.uuid4().hex[:8]}"}
        variables = {"order": {**order, "lineItems": [line]}, "options": options}
        reply = shopify_graphql(sandbox_control, ORDER_CREATE, variables).json()
        return reply["data"]["orderCreate"]["order"]["id"]

    order_create()
    assert _shopify_inventory(sandbox_control, offer) == offer.stock
    claimed = order_create(inventoryBehaviour="DECREMENT_OBEYING_POLICY")
    assert _shopify_inventory(sandbox_control, offer) == offer.stock - 2

    cancel = {"orderId": claimed, "reason": "CUSTOMER", "refund": True, "restock": False}
    reply = shopify_graphql(sandbox_control, ORDER_CANCEL, cancel).json()

    assert reply["data"]["orderCancel"]["orderCancelUserErrors"] == []
    assert _shopify_inventory(sandbox_control, offer) == offer.stock - 2


def _woocommerce_record(http: httpx.Client, offer: ListedOffer) -> dict[str, Any]:
    return http.get(
        f"/kiondo/wp-json/wc/store/v1/products/{woocommerce_product_id(offer.index)}"
    ).json()


def test_woocommerce_reduces_stock_when_the_order_is_paid(
    sandbox_control: httpx.Client,
) -> None:
    """A pending (unpaid) REST order reduces nothing; a paid one (`set_paid`) reduces the
    product's stock, as WooCommerce's wc_maybe_reduce_stock_levels does on payment."""
    offer = stocked_offer("kiondo", 12, 60, nth=8)
    line = {"product_id": woocommerce_product_id(offer.index), "quantity": 2}

    def create(set_paid: bool) -> None:
        body = {"set_paid": set_paid, "line_items": [line]}
        reply = sandbox_control.post("/kiondo/wp-json/wc/v3/orders", json=body, auth=WOO_AUTH)
        assert reply.status_code == 201

    create(False)
    assert _woocommerce_record(sandbox_control, offer)["add_to_cart"]["maximum"] == offer.stock
    create(True)
    record = _woocommerce_record(sandbox_control, offer)
    assert record["add_to_cart"]["maximum"] == offer.stock - 2
    assert record["low_stock_remaining"] is None  # not low yet: the Store API tells none


@pytest.mark.parametrize("slug", ["dummymart", "fakestore"])
def test_cart_api_stores_draw_no_stock_as_the_real_apis_draw_none(
    slug: str, sandbox_server: str, sandbox_control: httpx.Client
) -> None:
    """DummyJSON's carts are simulated (`POST /carts/add` "will not add it into the server") and
    the Fake Store API persists no write and has no stock: an order there, even one for more
    units than DummyJSON publishes, changes nothing the store publishes. So the sandbox's
    DummyMart and Fake Store keep their published stock whatever OneCart buys (docs: README's
    marketplace table)."""
    adapter = build_adapter(load_sandbox_configs([slug])[slug])
    try:
        index = next(
            index
            for index in range(WORLD.offer_count(slug))
            if WORLD.malformation(slug, index, Knobs().malformed_rate) is None
            and WORLD.offer(slug, index).stock >= 1
        )
        offer = WORLD.offer(slug, index)
        product = str(index + 1)  # both formats number their products from 1
        before = adapter.lookup_offer(product).stock
        beyond = (before or offer.stock) + 5
        reference = f"oc-nodraw-{uuid.uuid4().hex[:12]}"
        placed = adapter.place_order(
            OrderRequest(
                reference=reference,
                idempotency_key=f"{reference}-sub-1",
                lines=[OrderLine(product, beyond, offer.price_minor, offer.currency)],
                shipping=ShippingAddress(
                    name="Ada Lovelace", line1="1 Test St", city="Berlin", country="DE"
                ),
                currency=offer.currency,
            )
        )
        assert [line.quantity for line in placed.lines] == [beyond]
        after = adapter.lookup_offer(product)
        assert after.stock == before
        assert after.available
        if slug == "fakestore":
            assert before is None  # the format has no stock at all
        else:
            assert before == offer.stock
    finally:
        adapter.close()

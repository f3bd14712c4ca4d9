"""Stock in the sandbox stores: orders draw it down, cancellations put it back, and orders beyond
it are refused the way each real API refuses them.

Only offers whose store tracks stock (ListedOffer.tracks_stock) are counted. The world gives each
offer the stock it had when the sandbox started; the :class:`StockLedger` holds what the
sandbox's orders have taken from it since, and every catalog endpoint and live lookup publishes
the difference (SandboxContext.offer). The ledger (sandbox.inventory) lives beside the orders,
and a placement's check and draw happen under the order book's lock, so two shoppers can never
buy the same last unit. This module holds each platform's rules and refusals.

- **Shopify** (Admin GraphQL ``orderCreate``): inventory is claimed only when the mutation's
  ``options.inventoryBehaviour`` is ``DECREMENT_OBEYING_POLICY`` (the default ``BYPASS`` claims
  nothing and always creates the order). Obeying the policy, a tracked variant with fewer units
  than ordered fails the claim: ``order`` is null and ``userErrors`` holds an
  ``OrderCreateUserError`` with code ``INVENTORY_CLAIM_FAILED``. ``orderCancel`` puts the
  claimed units back when its ``restock`` argument is true.
- **WooCommerce** (REST v3 ``POST /orders``): a paid order (``set_paid``: WooCommerce's
  ``wc_maybe_reduce_stock_levels`` on payment) reduces the ``stock_quantity`` of products that
  manage stock; a cancelled order restores it (``wc_maybe_increase_stock_levels``), whoever
  cancels it; a refund does not (only a refund asked to restock its items does). Core
  WooCommerce creates the order whatever the stock; a store that refuses oversold REST orders
  does it in the ``woocommerce_rest_pre_insert_shop_order_object`` filter, for products with
  ``manage_stock`` on and backorders off, by throwing a ``WC_REST_Exception``: HTTP 400
  ``{"code": "woocommerce_rest_invalid_product_quantity", "message": …, "data": {"status": 400}}``
  (the code WooCommerce uses for line quantities, and the one stock-checking plugins such as
  wePOS throw). Kiondo runs such a check.

DummyJSON and Fake Store take orders too, but the real APIs keep no stock for them (DummyJSON's
carts are simulated and change nothing, Fake Store has no stock at all), so theirs never draw.
"""

from __future__ import annotations

from typing import Any

from sandbox.inventory import StockClaim
from sandbox.service import JsonError
from sandbox.world import ListedOffer

SHOPIFY_OBEY_INVENTORY_POLICY = "DECREMENT_OBEYING_POLICY"
SHOPIFY_INVENTORY_CLAIM_FAILED = "INVENTORY_CLAIM_FAILED"
WOOCOMMERCE_INVALID_QUANTITY = "woocommerce_rest_invalid_product_quantity"


def stock_claim(offer: ListedOffer, quantity: int, position: int) -> StockClaim | None:
    """What an order line of `quantity` units claims from the offer's stock: nothing when the
    store does not track it (orders of any quantity are taken). The claim counts from the stock
    the offer started with (the world's), which the ledger has already drawn on."""
    if not offer.tracks_stock:
        return None
    return StockClaim(position, offer.index, quantity, offer.initial_stock)


def shopify_claims_inventory(variables: dict[str, Any]) -> bool:
    """Whether an orderCreate asked the shop to claim inventory obeying the variants' policy."""
    options = variables.get("options")
    return (
        isinstance(options, dict)
        and options.get("inventoryBehaviour") == SHOPIFY_OBEY_INVENTORY_POLICY
    )


def shopify_inventory_error(title: str, left: int, quantity: int, position: int) -> dict[str, Any]:
    """The OrderCreateUserError for a line whose inventory claim failed (`left` available)."""
    return {
        "code": SHOPIFY_INVENTORY_CLAIM_FAILED,
        "field": ["order", "lineItems", str(position), "quantity"],
        "message": f"Not enough inventory for {title}: {left} available, {quantity} requested",
    }


def woocommerce_stock_error(title: str, left: int, quantity: int) -> JsonError:
    """The REST error a stock-checking store answers for a line beyond the product's stock."""
    return JsonError(
        400,
        {
            "code": WOOCOMMERCE_INVALID_QUANTITY,
            "message": f"Sorry, “{title}” does not have enough stock: {left} left, "
            f"{quantity} ordered.",
            "data": {"status": 400},
        },
    )

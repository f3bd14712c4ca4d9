"""Orders beyond an offer's stock, refused the way each real API refuses them.

Only offers whose store tracks stock (ListedOffer.tracks_stock) are limited; the limit is the
offer's stock as the catalog publishes it (sandbox orders do not draw it down: the world is
computed, not stored).

- **Shopify** (Admin GraphQL ``orderCreate``): inventory is claimed only when the mutation's
  ``options.inventoryBehaviour`` is ``DECREMENT_OBEYING_POLICY`` (the default ``BYPASS`` claims
  nothing and always creates the order). Obeying the policy, a tracked variant with fewer units
  than ordered fails the claim: ``order`` is null and ``userErrors`` holds an
  ``OrderCreateUserError`` with code ``INVENTORY_CLAIM_FAILED``.
- **WooCommerce** (REST v3 ``POST /orders``): core WooCommerce creates the order whatever the
  stock; a store that refuses oversold REST orders does it in the
  ``woocommerce_rest_pre_insert_shop_order_object`` filter, for products with ``manage_stock`` on
  and backorders off, by throwing a ``WC_REST_Exception``: HTTP 400
  ``{"code": "woocommerce_rest_invalid_product_quantity", "message": …, "data": {"status": 400}}``
  (the code WooCommerce uses for line quantities, and the one stock-checking plugins such as
  wePOS throw). Kiondo runs such a check.
"""

from __future__ import annotations

from typing import Any

from sandbox.service import JsonError
from sandbox.world import ListedOffer

SHOPIFY_OBEY_INVENTORY_POLICY = "DECREMENT_OBEYING_POLICY"
SHOPIFY_INVENTORY_CLAIM_FAILED = "INVENTORY_CLAIM_FAILED"
WOOCOMMERCE_INVALID_QUANTITY = "woocommerce_rest_invalid_product_quantity"


def short_of_stock(offer: ListedOffer, quantity: int) -> bool:
    """True when the store counts the offer's stock and has fewer than `quantity` left."""
    return offer.tracks_stock and quantity > offer.stock


def shopify_claims_inventory(variables: dict[str, Any]) -> bool:
    """Whether an orderCreate asked the shop to claim inventory obeying the variants' policy."""
    options = variables.get("options")
    return (
        isinstance(options, dict)
        and options.get("inventoryBehaviour") == SHOPIFY_OBEY_INVENTORY_POLICY
    )


def shopify_inventory_error(offer: ListedOffer, quantity: int, position: int) -> dict[str, Any]:
    """The OrderCreateUserError for a line whose inventory claim failed."""
    return {
        "code": SHOPIFY_INVENTORY_CLAIM_FAILED,
        "field": ["order", "lineItems", str(position), "quantity"],
        "message": f"Not enough inventory for {offer.title}: {offer.stock} available, "
        f"{quantity} requested",
    }


def woocommerce_stock_error(offer: ListedOffer, quantity: int) -> JsonError:
    """The REST error a stock-checking store answers for a line beyond the product's stock."""
    return JsonError(
        400,
        {
            "code": WOOCOMMERCE_INVALID_QUANTITY,
            "message": f"Sorry, “{offer.title}” does not have enough stock: {offer.stock} "
            f"left, {quantity} ordered.",
            "data": {"status": 400},
        },
    )

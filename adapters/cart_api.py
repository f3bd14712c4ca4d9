"""What DummyJSON and the Fake Store API share as order-taking stores: products under
`/products/{id}` (numeric ids, no product page), orders as carts of a configured user, and no
field on a cart for our reference. Each format keeps its own catalog, normalization and cart
replies (adapters/dummyjson.py, adapters/fakestore.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from adapters.accepted import line_quantity
from adapters.base import (
    Capability,
    MarketplaceConfig,
    NotFound,
    Offer,
    OrderRequest,
    PlacedOrder,
    Rejected,
    Unsupported,
)
from adapters.fields import optional_int, optional_text
from adapters.http_adapter import HttpMarketplaceAdapter

DEFAULT_CART_USER_ID = 1


class CartApiAdapter(HttpMarketplaceAdapter):
    """A store whose orders are carts: catalog, live lookups, cart orders (no status, no cancel).

    Subclasses name their API in `api_name` (for messages)."""

    api_name = "cart API"
    capabilities = frozenset({Capability.CATALOG, Capability.LIVE_OFFER, Capability.ORDER})

    def __init__(
        self,
        config: MarketplaceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(config, transport=transport, sleep=sleep)
        # Never 0: DummyJSON reads limit=0 as "everything in one response".
        self.page_size = max(1, config.page_size)
        self.cart_user_id = int(config.options.get("cart_user_id", DEFAULT_CART_USER_ID))

    def product_resource_url(self, external_id: str) -> str:
        """The product's own resource: the format has no product page, this is the stable link."""
        return f"{self.config.base_url.rstrip('/')}/products/{quote(external_id, safe='')}"

    def is_unknown_product_reply(self, body: Any) -> bool:
        """Whether a `/products/{id}` reply says there is no such product (a 404 comes back as
        None); a format that answers an unknown id otherwise says so here."""
        return body is None

    def lookup_offer(self, external_id: str) -> Offer:
        """`/products/{id}`, normalized; NotFound for an unknown id (is_unknown_product_reply)."""
        body, _ = self.get_json(f"products/{quote(external_id, safe='')}")
        if self.is_unknown_product_reply(body):
            raise NotFound(f"{self.slug}: product {external_id} not found", marketplace=self.slug)
        return self.normalize_record(body)

    def cart_product_id(self, external_id: str) -> int:
        """The numeric product id a cart line needs; Rejected for any other external id."""
        if not external_id.isdigit():
            raise Rejected(
                f"{self.slug}: not a {self.api_name} product id: {external_id!r}",
                marketplace=self.slug,
            )
        return int(external_id)

    def find_order(
        self, reference: str, *, sent_since: datetime | None = None
    ) -> PlacedOrder | None:
        """Unsupported: a cart stores no external reference (and carts cannot be searched), so
        the marketplace cannot be asked whether it holds our order; a placement whose outcome
        is unknown can only be retried with the same Idempotency-Key."""
        raise Unsupported(
            f"{self.slug}: {self.api_name} carts cannot be looked up by reference",
            marketplace=self.slug,
        )

    def cart_products(self, request: OrderRequest, *, id_field: str) -> list[dict[str, int]]:
        """The order's lines as cart products, `{id_field: product id, "quantity": n}`, sorted by
        product id (DummyJSON matches quantities to products in id order)."""
        return [
            {id_field: self.cart_product_id(line.external_id), "quantity": line.quantity}
            for line in sorted(
                request.lines, key=lambda line: self.cart_product_id(line.external_id)
            )
        ]

    def post_cart(
        self, path: str, cart: Mapping[str, Any], request: OrderRequest, *, what: str
    ) -> Mapping[str, Any]:
        """POST the cart with the order's Idempotency-Key (a retried placement returns the same
        cart; a 404 is a refusal) and return the reply, which must carry the cart's id: a reply
        without one leaves the outcome unknown (`what` names the write in that error)."""
        body, _ = self.send_write(
            "POST",
            path,
            json=cart,
            idempotency_key=request.idempotency_key,
            not_found_is_refusal=True,
        )
        if not isinstance(body, Mapping) or optional_text(body.get("id")) is None:
            raise self.unreadable_write(what, "no cart id")
        return body


def cart_item_quantity(item: Mapping[str, Any], *, id_field: str) -> tuple[str, int] | None:
    """A cart reply's product as (product id, quantity), or None when either is unreadable."""
    product_id = optional_int(item.get(id_field))
    quantity = line_quantity(item.get("quantity"))
    if product_id is None or quantity is None:
        return None
    return str(product_id), quantity

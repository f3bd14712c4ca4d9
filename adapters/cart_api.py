"""What DummyJSON and the Fake Store API share as order-taking stores: products under
`/products/{id}` (numeric ids, no product page), orders as carts of a configured user, and no
field on a cart for our reference. Each format keeps its own catalog, normalization and cart
replies (adapters/dummyjson.py, adapters/fakestore.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from urllib.parse import quote

import httpx

from adapters.base import Capability, MarketplaceConfig, PlacedOrder, Rejected, Unsupported
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

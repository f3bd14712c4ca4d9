"""Fake Store API: one `/products` list (no paging), `/products/{id}` for live prices, and
`/carts` for orders.

Products carry only id, title, float price, description, category, image and a rating: no brand,
GTIN, stock or product page. Brand and model are left to the pipeline's title matcher. An unknown
id is answered with 200 and an empty body, which this adapter reports as NotFound.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from adapters.accepted import accepted_lines, line_quantity
from adapters.base import (
    AcceptedLine,
    Capability,
    CatalogPage,
    MarketplaceConfig,
    NotFound,
    Offer,
    OrderRequest,
    OrderStatus,
    PlacedOrder,
    Rejected,
    Unsupported,
    parse_rating,
)
from adapters.fields import (
    category_leaf,
    description_text,
    dig,
    iter_json_array,
    optional_count,
    optional_int,
    optional_text,
    optional_url,
    require_decimal_price,
    require_external_id,
    require_mapping,
    require_title,
)
from adapters.http_adapter import HttpMarketplaceAdapter

DEFAULT_CART_USER_ID = 1


class FakeStoreAdapter(HttpMarketplaceAdapter):
    """A Fake Store API shop: catalog, live lookups, cart orders (no status, no cancel)."""

    capabilities = frozenset({Capability.CATALOG, Capability.LIVE_OFFER, Capability.ORDER})

    def __init__(
        self,
        config: MarketplaceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(config, transport=transport, sleep=sleep)
        self.page_size = max(1, config.page_size)
        self.cart_user_id = int(config.options.get("cart_user_id", DEFAULT_CART_USER_ID))

    def fetch_catalog_pages(self) -> Iterator[CatalogPage]:
        """The whole `/products` list from one request, handed on in pages of `page_size` as it
        downloads (the list has no paging and is large at scale), in the API's order."""
        batch: list[Any] = []
        page = 1
        for record in iter_json_array(
            self.stream_text("products", conditional=True), marketplace=self.slug
        ):
            batch.append(record)
            if len(batch) == self.page_size:
                yield CatalogPage(records=batch, page=page)
                batch, page = [], page + 1
        if batch:
            yield CatalogPage(records=batch, page=page)

    def normalize_record(self, record: Mapping[str, Any]) -> Offer:
        """One Fake Store product as an Offer (price in the configured currency)."""
        product = require_mapping(record, marketplace=self.slug)
        external_id = require_external_id(product.get("id"), marketplace=self.slug)
        title = require_title(product.get("title"), marketplace=self.slug)
        currency = self.config.currency
        price_minor = require_decimal_price(product.get("price"), currency, marketplace=self.slug)
        rating_count = optional_count(dig(product, "rating.count"))
        return Offer(
            marketplace=self.slug,
            external_id=external_id,
            title=title,
            price_minor=price_minor,
            currency=currency,
            description=description_text(product.get("description")),
            image_url=optional_url(product.get("image")),
            # The format has no product page; the product's own resource is the stable link.
            product_url=f"{self.config.base_url.rstrip('/')}/products/{quote(external_id, safe='')}",
            category=category_leaf(product.get("category")),
            rating=parse_rating(dig(product, "rating.rate")) if rating_count != 0 else None,
            rating_count=rating_count,
            available=True,  # the format says nothing about stock; a listed product is for sale
        )

    def lookup_offer(self, external_id: str) -> Offer:
        """`/products/{id}`; the API's empty 200 for an unknown id becomes NotFound."""
        body, _ = self.get_json(f"products/{quote(external_id, safe='')}")
        if body is None or body == {}:
            raise NotFound(f"{self.slug}: product {external_id} not found", marketplace=self.slug)
        return self.normalize_record(body)

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        """`POST /carts`; the Idempotency-Key makes a retried placement return the same cart."""
        products = [
            {"productId": _product_id(line.external_id, self.slug), "quantity": line.quantity}
            for line in sorted(
                request.lines, key=lambda line: _product_id(line.external_id, self.slug)
            )
        ]
        body, _ = self.send_write(
            "POST",
            "carts",
            json={
                "userId": self.cart_user_id,
                "date": datetime.now(UTC).date().isoformat(),
                "products": products,
            },
            idempotency_key=request.idempotency_key,
            not_found_is_refusal=True,
        )
        if not isinstance(body, Mapping) or optional_text(body.get("id")) is None:
            raise self.unreadable_write("POST /carts", "no cart id")
        # A cart has no status and no prices: only its products and quantities are said.
        return PlacedOrder(
            marketplace_order_id=str(body["id"]),
            status=OrderStatus.PENDING,
            lines=accepted_lines(body.get("products"), _cart_line),
        )

    def find_order(self, reference: str) -> PlacedOrder | None:
        """Unsupported: a Fake Store cart has no field for an external reference, so the
        marketplace cannot be asked whether it holds our order; only a retry with the same
        Idempotency-Key is safe."""
        raise Unsupported(
            f"{self.slug}: Fake Store carts cannot be looked up by reference",
            marketplace=self.slug,
        )


def _cart_line(item: Mapping[str, Any]) -> AcceptedLine | None:
    product_id = optional_int(item.get("productId"))
    quantity = line_quantity(item.get("quantity"))
    if product_id is None or quantity is None:
        return None
    return AcceptedLine(str(product_id), quantity)


def _product_id(external_id: str, slug: str) -> int:
    if not external_id.isdigit():
        raise Rejected(f"{slug}: not a Fake Store product id: {external_id!r}", marketplace=slug)
    return int(external_id)

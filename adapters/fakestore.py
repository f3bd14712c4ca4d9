"""Fake Store API: one `/products` list (no paging), `/products/{id}` for live prices, and
`/carts` for orders.

Products carry only id, title, float price, description, category, image and a rating: no brand,
GTIN, stock or product page. Brand and model are left to the pipeline's title matcher. An unknown
id is answered with 200 and an empty body, which this adapter reports as NotFound.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from adapters.accepted import accepted_lines
from adapters.base import (
    AcceptedLine,
    CatalogPage,
    Offer,
    OrderRequest,
    OrderStatus,
    PlacedOrder,
    pages_of,
    parse_rating,
)
from adapters.cart_api import CartApiAdapter, cart_item_quantity
from adapters.fields import (
    category_leaf,
    description_text,
    dig,
    iter_json_array,
    naming_the_record,
    optional_count,
    optional_url,
    require_decimal_price,
    require_external_id,
    require_mapping,
    require_title,
)


class FakeStoreAdapter(CartApiAdapter):
    """A Fake Store API shop: catalog, live lookups, cart orders (no status, no cancel)."""

    api_name = "Fake Store"

    @property
    def honours_idempotency_keys(self) -> bool:
        """As configured (default True, as the sandbox honours keys); a Fake Store API that
        ignores Idempotency-Key is configured with `retry_unknown_writes = false`. Carts carry no
        reference, so resending with the key is the only way to settle a placement in doubt."""
        return self.keys_honoured_as_configured

    def fetch_catalog_pages(self) -> Iterator[CatalogPage]:
        """The whole `/products` list from one request, handed on in pages of `page_size` as it
        downloads (the list has no paging and is large at scale), in the API's order."""
        chunks = self.stream_text("products", conditional=True)
        yield from pages_of(iter_json_array(chunks, marketplace=self.slug), self.page_size)

    def normalize_record(self, record: Mapping[str, Any]) -> Offer:
        """One Fake Store product as an Offer (price in the configured currency)."""
        product = require_mapping(record, marketplace=self.slug)
        external_id = require_external_id(product.get("id"), marketplace=self.slug)
        with naming_the_record(external_id):
            title = require_title(product.get("title"), marketplace=self.slug)
            currency = self.config.currency
            price_minor = require_decimal_price(
                product.get("price"), currency, marketplace=self.slug
            )
            rating_count = optional_count(dig(product, "rating.count"))
            return Offer(
                marketplace=self.slug,
                external_id=external_id,
                title=title,
                price_minor=price_minor,
                currency=currency,
                description=description_text(product.get("description")),
                image_url=optional_url(product.get("image")),
                product_url=self.product_resource_url(external_id),
                category=category_leaf(product.get("category")),
                rating=parse_rating(dig(product, "rating.rate")) if rating_count != 0 else None,
                rating_count=rating_count,
                available=True,  # the format says nothing about stock; a listed product is for sale
            )

    def is_unknown_product_reply(self, body: Any) -> bool:
        """The API answers an unknown id with an empty 200 (or a 404): both become NotFound."""
        return body is None or body == {}

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        """`POST /carts`; the Idempotency-Key makes a retried placement return the same cart."""
        products = self.cart_products(request, id_field="productId")
        body = self.post_cart(
            "carts",
            {
                "userId": self.cart_user_id,
                "date": datetime.now(UTC).date().isoformat(),
                "products": products,
            },
            request,
            what="POST /carts",
        )
        # A cart has no status and no prices: only its products and quantities are said.
        return PlacedOrder(
            marketplace_order_id=str(body["id"]),
            status=OrderStatus.PENDING,
            lines=accepted_lines(body.get("products"), _cart_line),
        )


def _cart_line(item: Mapping[str, Any]) -> AcceptedLine | None:
    """A cart product: id and quantity (a Fake Store cart says no price)."""
    read = cart_item_quantity(item, id_field="productId")
    return AcceptedLine(*read) if read is not None else None

"""DummyJSON: `/products` paged with skip/limit/total, `/products/{id}` for live prices, and
`/carts/add` for orders.

Prices are JSON floats in the marketplace's configured currency (DummyJSON implies USD). Barcodes
are 13 digits that often fail the EAN-13 checksum, so many offers carry no GTIN and are matched
by brand and title instead. There is no product page: the URL is built from the product's id.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from adapters.accepted import accepted_lines, order_money
from adapters.base import (
    AcceptedLine,
    BadPayload,
    CatalogPage,
    Offer,
    OrderRequest,
    OrderStatus,
    PlacedOrder,
    parse_rating,
)
from adapters.cart_api import CartApiAdapter, cart_item_quantity
from adapters.fields import (
    availability_from_word,
    category_leaf,
    description_text,
    dig,
    naming_the_record,
    optional_count,
    optional_int,
    optional_text,
    optional_url,
    require_decimal_price,
    require_external_id,
    require_mapping,
    require_title,
)
from adapters.gtin import normalize_gtin


class DummyJsonAdapter(CartApiAdapter):
    """A DummyJSON-style store: catalog, live lookups and cart orders (no status, no cancel)."""

    api_name = "DummyJSON"

    @property
    def honours_idempotency_keys(self) -> bool:
        """As configured (default True, as the sandbox honours keys). Real DummyJSON ignores
        Idempotency-Key: configure it with `retry_unknown_writes = false`. Carts carry no
        reference, so resending with the key is the only way to settle a placement in doubt."""
        return self.keys_honoured_as_configured

    # --- Catalog ----------------------------------------------------------------------------

    def fetch_catalog_pages(self) -> Iterator[CatalogPage]:
        """`/products?limit=&skip=` until `skip` reaches `total` (ordered by id).

        Each page is asked for conditionally (DummyJSON is an Express app: every JSON reply
        carries an ETag, and a request whose If-None-Match holds it is answered 304 with no
        body); a page not modified since the last fetch is handed on as `held`, and paging
        goes on from what its held body said (its record count and the total)."""
        skip = 0
        page = 1
        while True:
            reply = self.get_catalog_page(page, "products", {"limit": self.page_size, "skip": skip})
            if reply is None:
                follow = self.held_page_follow(page)
                count, total = int(follow["records"]), optional_int(follow.get("total"))
                yield CatalogPage(records=[], page=page, held=True)
            else:
                body, _ = reply
                products = body.get("products") if isinstance(body, Mapping) else None
                if not isinstance(products, list):
                    raise BadPayload(
                        "bad_page", detail=f"skip={skip}: no 'products' list", marketplace=self.slug
                    )
                if not products:
                    return
                count, total = len(products), optional_int(body.get("total"))
                self.keep_page_validator(page, {"records": count, "total": total})
                yield CatalogPage(records=products, page=page)
            skip += count
            if total is None:
                if count < self.page_size:
                    return
            elif skip >= total:
                return
            page += 1

    def normalize_record(self, record: Mapping[str, Any]) -> Offer:
        """One DummyJSON product as an Offer (price in the configured currency)."""
        product = require_mapping(record, marketplace=self.slug)
        external_id = require_external_id(product.get("id"), marketplace=self.slug)
        with naming_the_record(external_id):
            title = require_title(product.get("title"), marketplace=self.slug)
            currency = self.config.currency
            price_minor = require_decimal_price(
                product.get("price"), currency, marketplace=self.slug
            )
            stock = optional_count(product.get("stock"))
            available = availability_from_word(product.get("availabilityStatus"))
            if available is None:
                available = stock is None or stock > 0
            images = product.get("images")
            return Offer(
                marketplace=self.slug,
                external_id=external_id,
                title=title,
                price_minor=price_minor,
                currency=currency,
                description=description_text(product.get("description")),
                image_url=optional_url(product.get("thumbnail"))
                or (optional_url(images[0]) if isinstance(images, list) and images else None),
                product_url=self.product_resource_url(external_id),
                category=category_leaf(product.get("category")),
                brand=optional_text(product.get("brand")),
                model=None,
                gtin=normalize_gtin(dig(product, "meta.barcode")),
                sku=optional_text(product.get("sku")),
                rating=parse_rating(product.get("rating")),
                # `reviews` holds a few sample reviews, not the count behind `rating`: unknown.
                rating_count=None,
                available=available,
                stock=stock,
            )

    # Live offer: `/products/{id}`, a 404 for an unknown id (CartApiAdapter.lookup_offer).

    # --- Orders -----------------------------------------------------------------------------

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        """`POST /carts/add` with the lines sorted by product id (DummyJSON matches quantities to
        products in id order). The Idempotency-Key makes a retried placement return the same cart.
        """
        products = self.cart_products(request, id_field="id")
        body = self.post_cart(
            "carts/add",
            {"userId": self.cart_user_id, "products": products},
            request,
            what="POST carts/add",
        )
        currency = self.config.currency
        # What the cart costs after DummyJSON's discounts; floats with binary noise, read exactly.
        total_minor = order_money(body.get("discountedTotal", body.get("total")), currency)
        return PlacedOrder(
            marketplace_order_id=str(body["id"]),
            # A cart has no status: accepted is all DummyJSON ever says about it.
            status=OrderStatus.PENDING,
            total_minor=total_minor,
            currency=currency if total_minor is not None else None,
            lines=accepted_lines(body.get("products"), lambda item: _cart_line(item, currency)),
        )


def _cart_line(item: Mapping[str, Any], currency: str) -> AcceptedLine | None:
    """A cart product: id, quantity, unit price and line total (after discount), as floats."""
    read = cart_item_quantity(item, id_field="id")
    if read is None:
        return None
    product_id, quantity = read
    return AcceptedLine(
        product_id,
        quantity,
        order_money(item.get("price"), currency) if not item.get("discountPercentage") else None,
        order_money(item.get("discountedTotal", item.get("total")), currency),
    )

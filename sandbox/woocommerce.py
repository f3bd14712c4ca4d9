"""Kiondo Market: a WooCommerce store (KES). Store API catalog (prices as minor-unit strings,
totals in X-WP-* headers; `after`/`before` with `date_column`, `include`, and WordPress's
`_fields`); the REST v3 order API lives in sandbox.woocommerce_orders.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from sandbox.assortment import CATEGORIES
from sandbox.draws import hash64
from sandbox.listing import FilteredCatalog, id_values, on_catalog
from sandbox.malformations import huge_text, malformed_title
from sandbox.pages import format_amount, product_page
from sandbox.service import json_response, query_int
from sandbox.woocommerce_format import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    date_param,
    index_from_id,
    product_id,
    wc_error,
)
from sandbox.woocommerce_orders import WooCommerceOrderApi
from sandbox.world import ListedOffer, slugify

__all__ = ["WooCommerceService", "product_id"]

# The Store API's `date_column` values (WooCommerce src/StoreApi/Routes/V1/Products.php).
DATE_COLUMNS = ("date", "date_gmt", "modified", "modified_gmt")
UNKNOWN_CURRENCY_CODE = "KSH"  # what a sloppy plugin writes instead of ISO "KES"
CATEGORY_IDS = {category.slug: 15 + position for position, category in enumerate(CATEGORIES)}


# Kiondo's "Low stock threshold" (WooCommerce > Settings > Products > Inventory; WooCommerce's
# default is 2): the Store API tells `low_stock_remaining` at or below it.
LOW_STOCK_AMOUNT = 4
# The Store API's cap on what one cart may hold of a product (QuantityLimits).
CART_QUANTITY_LIMIT = 9999


def low_stock_remaining(offer: ListedOffer) -> int | None:
    """The Store API's `low_stock_remaining` (ProductSchema::get_low_stock_remaining): the stock
    of a product that manages it, once at or below the low-stock threshold (0 when sold out),
    else null."""
    if offer.tracks_stock and offer.stock <= LOW_STOCK_AMOUNT:
        return max(offer.stock, 0)
    return None


def add_to_cart_maximum(offer: ListedOffer) -> int:
    """The Store API's `add_to_cart.maximum` (QuantityLimits::get_product_quantity_limit): the
    cart cap, lowered to the remaining stock of a product that manages its stock without
    backorders (Kiondo allows none); a stock of 0 is dropped by the limit's array_filter, so
    a sold-out product shows the cap (its `is_in_stock` says it is sold out)."""
    limits = [CART_QUANTITY_LIMIT]
    if offer.tracks_stock and offer.stock:
        limits.append(offer.stock)
    return max(min(limits), 1)


class WooCommerceService(WooCommerceOrderApi, FilteredCatalog):
    """The WooCommerce-format marketplace: the Store API catalog here, REST v3 orders from
    WooCommerceOrderApi."""

    slug = "kiondo"
    routes = (
        ("/wp-json/wc/store/v1/products", "list_products", ("GET",)),
        ("/wp-json/wc/store/v1/products/<int:product_id>", "get_product", ("GET",)),
        ("/product/<product_slug>/", "product_page", ("GET",)),
        ("/wp-json/wc/v3/orders", "create_order", ("POST",)),
        ("/wp-json/wc/v3/orders", "list_orders", ("GET",)),
        ("/wp-json/wc/v3/orders/<int:order_id>", "get_order", ("GET",)),
        ("/wp-json/wc/v3/orders/<int:order_id>", "update_order", ("PUT", "POST", "PATCH")),
    )

    def index_of(self, wc_id: int) -> int | None:
        """The offer index behind a product id, or None."""
        return index_from_id(wc_id, self.count)

    # -- Store API --

    def product_record(self, request: Request, index: int, *, live: bool = False) -> dict[str, Any]:
        """Offer `index` as a Store API product, malformed when its slot says so."""
        offer = self.ctx.offer(self.slug, index, live=live)
        kind = self.ctx.malformation(self.slug, index)
        product = offer.product
        wc_id = product_id(index - 1 if kind == "duplicate_id" else index)
        sentences = product.description_sentences()
        description = "".join(f"<p>{escape(sentence)}</p>" for sentence in sentences)
        if kind == "huge_description":
            description = f"<p>{escape(huge_text(sentences))}</p>"
        name = malformed_title(offer.title, index, kind)
        slug = f"{slugify(offer.title)}-{product_id(index)}"
        base = self.base_url(request)
        image = self.ctx.image_url(request, offer)
        on_sale = offer.list_price_minor is not None
        regular = offer.list_price_minor if on_sale else offer.price_minor
        prices: dict[str, Any] = {
            "price": str(offer.price_minor),
            "regular_price": str(regular),
            "sale_price": str(offer.price_minor),
            "price_range": None,
            "currency_code": offer.currency,
            "currency_symbol": "KSh",
            "currency_minor_unit": 2,
            "currency_decimal_separator": ".",
            "currency_thousand_separator": ",",
            "currency_prefix": "KSh ",
            "currency_suffix": "",
        }
        if kind == "missing_price":
            del prices["price"]
        elif kind == "negative_price":
            prices["price"] = f"-{prices['price']}"
        elif kind == "unknown_currency":
            prices["currency_code"] = UNKNOWN_CURRENCY_CODE
        category = product.category
        brand_id = 200 + hash64("brand", product.brand) % 800
        return {
            "id": wc_id,
            "name": name,
            "slug": slug,
            "parent": 0,
            "type": "simple",
            "variation": "",
            "permalink": f"{base}/product/{slug}/",
            "sku": product.model,
            "short_description": f"<p>{escape(sentences[0])}</p>",
            "description": description,
            "on_sale": on_sale,
            "prices": prices,
            "price_html": f'<span class="woocommerce-Price-amount amount">KSh&nbsp;{format_amount(offer.price_minor, offer.currency)}</span>',
            "average_rating": f"{offer.rating_centi / 100:.2f}",
            "review_count": offer.review_count,
            "images": [
                {
                    "id": wc_id + 1,
                    "src": image,
                    "thumbnail": image,
                    "srcset": "",
                    "sizes": "",
                    "name": f"{product.key}.svg",
                    "alt": product.display_name,
                }
            ],
            "categories": [
                {
                    "id": CATEGORY_IDS[category.slug],
                    "name": category.name,
                    "slug": category.slug,
                    "link": f"{base}/product-category/{category.slug}/",
                }
            ],
            "tags": [
                {"id": 900 + n, "name": tag, "slug": slugify(tag)}
                for n, tag in enumerate(category.tags)
            ],
            "brands": [
                {
                    "id": brand_id,
                    "name": product.brand,
                    "slug": slugify(product.brand),
                    "link": f"{base}/brand/{slugify(product.brand)}/",
                }
            ],
            "attributes": [],
            "variations": [],
            "has_options": False,
            "is_purchasable": True,
            "is_in_stock": offer.available,
            "is_on_backorder": False,
            "low_stock_remaining": low_stock_remaining(offer),
            "sold_individually": False,
            "add_to_cart": {
                "text": "Add to cart",
                "description": f"Add “{offer.title}” to your cart",
                "url": f"{base}/?add-to-cart={wc_id}",
                "minimum": 1,
                "maximum": add_to_cart_maximum(offer),
                "multiple_of": 1,
            },
        }

    def list_products(self, request: Request) -> Response:
        """GET /wp-json/wc/store/v1/products?page=&per_page= with X-WP-Total/TotalPages and Link.

        As the Store API: `after`/`before` (ISO 8601) compare with `date_column` (date,
        date_gmt, modified or modified_gmt; dates without an offset are the store's time, or
        GMT for the *_gmt columns), `include` keeps the listed ids; and as every WordPress REST
        route, `_fields` keeps only the named fields. Pages count what the filters keep."""
        unlisted = self.observe()
        per_page = query_int(
            request, "per_page", DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE
        )
        page = query_int(request, "page", 1, minimum=1)
        selected = self._selection(request, unlisted)
        total = len(selected)
        total_pages = math.ceil(total / per_page) if total else 0
        start = (page - 1) * per_page
        chosen = selected[start : start + per_page]
        fields = [name.strip() for name in request.args.get("_fields", "").split(",")]
        fields = [name for name in fields if name]
        if fields == ["id"]:
            records: list[dict[str, Any]] = [{"id": self.listed_id(i)} for i in chosen]
        else:
            records = [self.product_record(request, i) for i in chosen]
            if fields:
                records = [{k: v for k, v in r.items() if k in fields} for r in records]
        url = f"{self.base_url(request)}/wp-json/wc/store/v1/products"
        kept = [(name, value) for name, value in request.args.items(multi=True) if name != "page"]
        links = []
        if page > 1:
            previous = urlencode([*kept, ("page", min(page - 1, max(total_pages, 1)))])
            links.append(f'<{url}?{previous}>; rel="prev"')
        if page < total_pages:
            links.append(f'<{url}?{urlencode([*kept, ("page", page + 1)])}>; rel="next"')
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(total_pages)}
        if links:
            headers["Link"] = ", ".join(links)
        return json_response(records, headers=headers)

    def product_id_of(self, index: int) -> int:
        """The WooCommerce post id of offer `index`."""
        return product_id(index)

    def _selection(self, request: Request, unlisted: frozenset[int]) -> Sequence[int]:
        """The indexes the request's filters keep, in listing order."""
        selected: Sequence[int] = on_catalog(self.count, unlisted)
        include = request.args.get("include")
        if include:
            selected = sorted(self.listed_as(id_values(include.split(","))) - unlisted)
        column = request.args.get("date_column", "date")
        if column not in DATE_COLUMNS:
            raise wc_error(400, "rest_invalid_param", "Invalid parameter(s): date_column")
        gmt = column.endswith("_gmt")
        after = date_param(request, "after", gmt)
        before = date_param(request, "before", gmt)
        modified = column.startswith("modified")
        if modified and after is not None:
            selected = self.modified_since(selected, after, inclusive=False)
            after = None
        if after is None and before is None:
            return selected

        def moment(index: int) -> datetime:
            offer = self.ctx.offer(self.slug, index)
            return self.ctx.modified_at(self.slug, offer) if modified else offer.created_at

        return [
            i
            for i in selected
            if (after is None or moment(i) > after) and (before is None or moment(i) < before)
        ]

    def get_product(self, request: Request, product_id: int) -> Response:
        """GET /wp-json/wc/store/v1/products/<id>: the live offer (price_drift applies)."""
        unlisted = self.observe()
        index = self.index_of(product_id)
        if (
            index is None
            or index in unlisted
            or self.ctx.malformation(self.slug, index) == "duplicate_id"
        ):
            raise wc_error(404, "woocommerce_rest_product_invalid_id", "Invalid product ID.")
        return json_response(self.product_record(request, index, live=True))

    def product_page(self, request: Request, product_slug: str) -> Response:
        """The storefront page behind a permalink (the slug ends with the product id)."""
        tail = product_slug.rsplit("-", 1)[-1]
        index = self.index_of(int(tail)) if tail.isdigit() else None
        if index is None:
            return Response("Not Found", status=404, content_type="text/plain")
        offer = self.ctx.offer(self.slug, index)
        return product_page(self.profile.name, offer, self.ctx.image_url(request, offer))

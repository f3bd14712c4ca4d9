"""ShopWave: a Shopify store (USD). Public ``/products.json`` catalog, Admin REST product list
(``updated_at_min``, ``ids``, ``fields``, cursor pages through ``page_info`` in Link headers) and
lookup; the Admin GraphQL order API (``orderCreate`` / ``order`` / ``orders`` / ``orderCancel``)
lives in sandbox.shopify_orders.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from bisect import bisect_right
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from html import escape
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from sandbox.listing import FilteredCatalog, id_values, on_catalog
from sandbox.malformations import huge_text, malformed_title
from sandbox.pages import format_amount, product_page
from sandbox.service import JsonError, json_response, query_int
from sandbox.shopify_format import (
    PRODUCT_ID_BASE,
    PRODUCT_ID_STRIDE,
    index_from_id,
    product_id,
    require_token,
    variant_id,
)
from sandbox.shopify_orders import ShopifyOrderApi
from sandbox.world import slugify

IMAGE_ID_BASE = 30_000_000_000_000
MAX_PAGE_SIZE = 250
DEFAULT_PAGE_SIZE = 30
ADMIN_DEFAULT_PAGE_SIZE = 50  # the Admin REST API's default `limit`
# What a page_info cursor carries besides the position: the first request's filters, which
# may not be sent again beside it.
CURSOR_FILTERS = ("updated_at_min", "ids")
SHOP_TIMEZONE = timezone(timedelta(hours=-5))


def _parse_shop_time(raw: str) -> datetime:
    """An Admin API date filter: ISO 8601, in the shop's time zone when it has no offset."""
    try:
        moment = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        raise JsonError(400, {"errors": {"updated_at_min": "is invalid"}}) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=SHOP_TIMEZONE)


def _write_cursor(filters: dict[str, str], last_index: int) -> str:
    text = json.dumps({"filters": filters, "last": last_index}, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[dict[str, str], int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        filters = {str(k): str(v) for k, v in data["filters"].items() if k in CURSOR_FILTERS}
        return filters, int(data["last"])
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
        raise JsonError(400, {"errors": {"page_info": "Invalid value."}}) from None


def _first_after(selected: Sequence[int], after: int) -> int:
    """The position in `selected` (ascending) of the first index past `after`."""
    return bisect_right(selected, after)


def _shop_time(moment: datetime) -> str:
    return moment.astimezone(SHOP_TIMEZONE).isoformat()


class ShopifyService(ShopifyOrderApi, FilteredCatalog):
    """The Shopify-format marketplace: catalog and Admin REST products here, the Admin GraphQL
    order API from ShopifyOrderApi."""

    slug = "shopwave"
    routes = (
        ("/products.json", "list_products", ("GET",)),
        ("/products/<handle>", "product_page", ("GET",)),
        ("/admin/api/<version>/products.json", "admin_products", ("GET",)),
        ("/admin/api/<version>/products/<int:product_id>.json", "admin_product", ("GET",)),
        ("/admin/api/<version>/graphql.json", "graphql", ("POST",)),
    )

    # -- catalog --

    def product_record(self, request: Request, index: int, *, live: bool = False) -> dict[str, Any]:
        """Offer `index` as a Shopify product, malformed when its slot says so."""
        offer = self.ctx.offer(self.slug, index, live=live)
        kind = self.ctx.malformation(self.slug, index)
        product = offer.product
        pid = product_id(index - 1 if kind == "duplicate_id" else index)
        sentences = product.description_sentences()
        if kind == "huge_description":
            body_html = f"<p>{escape(huge_text(sentences))}</p>"
        else:
            items = "".join(f"<li>{escape(sentence)}</li>" for sentence in sentences[1:])
            body_html = f"<p>{escape(sentences[0])}</p><ul>{items}</ul>"
        title = malformed_title(offer.title, index, kind)
        tags = sorted({*product.category.tags, *(("gift",) if product.gift else ())})
        created = _shop_time(offer.created_at)
        updated = _shop_time(self.ctx.modified_at(self.slug, offer))
        variant: dict[str, Any] = {
            "id": variant_id(index),
            "product_id": pid,
            "title": "Default Title",
            "option1": "Default Title",
            "option2": None,
            "option3": None,
            "sku": product.model,
            "requires_shipping": True,
            "taxable": True,
            "featured_image": None,
            "available": offer.available,
            "price": format_amount(offer.price_minor, offer.currency),
            "grams": 500,
            "compare_at_price": (
                format_amount(offer.list_price_minor, offer.currency)
                if offer.list_price_minor
                else None
            ),
            "position": 1,
            "barcode": product.gtin if offer.shows_gtin else None,
            "inventory_quantity": offer.stock,
            # Untracked inventory: the quantity is no limit and orders of any size are taken.
            "inventory_management": "shopify" if offer.tracks_stock else None,
            "inventory_policy": "deny",
            "created_at": created,
            "updated_at": updated,
        }
        if kind == "missing_price":
            del variant["price"]
        elif kind == "negative_price":
            variant["price"] = "-" + variant["price"]
        elif kind == "unknown_currency":
            # Shopify carries no currency: the sloppy-price case is a non-numeric string.
            variant["price"] = "$" + variant["price"]
        return {
            "id": pid,
            "title": title,
            "handle": f"{slugify(offer.title)}-{index + 1}",
            "body_html": body_html,
            "published_at": created,
            "created_at": created,
            "updated_at": updated,
            "vendor": product.brand,
            "product_type": product.category.name,
            "tags": tags,
            "variants": [variant],
            "images": [
                {
                    "id": IMAGE_ID_BASE + index,
                    "created_at": created,
                    "position": 1,
                    "updated_at": updated,
                    "product_id": pid,
                    "variant_ids": [],
                    "src": self.ctx.image_url(request, offer),
                    "width": 600,
                    "height": 600,
                }
            ],
            "options": [{"name": "Title", "position": 1, "values": ["Default Title"]}],
        }

    def list_products(self, request: Request) -> Response:
        """GET /products.json?limit=&page= (page numbers from 1; an empty list past the end)."""
        unlisted = self.observe()
        limit = query_int(request, "limit", DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
        page = query_int(request, "page", 1, minimum=1)
        start = (page - 1) * limit
        listed = on_catalog(self.count, unlisted)
        products = [self.product_record(request, i) for i in listed[start : start + limit]]
        return json_response({"products": products})

    def product_page(self, request: Request, handle: str) -> Response:
        """The storefront page behind a product's handle."""
        match = re.search(r"-(\d+)$", handle)
        index = int(match.group(1)) - 1 if match else -1
        if not 0 <= index < self.count:
            return Response("Not Found", status=404, content_type="text/plain")
        offer = self.ctx.offer(self.slug, index)
        return product_page(self.profile.name, offer, self.ctx.image_url(request, offer))

    # -- admin --

    def admin_product(self, request: Request, version: str, product_id: int) -> Response:
        """GET /admin/api/<version>/products/<id>.json: the live offer (price_drift applies)."""
        require_token(request)
        unlisted = self.observe()
        index = index_from_id(product_id, PRODUCT_ID_BASE, PRODUCT_ID_STRIDE, self.count)
        if (
            index is None
            or index in unlisted
            or self.ctx.malformation(self.slug, index) == "duplicate_id"
        ):
            raise JsonError(404, {"errors": "Not Found"})
        return json_response({"product": self.product_record(request, index, live=True)})

    def admin_products(self, request: Request, version: str) -> Response:
        """GET /admin/api/<version>/products.json: every product by id, ascending, `limit`
        (1-250, default 50) a page. The first request may filter with `updated_at_min` (ISO 8601;
        without an offset, the shop's time zone) and `ids` (comma-separated); `fields` keeps only
        the named top-level fields. The next page is the Link header's rel="next" URL, whose
        `page_info` cursor carries the filters: beside it only `limit` and `fields` may be sent
        (Shopify answers 400 otherwise)."""
        require_token(request)
        unlisted = self.observe()
        limit = query_int(
            request, "limit", ADMIN_DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE
        )
        cursor = request.args.get("page_info")
        if cursor:
            for name in CURSOR_FILTERS:
                if name in request.args:
                    raise JsonError(
                        400,
                        {"errors": {name: f"{name} cannot be passed when page_info is present"}},
                    )
            filters, after = _read_cursor(cursor)
        else:
            filters = {
                name: request.args[name] for name in CURSOR_FILTERS if request.args.get(name)
            }
            after = -1
        selected = self._admin_selection(filters, unlisted)
        start = _first_after(selected, after)
        chosen = selected[start : start + limit]
        fields = [name for name in request.args.get("fields", "").split(",") if name.strip()]
        if fields == ["id"]:
            products: list[dict[str, Any]] = [{"id": self.listed_id(i)} for i in chosen]
        else:
            products = [self.product_record(request, i) for i in chosen]
            if fields:
                keep = {name.strip() for name in fields}
                products = [{k: v for k, v in p.items() if k in keep} for p in products]
        headers = {}
        if start + limit < len(selected) and chosen:
            query = {"limit": str(limit), "page_info": _write_cursor(filters, chosen[-1])}
            if request.args.get("fields"):
                query["fields"] = request.args["fields"]
            url = f"{self.base_url(request)}/admin/api/{version}/products.json"
            headers["Link"] = f'<{url}?{urlencode(query)}>; rel="next"'
        return json_response({"products": products}, headers=headers)

    def index_of(self, product_id: int) -> int | None:
        """The offer index behind a product id, or None."""
        return index_from_id(product_id, PRODUCT_ID_BASE, PRODUCT_ID_STRIDE, self.count)

    def product_id_of(self, index: int) -> int:
        """The product id of offer `index`."""
        return product_id(index)

    def _admin_selection(self, filters: dict[str, str], unlisted: frozenset[int]) -> Sequence[int]:
        """The indexes the filters select, ascending (ids ascend with indexes)."""
        selected: Sequence[int] = on_catalog(self.count, unlisted)
        if "ids" in filters:
            selected = sorted(self.listed_as(id_values(filters["ids"].split(","))) - unlisted)
        if "updated_at_min" in filters:
            since = _parse_shop_time(filters["updated_at_min"])
            selected = self.modified_since(selected, since, inclusive=True)
        return selected

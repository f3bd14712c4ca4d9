"""ShopWave: a Shopify store (USD). Public ``/products.json`` catalog, Admin REST product list
(``updated_at_min``, ``ids``, ``fields``, cursor pages through ``page_info`` in Link headers) and
lookup, and Admin GraphQL ``orderCreate`` / ``order`` / ``orders`` / ``orderCancel``.

The GraphQL endpoint does not parse GraphQL: it recognizes the operation by the first field of
the selection (``mutation { orderCreate(...) {...} }`` → orderCreate) and reads only the
variables, answering with a fixed superset of the fields OneCart asks for.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from bisect import bisect_right
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from html import escape
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from onecart.money import MoneyError, to_minor_units
from sandbox.draws import hash64
from sandbox.listing import FilteredCatalog, id_values, on_catalog
from sandbox.malformations import broken_title, html_title, huge_text
from sandbox.orders import (
    CANCELLED,
    CONFIRMED,
    DELAYED,
    DELIVERED,
    IN_TRANSIT,
    PENDING,
    PROCESSING,
    SHIPPED,
    OrderLine,
    OrderProgress,
    SandboxOrder,
)
from sandbox.pages import format_amount, product_page
from sandbox.service import JsonError, json_response, query_int, read_json_body
from sandbox.world import slugify

PRODUCT_ID_BASE = 8_000_000_000_000
PRODUCT_ID_STRIDE = 37
VARIANT_ID_BASE = 45_000_000_000_000
VARIANT_ID_STRIDE = 53
IMAGE_ID_BASE = 30_000_000_000_000
MAX_PAGE_SIZE = 250
DEFAULT_PAGE_SIZE = 30
ADMIN_DEFAULT_PAGE_SIZE = 50  # the Admin REST API's default `limit`
# What a page_info cursor carries besides the position: the first request's filters, which
# may not be sent again beside it.
CURSOR_FILTERS = ("updated_at_min", "ids")
SHOP_TIMEZONE = timezone(timedelta(hours=-5))
UNAUTHORIZED = {
    "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
}

_OPERATION = re.compile(r"\{\s*(?:\w+\s*:\s*)?(\w+)")
_ORDER_GID = re.compile(r"^gid://shopify/Order/(\d+)$")
_VARIANT_GID = re.compile(r"^gid://shopify/ProductVariant/(\d+)$")
_SOURCE_IDENTIFIER = re.compile(r"source_identifier:\s*(?:\"([^\"]*)\"|'([^']*)'|(\S+))")


def product_id(index: int) -> int:
    """The Shopify product id of offer `index`."""
    return PRODUCT_ID_BASE + index * PRODUCT_ID_STRIDE


def variant_id(index: int) -> int:
    """The id of offer `index`'s only variant."""
    return VARIANT_ID_BASE + index * VARIANT_ID_STRIDE


def _index_of(value: int, base: int, stride: int, count: int) -> int | None:
    offset = value - base
    if offset < 0 or offset % stride:
        return None
    index = offset // stride
    return index if index < count else None


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


def _iso_utc(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


class ShopifyService(FilteredCatalog):
    """The Shopify-format marketplace."""

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
        title = offer.title
        if kind == "html_title":
            title = html_title(title, index)
        elif kind == "broken_utf8":
            title = broken_title(title)
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

    def _require_token(self, request: Request) -> None:
        if not request.headers.get("X-Shopify-Access-Token", "").strip():
            raise JsonError(401, UNAUTHORIZED)

    def admin_product(self, request: Request, version: str, product_id: int) -> Response:
        """GET /admin/api/<version>/products/<id>.json: the live offer (price_drift applies)."""
        self._require_token(request)
        unlisted = self.observe()
        index = _index_of(product_id, PRODUCT_ID_BASE, PRODUCT_ID_STRIDE, self.count)
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
        self._require_token(request)
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
        return _index_of(product_id, PRODUCT_ID_BASE, PRODUCT_ID_STRIDE, self.count)

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

    def graphql(self, request: Request, version: str) -> Response:
        """POST /admin/api/<version>/graphql.json: orderCreate, order, orders, orderCancel."""
        self._require_token(request)
        payload = read_json_body(
            request, {"errors": {"query": "Required parameter missing or invalid"}}
        )
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            raise JsonError(400, {"errors": {"query": "Required parameter missing or invalid"}})
        variables = payload.get("variables") or {}
        if not isinstance(variables, dict):
            raise JsonError(400, {"errors": {"variables": "must be an object"}})
        match = _OPERATION.search(payload["query"])
        operation = match.group(1) if match else ""
        handlers = {
            "orderCreate": self._order_create,
            "order": self._order,
            "orders": self._orders,
            "orderCancel": self._order_cancel,
        }
        if operation not in handlers:
            return json_response(
                {"errors": [{"message": f"Field '{operation}' doesn't exist on type 'QueryRoot'"}]}
            )
        return handlers[operation](request, variables)

    def _order_create(self, request: Request, variables: dict[str, Any]) -> Response:
        plan = self.ctx.knobs.plan_placement(self.slug)
        if plan.fail_before:
            raise JsonError(503, {"errors": "Service Unavailable (fail_next_orders)"})
        if plan.refuse:
            return self._create_result(
                None,
                [
                    {
                        "field": ["order", "lineItems"],
                        "message": "Unable to create order: items are not available",
                    }
                ],
            )
        order_input = variables.get("order")
        if not isinstance(order_input, dict):
            return self._create_result(
                None, [{"field": ["order"], "message": "Order input is required"}]
            )
        currency = order_input.get("currency") or self.profile.currency
        line_items = order_input.get("lineItems")
        errors: list[dict[str, Any]] = []
        lines: list[OrderLine] = []
        if not isinstance(line_items, list) or not line_items:
            errors.append({"field": ["order", "lineItems"], "message": "Line items can't be empty"})
            line_items = []
        for position, item in enumerate(line_items):
            field = ["order", "lineItems", str(position)]
            if not isinstance(item, dict):
                errors.append({"field": field, "message": "Line item is invalid"})
                continue
            match = _VARIANT_GID.match(str(item.get("variantId", "")))
            index = (
                _index_of(int(match.group(1)), VARIANT_ID_BASE, VARIANT_ID_STRIDE, self.count)
                if match
                else None
            )
            quantity = item.get("quantity")
            if index is not None and plan.is_delisted(str(product_id(index))):
                index = None
            if index is None and plan.drop_unknown_lines:
                continue  # a sloppy server drops what it does not know and says nothing
            if index is None:
                errors.append(
                    {
                        "field": [*field, "variantId"],
                        "message": f"Variant {item.get('variantId')!r} does not exist",
                    }
                )
                continue
            if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
                errors.append(
                    {"field": [*field, "quantity"], "message": "Quantity must be greater than 0"}
                )
                continue
            offer = self.ctx.offer(self.slug, index, live=True)
            sent_price: int | None = None
            amount = ((item.get("priceSet") or {}).get("shopMoney") or {}).get("amount")
            if amount is not None:
                try:
                    sent_price = to_minor_units(Decimal(str(amount)), currency)
                except (InvalidOperation, MoneyError):
                    errors.append({"field": [*field, "priceSet"], "message": "Price is invalid"})
                    continue
            lines.append(
                OrderLine(
                    index,
                    str(product_id(index)),
                    offer.title,
                    offer.product.model,
                    plan.quantity(quantity),
                    plan.billed_unit_price(sent_price, offer.price_minor),
                )
            )
        if errors:
            return self._create_result(None, errors)
        knobs = self.ctx.knobs.get(self.slug)
        order, _ = self.ctx.orders.place(
            self.slug,
            idempotency_key=request.headers.get("Idempotency-Key"),
            reference=order_input.get("sourceIdentifier"),
            currency=currency,
            lines=lines,
            cancel_rate=knobs.cancel_rate,
            delay_rate=knobs.delay_rate,
            extra={
                "email": order_input.get("email"),
                "shippingAddress": order_input.get("shippingAddress"),
            },
        )
        return self.ctx.finish_placement(
            self.slug,
            plan,
            order,
            self._create_result(self._order_node(order), []),
            json_response({"errors": "Internal Server Error"}, 500),
        )

    def _create_result(self, node: dict[str, Any] | None, errors: list[dict[str, Any]]) -> Response:
        return json_response({"data": {"orderCreate": {"order": node, "userErrors": errors}}})

    def _lookup_order(self, gid: object) -> SandboxOrder | None:
        match = _ORDER_GID.match(str(gid or ""))
        return self.ctx.orders.get(self.slug, int(match.group(1))) if match else None

    def _order(self, request: Request, variables: dict[str, Any]) -> Response:
        order = self._lookup_order(variables.get("id"))
        return json_response({"data": {"order": self._order_node(order) if order else None}})

    def _orders(self, request: Request, variables: dict[str, Any]) -> Response:
        search = str(variables.get("query") or "")
        match = _SOURCE_IDENTIFIER.search(search)
        if match:
            reference = next(group for group in match.groups() if group is not None)
            orders = self.ctx.orders.find_by_reference(
                self.slug,
                reference,
                search_lag_s=self.ctx.knobs.get(self.slug).search_lag_ms / 1000,
            )
        else:
            orders = self.ctx.orders.list(self.slug)
        first = variables.get("first")
        if isinstance(first, int) and first > 0:
            orders = orders[:first]
        nodes = [self._order_node(order) for order in orders]
        return json_response({"data": {"orders": {"nodes": nodes}}})

    def _order_cancel(self, request: Request, variables: dict[str, Any]) -> Response:
        order = self._lookup_order(variables.get("orderId"))
        if order is None:
            error = {"code": "NOT_FOUND", "field": ["orderId"], "message": "Order does not exist"}
            return self._cancel_result(None, [error])
        plan = self.ctx.knobs.plan_cancel(self.slug)
        step = self.ctx.knobs.get(self.slug).order_step_seconds
        outcome = self.ctx.orders.cancel(
            order, step, reason=str(variables.get("reason") or "CUSTOMER")
        )
        if not outcome.cancelled:
            error = {
                "code": "INVALID",
                "field": ["orderId"],
                "message": "Cannot cancel an order that has been fulfilled",
            }
            return self._cancel_result(None, [error])
        job = {
            "id": f"gid://shopify/Job/{hash64('cancel-job', order.number) % 10**12}",
            "done": True,
        }
        return self.ctx.finish_cancel(
            plan,
            self._cancel_result(job, []),
            json_response({"errors": "Internal Server Error"}, 500),
        )

    def _cancel_result(self, job: dict[str, Any] | None, errors: list[dict[str, Any]]) -> Response:
        return json_response(
            {
                "data": {
                    "orderCancel": {
                        "job": job,
                        "orderCancelUserErrors": errors,
                        "userErrors": errors,
                    }
                }
            }
        )

    def _order_node(self, order: SandboxOrder) -> dict[str, Any]:
        step = self.ctx.knobs.get(self.slug).order_step_seconds
        progress = self.ctx.orders.progress(order, step)
        money = {
            "amount": format_amount(order.total_minor, order.currency),
            "currencyCode": order.currency,
        }
        return {
            "id": f"gid://shopify/Order/{order.number}",
            "name": f"#{order.number}",
            "sourceIdentifier": order.reference,
            "createdAt": _iso_utc(order.created_at),
            "displayFinancialStatus": "REFUNDED" if progress.status == CANCELLED else "PAID",
            "displayFulfillmentStatus": _fulfillment_status(progress),
            "cancelledAt": _iso_utc(progress.cancelled_at),
            "cancelReason": (order.cancel_reason or "").upper() or None
            if progress.cancelled_at
            else None,
            "totalPriceSet": {"shopMoney": money},
            "lineItems": {
                "nodes": [
                    {
                        "title": line.title,
                        "sku": line.sku,
                        "quantity": line.quantity,
                        "currentQuantity": 0 if progress.status == CANCELLED else line.quantity,
                        "variant": {
                            "id": f"gid://shopify/ProductVariant/{variant_id(line.offer_index)}"
                        },
                        "product": {"id": f"gid://shopify/Product/{line.external_id}"},
                        "originalUnitPriceSet": {
                            "shopMoney": {
                                "amount": format_amount(line.unit_price_minor, order.currency),
                                "currencyCode": order.currency,
                            }
                        },
                    }
                    for line in order.lines
                ]
            },
            "fulfillments": _fulfillments(progress, order.number),
        }


def _fulfillment_status(progress: OrderProgress) -> str:
    return {PROCESSING: "IN_PROGRESS", SHIPPED: "FULFILLED", DELIVERED: "FULFILLED"}.get(
        progress.status, "UNFULFILLED"
    )


# Our shipment steps as Shopify's FulfillmentEventStatus / FulfillmentDisplayStatus words.
SHIPMENT_DISPLAY_STATUS = {
    CONFIRMED: "CONFIRMED",
    IN_TRANSIT: "IN_TRANSIT",
    DELAYED: "DELAYED",
    DELIVERED: "DELIVERED",
}


def _fulfillments(progress: OrderProgress, order_number: int) -> list[dict[str, Any]]:
    """The order's fulfillments as the Admin API shows them: none before it ships (an open one
    while processing), then one with its tracking info, its latest shipment status as
    displayStatus and the carrier's events (status, happenedAt) oldest first."""
    if progress.status in (PENDING, CANCELLED):
        return []
    if progress.status == PROCESSING:
        return [
            {
                "status": "OPEN",
                "displayStatus": "CONFIRMED",
                "trackingInfo": [],
                "events": {"nodes": []},
            }
        ]
    events = [
        {
            "id": f"gid://shopify/FulfillmentEvent/{order_number * 100 + n}",
            "status": SHIPMENT_DISPLAY_STATUS[step],
            "happenedAt": _iso_utc(moment),
        }
        for n, (step, moment) in enumerate(progress.shipment_events, start=1)
    ]
    return [
        {
            "id": f"gid://shopify/Fulfillment/{order_number}",
            "status": "SUCCESS",
            "displayStatus": SHIPMENT_DISPLAY_STATUS.get(progress.shipment or "", "CONFIRMED"),
            "createdAt": _iso_utc(progress.shipped_at),
            "deliveredAt": _iso_utc(progress.delivered_at),
            "trackingInfo": [
                {
                    "company": progress.carrier,
                    "number": progress.tracking_number,
                    "url": progress.tracking_url,
                }
            ],
            "events": {"nodes": events},
        }
    ]

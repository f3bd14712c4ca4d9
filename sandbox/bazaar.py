"""Euro Bazaar: a custom JSON API (EUR, a few items in GBP) that OneCart reads through the
declarative adapter. Cursor-paginated listings behind an ``X-Api-Key`` header; prices as
"amount CUR" text. Cursors are opaque to clients (base64 of a versioned offset)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from werkzeug.wrappers import Request, Response

from onecart.money import MoneyError, parse_decimal, to_minor_units
from sandbox.malformations import huge_text, malformed_title
from sandbox.orders import PENDING, OrderLine, SandboxOrder
from sandbox.pages import format_amount, product_page
from sandbox.service import (
    JSON_CONTENT_TYPE,
    JsonError,
    JsonRecordCatalog,
    conditional_page,
    encode_json,
    json_response,
    query_int,
    read_json_body,
)
from sandbox.world import ListedOffer

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
UNKNOWN_CURRENCY_CODE = "EUX"  # not an ISO 4217 code
CURSOR_VERSION = "v1"
# The bazaar's own word for an order nobody has touched yet.
ORDER_STATUS_WORDS = {PENDING: "received"}


def listing_sku(index: int) -> str:
    """The bazaar's external id of offer `index`."""
    return f"BZ-{index + 1:07d}"


def encode_cursor(offset: int) -> str:
    """An opaque cursor for the listing at `offset`."""
    return base64.urlsafe_b64encode(f"{CURSOR_VERSION}:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The offset inside a cursor, or ValueError."""
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        version, _, offset = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(cursor) from exc
    if version != CURSOR_VERSION or not offset.isdigit():
        raise ValueError(cursor)
    return int(offset)


def _error(status: int, code: str, message: str) -> JsonError:
    return JsonError(status, {"error": {"code": code, "message": message}})


class BazaarService(JsonRecordCatalog):
    """The custom-JSON marketplace for the declarative adapter."""

    slug = "bazaar"
    routes = (
        ("/api/v1/listings", "list_listings", ("GET",)),
        ("/api/v1/listings/<sku>", "get_listing", ("GET",)),
        ("/listings/<sku>", "listing_page", ("GET",)),
        ("/api/v1/orders", "create_order", ("POST",)),
        ("/api/v1/orders", "search_orders", ("GET",)),
        ("/api/v1/orders/<order_id>", "get_order", ("GET",)),
        ("/api/v1/orders/<order_id>/cancel", "cancel_order", ("POST",)),
    )

    def _require_key(self, request: Request) -> None:
        if not request.headers.get("X-Api-Key", "").strip():
            raise _error(401, "unauthorized", "Missing or invalid X-Api-Key header")

    def _index_of(self, sku: str) -> int | None:
        number = sku.removeprefix("BZ-")
        if not number.isdigit():
            return None
        index = int(number) - 1
        return index if 0 <= index < self.count else None

    def render_record(
        self, request: Request, offer: ListedOffer, kind: str | None
    ) -> dict[str, Any]:
        """`offer` as a bazaar listing, malformed as `kind` says."""
        index = offer.index
        product = offer.product
        category = product.category
        sentences = product.description_sentences()
        name = malformed_title(offer.title, index, kind)
        amount = format_amount(offer.price_minor, offer.currency)
        pricing: dict[str, str] = {"display": f"{amount} {offer.currency}"}
        if kind == "missing_price":
            pricing = {}
        elif kind == "negative_price":
            pricing = {"display": f"-{amount} {offer.currency}"}
        elif kind == "unknown_currency":
            pricing = {"display": f"{amount} {UNKNOWN_CURRENCY_CODE}"}
        return {
            "sku": listing_sku(index - 1 if kind == "duplicate_id" else index),
            "name": name,
            "summary": huge_text(sentences)
            if kind == "huge_description"
            else " ".join(sentences[:3]),
            "pricing": pricing,
            "media": {"thumb": self.ctx.image_url(request, offer)},
            "url": f"{self.base_url(request)}/listings/{listing_sku(index)}",
            "taxonomy": {"path": list(category.path), "leaf": category.path[-1]},
            "maker": {"name": product.brand, "model": product.model},
            "ean": product.gtin if offer.shows_gtin else None,
            "score": round(offer.rating_centi / 100, 1),
            "votes": offer.review_count,
            "in_stock": offer.available,
            "stock_level": offer.stock,
        }

    def list_listings(self, request: Request) -> Response:
        """GET /api/v1/listings?limit=&cursor= → {data: {items}, next_cursor}."""
        self._require_key(request)
        limit = query_int(request, "limit", DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
        cursor = request.args.get("cursor")
        offset = 0
        if cursor:
            try:
                offset = decode_cursor(cursor)
            except ValueError:
                raise _error(
                    400, "invalid_cursor", "The cursor is not one this API issued"
                ) from None
        stop = min(offset + limit, self.count)
        next_cursor = encode_cursor(stop) if stop < self.count else None
        page = range(min(offset, stop), stop)

        def build() -> Response:
            # {"data": {"items": [...]}, "next_cursor": ...} from the records' kept bytes.
            items = self.ctx.catalog_records(
                request, self.slug, "listing", page, lambda i: self.rendered_record(request, i)
            )
            body = b"".join(
                (
                    b'{"data":{"items":[',
                    b",".join(items),
                    b']},"next_cursor":',
                    encode_json(next_cursor),
                    b"}",
                )
            )
            return Response(body, content_type=JSON_CONTENT_TYPE)

        # An ETag on every page, 304 to a request that holds it (conditional GETs, RFC 9110).
        return conditional_page(self.ctx, request, self.slug, page, build)

    def get_listing(self, request: Request, sku: str) -> Response:
        """GET /api/v1/listings/<sku>: the live listing (price_drift applies)."""
        self._require_key(request)
        index = self._index_of(sku)
        if index is None or self.ctx.malformation(self.slug, index) == "duplicate_id":
            raise _error(404, "not_found", f"No listing {sku}")
        return json_response({"data": self.product_record(request, index, live=True)})

    def listing_page(self, request: Request, sku: str) -> Response:
        """The listing's page (where a shopper is handed off to)."""
        index = self._index_of(sku)
        if index is None:
            return Response("Not Found", status=404, content_type="text/plain")
        offer = self.ctx.offer(self.slug, index)
        return product_page(self.profile.name, offer, self.ctx.image_url(request, offer))

    # --- Orders (a custom JSON order API, read through the declarative adapter's `orders`) ----

    def create_order(self, request: Request) -> Response:
        """POST /api/v1/orders {external_reference, currency, items: [{sku, quantity,
        unit_price}], shipping} → 201 {data: order} (200 with the first order on a replayed
        Idempotency-Key). `unit_price` (decimal string) is what the line costs when sent."""
        self._require_key(request)
        plan = self.ctx.knobs.plan_placement(self.slug)
        if plan.fail_before:
            raise _error(503, "unavailable", "Service temporarily unavailable")
        if plan.refuse:
            raise _error(422, "order_refused", "The order cannot be accepted right now")
        body = read_json_body(request, {"error": {"code": "invalid_json", "message": "Bad JSON"}})
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise _error(422, "invalid_items", "items must be a non-empty list")
        currency = str(body.get("currency") or self.profile.currency)
        lines: list[OrderLine] = []
        for item in items:
            if not isinstance(item, dict):
                raise _error(422, "invalid_items", "each item needs a sku and a quantity")
            sku = str(item.get("sku", ""))
            index = self._index_of(sku)
            if index is not None and plan.is_delisted(sku):
                index = None
            if index is None and plan.drop_unknown_lines:
                continue
            if index is None:
                raise _error(422, "unknown_sku", f"No listing {sku}")
            quantity = item.get("quantity")
            if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
                raise _error(422, "invalid_quantity", "quantity must be a positive integer")
            offer = self.ctx.offer(self.slug, index, live=True)
            if offer.currency != currency:
                raise _error(422, "currency_mismatch", f"{sku} is sold in {offer.currency}")
            sent: int | None = None
            if item.get("unit_price") is not None:
                try:
                    sent = to_minor_units(parse_decimal(str(item["unit_price"])), currency)
                except MoneyError:
                    raise _error(422, "invalid_price", "unit_price must be a decimal") from None
            lines.append(
                OrderLine(
                    index,
                    sku,
                    offer.title,
                    offer.product.model,
                    plan.quantity(quantity),
                    plan.billed_unit_price(sent, offer.price_minor),
                )
            )
        order, created = self.ctx.orders.place(
            self.slug,
            idempotency_key=request.headers.get("Idempotency-Key"),
            reference=optional_reference(body.get("external_reference")),
            currency=currency,
            lines=lines,
            cancel_rate=self.ctx.knobs.get(self.slug).cancel_rate,
            delay_rate=self.ctx.knobs.get(self.slug).delay_rate,
            extra={
                "shipping": body.get("shipping") if isinstance(body.get("shipping"), dict) else {}
            },
        )
        return self.ctx.finish_placement(
            self.slug,
            plan,
            order,
            json_response({"data": self.order_record(order)}, status=201 if created else 200),
            _error(500, "internal_error", "Something went wrong").get_response(),
        )

    def search_orders(self, request: Request) -> Response:
        """GET /api/v1/orders?external_reference=REF → {data: {items: [orders]}}."""
        self._require_key(request)
        reference = request.args.get("external_reference")
        orders = (
            self.ctx.orders.find_by_reference(
                self.slug,
                reference,
                search_lag_s=self.ctx.knobs.get(self.slug).search_lag_ms / 1000,
            )
            if reference
            else self.ctx.orders.list(self.slug)
        )
        return json_response({"data": {"items": [self.order_record(o) for o in orders]}})

    def _order(self, order_id: str) -> SandboxOrder:
        number = order_id.removeprefix("BO-")
        order = self.ctx.orders.get(self.slug, int(number)) if number.isdigit() else None
        if order is None:
            raise _error(404, "not_found", f"No order {order_id}")
        return order

    def get_order(self, request: Request, order_id: str) -> Response:
        """GET /api/v1/orders/<id> → {data: order} with its status now."""
        self._require_key(request)
        return json_response({"data": self.order_record(self._order(order_id))})

    def cancel_order(self, request: Request, order_id: str) -> Response:
        """POST /api/v1/orders/<id>/cancel → {data: order}; 409 once shipped."""
        self._require_key(request)
        order = self._order(order_id)
        plan = self.ctx.knobs.plan_cancel(self.slug)
        step = self.ctx.knobs.get(self.slug).order_step_seconds
        if not self.ctx.orders.cancel(order, step).cancelled:
            raise _error(409, "not_cancellable", f"Order {order_id} has already shipped")
        return self.ctx.finish_cancel(
            plan,
            json_response({"data": self.order_record(order)}),
            _error(500, "internal_error", "Something went wrong").get_response(),
        )

    def order_record(self, order: SandboxOrder) -> dict[str, Any]:
        """An order as the bazaar's API shows it."""
        progress = self.ctx.orders.progress(order, self.ctx.knobs.get(self.slug).order_step_seconds)
        return {
            "id": f"BO-{order.number:06d}",
            "external_reference": order.reference,
            "status": ORDER_STATUS_WORDS.get(progress.status, progress.status),
            "currency": order.currency,
            "total": format_amount(order.total_minor, order.currency),
            "items": [
                {
                    "sku": line.external_id,
                    "quantity": line.quantity,
                    "unit_price": format_amount(line.unit_price_minor, order.currency),
                    "line_total": format_amount(line.total_minor, order.currency),
                }
                for line in order.lines
            ],
            "tracking": {"carrier": progress.carrier, "number": progress.tracking_number}
            if progress.tracking_number
            else None,
            "created_at": order.created_at.isoformat(),
        }


def optional_reference(value: object) -> str | None:
    """The order's external reference as text, or None."""
    return str(value) if value not in (None, "") else None

"""Kiondo's REST v3 order API (HTTP Basic consumer key/secret): ``POST/GET /orders``,
``GET/PUT /orders/<id>``, mixed into sandbox.woocommerce.WooCommerceService.

Order statuses: ``processing`` right after a paid REST order (``pending`` when set_paid is
false), ``completed`` once shipped (tracking in the ``_wc_shipment_tracking_items`` meta, as the
Shipment Tracking plugin stores it), then the custom ``delivered`` status; ``cancelled`` when
the customer or the store cancels before shipping. A line beyond a tracked product's stock is
refused; a paid order reduces the stock and a cancelled one restores it (sandbox.stock).
"""

from __future__ import annotations

import math
from typing import Any

from werkzeug.wrappers import Request, Response

from onecart.money import MoneyError, parse_decimal, to_minor_units
from sandbox.draws import hash64
from sandbox.inventory import OutOfStock, StockClaim
from sandbox.knobs import PlacementPlan
from sandbox.orders import CANCELLED, DELIVERED, PENDING, SHIPPED, OrderLine, SandboxOrder
from sandbox.pages import format_amount
from sandbox.refunds import refunded_minor, woocommerce_refunds
from sandbox.service import MarketplaceService, json_response, query_int, read_json_body
from sandbox.stock import stock_claim, woocommerce_stock_error
from sandbox.woocommerce_format import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    date_param,
    gmt_time,
    index_from_id,
    local_time,
    wc_error,
)
from sandbox.world import ListedOffer

REFERENCE_META_KEY = "_onecart_reference"
TRACKING_META_KEY = "_wc_shipment_tracking_items"


class WooCommerceOrderApi(MarketplaceService):
    """The REST v3 order endpoints of the WooCommerce-format marketplace."""

    def _require_credentials(self, request: Request) -> None:
        auth = request.authorization
        key = auth.username if auth and auth.type == "basic" else request.args.get("consumer_key")
        secret = (
            auth.password if auth and auth.type == "basic" else request.args.get("consumer_secret")
        )
        if not key or not secret:
            raise wc_error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")

    def create_order(self, request: Request) -> Response:
        """POST /wp-json/wc/v3/orders (an Idempotency-Key seen before returns the same order)."""
        self._require_credentials(request)
        plan = self.ctx.knobs.plan_placement(self.slug)
        if plan.fail_before:
            raise wc_error(
                503, "internal_server_error", "Service temporarily unavailable (fail_next_orders)."
            )
        if plan.refuse:
            raise wc_error(
                400,
                "woocommerce_rest_cannot_create",
                "Sorry, this order cannot be created: a product is out of stock.",
            )
        body = read_json_body(
            request,
            {
                "code": "rest_invalid_json",
                "message": "Invalid JSON body passed.",
                "data": {"status": 400},
            },
        )
        if not isinstance(body, dict):
            raise wc_error(400, "rest_invalid_param", "Invalid parameter(s): body")
        items = body.get("line_items")
        if not isinstance(items, list) or not items:
            raise wc_error(400, "rest_invalid_param", "Invalid parameter(s): line_items")
        lines: list[OrderLine] = []
        claims: list[StockClaim] = []
        for item in items:
            if not isinstance(item, dict):
                raise wc_error(400, "rest_invalid_param", "Invalid parameter(s): line_items")
            wc_id = item.get("product_id")
            index = (
                index_from_id(wc_id, self.count)
                if isinstance(wc_id, int) and not isinstance(wc_id, bool)
                else None
            )
            if index is not None and plan.is_delisted(str(wc_id)):
                index = None
            if index is None and plan.drop_unknown_lines:
                continue  # a sloppy store drops what it does not know and still answers 201
            if index is None:
                raise wc_error(
                    400, "woocommerce_rest_invalid_product_id", f"Invalid product ID {wc_id!r}."
                )
            quantity = item.get("quantity")
            if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
                # WooCommerce's own code and words (WC_REST_Orders_V2_Controller).
                raise wc_error(
                    400,
                    "woocommerce_rest_invalid_product_quantity",
                    "Product quantity must be a positive float.",
                )
            offer = self.ctx.offer(self.slug, index, live=True)
            line = self._order_line(plan, offer, wc_id, quantity, item)
            claim = stock_claim(offer, line.quantity, len(lines))
            if claim is not None:
                claims.append(claim)
            lines.append(line)
        meta = body.get("meta_data") if isinstance(body.get("meta_data"), list) else []
        reference = next(
            (
                str(m.get("value"))
                for m in meta
                if isinstance(m, dict) and m.get("key") == REFERENCE_META_KEY
            ),
            None,
        )
        set_paid = bool(body.get("set_paid"))
        try:
            order, created = self._place(request, body, lines, claims, reference, meta, set_paid)
        except OutOfStock as short:
            first = short.shortages[0]
            raise woocommerce_stock_error(
                lines[first.position].title, first.left, first.quantity
            ) from None
        return self.ctx.finish_placement(
            self.slug,
            plan,
            order,
            json_response(self.order_record(order), status=201 if created else 200),
            wc_error(
                500, "internal_server_error", "There has been a critical error on this website."
            ).get_response(),
        )

    def _place(
        self,
        request: Request,
        body: dict[str, Any],
        lines: list[OrderLine],
        claims: list[StockClaim],
        reference: str | None,
        meta: list[Any],
        set_paid: bool,
    ) -> tuple[SandboxOrder, bool]:
        """Create the order (or find it by its Idempotency-Key). The store's stock check refuses
        lines beyond the stock (inventory.OutOfStock) whether paid or not; only a paid order
        reduces the stock now: WooCommerce reduces it when payment completes
        (wc_maybe_reduce_stock_levels), and an unpaid REST order waits in `pending`."""
        knobs = self.ctx.knobs.get(self.slug)
        return self.ctx.orders.place(
            self.slug,
            idempotency_key=request.headers.get("Idempotency-Key"),
            reference=reference,
            currency=self.profile.currency,
            lines=lines,
            cancel_rate=knobs.cancel_rate,
            delay_rate=knobs.delay_rate,
            shipping_minor=knobs.order_shipping_minor,
            tax_bps=knobs.order_tax_bps,
            extra={
                "set_paid": set_paid,
                "payment_method": body.get("payment_method", ""),
                "payment_method_title": body.get("payment_method_title", ""),
                "billing": body.get("billing") if isinstance(body.get("billing"), dict) else {},
                "shipping": body.get("shipping") if isinstance(body.get("shipping"), dict) else {},
                "meta_data": [m for m in meta if isinstance(m, dict)],
            },
            stock_claims=claims,
            draw_stock=set_paid,
        )

    def _order_line(
        self,
        plan: PlacementPlan,
        offer: ListedOffer,
        wc_id: int,
        quantity: int,
        item: dict[str, Any],
    ) -> OrderLine:
        """One order line: REST v3 takes a line `total` (and `subtotal`) as a decimal string,
        which sets what the line costs; without one the store bills its own price."""
        accepted = plan.quantity(quantity)
        sent_total: int | None = None
        raw_total = item.get("total", item.get("subtotal"))
        if raw_total is not None:
            try:
                sent_total = to_minor_units(parse_decimal(str(raw_total)), self.profile.currency)
            except MoneyError:
                raise wc_error(
                    400, "rest_invalid_param", "Invalid parameter(s): line_items[total]"
                ) from None
            if sent_total < 0:
                raise wc_error(400, "rest_invalid_param", "Invalid parameter(s): line_items[total]")
        unit = plan.billed_unit_price(
            sent_total // quantity if sent_total is not None else None, offer.price_minor
        )
        line_total = None
        if sent_total is not None and not plan.price_change_pct and accepted == quantity:
            line_total = sent_total  # what was sent, even when not unit × quantity
        return OrderLine(
            offer.index, str(wc_id), offer.title, offer.product.model, accepted, unit, line_total
        )

    def list_orders(self, request: Request) -> Response:
        """GET /wp-json/wc/v3/orders[?search=REF]: orders whose _onecart_reference equals REF."""
        self._require_credentials(request)
        search = request.args.get("search")
        orders = (
            self.ctx.orders.find_by_reference(
                self.slug, search, search_lag_s=self.ctx.knobs.get(self.slug).search_lag_ms / 1000
            )
            if search
            else self.ctx.orders.list(self.slug)
        )
        gmt = request.args.get("dates_are_gmt", "").lower() in {"1", "true"}
        after = date_param(request, "after", gmt)
        before = date_param(request, "before", gmt)
        orders = [
            order
            for order in orders
            if (after is None or order.created_at > after)
            and (before is None or order.created_at < before)
        ]
        # REST v3 lists newest first unless asked otherwise (orderby date or id, same order).
        if request.args.get("order", "desc") != "asc":
            orders = list(reversed(orders))
        per_page = query_int(
            request, "per_page", DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE
        )
        page = query_int(request, "page", 1, minimum=1)
        total = len(orders)
        selected = orders[(page - 1) * per_page : page * per_page]
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(math.ceil(total / per_page))}
        return json_response([self.order_record(order) for order in selected], headers=headers)

    def _find(self, order_id: int) -> SandboxOrder:
        order = self.ctx.orders.get(self.slug, order_id)
        if order is None:
            raise wc_error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        return order

    def get_order(self, request: Request, order_id: int) -> Response:
        """GET /wp-json/wc/v3/orders/<id>: the order with its current status."""
        self._require_credentials(request)
        order = self._find(order_id)
        if str(order.number) in self.ctx.knobs.get(self.slug).failing_order_reads:
            raise wc_error(500, "internal_server_error", "There has been a critical error.")
        return json_response(self.order_record(order))

    def update_order(self, request: Request, order_id: int) -> Response:
        """PUT /wp-json/wc/v3/orders/<id> {"status": "cancelled"}: cancel before shipping. An
        unknown id is a 400 here, not a 404: REST v3 updates answer it that way."""
        self._require_credentials(request)
        order = self.ctx.orders.get(self.slug, order_id)
        if order is None:
            raise wc_error(400, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        body = read_json_body(
            request,
            {
                "code": "rest_invalid_json",
                "message": "Invalid JSON body passed.",
                "data": {"status": 400},
            },
        )
        status = body.get("status") if isinstance(body, dict) else None
        if status is None:
            return json_response(self.order_record(order))
        if status != CANCELLED:
            raise wc_error(
                400,
                "woocommerce_rest_invalid_status",
                f"The sandbox only supports cancelling orders, not status {status!r}.",
            )
        plan = self.ctx.knobs.plan_cancel(self.slug)
        step = self.ctx.knobs.get(self.slug).order_step_seconds
        outcome = self.ctx.orders.cancel(order, step)
        if not outcome.cancelled:
            raise wc_error(
                400,
                "woocommerce_rest_cannot_cancel",
                f"Order #{order.number} has already been shipped and cannot be cancelled.",
            )
        return self.ctx.finish_cancel(
            plan,
            json_response(self.order_record(order)),
            wc_error(
                500, "internal_server_error", "There has been a critical error on this website."
            ).get_response(),
        )

    def order_record(self, order: SandboxOrder) -> dict[str, Any]:
        """The order as REST v3 returns it, with its status now."""
        step = self.ctx.knobs.get(self.slug).order_step_seconds
        progress = self.ctx.orders.progress(order, step)
        set_paid = bool(order.extra.get("set_paid"))
        if progress.status == PENDING:
            status = "processing" if set_paid else "pending"
        elif progress.status == SHIPPED:
            status = "completed"
        else:
            status = progress.status  # processing, delivered, cancelled
        if status != CANCELLED and order.refunds and refunded_minor(order) >= order.total_minor:
            # WooCommerce sets `refunded` once the refunds reach the order total (wc_create_refund:
            # woocommerce_order_fully_refunded_status), whatever stage the order was at.
            status = "refunded"
        meta = [
            {"id": 7000 + order.number * 10 + n, "key": m.get("key"), "value": m.get("value")}
            for n, m in enumerate(order.extra.get("meta_data", []))
        ]
        if progress.tracking_number:
            meta.append(
                {
                    "id": 7000 + order.number * 10 + 9,
                    "key": TRACKING_META_KEY,
                    "value": [
                        {
                            "tracking_provider": progress.carrier,
                            "custom_tracking_provider": "",
                            "custom_tracking_link": progress.tracking_url,
                            "tracking_number": progress.tracking_number,
                            "date_shipped": str(int(progress.shipped_at.timestamp()))
                            if progress.shipped_at
                            else "",
                            "tracking_id": f"{hash64('tracking-id', order.number) % 16**32:032x}",
                        }
                    ],
                }
            )
        completed_at = progress.shipped_at if progress.status in (SHIPPED, DELIVERED) else None
        return {
            "id": order.number,
            "parent_id": 0,
            "number": str(order.number),
            "order_key": f"wc_order_{hash64('order-key', order.number) % 16**12:012x}",
            "created_via": "rest-api",
            "version": "9.4.2",
            "status": status,
            "currency": order.currency,
            "date_created": local_time(order.created_at),
            "date_created_gmt": gmt_time(order.created_at),
            "date_modified": local_time(progress.cancelled_at or completed_at or order.created_at),
            "discount_total": "0.00",
            "discount_tax": "0.00",
            "shipping_total": format_amount(order.shipping_minor, order.currency),
            "shipping_tax": format_amount(order.shipping_tax_minor, order.currency),
            "cart_tax": format_amount(order.tax_minor - order.shipping_tax_minor, order.currency),
            "total": format_amount(order.total_minor, order.currency),
            "total_tax": format_amount(order.tax_minor, order.currency),
            "refunds": woocommerce_refunds(order),
            "prices_include_tax": False,
            "customer_id": 0,
            "billing": order.extra.get("billing", {}),
            "shipping": order.extra.get("shipping", {}),
            "payment_method": order.extra.get("payment_method", ""),
            "payment_method_title": order.extra.get("payment_method_title", ""),
            "transaction_id": "",
            "date_paid": local_time(order.created_at) if set_paid else None,
            "date_completed": local_time(completed_at),
            "meta_data": meta,
            "line_items": [
                {
                    "id": order.number * 100 + n,
                    "name": line.title,
                    "product_id": int(line.external_id),
                    "variation_id": 0,
                    "quantity": line.quantity,
                    "tax_class": "",
                    "subtotal": format_amount(line.total_minor, order.currency),
                    "subtotal_tax": format_amount(order.line_tax_minor(line), order.currency),
                    "total": format_amount(line.total_minor, order.currency),
                    "total_tax": format_amount(order.line_tax_minor(line), order.currency),
                    "taxes": [],
                    "meta_data": [],
                    "sku": line.sku,
                    # WooCommerce computes `price` as total / quantity in PHP floats.
                    "price": float(format_amount(line.total_minor, order.currency))
                    / max(line.quantity, 1),
                }
                for n, line in enumerate(order.lines, start=1)
            ],
            "shipping_lines": [
                {
                    "id": order.number * 100 + 99,
                    "method_title": "Flat rate",
                    "method_id": "flat_rate",
                    "total": format_amount(order.shipping_minor, order.currency),
                    "total_tax": format_amount(order.shipping_tax_minor, order.currency),
                    "taxes": [],
                    "meta_data": [],
                }
            ]
            if order.shipping_minor
            else [],
        }

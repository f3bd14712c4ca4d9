"""ShopWave's Admin GraphQL order API: ``orderCreate`` / ``order`` / ``orders`` /
``orderCancel``, with fulfillments that follow the sandbox order's progress.

The GraphQL endpoint does not parse GraphQL: it recognizes the operation by the first field of
the selection (``mutation { orderCreate(...) {...} }`` → orderCreate) and reads only the
variables, answering with a fixed superset of the fields OneCart asks for.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from werkzeug.wrappers import Request, Response

from onecart.money import MoneyError, to_minor_units
from sandbox.draws import hash64
from sandbox.inventory import OutOfStock, StockClaim
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
from sandbox.pages import format_amount
from sandbox.refunds import money_bag, refunded_minor, refunded_quantity, shopify_refunds
from sandbox.service import JsonError, MarketplaceService, json_response, read_json_body
from sandbox.shopify_format import (
    VARIANT_ID_BASE,
    VARIANT_ID_STRIDE,
    index_from_id,
    iso_utc,
    product_id,
    require_token,
    variant_id,
)
from sandbox.stock import shopify_claims_inventory, shopify_inventory_error, stock_claim

_OPERATION = re.compile(r"\{\s*(?:\w+\s*:\s*)?(\w+)")
_ORDER_GID = re.compile(r"^gid://shopify/Order/(\d+)$")
_VARIANT_GID = re.compile(r"^gid://shopify/ProductVariant/(\d+)$")
_SOURCE_IDENTIFIER = re.compile(r"source_identifier:\s*(?:\"([^\"]*)\"|'([^']*)'|(\S+))")


class ShopifyOrderApi(MarketplaceService):
    """The Admin GraphQL order endpoint of the Shopify-format marketplace (mixed into
    sandbox.shopify.ShopifyService, which routes /admin/api/<version>/graphql.json here)."""

    def graphql(self, request: Request, version: str) -> Response:
        """POST /admin/api/<version>/graphql.json: orderCreate, order, orders, orderCancel."""
        require_token(request)
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
        claims_inventory = shopify_claims_inventory(variables)
        line_items = order_input.get("lineItems")
        errors: list[dict[str, Any]] = []
        lines: list[OrderLine] = []
        claims: list[StockClaim] = []
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
                index_from_id(int(match.group(1)), VARIANT_ID_BASE, VARIANT_ID_STRIDE, self.count)
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
            claim = stock_claim(offer, plan.quantity(quantity), position)
            if claims_inventory and claim is not None:
                claims.append(claim)
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
        try:
            order, _ = self.ctx.orders.place(
                self.slug,
                idempotency_key=request.headers.get("Idempotency-Key"),
                reference=order_input.get("sourceIdentifier"),
                currency=currency,
                lines=lines,
                cancel_rate=knobs.cancel_rate,
                delay_rate=knobs.delay_rate,
                shipping_minor=knobs.order_shipping_minor,
                tax_bps=knobs.order_tax_bps,
                extra={
                    "email": order_input.get("email"),
                    "shippingAddress": order_input.get("shippingAddress"),
                },
                # DECREMENT_OBEYING_POLICY: the claim and the order are one step.
                stock_claims=claims,
            )
        except OutOfStock as short:
            titles = {line.offer_index: line.title for line in lines}
            return self._create_result(
                None,
                [
                    shopify_inventory_error(titles[s.index], s.left, s.quantity, s.position)
                    for s in short.shortages
                ],
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
        if order is not None and str(order.number) in (
            self.ctx.knobs.get(self.slug).failing_order_reads
        ):
            return json_response({"errors": "Internal Server Error"}, 500)
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
            order,
            step,
            reason=str(variables.get("reason") or "CUSTOMER"),
            restock=variables.get("restock") is True,
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
            "createdAt": iso_utc(order.created_at),
            "displayFinancialStatus": _financial_status(order, progress),
            "displayFulfillmentStatus": _fulfillment_status(progress),
            "cancelledAt": iso_utc(progress.cancelled_at),
            "cancelReason": (order.cancel_reason or "").upper() or None
            if progress.cancelled_at
            else None,
            "totalPriceSet": {"shopMoney": money},
            "totalShippingPriceSet": {
                "shopMoney": {
                    "amount": format_amount(order.shipping_minor, order.currency),
                    "currencyCode": order.currency,
                }
            },
            "totalTaxSet": {
                "shopMoney": {
                    "amount": format_amount(order.tax_minor, order.currency),
                    "currencyCode": order.currency,
                }
            },
            # orderCancel refunds the whole order; otherwise what the store refunded so far.
            "totalRefundedSet": money_bag(
                order.total_minor if progress.status == CANCELLED else refunded_minor(order),
                order.currency,
            ),
            "refunds": shopify_refunds(order, lambda index: _line_item_gid(order, index)),
            "taxesIncluded": False,
            "lineItems": {
                "nodes": [
                    {
                        "id": _line_item_gid(order, index),
                        "title": line.title,
                        "sku": line.sku,
                        "quantity": line.quantity,
                        "currentQuantity": 0
                        if progress.status == CANCELLED
                        else line.quantity - refunded_quantity(order, index),
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
                    for index, line in enumerate(order.lines)
                ]
            },
            "fulfillments": _fulfillments(progress, order.number),
        }


def _line_item_gid(order: SandboxOrder, index: int) -> str:
    return f"gid://shopify/LineItem/{order.number * 100 + index + 1}"


def _financial_status(order: SandboxOrder, progress: OrderProgress) -> str:
    """REFUNDED once cancelled (orderCancel refunds) or refunded in full, PARTIALLY_REFUNDED
    after a refund of part of it, else PAID."""
    refunded = refunded_minor(order)
    if progress.status == CANCELLED or (refunded and refunded >= order.total_minor):
        return "REFUNDED"
    return "PARTIALLY_REFUNDED" if refunded else "PAID"


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
            "happenedAt": iso_utc(moment),
        }
        for n, (step, moment) in enumerate(progress.shipment_events, start=1)
    ]
    return [
        {
            "id": f"gid://shopify/Fulfillment/{order_number}",
            "status": "SUCCESS",
            "displayStatus": SHIPMENT_DISPLAY_STATUS.get(progress.shipment or "", "CONFIRMED"),
            "createdAt": iso_utc(progress.shipped_at),
            "deliveredAt": iso_utc(progress.delivered_at),
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

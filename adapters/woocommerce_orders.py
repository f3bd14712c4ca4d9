"""WooCommerce orders through the REST API v3: the order OneCart sends (`POST orders`), and how an
order reads as our status, total, accepted lines, tracking and refunds. adapters/woocommerce.py
places, finds, tracks and cancels with them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adapters.accepted import (
    accepted_lines,
    line_quantity,
    order_money,
    refund_money,
    unit_from_total,
)
from adapters.base import (
    AcceptedLine,
    OrderRequest,
    OrderState,
    OrderStatus,
    PlacedOrder,
    Rejected,
    ShippingAddress,
)
from adapters.fields import optional_int, optional_text, optional_url
from onecart.money import from_minor_units

REFERENCE_META_KEY = "_onecart_reference"
INVALID_ORDER_ID_CODE = "woocommerce_rest_shop_order_invalid_id"
TRACKING_META_KEY = "_wc_shipment_tracking_items"  # WooCommerce Shipment Tracking extension

# Order statuses (REST v3 omits the "wc-" prefix). "delivered" and "shipped" are custom statuses
# that many stores add with a plugin.
WOO_STATUS_MAP: Mapping[str, OrderStatus] = {
    "checkout-draft": OrderStatus.PENDING,
    "pending": OrderStatus.PENDING,
    "on-hold": OrderStatus.PENDING,
    "processing": OrderStatus.PROCESSING,
    "completed": OrderStatus.SHIPPED,
    "shipped": OrderStatus.SHIPPED,
    "delivered": OrderStatus.DELIVERED,
    "cancelled": OrderStatus.CANCELLED,
    "trash": OrderStatus.CANCELLED,
    "refunded": OrderStatus.REFUNDED,
    "failed": OrderStatus.FAILED,
}


def display_number(order: Mapping[str, Any]) -> str | None:
    """`#<number>` as the store shows it (REST v3's `number`: the id unless a sequential-number
    plugin renumbers orders)."""
    number = optional_text(order.get("number")) or optional_text(order.get("id"))
    return f"#{number}" if number else None


def map_woocommerce_status(status: object) -> OrderStatus:
    """Our status for a WooCommerce order status. An unknown plugin status means the store is
    still handling the order, so it reads as processing rather than failing the tracking job."""
    word = str(status or "").strip().lower().removeprefix("wc-")
    return WOO_STATUS_MAP.get(word, OrderStatus.PROCESSING)


def meta_value(order: Mapping[str, Any], key: str) -> Any:
    """The value of `key` in the order's `meta_data` (the newest entry when the key repeats)."""
    meta = order.get("meta_data")
    if not isinstance(meta, list):
        return None
    for item in reversed(meta):  # the newest entry wins when a key repeats
        if isinstance(item, Mapping) and item.get("key") == key:
            return item.get("value")
    return None


def tracking_from_meta(order: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(number, carrier, url) of the latest shipment in `_wc_shipment_tracking_items`."""
    items = meta_value(order, TRACKING_META_KEY)
    if isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, list):
        return None, None, None
    for item in reversed(items):
        if isinstance(item, Mapping) and optional_text(item.get("tracking_number")):
            carrier = optional_text(item.get("tracking_provider")) or optional_text(
                item.get("custom_tracking_provider")
            )
            url = optional_url(item.get("custom_tracking_link")) or optional_url(
                item.get("tracking_link")
            )
            return optional_text(item.get("tracking_number")), carrier, url
    return None, None, None


def order_address(shipping: ShippingAddress, *, with_contact: bool) -> dict[str, str]:
    """The order's `billing` (with the e-mail) or `shipping` address, empty fields left out."""
    parts = shipping.name.strip().split(None, 1)
    first, last = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0] if parts else "")
    address = {
        "first_name": first,
        "last_name": last,
        "address_1": shipping.line1,
        "address_2": shipping.line2,
        "city": shipping.city,
        "postcode": shipping.postal_code,
        "country": shipping.country.upper(),
        "phone": shipping.phone,
    }
    if with_contact:
        address["email"] = shipping.email
    return {key: value for key, value in address.items() if value}


def order_payload(request: OrderRequest, *, slug: str) -> dict[str, Any]:
    """The body of `POST orders`: a paid order with our reference in `_onecart_reference` meta.
    A line whose product id is not a WooCommerce (numeric) id is Rejected before anything is
    sent."""
    line_items = []
    for line in request.lines:
        if not line.external_id.isdigit():
            raise Rejected(
                f"{slug}: not a WooCommerce product id: {line.external_id!r}", marketplace=slug
            )
        # REST v3 takes the line's price as its total (and subtotal, before discounts):
        # the store bills what the shopper paid us, not whatever its price is now.
        charged = format(
            from_minor_units(line.unit_price_minor * line.quantity, line.currency), "f"
        )
        line_items.append(
            {
                "product_id": int(line.external_id),
                "quantity": line.quantity,
                "subtotal": charged,
                "total": charged,
            }
        )
    # No `shipping_lines`: WooCommerce adds shipping to a REST order only from the lines the
    # request gives, so none is asked for. Taxes the store computes from its own settings
    # and the address; what it adds is verified against the marketplace's allowance.
    return {
        "payment_method": "onecart",
        "payment_method_title": "Paid via OneCart",
        "set_paid": True,
        "billing": order_address(request.shipping, with_contact=True),
        "shipping": order_address(request.shipping, with_contact=False),
        "line_items": line_items,
        "meta_data": [{"key": REFERENCE_META_KEY, "value": request.reference}],
    }


def rest_error_code(body: str | None) -> str | None:
    """The `code` of a WordPress REST error body, if it is one."""
    try:
        parsed = json.loads(body or "")
    except ValueError:
        return None
    return optional_text(parsed.get("code")) if isinstance(parsed, Mapping) else None


def orders_with_reference(orders: list[Any], reference: str) -> list[Mapping[str, Any]]:
    """Orders whose reference meta is exactly `reference`, oldest (lowest id) first."""
    matches = [
        order
        for order in orders
        if isinstance(order, Mapping)
        and meta_value(order, REFERENCE_META_KEY) == reference
        and optional_int(order.get("id")) is not None
    ]
    return sorted(matches, key=lambda order: int(order["id"]))


def refunded_so_far(order: Mapping[str, Any]) -> tuple[int | None, str | None]:
    """(minor units, currency) of everything the store has refunded on the order: REST v3 lists
    each refund in the order's `refunds` ({"id", "reason", "total": "-10.00"}, the total
    negative). (None, None) when the reply has no `refunds` list or a refund cannot be read
    exactly: what the store refunded is then not known, which is not the same as nothing."""
    currency = str(order.get("currency") or "").upper()
    refunds = order.get("refunds")
    if not isinstance(refunds, list) or not currency:
        return None, None
    total = 0
    for refund in refunds:
        amount = (
            refund_money(refund.get("total"), currency) if isinstance(refund, Mapping) else None
        )
        if amount is None:
            return None, None
        total += amount
    return total, currency


def _accepted_line(item: Mapping[str, Any], currency: str) -> AcceptedLine | None:
    """A line item: product id, quantity and the line total the store billed (`total`, a
    decimal string; `price` is a float and only derived from it)."""
    product_id = optional_int(item.get("product_id"))
    quantity = line_quantity(item.get("quantity"))
    if product_id is None or quantity is None:
        return None
    line_total = order_money(item.get("total"), currency)
    return AcceptedLine(
        str(product_id), quantity, unit_from_total(line_total, quantity), line_total
    )


def placed_order(order: Mapping[str, Any], *, fallback_currency: str) -> PlacedOrder:
    """The order as the store holds it: status, total, its line items, and what it added
    on top of them. REST v3 line `total`s are before tax; `shipping_total` is the shipping
    before its tax and `total_tax` every tax of the order (lines' and shipping's), so the
    order's `total` is the lines, the shipping and `total_tax` (plus any fee lines, which
    count with the items). `fallback_currency` reads the lines of an order that names none."""
    currency = optional_text(order.get("currency"))
    return PlacedOrder(
        marketplace_order_id=str(order["id"]),
        status=map_woocommerce_status(order.get("status")),
        total_minor=order_money(order.get("total"), currency),
        currency=currency,
        lines=accepted_lines(
            order.get("line_items"),
            lambda item: _accepted_line(item, currency or fallback_currency),
        ),
        display_number=display_number(order),
        shipping_minor=order_money(order.get("shipping_total"), currency),
        tax_minor=order_money(order.get("total_tax"), currency),
    )


def order_state(order: Mapping[str, Any]) -> OrderState:
    """The order's status, with tracking from the Shipment Tracking meta and the refunds so far."""
    number, carrier, url = tracking_from_meta(order)
    refunded_minor, refunded_currency = refunded_so_far(order)
    return OrderState(
        marketplace_order_id=str(order["id"]),
        status=map_woocommerce_status(order.get("status")),
        raw_status=str(order.get("status") or ""),
        tracking_number=number,
        carrier=carrier,
        tracking_url=url,
        display_number=display_number(order),
        refunded_minor=refunded_minor,
        refunded_currency=refunded_currency,
    )

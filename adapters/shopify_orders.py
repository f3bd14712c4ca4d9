"""Shopify orders through the Admin GraphQL API: the documents OneCart sends (`orderCreate`,
`order`, `orders` by our reference, `orderCancel`) and how an order node reads as our status,
tracking and shipment progress. adapters/shopify.py places, finds, tracks and cancels with them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from adapters.accepted import order_money
from adapters.base import OrderStatus, ShipmentEvent, ShipmentStatus, ShippingAddress
from adapters.fields import optional_text, optional_url

# What the order holds, as the shop recorded it: placement verifies it against what was asked.
LINE_ITEM_FIELDS = """
    lineItems(first: 250) {
      nodes {
        quantity
        currentQuantity
        variant { id }
        product { id }
        originalUnitPriceSet { shopMoney { amount currencyCode } }
      }
    }
"""

ORDER_FIELDS = (
    """
    id
    name
    sourceIdentifier
    displayFinancialStatus
    displayFulfillmentStatus
    cancelledAt
    totalPriceSet { shopMoney { amount currencyCode } }
    totalShippingPriceSet { shopMoney { amount currencyCode } }
    totalTaxSet { shopMoney { amount currencyCode } }
    totalRefundedSet { shopMoney { amount currencyCode } }
    taxesIncluded
    fulfillments(first: 20) {
      status displayStatus trackingInfo { company number url }
      events(first: 50, sortKey: HAPPENED_AT) { nodes { status happenedAt } }
    }
"""
    + LINE_ITEM_FIELDS
)

ORDER_CREATE_MUTATION = (
    """
mutation OneCartOrderCreate($order: OrderCreateOrderInput!, $options: OrderCreateOptionsInput) {
  orderCreate(order: $order, options: $options) {
    order {
      id
      name
      sourceIdentifier
      displayFinancialStatus
      displayFulfillmentStatus
      cancelledAt
      totalPriceSet { shopMoney { amount currencyCode } }
      totalShippingPriceSet { shopMoney { amount currencyCode } }
      totalTaxSet { shopMoney { amount currencyCode } }
      taxesIncluded"""
    + LINE_ITEM_FIELDS
    + """    }
    userErrors { code field message }
  }
}
"""
)

# Claim the items' inventory, obeying each variant's policy: a tracked variant without enough
# units left fails the claim (userError INVENTORY_CLAIM_FAILED) instead of being oversold, as
# the default BYPASS would (it claims nothing and always creates the order).
ORDER_CREATE_OPTIONS = {"inventoryBehaviour": "DECREMENT_OBEYING_POLICY"}

ORDER_QUERY = (
    """
query OneCartOrder($id: ID!) {
  order(id: $id) {"""
    + ORDER_FIELDS
    + """  }
}
"""
)

# Whether the order API answers at all (ShopifyAdapter.check_orders_api): the same `orders`
# field, scope (read_orders) and endpoint as a status poll, one id's worth of reply.
ORDERS_ANSWER_QUERY = """
query OneCartOrdersAnswer {
  orders(first: 1) {
    nodes { id }
  }
}
"""

ORDERS_BY_REFERENCE_QUERY = (
    """
query OneCartOrdersByReference($query: String!) {
  orders(first: 10, query: $query) {
    nodes {"""
    + ORDER_FIELDS
    + """    }
  }
}
"""
)

ORDER_CANCEL_MUTATION = """
mutation OneCartOrderCancel(
  $orderId: ID!, $reason: OrderCancelReason!, $refund: Boolean!, $restock: Boolean!,
  $notifyCustomer: Boolean
) {
  orderCancel(
    orderId: $orderId, reason: $reason, refund: $refund, restock: $restock,
    notifyCustomer: $notifyCustomer
  ) {
    job { id done }
    orderCancelUserErrors { code field message }
  }
}
"""

# displayFulfillmentStatus -> our status, for orders that are neither cancelled nor delivered.
FULFILLMENT_STATUS_MAP: Mapping[str, OrderStatus] = {
    "UNFULFILLED": OrderStatus.PENDING,
    "OPEN": OrderStatus.PENDING,
    "SCHEDULED": OrderStatus.PENDING,
    "ON_HOLD": OrderStatus.PENDING,
    "REQUEST_DECLINED": OrderStatus.PENDING,
    "IN_PROGRESS": OrderStatus.PROCESSING,
    "PENDING_FULFILLMENT": OrderStatus.PROCESSING,
    # Some items have shipped, others not yet: the sub-order as a whole is still being worked on.
    "PARTIALLY_FULFILLED": OrderStatus.PROCESSING,
    "FULFILLED": OrderStatus.SHIPPED,
    # Items went back to stock: the order will not ship.
    "RESTOCKED": OrderStatus.CANCELLED,
}
DELIVERED_SHIPMENT_STATUSES = frozenset({"DELIVERED", "PICKED_UP"})
VOID_SHIPMENT_STATUSES = frozenset({"CANCELED", "CANCELLED", "LABEL_VOIDED"})
VOID_FULFILLMENT_STATUSES = frozenset({"CANCELLED", "ERROR", "FAILURE"})

# FulfillmentDisplayStatus / FulfillmentEventStatus -> the shipment's step. Label and pickup
# words mean the parcel is with the carrier but not moving yet: "confirmed".
SHIPMENT_STATUS_MAP: Mapping[str, ShipmentStatus] = {
    "CONFIRMED": ShipmentStatus.CONFIRMED,
    "LABEL_PURCHASED": ShipmentStatus.CONFIRMED,
    "LABEL_PRINTED": ShipmentStatus.CONFIRMED,
    "READY_FOR_PICKUP": ShipmentStatus.CONFIRMED,
    "CARRIER_PICKED_UP": ShipmentStatus.IN_TRANSIT,
    "IN_TRANSIT": ShipmentStatus.IN_TRANSIT,
    "OUT_FOR_DELIVERY": ShipmentStatus.OUT_FOR_DELIVERY,
    "DELAYED": ShipmentStatus.DELAYED,
    "ATTEMPTED_DELIVERY": ShipmentStatus.ATTEMPTED_DELIVERY,
    "DELIVERED": ShipmentStatus.DELIVERED,
    "PICKED_UP": ShipmentStatus.DELIVERED,
    "FAILURE": ShipmentStatus.FAILURE,
    "NOT_DELIVERED": ShipmentStatus.FAILURE,
}


def active_fulfillments(order: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    fulfillments = order.get("fulfillments")
    if isinstance(fulfillments, Mapping):  # connection shape: {"nodes": [...]}
        fulfillments = fulfillments.get("nodes")
    if not isinstance(fulfillments, list):
        return []
    return [
        item
        for item in fulfillments
        if isinstance(item, Mapping)
        and str(item.get("status") or "").upper() not in VOID_FULFILLMENT_STATUSES
        and str(item.get("displayStatus") or "").upper() not in VOID_SHIPMENT_STATUSES
    ]


def map_shopify_order_status(order: Mapping[str, Any]) -> tuple[OrderStatus, str]:
    """Our status and Shopify's own words for one order node.

    Cancellation wins, then a full refund; then shipments: every live shipment delivered means
    delivered; otherwise displayFulfillmentStatus decides (UNFULFILLED pending, IN_PROGRESS
    processing, FULFILLED shipped). A shipment the carrier could not deliver (FAILURE,
    NOT_DELIVERED) leaves the order shipped, its step `failure`: the shop may ship again, and
    only its cancellation or refund ends the order (OneCart refunds the shopper on those).
    """
    fulfillment_status = str(order.get("displayFulfillmentStatus") or "").upper()
    shipments = [
        str(item.get("displayStatus") or "").upper() for item in active_fulfillments(order)
    ]
    raw = "/".join([fulfillment_status or "UNKNOWN", *[s for s in shipments if s]])
    if order.get("cancelledAt"):
        return OrderStatus.CANCELLED, f"CANCELLED ({raw})"
    if str(order.get("displayFinancialStatus") or "").upper() == "REFUNDED":
        return OrderStatus.REFUNDED, f"REFUNDED ({raw})"
    fully_fulfilled = fulfillment_status in ("FULFILLED", "")
    if shipments and fully_fulfilled and all(s in DELIVERED_SHIPMENT_STATUSES for s in shipments):
        return OrderStatus.DELIVERED, raw
    if not fulfillment_status and shipments:
        return OrderStatus.SHIPPED, raw
    return FULFILLMENT_STATUS_MAP.get(fulfillment_status, OrderStatus.PENDING), raw


def latest_tracking(order: Mapping[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(number, company, url) of the latest shipment that has a tracking number."""
    found: tuple[str | None, str | None, str | None] = (None, None, None)
    for fulfillment in active_fulfillments(order):
        infos = fulfillment.get("trackingInfo")
        if isinstance(infos, Mapping):
            infos = [infos]
        if not isinstance(infos, list):
            continue
        for info in infos:
            if isinstance(info, Mapping) and optional_text(info.get("number")):
                found = (
                    optional_text(info.get("number")),
                    optional_text(info.get("company")),
                    optional_url(info.get("url")),
                )
    return found


def connection_nodes(connection: object) -> list[Mapping[str, Any]]:
    """The nodes of a connection ({"nodes": [...]}, {"edges": [{"node": ...}]}) or a plain list."""
    if isinstance(connection, Mapping):
        if isinstance(connection.get("nodes"), list):
            connection = connection["nodes"]
        elif isinstance(connection.get("edges"), list):
            connection = [e.get("node") for e in connection["edges"] if isinstance(e, Mapping)]
    if not isinstance(connection, list):
        return []
    return [item for item in connection if isinstance(item, Mapping)]


def shipment_progress(
    order: Mapping[str, Any],
) -> tuple[ShipmentStatus | None, tuple[ShipmentEvent, ...]]:
    """The latest shipment's step (its displayStatus) and its carrier events, oldest first.

    Only fulfillments that carry a tracking number count as shipments: an open fulfillment while
    the order is being prepared says CONFIRMED without anything having shipped."""
    shipments = [
        item
        for item in active_fulfillments(order)
        if any(
            isinstance(info, Mapping) and optional_text(info.get("number"))
            for info in connection_nodes(item.get("trackingInfo"))
        )
    ]
    if not shipments:
        return None, ()
    latest = shipments[-1]
    status = SHIPMENT_STATUS_MAP.get(str(latest.get("displayStatus") or "").upper())
    events: list[ShipmentEvent] = []
    for node in connection_nodes(latest.get("events")):
        step = SHIPMENT_STATUS_MAP.get(str(node.get("status") or "").upper())
        if step is not None:
            events.append(ShipmentEvent(step, parse_shop_time(node.get("happenedAt"))))
    events.sort(key=lambda event: event.happened_at or datetime.max.replace(tzinfo=UTC))
    return status, tuple(events)


def parse_shop_time(value: object) -> datetime | None:
    """An ISO 8601 DateTime from the Admin API as an aware UTC datetime (None when unreadable)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def order_gid(marketplace_order_id: str) -> str:
    """Shopify's global id for an order given either the gid or the bare numeric id."""
    text = marketplace_order_id.strip()
    return f"gid://shopify/Order/{text}" if text.isdigit() else text


def split_name(name: str) -> tuple[str, str]:
    parts = name.strip().split(None, 1)
    if not parts:
        return "", ""
    return (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])


def mailing_address(shipping: ShippingAddress) -> dict[str, str]:
    first, last = split_name(shipping.name)
    address = {
        "firstName": first,
        "lastName": last,
        "address1": shipping.line1,
        "address2": shipping.line2,
        "city": shipping.city,
        "zip": shipping.postal_code,
        "countryCode": shipping.country.upper(),
        "phone": shipping.phone,
    }
    return {key: value for key, value in address.items() if value}


def numeric_tail(gid: str) -> int:
    match = re.search(r"(\d+)$", gid)
    return int(match.group(1)) if match else 0


def shop_money(price_set: object) -> tuple[int | None, str | None]:
    """(minor units, currency) of a MoneyBag's shopMoney, or (None, None) when unreadable: an
    odd total must not make a placed order look failed."""
    if not isinstance(price_set, Mapping) or not isinstance(price_set.get("shopMoney"), Mapping):
        return None, None
    money = price_set["shopMoney"]
    currency = str(money.get("currencyCode") or "")
    minor = order_money(money.get("amount"), currency)
    return (minor, currency) if minor is not None else (None, None)

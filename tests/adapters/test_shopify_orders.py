"""Shopify orders through the Admin GraphQL API: request shapes, refusals, status mapping."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from adapters.base import (
    NotFound,
    OrderLine,
    OrderRequest,
    OrderStatus,
    RateLimited,
    Rejected,
    ShipmentStatus,
    ShippingAddress,
)
from adapters.marketplace_http import IDEMPOTENCY_HEADER
from adapters.shopify import ShopifyAdapter
from adapters.shopify_orders import map_shopify_order_status, order_gid
from tests.adapters.configs import RecordingTransport, marketplace_config
from tests.adapters.test_shopify_normalize import variant_product

GRAPHQL_PATH = "/admin/api/2024-10/graphql.json"

REQUEST = OrderRequest(
    reference="oc-ref-0001",
    idempotency_key="oc-ref-0001-shopwave",
    lines=[
        OrderLine(external_id="6857758064813", quantity=2, unit_price_minor=34999, currency="USD")
    ],
    shipping=ShippingAddress(
        name="Ada Lovelace",
        line1="1 Infinite Loop",
        city="Cupertino",
        country="us",
        postal_code="95014",
        email="ada@example.com",
    ),
    currency="USD",
)


def order_node(**changes: Any) -> dict[str, Any]:
    node = {
        "id": "gid://shopify/Order/1001",
        "name": "#1001",
        "sourceIdentifier": "oc-ref-0001",
        "displayFinancialStatus": "PAID",
        "displayFulfillmentStatus": "UNFULFILLED",
        "cancelledAt": None,
        "totalPriceSet": {"shopMoney": {"amount": "699.98", "currencyCode": "USD"}},
        "fulfillments": [],
    }
    node.update(changes)
    return node


class FakeShopifyAdmin:
    """Answers the Admin product endpoint and GraphQL operations like a shop would."""

    def __init__(self, graphql: dict[str, Any]) -> None:
        self.graphql = graphql
        self.transport = RecordingTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/products/6857758064813.json"):
            return httpx.Response(200, json={"product": variant_product()})
        if request.url.path == GRAPHQL_PATH:
            query = json.loads(request.content)["query"]
            for field, answer in self.graphql.items():
                if f"{field}(" in query:
                    return httpx.Response(200, json=answer)
        return httpx.Response(404, json={"errors": "Not Found"})

    def graphql_bodies(self) -> list[dict[str, Any]]:
        return [
            json.loads(request.content)
            for request in self.transport.requests
            if request.url.path == GRAPHQL_PATH
        ]


def shop(fake: FakeShopifyAdmin) -> ShopifyAdapter:
    return ShopifyAdapter(
        marketplace_config("shopify", slug="shopwave", api_key="shpat_test"),
        transport=fake.transport,
    )


def test_place_order_sends_order_create_with_our_reference() -> None:
    fake = FakeShopifyAdmin(
        {"orderCreate": {"data": {"orderCreate": {"order": order_node(), "userErrors": []}}}}
    )
    placed = shop(fake).place_order(REQUEST)
    assert placed.marketplace_order_id == "gid://shopify/Order/1001"
    assert placed.status is OrderStatus.PENDING
    assert (placed.total_minor, placed.currency) == (69998, "USD")

    [body] = fake.graphql_bodies()
    assert "orderCreate(order: $order, options: $options)" in body["query"]
    # The shop claims the items' inventory obeying each variant's policy, so it refuses rather
    # than oversells (the default BYPASS claims nothing and always creates the order).
    assert body["variables"]["options"] == {"inventoryBehaviour": "DECREMENT_OBEYING_POLICY"}
    order = body["variables"]["order"]
    assert order["sourceIdentifier"] == "oc-ref-0001"
    assert order["currency"] == "USD"
    assert order["lineItems"] == [
        {
            "variantId": "gid://shopify/ProductVariant/40312345678901",
            "quantity": 2,
            "priceSet": {"shopMoney": {"amount": "349.99", "currencyCode": "USD"}},
        }
    ]
    assert order["shippingAddress"]["countryCode"] == "US"
    assert order["shippingAddress"]["firstName"] == "Ada"
    assert order["email"] == "ada@example.com"
    write = fake.transport.requests[-1]
    assert write.headers[IDEMPOTENCY_HEADER] == "oc-ref-0001-shopwave"
    assert write.headers["X-Shopify-Access-Token"] == "shpat_test"


def test_a_failed_inventory_claim_is_a_refusal_that_names_it() -> None:
    answer = {
        "data": {
            "orderCreate": {
                "order": None,
                "userErrors": [
                    {
                        "code": "INVENTORY_CLAIM_FAILED",
                        "field": ["order", "lineItems", "0", "quantity"],
                        "message": "Not enough inventory: 3 available, 4 requested",
                    }
                ],
            }
        }
    }
    with pytest.raises(Rejected, match="3 available, 4 requested"):
        shop(FakeShopifyAdmin({"orderCreate": answer})).place_order(REQUEST)


def test_user_errors_become_rejected_with_shopifys_message() -> None:
    answer = {
        "data": {
            "orderCreate": {
                "order": None,
                "userErrors": [
                    {"field": ["order", "lineItems", "0"], "message": "Variant is invalid"}
                ],
            }
        }
    }
    with pytest.raises(Rejected, match="Variant is invalid"):
        shop(FakeShopifyAdmin({"orderCreate": answer})).place_order(REQUEST)


def test_throttled_graphql_is_rate_limited() -> None:
    answer = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]}
    with pytest.raises(RateLimited):
        shop(FakeShopifyAdmin({"order": answer})).order_status("1001")


def test_find_order_matches_the_exact_reference_and_prefers_the_oldest() -> None:
    nodes = [
        order_node(id="gid://shopify/Order/1005"),
        order_node(id="gid://shopify/Order/1002"),
        order_node(id="gid://shopify/Order/1001", sourceIdentifier="oc-ref-00011"),
    ]
    fake = FakeShopifyAdmin({"orders": {"data": {"orders": {"nodes": nodes}}}})
    found = shop(fake).find_order("oc-ref-0001")
    assert found is not None and found.marketplace_order_id == "gid://shopify/Order/1002"
    assert fake.graphql_bodies()[0]["variables"] == {"query": "source_identifier:oc-ref-0001"}


def test_find_order_returns_none_when_nothing_matches() -> None:
    fake = FakeShopifyAdmin({"orders": {"data": {"orders": {"nodes": []}}}})
    assert shop(fake).find_order("oc-ref-0001") is None


def test_order_status_reports_tracking() -> None:
    node = order_node(
        displayFulfillmentStatus="FULFILLED",
        fulfillments=[
            {
                "status": "SUCCESS",
                "displayStatus": "IN_TRANSIT",
                "trackingInfo": [
                    {
                        "company": "UPS",
                        "number": "1Z999AA10123456784",
                        "url": "https://ups.example/t/1Z9",
                    }
                ],
            }
        ],
    )
    fake = FakeShopifyAdmin({"order": {"data": {"order": node}}})
    state = shop(fake).order_status("1001")
    assert state.status is OrderStatus.SHIPPED
    assert state.raw_status == "FULFILLED/IN_TRANSIT"
    assert (state.tracking_number, state.carrier) == ("1Z999AA10123456784", "UPS")
    assert state.tracking_url == "https://ups.example/t/1Z9"
    assert fake.graphql_bodies()[0]["variables"] == {"id": "gid://shopify/Order/1001"}


def test_order_status_reads_the_shipment_step_its_events_and_the_order_name() -> None:
    node = order_node(
        displayFulfillmentStatus="FULFILLED",
        fulfillments=[
            {
                "status": "SUCCESS",
                "displayStatus": "DELAYED",
                "trackingInfo": [{"company": "FedEx", "number": "7712", "url": None}],
                "events": {
                    "nodes": [
                        {"status": "IN_TRANSIT", "happenedAt": "2026-12-02T10:05:00Z"},
                        {"status": "LABEL_PURCHASED", "happenedAt": "2026-12-02T10:00:00Z"},
                        {"status": "DELAYED", "happenedAt": "2026-12-02T11:30:00Z"},
                        {"status": "SOMETHING_NEW", "happenedAt": "2026-12-02T11:31:00Z"},
                    ]
                },
            }
        ],
    )
    state = shop(FakeShopifyAdmin({"order": {"data": {"order": node}}})).order_status("1001")
    assert state.status is OrderStatus.SHIPPED
    assert state.display_number == "#1001"
    assert state.shipment_status is ShipmentStatus.DELAYED
    assert [(e.status, e.happened_at.isoformat()) for e in state.shipment_events] == [
        (ShipmentStatus.CONFIRMED, "2026-12-02T10:00:00+00:00"),
        (ShipmentStatus.IN_TRANSIT, "2026-12-02T10:05:00+00:00"),
        (ShipmentStatus.DELAYED, "2026-12-02T11:30:00+00:00"),
    ]


def test_an_open_fulfillment_without_tracking_is_no_shipment() -> None:
    node = order_node(
        displayFulfillmentStatus="IN_PROGRESS",
        fulfillments=[{"status": "OPEN", "displayStatus": "CONFIRMED", "trackingInfo": []}],
    )
    state = shop(FakeShopifyAdmin({"order": {"data": {"order": node}}})).order_status("1001")
    assert state.status is OrderStatus.PROCESSING
    assert state.shipment_status is None and state.shipment_events == ()


def test_unknown_order_is_not_found() -> None:
    with pytest.raises(NotFound):
        shop(FakeShopifyAdmin({"order": {"data": {"order": None}}})).order_status("999")


def test_cancel_sends_order_cancel_then_reads_the_state() -> None:
    fake = FakeShopifyAdmin(
        {
            "orderCancel": {
                "data": {
                    "orderCancel": {
                        "job": {"id": "gid://shopify/Job/1"},
                        "orderCancelUserErrors": [],
                    }
                }
            },
            "order": {"data": {"order": order_node(cancelledAt="2026-03-02T10:00:00Z")}},
        }
    )
    state = shop(fake).cancel_order("gid://shopify/Order/1001")
    assert state.status is OrderStatus.CANCELLED
    cancel = fake.graphql_bodies()[0]
    assert cancel["variables"] == {
        "orderId": "gid://shopify/Order/1001",
        "reason": "CUSTOMER",
        "refund": True,
        "restock": True,
        "notifyCustomer": False,
    }
    assert fake.transport.requests[0].headers[IDEMPOTENCY_HEADER]


def test_cancel_refused_after_fulfillment_is_rejected() -> None:
    answer = {
        "data": {
            "orderCancel": {
                "job": None,
                "orderCancelUserErrors": [
                    {"code": "INVALID", "message": "Cannot cancel a fulfilled order"}
                ],
            }
        }
    }
    with pytest.raises(Rejected, match="Cannot cancel a fulfilled order"):
        shop(FakeShopifyAdmin({"orderCancel": answer})).cancel_order("1001")


def shipment(display_status: str, status: str = "SUCCESS") -> dict[str, Any]:
    return {"status": status, "displayStatus": display_status, "trackingInfo": []}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, OrderStatus.PENDING),
        ({"displayFulfillmentStatus": "ON_HOLD"}, OrderStatus.PENDING),
        ({"displayFulfillmentStatus": "IN_PROGRESS"}, OrderStatus.PROCESSING),
        (
            {
                "displayFulfillmentStatus": "PARTIALLY_FULFILLED",
                "fulfillments": [shipment("IN_TRANSIT")],
            },
            OrderStatus.PROCESSING,
        ),
        (
            {"displayFulfillmentStatus": "FULFILLED", "fulfillments": [shipment("CONFIRMED")]},
            OrderStatus.SHIPPED,
        ),
        (
            {
                "displayFulfillmentStatus": "FULFILLED",
                "fulfillments": [shipment("OUT_FOR_DELIVERY")],
            },
            OrderStatus.SHIPPED,
        ),
        (
            {"displayFulfillmentStatus": "FULFILLED", "fulfillments": [shipment("DELIVERED")]},
            OrderStatus.DELIVERED,
        ),
        (
            {
                "displayFulfillmentStatus": "FULFILLED",
                "fulfillments": [shipment("DELIVERED"), shipment("IN_TRANSIT")],
            },
            OrderStatus.SHIPPED,
        ),
        (
            {
                "displayFulfillmentStatus": "FULFILLED",
                "fulfillments": [shipment("DELIVERED"), shipment("CANCELED", "CANCELLED")],
            },
            OrderStatus.DELIVERED,
        ),
        # The carrier could not deliver: a shipment's step, not the order's end (the shop may
        # ship again; a refund shows as REFUNDED, a cancellation as cancelledAt).
        (
            {"displayFulfillmentStatus": "FULFILLED", "fulfillments": [shipment("FAILURE")]},
            OrderStatus.SHIPPED,
        ),
        (
            {"displayFulfillmentStatus": "", "fulfillments": [shipment("NOT_DELIVERED")]},
            OrderStatus.SHIPPED,
        ),
        (
            {
                "displayFulfillmentStatus": "FULFILLED",
                "displayFinancialStatus": "REFUNDED",
                "fulfillments": [shipment("FAILURE")],
            },
            OrderStatus.REFUNDED,
        ),
        ({"displayFulfillmentStatus": "RESTOCKED"}, OrderStatus.CANCELLED),
        (
            {"cancelledAt": "2026-03-02T10:00:00Z", "displayFulfillmentStatus": "UNFULFILLED"},
            OrderStatus.CANCELLED,
        ),
        ({"displayFinancialStatus": "REFUNDED"}, OrderStatus.REFUNDED),
        ({"displayFulfillmentStatus": "SOMETHING_NEW"}, OrderStatus.PENDING),
    ],
)
def test_status_mapping(changes: dict[str, Any], expected: OrderStatus) -> None:
    status, raw = map_shopify_order_status(order_node(**changes))
    assert status is expected
    assert raw


def test_order_ids_accept_gid_or_number() -> None:
    assert order_gid("1001") == "gid://shopify/Order/1001"
    assert order_gid("gid://shopify/Order/1001") == "gid://shopify/Order/1001"

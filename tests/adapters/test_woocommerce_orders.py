"""WooCommerce REST v3 orders: request shape, Basic auth, reference search, status, refusals."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from adapters.base import OrderLine, OrderRequest, OrderStatus, Rejected, ShippingAddress
from adapters.marketplace_http import IDEMPOTENCY_HEADER
from adapters.woocommerce import WooCommerceAdapter
from adapters.woocommerce_orders import map_woocommerce_status, tracking_from_meta
from tests.adapters.configs import RecordingTransport, marketplace_config

REQUEST = OrderRequest(
    reference="oc-ref-0002",
    idempotency_key="oc-ref-0002-kiondo",
    lines=[
        OrderLine(external_id="34", quantity=1, unit_price_minor=549900, currency="KES"),
        OrderLine(external_id="12", quantity=3, unit_price_minor=99900, currency="KES"),
    ],
    shipping=ShippingAddress(
        name="Wanjiru Kamau",
        line1="Moi Avenue 12",
        city="Nairobi",
        country="KE",
        phone="+254700000000",
        email="wanjiru@example.com",
    ),
    currency="KES",
)


def woo_order(**changes: Any) -> dict[str, Any]:
    order = {
        "id": 727,
        "number": "727",
        "status": "processing",
        "currency": "KES",
        "total": "8496.00",
        "line_items": [],
        "meta_data": [{"id": 1, "key": "_onecart_reference", "value": "oc-ref-0002"}],
        "date_created": "2026-03-01T10:00:00",
    }
    order.update(changes)
    return order


def woo(
    handler, *, api_key: str | None = "ck_test:cs_test"
) -> tuple[WooCommerceAdapter, RecordingTransport]:
    transport = RecordingTransport(handler)
    adapter = WooCommerceAdapter(
        marketplace_config(
            "woocommerce",
            slug="kiondo",
            currency="KES",
            api_key=api_key,
            api_key_env="ONECART_MARKETPLACE_KEY_KIONDO",
        ),
        transport=transport,
    )
    return adapter, transport


def test_place_order_posts_a_paid_order_with_our_reference() -> None:
    adapter, transport = woo(lambda request: httpx.Response(201, json=woo_order()))
    placed = adapter.place_order(REQUEST)
    assert placed.marketplace_order_id == "727"
    assert placed.status is OrderStatus.PROCESSING
    assert (placed.total_minor, placed.currency) == (849600, "KES")

    request = transport.requests[0]
    assert (request.method, request.url.path) == ("POST", "/wp-json/wc/v3/orders")
    assert request.headers[IDEMPOTENCY_HEADER] == "oc-ref-0002-kiondo"
    assert (
        request.headers["Authorization"] == "Basic " + base64.b64encode(b"ck_test:cs_test").decode()
    )
    body = json.loads(request.content)
    assert body["set_paid"] is True
    # The prices we charged travel as each line's total (and subtotal): the store bills them.
    assert body["line_items"] == [
        {"product_id": 34, "quantity": 1, "subtotal": "5499.00", "total": "5499.00"},
        {"product_id": 12, "quantity": 3, "subtotal": "2997.00", "total": "2997.00"},
    ]
    assert body["meta_data"] == [{"key": "_onecart_reference", "value": "oc-ref-0002"}]
    assert body["billing"]["email"] == "wanjiru@example.com"
    assert body["shipping"]["first_name"] == "Wanjiru"
    assert "email" not in body["shipping"]


def test_missing_credentials_name_the_variable() -> None:
    adapter, transport = woo(lambda request: httpx.Response(201, json=woo_order()), api_key=None)
    with pytest.raises(Rejected, match="ONECART_MARKETPLACE_KEY_KIONDO"):
        adapter.place_order(REQUEST)
    assert transport.requests == []


def test_a_refused_order_carries_woocommerces_message() -> None:
    body = {
        "code": "woocommerce_rest_invalid_product_id",
        "message": "Invalid product ID 34.",
        "data": {"status": 400},
    }
    adapter, _ = woo(lambda request: httpx.Response(400, json=body))
    with pytest.raises(Rejected, match=r"Invalid product ID 34\.") as caught:
        adapter.place_order(REQUEST)
    assert caught.value.status == 400


def test_find_order_filters_search_results_on_the_reference_meta() -> None:
    results = [
        woo_order(id=730),
        woo_order(id=729, meta_data=[{"key": "_onecart_reference", "value": "oc-ref-00021"}]),
        woo_order(id=728),
    ]
    adapter, transport = woo(lambda request: httpx.Response(200, json=results))
    found = adapter.find_order("oc-ref-0002")
    assert found is not None and found.marketplace_order_id == "728"
    assert transport.requests[0].url.params["search"] == "oc-ref-0002"


def test_find_order_without_a_match_is_none() -> None:
    adapter, _ = woo(lambda request: httpx.Response(200, json=[]))
    assert adapter.find_order("oc-ref-0002", sent_since=datetime.now(UTC)) is None


def test_order_status_reads_shipment_tracking_meta() -> None:
    tracking = [
        {"tracking_provider": "G4S", "tracking_number": "G4S-001", "custom_tracking_link": ""},
        {
            "tracking_provider": "",
            "custom_tracking_provider": "Sendy",
            "tracking_number": "SND-42",
            "custom_tracking_link": "https://sendy.example/t/SND-42",
        },
    ]
    order = woo_order(
        status="completed",
        meta_data=[
            *woo_order()["meta_data"],
            {"key": "_wc_shipment_tracking_items", "value": tracking},
        ],
    )
    adapter, transport = woo(lambda request: httpx.Response(200, json=order))
    state = adapter.order_status("727")
    assert state.status is OrderStatus.SHIPPED
    assert state.raw_status == "completed"
    assert (state.tracking_number, state.carrier, state.tracking_url) == (
        "SND-42",
        "Sendy",
        "https://sendy.example/t/SND-42",
    )
    assert transport.requests[0].url.path == "/wp-json/wc/v3/orders/727"


def test_cancel_puts_the_cancelled_status() -> None:
    adapter, transport = woo(
        lambda request: httpx.Response(200, json=woo_order(status="cancelled"))
    )
    state = adapter.cancel_order("727")
    assert state.status is OrderStatus.CANCELLED
    request = transport.requests[0]
    assert request.method == "PUT"
    assert json.loads(request.content) == {"status": "cancelled"}
    assert request.headers[IDEMPOTENCY_HEADER]


def test_cancel_after_completion_is_rejected_with_the_reason() -> None:
    body = {
        "code": "woocommerce_rest_cannot_cancel",
        "message": "Order 727 is completed and cannot be cancelled.",
        "data": {"status": 400},
    }
    adapter, _ = woo(lambda request: httpx.Response(400, json=body))
    with pytest.raises(Rejected, match="cannot be cancelled"):
        adapter.cancel_order("727")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("pending", OrderStatus.PENDING),
        ("on-hold", OrderStatus.PENDING),
        ("wc-on-hold", OrderStatus.PENDING),
        ("processing", OrderStatus.PROCESSING),
        ("completed", OrderStatus.SHIPPED),
        ("delivered", OrderStatus.DELIVERED),
        ("cancelled", OrderStatus.CANCELLED),
        ("trash", OrderStatus.CANCELLED),
        ("refunded", OrderStatus.REFUNDED),
        ("failed", OrderStatus.FAILED),
        ("awaiting-pickup", OrderStatus.PROCESSING),
    ],
)
def test_status_mapping(status: str, expected: OrderStatus) -> None:
    assert map_woocommerce_status(status) is expected


def test_no_tracking_meta_means_no_tracking() -> None:
    assert tracking_from_meta(woo_order()) == (None, None, None)

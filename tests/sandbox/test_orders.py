"""Orders over real HTTP: ShopWave (Shopify GraphQL), Kiondo (WooCommerce REST v3), DummyMart
(DummyJSON carts) and Fake Store carts — creation, idempotency, reference lookup, status
progression with a short order_step_seconds, and cancellation rules."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.sandbox.conftest import shopify_graphql

FAST_STEP = 0.15
POLL_INTERVAL = 0.05
MAX_POLLS = 200

CREATE = """mutation orderCreate($order: OrderCreateOrderInput!) {
  orderCreate(order: $order) { order { id name sourceIdentifier displayFinancialStatus
    displayFulfillmentStatus cancelledAt totalPriceSet { shopMoney { amount currencyCode } } }
    userErrors { field message } } }"""
ORDER = "query($id: ID!) { order(id: $id) { id displayFulfillmentStatus cancelledAt fulfillments { displayStatus trackingInfo { company number url } } } }"
ORDERS = (
    "query($query: String!) { orders(first: 10, query: $query) { nodes { id sourceIdentifier } } }"
)
CANCEL = """mutation orderCancel($orderId: ID!) { orderCancel(orderId: $orderId, reason: CUSTOMER,
  refund: true, restock: true, notifyCustomer: false) { job { id } orderCancelUserErrors { code message } } }"""
WOO_AUTH = ("ck_test", "cs_test")


def poll_until(read: Callable[[], Any], done: Callable[[Any], bool]) -> list[Any]:
    """Read repeatedly (bounded) until `done`; returns every value seen."""
    seen = [read()]
    for _ in range(MAX_POLLS):
        if done(seen[-1]):
            return seen
        time.sleep(POLL_INTERVAL)
        seen.append(read())
    raise AssertionError(f"never reached the expected state; last: {seen[-1]!r}")


def in_order(observed: list[str], progression: list[str]) -> bool:
    """True when the distinct statuses observed follow the progression without going back."""
    distinct = [s for n, s in enumerate(observed) if n == 0 or s != observed[n - 1]]
    positions = [progression.index(s) for s in distinct]
    return positions == sorted(positions)


def clean_shopify_variant(http: httpx.Client) -> tuple[str, str]:
    """(variant gid, price) of a well-formed ShopWave product."""
    for product in http.get("/shopwave/products.json", params={"limit": 20}).json()["products"]:
        variant = product["variants"][0]
        if str(variant.get("price", "")).replace(".", "").isdigit():
            return f"gid://shopify/ProductVariant/{variant['id']}", variant["price"]
    raise AssertionError("no well-formed product on the first page")


def shopify_order(variant: str, price: str, reference: str, quantity: int = 2) -> dict[str, Any]:
    return {
        "order": {
            "currency": "USD",
            "sourceIdentifier": reference,
            "lineItems": [
                {
                    "variantId": variant,
                    "quantity": quantity,
                    "priceSet": {"shopMoney": {"amount": price, "currencyCode": "USD"}},
                }
            ],
            "shippingAddress": {
                "firstName": "Amina",
                "address1": "1 Main St",
                "city": "Austin",
                "countryCode": "US",
            },
            "email": "amina@example.com",
        }
    }


# --- ShopWave: Shopify Admin GraphQL ---------------------------------------------------------


def test_shopify_order_create_is_idempotent_and_found_by_reference(
    sandbox_control: httpx.Client,
) -> None:
    sandbox_control.post("/_sandbox/knobs/shopwave", json={"cancel_rate": 0})
    variant, price = clean_shopify_variant(sandbox_control)
    reference = f"oc-{uuid.uuid4().hex[:10]}"
    key = f"idem-{reference}"
    first = shopify_graphql(
        sandbox_control, CREATE, shopify_order(variant, price, reference), idempotency_key=key
    )
    again = shopify_graphql(
        sandbox_control, CREATE, shopify_order(variant, price, reference), idempotency_key=key
    )
    created = first.json()["data"]["orderCreate"]
    assert created["userErrors"] == []
    order = created["order"]
    assert order == again.json()["data"]["orderCreate"]["order"]
    assert (
        order["id"].startswith("gid://shopify/Order/")
        and order["name"] == "#" + order["id"].rsplit("/", 1)[1]
    )
    assert order["sourceIdentifier"] == reference
    assert (
        order["displayFinancialStatus"] == "PAID"
        and order["displayFulfillmentStatus"] == "UNFULFILLED"
    )
    assert order["cancelledAt"] is None
    assert order["totalPriceSet"]["shopMoney"]["currencyCode"] == "USD"
    assert Decimal(order["totalPriceSet"]["shopMoney"]["amount"]) == 2 * Decimal(price)
    nodes = shopify_graphql(
        sandbox_control, ORDERS, {"query": f"source_identifier:{reference}"}
    ).json()["data"]["orders"]["nodes"]
    assert [node["id"] for node in nodes] == [order["id"]]
    looked_up = shopify_graphql(sandbox_control, ORDER, {"id": order["id"]}).json()["data"]["order"]
    assert looked_up["id"] == order["id"]
    assert shopify_graphql(sandbox_control, ORDER, {"id": "gid://shopify/Order/999999"}).json() == {
        "data": {"order": None}
    }


def test_shopify_order_create_reports_user_errors(sandbox_control: httpx.Client) -> None:
    variant, price = clean_shopify_variant(sandbox_control)
    unknown = shopify_graphql(
        sandbox_control, CREATE, shopify_order("gid://shopify/ProductVariant/1", price, "ue-1")
    )
    result = unknown.json()["data"]["orderCreate"]
    assert result["order"] is None and result["userErrors"][0]["field"][-1] == "variantId"
    zero = shopify_graphql(
        sandbox_control, CREATE, shopify_order(variant, price, "ue-2", quantity=0)
    )
    assert zero.json()["data"]["orderCreate"]["userErrors"][0]["field"][-1] == "quantity"
    no_token = sandbox_control.post(
        "/shopwave/admin/api/2024-10/graphql.json",
        json={"query": CREATE, "variables": shopify_order(variant, price, "x")},
    )
    assert no_token.status_code == 401


def test_shopify_order_progresses_to_delivered_with_tracking(sandbox_control: httpx.Client) -> None:
    # Not delayed: the sandbox delays 10% of orders by default (delay_rate), which would add a
    # DELAYED step this test does not expect (the delayed path has its own test below).
    sandbox_control.post(
        "/_sandbox/knobs/shopwave",
        json={"cancel_rate": 0, "delay_rate": 0, "order_step_seconds": FAST_STEP},
    )
    variant, price = clean_shopify_variant(sandbox_control)
    order = shopify_graphql(
        sandbox_control, CREATE, shopify_order(variant, price, f"prog-{uuid.uuid4().hex[:8]}")
    )
    gid = order.json()["data"]["orderCreate"]["order"]["id"]

    def read() -> dict[str, Any]:
        return shopify_graphql(sandbox_control, ORDER, {"id": gid}).json()["data"]["order"]

    seen = poll_until(
        read,
        lambda o: bool(o["fulfillments"]) and o["fulfillments"][0]["displayStatus"] == "DELIVERED",
    )
    assert in_order(
        [o["displayFulfillmentStatus"] for o in seen], ["UNFULFILLED", "IN_PROGRESS", "FULFILLED"]
    )
    shipment = [o["fulfillments"][0]["displayStatus"] for o in seen if o["fulfillments"]]
    assert in_order(shipment, ["CONFIRMED", "IN_TRANSIT", "DELIVERED"])
    tracking = seen[-1]["fulfillments"][0]["trackingInfo"][0]
    assert tracking["company"] and tracking["number"] and tracking["url"].startswith("https://")
    assert seen[-1]["cancelledAt"] is None


EVENTS = """query($id: ID!) { order(id: $id) { id name displayFulfillmentStatus fulfillments {
  displayStatus trackingInfo { company number url }
  events(first: 50, sortKey: HAPPENED_AT) { nodes { status happenedAt } } } } }"""


def test_advanced_shopify_order_walks_every_step_with_fulfillment_events(
    sandbox_control: httpx.Client,
) -> None:
    # A step of an hour: the order only moves when the control API advances it.
    sandbox_control.post(
        "/_sandbox/knobs/shopwave",
        json={"cancel_rate": 0, "delay_rate": 1, "order_step_seconds": 3600},
    )
    variant, price = clean_shopify_variant(sandbox_control)
    created = shopify_graphql(
        sandbox_control, CREATE, shopify_order(variant, price, f"adv-{uuid.uuid4().hex[:8]}")
    ).json()["data"]["orderCreate"]["order"]
    number = int(created["id"].rsplit("/", 1)[-1])
    assert created["name"] == f"#{number}"

    def read() -> dict[str, Any]:
        return shopify_graphql(sandbox_control, EVENTS, {"id": created["id"]}).json()["data"][
            "order"
        ]

    seen = [(read()["displayFulfillmentStatus"], None)]
    for _ in range(6):
        facts = sandbox_control.post(f"/_sandbox/orders/shopwave/{number}/advance", json={})
        assert facts.status_code == 200
        order = read()
        shipment = order["fulfillments"][0]["displayStatus"] if order["fulfillments"] else None
        seen.append((order["displayFulfillmentStatus"], shipment))
    assert seen == [
        ("UNFULFILLED", None),
        ("IN_PROGRESS", "CONFIRMED"),
        ("FULFILLED", "CONFIRMED"),
        ("FULFILLED", "IN_TRANSIT"),
        ("FULFILLED", "DELAYED"),
        ("FULFILLED", "DELAYED"),
        ("FULFILLED", "DELIVERED"),
    ]
    fulfillment = read()["fulfillments"][0]
    events = fulfillment["events"]["nodes"]
    assert [e["status"] for e in events] == ["CONFIRMED", "IN_TRANSIT", "DELAYED", "DELIVERED"]
    assert all(e["happenedAt"].endswith("Z") for e in events)
    assert fulfillment["trackingInfo"][0]["number"]
    bad = sandbox_control.post(f"/_sandbox/orders/shopwave/{number}/advance", json={"steps": 0})
    assert bad.status_code == 400


def test_shopify_cancel_before_fulfilment_only(sandbox_control: httpx.Client) -> None:
    sandbox_control.post("/_sandbox/knobs/shopwave", json={"cancel_rate": 0})
    variant, price = clean_shopify_variant(sandbox_control)
    early = shopify_graphql(sandbox_control, CREATE, shopify_order(variant, price, "cancel-early"))
    early_id = early.json()["data"]["orderCreate"]["order"]["id"]
    cancelled = shopify_graphql(sandbox_control, CANCEL, {"orderId": early_id}).json()["data"][
        "orderCancel"
    ]
    assert cancelled["orderCancelUserErrors"] == [] and cancelled["job"]["id"].startswith(
        "gid://shopify/Job/"
    )
    assert shopify_graphql(sandbox_control, ORDER, {"id": early_id}).json()["data"]["order"][
        "cancelledAt"
    ]

    sandbox_control.post("/_sandbox/knobs/shopwave", json={"order_step_seconds": FAST_STEP})
    late = shopify_graphql(sandbox_control, CREATE, shopify_order(variant, price, "cancel-late"))
    late_id = late.json()["data"]["orderCreate"]["order"]["id"]
    poll_until(
        lambda: shopify_graphql(sandbox_control, ORDER, {"id": late_id}).json()["data"]["order"],
        lambda o: o["displayFulfillmentStatus"] == "FULFILLED",
    )
    refused = shopify_graphql(sandbox_control, CANCEL, {"orderId": late_id}).json()["data"][
        "orderCancel"
    ]
    assert refused["job"] is None and refused["orderCancelUserErrors"][0]["code"]


def test_shopify_orders_chosen_by_cancel_rate_are_cancelled_instead_of_shipped(
    sandbox_control: httpx.Client,
) -> None:
    sandbox_control.post(
        "/_sandbox/knobs/shopwave", json={"cancel_rate": 1, "order_step_seconds": FAST_STEP}
    )
    variant, price = clean_shopify_variant(sandbox_control)
    order = shopify_graphql(sandbox_control, CREATE, shopify_order(variant, price, "doomed"))
    gid = order.json()["data"]["orderCreate"]["order"]["id"]
    seen = poll_until(
        lambda: shopify_graphql(sandbox_control, ORDER, {"id": gid}).json()["data"]["order"],
        lambda o: o["cancelledAt"] is not None,
    )
    assert all(o["displayFulfillmentStatus"] != "FULFILLED" for o in seen)


# --- Kiondo: WooCommerce REST v3 -------------------------------------------------------------


def clean_kiondo_product(http: httpx.Client) -> dict[str, Any]:
    for product in http.get("/kiondo/wp-json/wc/store/v1/products", params={"per_page": 20}).json():
        if (
            product["prices"].get("price", "-").isdigit()
            and product["prices"]["currency_code"] == "KES"
        ):
            return product
    raise AssertionError("no well-formed product on the first page")


def woo_order(product_id: int, reference: str, quantity: int = 1) -> dict[str, Any]:
    address = {
        "first_name": "Wanjiru",
        "last_name": "Kamau",
        "address_1": "Moi Ave 1",
        "city": "Nairobi",
        "country": "KE",
    }
    return {
        "payment_method": "onecart",
        "payment_method_title": "Paid via OneCart",
        "set_paid": True,
        "billing": {**address, "email": "wanjiru@example.com"},
        "shipping": address,
        "line_items": [{"product_id": product_id, "quantity": quantity}],
        "meta_data": [{"key": "_onecart_reference", "value": reference}],
    }


def test_woocommerce_order_is_created_once_per_key_and_searchable(
    sandbox_control: httpx.Client,
) -> None:
    sandbox_control.post("/_sandbox/knobs/kiondo", json={"cancel_rate": 0})
    product = clean_kiondo_product(sandbox_control)
    reference = f"wc-{uuid.uuid4().hex[:10]}"
    headers = {"Idempotency-Key": f"idem-{reference}"}
    first = sandbox_control.post(
        "/kiondo/wp-json/wc/v3/orders",
        json=woo_order(product["id"], reference, 3),
        auth=WOO_AUTH,
        headers=headers,
    )
    again = sandbox_control.post(
        "/kiondo/wp-json/wc/v3/orders",
        json=woo_order(product["id"], reference, 3),
        auth=WOO_AUTH,
        headers=headers,
    )
    assert (first.status_code, again.status_code) == (201, 200)
    order = first.json()
    assert again.json()["id"] == order["id"]
    assert order["status"] == "processing" and order["currency"] == "KES"
    assert Decimal(order["total"]) == 3 * Decimal(product["prices"]["price"]) / 100
    assert {"key": "_onecart_reference", "value": reference}.items() <= order["meta_data"][
        0
    ].items()
    found = sandbox_control.get(
        "/kiondo/wp-json/wc/v3/orders", params={"search": reference}, auth=WOO_AUTH
    ).json()
    assert [o["id"] for o in found] == [order["id"]]
    assert (
        sandbox_control.get(f"/kiondo/wp-json/wc/v3/orders/{order['id']}", auth=WOO_AUTH).json()[
            "id"
        ]
        == order["id"]
    )
    assert sandbox_control.get(f"/kiondo/wp-json/wc/v3/orders/{order['id']}").status_code == 401
    missing = sandbox_control.get("/kiondo/wp-json/wc/v3/orders/1", auth=WOO_AUTH)
    assert missing.status_code == 404


def test_woocommerce_rejects_unknown_products(sandbox_control: httpx.Client) -> None:
    response = sandbox_control.post(
        "/kiondo/wp-json/wc/v3/orders", json=woo_order(5, "bad"), auth=WOO_AUTH
    )
    assert (
        response.status_code == 400
        and response.json()["code"] == "woocommerce_rest_invalid_product_id"
    )


def test_woocommerce_order_goes_processing_completed_delivered(
    sandbox_control: httpx.Client,
) -> None:
    sandbox_control.post(
        "/_sandbox/knobs/kiondo", json={"cancel_rate": 0, "order_step_seconds": FAST_STEP}
    )
    product = clean_kiondo_product(sandbox_control)
    order = sandbox_control.post(
        "/kiondo/wp-json/wc/v3/orders", json=woo_order(product["id"], "wc-progress"), auth=WOO_AUTH
    ).json()
    seen = poll_until(
        lambda: sandbox_control.get(
            f"/kiondo/wp-json/wc/v3/orders/{order['id']}", auth=WOO_AUTH
        ).json(),
        lambda o: o["status"] == "delivered",
    )
    assert in_order(
        [o["status"] for o in seen], ["pending", "processing", "completed", "delivered"]
    )
    tracking = next(
        m["value"] for m in seen[-1]["meta_data"] if m["key"] == "_wc_shipment_tracking_items"
    )
    assert tracking[0]["tracking_number"] and tracking[0]["tracking_provider"]


def test_woocommerce_cancel_until_completed(sandbox_control: httpx.Client) -> None:
    sandbox_control.post("/_sandbox/knobs/kiondo", json={"cancel_rate": 0})
    product = clean_kiondo_product(sandbox_control)
    order = sandbox_control.post(
        "/kiondo/wp-json/wc/v3/orders", json=woo_order(product["id"], "wc-cancel"), auth=WOO_AUTH
    ).json()
    cancelled = sandbox_control.put(
        f"/kiondo/wp-json/wc/v3/orders/{order['id']}", json={"status": "cancelled"}, auth=WOO_AUTH
    )
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    sandbox_control.post("/_sandbox/knobs/kiondo", json={"order_step_seconds": FAST_STEP})
    late = sandbox_control.post(
        "/kiondo/wp-json/wc/v3/orders", json=woo_order(product["id"], "wc-late"), auth=WOO_AUTH
    ).json()
    poll_until(
        lambda: sandbox_control.get(
            f"/kiondo/wp-json/wc/v3/orders/{late['id']}", auth=WOO_AUTH
        ).json(),
        lambda o: o["status"] in ("completed", "delivered"),
    )
    refused = sandbox_control.put(
        f"/kiondo/wp-json/wc/v3/orders/{late['id']}", json={"status": "cancelled"}, auth=WOO_AUTH
    )
    assert refused.status_code == 400 and refused.json()["code"] == "woocommerce_rest_cannot_cancel"


# --- DummyMart and Fake Store carts ----------------------------------------------------------


def test_dummyjson_cart_lines_come_back_in_id_order_once_per_key(
    sandbox_control: httpx.Client,
) -> None:
    products = sandbox_control.get(
        "/dummymart/products", params={"limit": 10, "select": "price"}
    ).json()["products"]
    priced = [p for p in products if isinstance(p.get("price"), float) and p["price"] > 0][:2]
    body = {
        "userId": 1,
        "products": [
            {"id": priced[1]["id"], "quantity": 1},
            {"id": priced[0]["id"], "quantity": 2},
        ],
    }
    headers = {"Idempotency-Key": f"dm-{uuid.uuid4().hex}"}
    first = sandbox_control.post("/dummymart/carts/add", json=body, headers=headers)
    again = sandbox_control.post("/dummymart/carts/add", json=body, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    cart = first.json()
    assert again.json() == cart
    assert [line["id"] for line in cart["products"]] == sorted([priced[0]["id"], priced[1]["id"]])
    assert cart["totalQuantity"] == 3 and cart["totalProducts"] == 2
    assert cart["total"] == pytest.approx(2 * priced[0]["price"] + priced[1]["price"])
    fresh = sandbox_control.post("/dummymart/carts/add", json=body)
    assert fresh.json()["id"] != cart["id"]
    unknown = sandbox_control.post(
        "/dummymart/carts/add", json={"userId": 1, "products": [{"id": 999999, "quantity": 1}]}
    )
    assert unknown.status_code == 404


def test_fake_store_cart_is_created_once_per_key_and_readable(
    sandbox_control: httpx.Client,
) -> None:
    body = {"userId": 1, "date": "2026-11-25", "products": [{"productId": 3, "quantity": 2}]}
    headers = {"Idempotency-Key": f"fs-{uuid.uuid4().hex}"}
    first = sandbox_control.post("/fakestore/carts", json=body, headers=headers)
    again = sandbox_control.post("/fakestore/carts", json=body, headers=headers)
    assert first.status_code == 201
    cart = first.json()
    assert again.json()["id"] == cart["id"]
    assert cart["products"] == [{"productId": 3, "quantity": 2}] and cart["date"] == "2026-11-25"
    assert sandbox_control.get(f"/fakestore/carts/{cart['id']}").json() == cart
    assert sandbox_control.get("/fakestore/carts/99999").content == b""

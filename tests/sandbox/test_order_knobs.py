"""The order fault knobs in the sandbox's own terms: validation, how one placement consumes
them, and the shapes the marketplaces answer with (real HTTP); plus the /_sandbox/orders control
API the fault suite checks its invariants with. The adapters' view of the same knobs is in
tests/adapters/test_order_faults_against_sandbox.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from sandbox.knobs import KnobBoard, KnobError, coerce_knob, parse_cli_knob
from tests.sandbox.conftest import shopify_graphql
from tests.sandbox.test_orders import (
    CREATE,
    WOO_AUTH,
    clean_shopify_variant,
    poll_until,
    shopify_order,
)


def test_order_knobs_are_validated() -> None:
    assert coerce_knob("order_price_change_pct", "-20") == -20
    assert coerce_knob("delisted_products", ["12", 40, "12"]) == ("12", "40")
    assert coerce_knob("delisted_products", "12, 40") == ("12", "40")
    assert coerce_knob("delisted_products", 7) == ("7",)
    assert coerce_knob("order_reply_delay_ms", 120_000) == 120_000
    for name, value in [
        ("order_price_change_pct", -100),
        ("order_price_change_pct", 1001),
        ("order_price_change_pct", 2.5),
        ("order_reply_delay_ms", 120_001),
        ("delisted_products", [True]),
        ("delisted_products", {"id": 1}),
        ("drop_unknown_lines", "maybe"),
        ("cancel_next_orders", -1),
    ]:
        with pytest.raises(KnobError):
            coerce_knob(name, value)
    assert parse_cli_knob("kiondo.delisted_products=1003,1006") == (
        "kiondo",
        "delisted_products",
        "1003,1006",
    )


def test_one_placement_consumes_one_of_each_counter_in_order() -> None:
    slept: list[float] = []
    board = KnobBoard(["shopwave"], sleep=slept.append)
    board.update(
        "shopwave",
        {
            "fail_next_orders": 1,
            "refuse_next_orders": 1,
            "fail_after_next_orders": 2,
            "cancel_next_orders": 1,
            "order_reply_delay_ms": 250,
        },
    )
    plans = [board.plan_placement("shopwave") for _ in range(3)]
    assert [p.fail_before for p in plans] == [True, False, False]
    assert [p.refuse for p in plans] == [False, True, False]
    assert plans[2].reply_delay_s == 0.25
    board.pause(plans[2].reply_delay_s)
    assert slept == [0.25]
    # The after-placement faults are taken only by placements that created an order.
    assert board.get("shopwave").fail_after_next_orders == 2
    assert board.take_after_placement("shopwave") == (True, True)
    assert board.take_after_placement("shopwave") == (True, False)
    assert board.take_after_placement("shopwave") == (False, False)
    board.update("shopwave", {"fail_after_next_cancels": 1, "cancel_reply_delay_ms": 100})
    assert board.plan_cancel("shopwave").fail_after is True
    assert board.plan_cancel("shopwave").fail_after is False
    assert board.plan_cancel("shopwave").reply_delay_s == 0.1


def test_a_price_change_bills_the_current_price_moved_by_the_percentage() -> None:
    board = KnobBoard(["kiondo"])
    assert board.plan_placement("kiondo").billed_unit_price(900, 1000) == 900  # what was sent
    assert board.plan_placement("kiondo").billed_unit_price(None, 1000) == 1000
    board.update("kiondo", {"order_price_change_pct": 15, "max_line_quantity": 2})
    plan = board.plan_placement("kiondo")
    assert plan.billed_unit_price(900, 999) == 1149  # 1148.85 rounded half up
    assert (plan.quantity(5), plan.quantity(1)) == (2, 1)
    board.update("kiondo", {"order_price_change_pct": -99})
    assert board.plan_placement("kiondo").billed_unit_price(None, 1) == 1  # never free


def test_shopify_refusal_and_failure_use_its_own_shapes(sandbox_control: httpx.Client) -> None:
    variant, price = clean_shopify_variant(sandbox_control)
    reference = f"knob-{uuid.uuid4().hex[:10]}"
    sandbox_control.post(
        "/_sandbox/knobs/shopwave", json={"refuse_next_orders": 1, "fail_after_next_orders": 1}
    )
    refused = shopify_graphql(sandbox_control, CREATE, shopify_order(variant, price, reference))
    result = refused.json()["data"]["orderCreate"]
    assert refused.status_code == 200 and result["order"] is None and result["userErrors"]
    failed = shopify_graphql(
        sandbox_control, CREATE, shopify_order(variant, price, reference), idempotency_key=reference
    )
    assert failed.status_code == 500
    [held] = sandbox_control.get(
        "/_sandbox/orders/shopwave", params={"reference": reference}
    ).json()["orders"]
    assert held["idempotency_key"] == reference and held["status"] in ("pending", "processing")
    replay = shopify_graphql(
        sandbox_control, CREATE, shopify_order(variant, price, reference), idempotency_key=reference
    )
    assert (
        replay.json()["data"]["orderCreate"]["order"]["id"]
        == f"gid://shopify/Order/{held['number']}"
    )


def test_a_slow_reply_still_creates_the_order(sandbox_control: httpx.Client) -> None:
    sandbox_control.post("/_sandbox/knobs/fakestore", json={"order_reply_delay_ms": 2000})
    key = f"slow-{uuid.uuid4().hex}"
    body = {"userId": 1, "date": "2026-12-02", "products": [{"productId": 3, "quantity": 1}]}
    with (
        httpx.Client(base_url=str(sandbox_control.base_url), timeout=0.3) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post("/fakestore/carts", json=body, headers={"Idempotency-Key": key})
    orders = sandbox_control.get("/_sandbox/orders/fakestore").json()["orders"]
    [lines] = [o["lines"] for o in orders if o["idempotency_key"] == key]
    assert [(line["external_id"], line["quantity"]) for line in lines] == [("3", 1)]


def test_woocommerce_bills_the_line_totals_it_is_sent(sandbox_control: httpx.Client) -> None:
    product = next(
        p
        for p in sandbox_control.get(
            "/kiondo/wp-json/wc/store/v1/products", params={"per_page": 20}
        ).json()
        if str(p["prices"]["price"]).isdigit() and p["prices"]["currency_code"] == "KES"
    )
    reference = f"wc-{uuid.uuid4().hex[:10]}"
    body = {
        "set_paid": True,
        "line_items": [{"product_id": product["id"], "quantity": 3, "total": "1000.00"}],
        "meta_data": [{"key": "_onecart_reference", "value": reference}],
    }
    order = sandbox_control.post("/kiondo/wp-json/wc/v3/orders", json=body, auth=WOO_AUTH).json()
    [line] = order["line_items"]
    assert (order["total"], line["total"], line["quantity"]) == ("1000.00", "1000.00", 3)
    assert line["price"] == pytest.approx(333.3333, abs=0.001)  # a float, derived
    sandbox_control.post("/_sandbox/knobs/kiondo", json={"order_price_change_pct": 10})
    moved = sandbox_control.post("/kiondo/wp-json/wc/v3/orders", json=body, auth=WOO_AUTH).json()
    expected = (int(product["prices"]["price"]) * 110 * 2 + 100) // 200 * 3
    assert Decimal(moved["total"]) * 100 == expected


def test_woocommerce_lists_orders_after_a_date_newest_first_by_default(
    sandbox_control: httpx.Client,
) -> None:
    before = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%S")
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    body = {"line_items": [{"product_id": 1000, "quantity": 1}]}
    made = [
        sandbox_control.post("/kiondo/wp-json/wc/v3/orders", json=body, auth=WOO_AUTH).json()["id"]
        for _ in range(2)
    ]
    listed = sandbox_control.get(
        "/kiondo/wp-json/wc/v3/orders",
        params={"after": before, "dates_are_gmt": "true", "per_page": 100},
        auth=WOO_AUTH,
    ).json()
    ids = [o["id"] for o in listed]
    assert ids == sorted(ids, reverse=True) and set(made) <= set(ids)
    oldest_first = sandbox_control.get(
        "/kiondo/wp-json/wc/v3/orders",
        params={"after": before, "dates_are_gmt": "true", "order": "asc", "per_page": 100},
        auth=WOO_AUTH,
    ).json()
    assert [o["id"] for o in oldest_first] == sorted(ids)
    none = sandbox_control.get(
        "/kiondo/wp-json/wc/v3/orders",
        params={"after": future, "dates_are_gmt": "true"},
        auth=WOO_AUTH,
    )
    assert none.json() == []
    bad = sandbox_control.get(
        "/kiondo/wp-json/wc/v3/orders", params={"after": "yesterday"}, auth=WOO_AUTH
    )
    assert bad.status_code == 400


def test_dummyjson_totals_carry_javascript_float_noise(sandbox_control: httpx.Client) -> None:
    products = sandbox_control.get(
        "/dummymart/products", params={"limit": 30, "select": "price"}
    ).json()["products"]
    priced = [p for p in products if isinstance(p.get("price"), float) and p["price"] > 0]
    body = {"userId": 1, "products": [{"id": p["id"], "quantity": 3} for p in priced[:8]]}
    cart = sandbox_control.post("/dummymart/carts/add", json=body).json()
    exact = sum(Decimal(repr(p["price"])) * 3 for p in priced[:8])
    assert cart["total"] == sum(p["price"] * 3 for p in priced[:8])  # float arithmetic, as JS
    assert Decimal(repr(cart["total"])).quantize(Decimal("0.01")) == exact


def test_drop_unknown_lines_answers_201_with_what_is_left(sandbox_control: httpx.Client) -> None:
    sandbox_control.post(
        "/_sandbox/knobs/dummymart", json={"drop_unknown_lines": True, "delisted_products": [2]}
    )
    body = {
        "userId": 1,
        "products": [
            {"id": 1, "quantity": 1},
            {"id": 2, "quantity": 1},
            {"id": 999999, "quantity": 4},
        ],
    }
    response = sandbox_control.post("/dummymart/carts/add", json=body)
    assert response.status_code == 201
    assert [p["id"] for p in response.json()["products"]] == [1]


def test_the_marketplace_can_cancel_any_of_its_orders(sandbox_control: httpx.Client) -> None:
    sandbox_control.post(
        "/_sandbox/knobs/kiondo", json={"cancel_rate": 0, "order_step_seconds": 0.01}
    )
    body = {"set_paid": True, "line_items": [{"product_id": 1000, "quantity": 1}]}
    order = sandbox_control.post("/kiondo/wp-json/wc/v3/orders", json=body, auth=WOO_AUTH).json()
    poll_until(
        lambda: sandbox_control.get(
            f"/kiondo/wp-json/wc/v3/orders/{order['id']}", auth=WOO_AUTH
        ).json()["status"],
        lambda status: status == "delivered",
    )
    cancelled = sandbox_control.post(f"/_sandbox/orders/kiondo/{order['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    again = sandbox_control.get(f"/kiondo/wp-json/wc/v3/orders/{order['id']}", auth=WOO_AUTH)
    assert again.json()["status"] == "cancelled"
    assert sandbox_control.post("/_sandbox/orders/kiondo/1/cancel").status_code == 404
    unknown = sandbox_control.put(
        "/kiondo/wp-json/wc/v3/orders/1", json={"status": "cancelled"}, auth=WOO_AUTH
    )
    assert unknown.status_code == 400  # as REST v3 updates answer an unknown id
    assert unknown.json()["code"] == "woocommerce_rest_shop_order_invalid_id"
    assert sandbox_control.get("/_sandbox/orders/atlantis").status_code == 404

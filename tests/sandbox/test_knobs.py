"""Fault knobs over real HTTP: 429 bursts, down, random 503s, latency, failing order placements,
validation and reset. Every test resets the knobs afterwards (the `sandbox_control` fixture)."""

from __future__ import annotations

import time

import httpx

from tests.sandbox.conftest import shopify_graphql

CREATE_ORDER = "mutation orderCreate($order: OrderCreateOrderInput!) { orderCreate(order: $order) { order { id } userErrors { field message } } }"
FIND_ORDERS = "query($query: String!) { orders(first: 5, query: $query) { nodes { id } } }"


def test_knobs_endpoint_shows_every_marketplace_with_defaults(
    sandbox_control: httpx.Client,
) -> None:
    knobs = sandbox_control.get("/_sandbox/knobs").json()
    assert set(knobs) == {
        "shopwave",
        "kiondo",
        "dummymart",
        "fakestore",
        "naijamall",
        "bazaar",
        "amazon",  # added on top of the six (issue 13)
        "sokoni",
    }
    assert knobs["kiondo"] == {
        "latency_ms": 0,
        "error_rate": 0.0,
        "burst_429": 0,
        "malformed_rate": 0.02,
        "down": False,
        "fail_next_orders": 0,
        "order_step_seconds": 30.0,
        "cancel_rate": 0.05,
        "delay_rate": 0.1,
        "price_drift": 0.0,
        "price_epoch": 0,
        "order_reply_delay_ms": 0,
        "fail_after_next_orders": 0,
        "refuse_next_orders": 0,
        "order_price_change_pct": 0,
        "drop_unknown_lines": False,
        "delisted_products": [],
        "unlisted_products": [],
        "max_line_quantity": 0,
        "cancel_next_orders": 0,
        "cancel_reply_delay_ms": 0,
        "fail_after_next_cancels": 0,
        "search_lag_ms": 0,
        "order_shipping_minor": 0,
        "order_tax_bps": 0,
        "failing_order_reads": [],
    }


def test_burst_429_answers_the_next_n_requests_with_retry_after(
    sandbox_control: httpx.Client,
) -> None:
    assert (
        sandbox_control.post("/_sandbox/knobs/dummymart", json={"burst_429": 2}).status_code == 200
    )
    statuses = [sandbox_control.get("/dummymart/products", params={"limit": 1}) for _ in range(3)]
    assert [r.status_code for r in statuses] == [429, 429, 200]
    assert statuses[0].headers["Retry-After"] == "1"
    # Only that marketplace is rate limited, and the control API never is.
    assert sandbox_control.get("/_sandbox/knobs").json()["dummymart"]["burst_429"] == 0


def test_down_marketplace_answers_503_until_reset(sandbox_control: httpx.Client) -> None:
    sandbox_control.post("/_sandbox/knobs/naijamall", json={"down": True})
    assert sandbox_control.get("/naijamall/feed.xml").status_code == 503
    assert (
        sandbox_control.get("/bazaar/api/v1/listings", headers={"X-Api-Key": "k"}).status_code
        == 200
    )
    assert sandbox_control.get("/_sandbox/health").status_code == 200
    sandbox_control.post("/_sandbox/reset")
    assert sandbox_control.get("/naijamall/feed.xml").status_code == 200


def test_error_rate_one_fails_every_request_and_zero_none(sandbox_control: httpx.Client) -> None:
    sandbox_control.post("/_sandbox/knobs/fakestore", json={"error_rate": 1})
    assert {sandbox_control.get("/fakestore/products/1").status_code for _ in range(5)} == {503}
    sandbox_control.post("/_sandbox/knobs/fakestore", json={"error_rate": 0})
    assert {sandbox_control.get("/fakestore/products/1").status_code for _ in range(5)} == {200}


def test_latency_delays_each_request_of_that_marketplace(sandbox_control: httpx.Client) -> None:
    sandbox_control.post("/_sandbox/knobs/shopwave", json={"latency_ms": 300})
    started = time.monotonic()
    response = sandbox_control.get("/shopwave/products.json", params={"limit": 1})
    waited = time.monotonic() - started
    assert response.status_code == 200
    assert response.headers["X-Sandbox-Latency-Ms"] == "300"
    assert waited >= 0.3  # a lower bound only: sleep never returns early
    with httpx.Client(base_url=str(sandbox_control.base_url), timeout=0.1) as impatient:
        try:
            impatient.get("/shopwave/products.json", params={"limit": 1})
        except httpx.ReadTimeout:
            pass
        else:
            raise AssertionError("a 300 ms marketplace answered a 100 ms client in time")


def test_fail_next_orders_rejects_placements_before_creating_anything(
    sandbox_control: httpx.Client,
) -> None:
    sandbox_control.post("/_sandbox/knobs/shopwave", json={"fail_next_orders": 1, "cancel_rate": 0})
    product = sandbox_control.get("/shopwave/products.json", params={"limit": 1}).json()[
        "products"
    ][0]
    order = {
        "currency": "USD",
        "sourceIdentifier": "knob-fail-1",
        "lineItems": [
            {
                "variantId": f"gid://shopify/ProductVariant/{product['variants'][0]['id']}",
                "quantity": 1,
            }
        ],
    }
    failed = shopify_graphql(
        sandbox_control, CREATE_ORDER, {"order": order}, idempotency_key="knob-fail-key"
    )
    assert failed.status_code == 503
    found = shopify_graphql(
        sandbox_control, FIND_ORDERS, {"query": "source_identifier:knob-fail-1"}
    )
    assert found.json()["data"]["orders"]["nodes"] == []
    placed = shopify_graphql(
        sandbox_control, CREATE_ORDER, {"order": order}, idempotency_key="knob-fail-key"
    )
    assert placed.status_code == 200 and placed.json()["data"]["orderCreate"]["order"]["id"]
    found = shopify_graphql(
        sandbox_control, FIND_ORDERS, {"query": "source_identifier:knob-fail-1"}
    )
    assert len(found.json()["data"]["orders"]["nodes"]) == 1


def test_malformed_rate_zero_gives_clean_catalogs(sandbox_control: httpx.Client) -> None:
    sandbox_control.post("/_sandbox/knobs/fakestore", json={"malformed_rate": 0})
    body = sandbox_control.get("/fakestore/products").content
    products = httpx.Response(200, content=body).json()
    assert all(isinstance(p.get("price"), float) and p["price"] > 0 for p in products)
    assert len({p["id"] for p in products}) == len(products)


def test_price_epoch_and_drift_change_prices_deterministically(
    sandbox_control: httpx.Client,
) -> None:
    def prices() -> list[float]:
        page = sandbox_control.get("/fakestore/products", params={"limit": 200}).content
        return [
            p.get("price")
            for p in httpx.Response(200, content=page.replace(b"\xff\xfe", b"??")).json()
        ]

    base = prices()
    sandbox_control.post("/_sandbox/knobs/all", json={"price_epoch": 40})
    epoch_40 = prices()
    assert epoch_40 == prices()
    changed = sum(a != b for a, b in zip(base, epoch_40, strict=True))
    assert 20 <= changed <= 140  # ~40% of 200 changed once over 40 epochs at ~1% each
    sandbox_control.post("/_sandbox/reset")
    assert prices() == base
    sandbox_control.post("/_sandbox/knobs/fakestore", json={"price_drift": 1})
    live = sandbox_control.get("/fakestore/products/2").content.decode(errors="replace")
    assert httpx.Response(200, text=live).json()["price"] != base[1]


def test_bad_knobs_are_refused_with_a_reason(sandbox_control: httpx.Client) -> None:
    bad_value = sandbox_control.post("/_sandbox/knobs/kiondo", json={"error_rate": 7})
    assert bad_value.status_code == 400 and "error_rate" in bad_value.json()["error"]
    unknown = sandbox_control.post("/_sandbox/knobs/kiondo", json={"speed": 1})
    assert unknown.status_code == 400
    assert sandbox_control.post("/_sandbox/knobs/atlantis", json={"down": True}).status_code == 404
    assert sandbox_control.get("/_sandbox/knobs").json()["kiondo"]["error_rate"] == 0.0

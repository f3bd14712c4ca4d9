"""The sandbox stores refund part of an order through the control API
(`POST /_sandbox/orders/<slug>/<number>/refund`), shown in each format's own fields: WooCommerce
REST v3's order `refunds` (negative `total` strings), Shopify Admin GraphQL's
`displayFinancialStatus` PARTIALLY_REFUNDED, `totalRefundedSet`, `refunds` and the line's
`currentQuantity`."""

from __future__ import annotations

import uuid
from decimal import Decimal

import httpx

from tests.sandbox.conftest import shopify_graphql
from tests.sandbox.test_orders import (
    CREATE,
    WOO_AUTH,
    clean_kiondo_product,
    clean_shopify_variant,
    shopify_order,
    woo_order,
)

REFUNDED = """query($id: ID!) { order(id: $id) { id displayFinancialStatus
  totalRefundedSet { shopMoney { amount currencyCode } }
  refunds { id totalRefundedSet { shopMoney { amount currencyCode } }
    refundLineItems(first: 10) { nodes { quantity lineItem { id } } } }
  lineItems(first: 10) { nodes { id quantity currentQuantity } } } }"""


def test_a_woocommerce_store_lists_each_refund_with_a_negative_total(
    sandbox_control: httpx.Client,
) -> None:
    sandbox_control.post("/_sandbox/knobs/kiondo", json={"cancel_rate": 0, "order_tax_bps": 0})
    product = clean_kiondo_product(sandbox_control)
    order = sandbox_control.post(
        "/kiondo/wp-json/wc/v3/orders",
        json=woo_order(product["id"], f"wc-refund-{uuid.uuid4().hex[:8]}", quantity=3),
        auth=WOO_AUTH,
    ).json()
    assert order["refunds"] == []
    unit = Decimal(order["line_items"][0]["total"]) / 3
    refund = f"/_sandbox/orders/kiondo/{order['id']}/refund"
    lines = [{"external_id": str(product["id"]), "quantity": 1}]
    assert sandbox_control.post(refund, json={"lines": lines}).status_code == 200
    assert sandbox_control.post(refund, json={"amount_minor": 100}).status_code == 200
    # More than is left, or a line it does not have, is refused.
    assert sandbox_control.post(refund, json={"amount_minor": 10**12}).status_code == 400
    missing = [{"external_id": "1", "quantity": 1}]
    assert sandbox_control.post(refund, json={"lines": missing}).status_code == 400

    read = sandbox_control.get(f"/kiondo/wp-json/wc/v3/orders/{order['id']}", auth=WOO_AUTH)
    refunds = read.json()["refunds"]
    assert [Decimal(r["total"]) for r in refunds] == [Decimal("-1.00"), -unit]  # newest first
    assert all(set(r) == {"id", "reason", "total"} for r in refunds)
    assert read.json()["status"] in ("processing", "pending")


def test_a_shopify_store_shows_a_partial_refund_in_its_own_fields(
    sandbox_control: httpx.Client,
) -> None:
    sandbox_control.post("/_sandbox/knobs/shopwave", json={"cancel_rate": 0, "order_tax_bps": 0})
    variant, price = clean_shopify_variant(sandbox_control)
    created = shopify_graphql(
        sandbox_control, CREATE, shopify_order(variant, price, f"oc-{uuid.uuid4().hex[:10]}")
    ).json()["data"]["orderCreate"]["order"]
    number = created["id"].rsplit("/", 1)[1]
    before = shopify_graphql(sandbox_control, REFUNDED, {"id": created["id"]}).json()
    assert before["data"]["order"]["displayFinancialStatus"] == "PAID"
    assert before["data"]["order"]["totalRefundedSet"]["shopMoney"]["amount"] == "0.00"

    facts = sandbox_control.get("/_sandbox/orders/shopwave").json()["orders"]
    external_id = next(o for o in facts if str(o["number"]) == number)["lines"][0]["external_id"]
    answer = sandbox_control.post(
        f"/_sandbox/orders/shopwave/{number}/refund",
        json={"lines": [{"external_id": external_id, "quantity": 1}]},
    )
    assert answer.status_code == 200 and answer.json()["refunded_minor"] > 0

    order = shopify_graphql(sandbox_control, REFUNDED, {"id": created["id"]}).json()["data"][
        "order"
    ]
    assert order["displayFinancialStatus"] == "PARTIALLY_REFUNDED"
    assert order["totalRefundedSet"]["shopMoney"] == {"amount": price, "currencyCode": "USD"}
    [refund] = order["refunds"]
    assert refund["totalRefundedSet"]["shopMoney"]["amount"] == price
    [line] = order["lineItems"]["nodes"]
    assert (line["quantity"], line["currentQuantity"]) == (2, 1)
    [refunded_line] = refund["refundLineItems"]["nodes"]
    assert (refunded_line["quantity"], refunded_line["lineItem"]) == (1, {"id": line["id"]})


def test_a_delivered_woocommerce_order_can_be_refunded_and_in_full_becomes_refunded(
    sandbox_control: httpx.Client,
) -> None:
    sandbox_control.post("/_sandbox/knobs/kiondo", json={"cancel_rate": 0, "order_tax_bps": 0})
    product = clean_kiondo_product(sandbox_control)
    order = sandbox_control.post(
        "/kiondo/wp-json/wc/v3/orders",
        json=woo_order(product["id"], f"wc-return-{uuid.uuid4().hex[:8]}", quantity=2),
        auth=WOO_AUTH,
    ).json()
    control = f"/_sandbox/orders/kiondo/{order['id']}"
    facts = sandbox_control.post(f"{control}/advance", json={"steps": 20}).json()
    assert facts["status"] == "delivered"
    path = f"/kiondo/wp-json/wc/v3/orders/{order['id']}"

    # A return of one item: still delivered, the refund listed.
    lines = [{"external_id": str(product["id"]), "quantity": 1}]
    assert sandbox_control.post(f"{control}/refund", json={"lines": lines}).status_code == 200
    read = sandbox_control.get(path, auth=WOO_AUTH).json()
    assert read["status"] == "delivered" and len(read["refunds"]) == 1

    # The rest refunded: WooCommerce marks an order refunded once its refunds reach its total.
    left = facts["total_minor"] - sum(-int(Decimal(r["total"]) * 100) for r in read["refunds"])
    assert sandbox_control.post(f"{control}/refund", json={"amount_minor": left}).status_code == 200
    read = sandbox_control.get(path, auth=WOO_AUTH).json()
    assert read["status"] == "refunded"
    assert -sum(Decimal(r["total"]) for r in read["refunds"]) == Decimal(read["total"])

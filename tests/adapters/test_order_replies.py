"""What each marketplace says it accepted, read from real-format replies: lines, quantities,
prices and totals, exactly (float noise rounded only when it is noise), and what the adapters
send (our charged prices where the API takes them). Also WooCommerce's find_order, which only
answers "no such order" after listing every order of its look-back window."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.accepted import line_quantity, order_money, unit_from_total
from adapters.base import (
    AcceptedLine,
    CannotConfirmAbsence,
    NotFound,
    OrderLine,
    OrderRequest,
    OutcomeUnknown,
    Rejected,
    ShippingAddress,
    Transient,
)
from adapters.dummyjson import DummyJsonAdapter
from adapters.fakestore import FakeStoreAdapter
from adapters.shopify import ShopifyAdapter
from adapters.woocommerce import MAX_SCAN_PAGES, SEND_TIME_MARGIN
from tests.adapters.configs import RecordingTransport, marketplace_config
from tests.adapters.test_shopify_orders import REQUEST as SHOPIFY_REQUEST
from tests.adapters.test_shopify_orders import FakeShopifyAdmin, order_node
from tests.adapters.test_woocommerce_orders import REQUEST as WOO_REQUEST
from tests.adapters.test_woocommerce_orders import woo, woo_order

SHIPPING = ShippingAddress(name="A B", line1="x", city="y", country="US")


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        ("19.99", "USD", 1999),
        (269.96999999999997, "USD", 26997),  # 89.99 × 3 in JavaScript
        (0.30000000000000004, "USD", 30),
        (1500.0, "JPY", 1500),
        ("1.234", "KWD", 1234),
        (Decimal("8496.00"), "KES", 849600),
        (9.995, "USD", None),  # a real half cent is not noise
        ("9.995", "USD", None),
        ("-1.00", "USD", None),
        (True, "USD", None),
        ("abc", "USD", None),
        ("1.00", "XXQ", None),
        (None, "USD", None),
    ],
)
def test_order_money_is_exact_or_none(value: object, currency: str, minor: int | None) -> None:
    assert order_money(value, currency) == minor


def test_quantities_and_unit_prices_from_totals() -> None:
    assert [line_quantity(v) for v in (3, "2", 4.0, -1, True, "x", 1.5)] == [
        3,
        2,
        4,
        None,
        None,
        None,
        None,
    ]
    assert unit_from_total(2997, 3) == 999
    assert unit_from_total(1000, 3) is None
    assert AcceptedLine("1", 3, None, 1000).billed_minor == 1000
    assert AcceptedLine("1", 3, 999).billed_minor == 2997
    assert AcceptedLine("1", 3).billed_minor is None


# --- Shopify ------------------------------------------------------------------------------


def shopify_line(product: int | None, quantity: int, amount: str, **extra: Any) -> dict[str, Any]:
    return {
        "quantity": quantity,
        "currentQuantity": extra.pop("current", quantity),
        "variant": {"id": "gid://shopify/ProductVariant/40312345678901"},
        "product": {"id": f"gid://shopify/Product/{product}"} if product else None,
        "originalUnitPriceSet": {"shopMoney": {"amount": amount, "currencyCode": "USD"}},
        **extra,
    }


def test_shopify_order_create_reply_gives_the_lines_the_shop_recorded() -> None:
    node = order_node(
        totalPriceSet={"shopMoney": {"amount": "769.98", "currencyCode": "USD"}},
        lineItems={"nodes": [shopify_line(6857758064813, 2, "384.99")]},
    )
    fake = FakeShopifyAdmin(
        {"orderCreate": {"data": {"orderCreate": {"order": node, "userErrors": []}}}}
    )
    shop = ShopifyAdapter(
        marketplace_config("shopify", slug="shopwave", api_key="shpat_x"), transport=fake.transport
    )
    placed = shop.place_order(SHOPIFY_REQUEST)
    assert placed.total_minor == 76998 and placed.currency == "USD"
    assert placed.lines == (AcceptedLine("6857758064813", 2, 38499),)
    sent = fake.graphql_bodies()[-1]
    assert "lineItems(first: 250)" in sent["query"]
    [item] = sent["variables"]["order"]["lineItems"]
    assert item["priceSet"] == {"shopMoney": {"amount": "349.99", "currencyCode": "USD"}}


def test_shopify_line_of_a_deleted_product_is_matched_through_its_variant() -> None:
    node = order_node(
        lineItems={"nodes": [shopify_line(None, 2, "349.99", current=1)]},
    )
    fake = FakeShopifyAdmin(
        {"orderCreate": {"data": {"orderCreate": {"order": node, "userErrors": []}}}}
    )
    shop = ShopifyAdapter(
        marketplace_config("shopify", slug="shopwave", api_key="shpat_x"), transport=fake.transport
    )
    placed = shop.place_order(SHOPIFY_REQUEST)
    # currentQuantity is what remains on the order after the shop removed one.
    assert placed.lines == (AcceptedLine("6857758064813", 1, 34999),)


def test_shopify_reply_without_line_items_says_nothing_about_lines() -> None:
    fake = FakeShopifyAdmin(
        {"orderCreate": {"data": {"orderCreate": {"order": order_node(), "userErrors": []}}}}
    )
    shop = ShopifyAdapter(
        marketplace_config("shopify", slug="shopwave", api_key="shpat_x"), transport=fake.transport
    )
    assert shop.place_order(SHOPIFY_REQUEST).lines is None


# --- WooCommerce --------------------------------------------------------------------------


def woo_line(product_id: int, quantity: int, total: str, price: float) -> dict[str, Any]:
    return {
        "id": 315,
        "name": "Item",
        "product_id": product_id,
        "variation_id": 0,
        "quantity": quantity,
        "subtotal": total,
        "total": total,
        "price": price,
    }


def test_woocommerce_reply_lines_carry_the_billed_line_totals() -> None:
    reply = woo_order(
        total="8497.00",
        line_items=[woo_line(34, 1, "5500.00", 5500.0), woo_line(12, 3, "2997.00", 999.0)],
    )
    adapter, _ = woo(lambda request: httpx.Response(201, json=reply))
    placed = adapter.place_order(WOO_REQUEST)
    assert placed.total_minor == 849700
    assert placed.lines == (
        AcceptedLine("34", 1, 550000, 550000),
        AcceptedLine("12", 3, 99900, 299700),
    )


def test_woocommerce_line_total_that_does_not_divide_keeps_only_the_total() -> None:
    reply = woo_order(line_items=[woo_line(12, 3, "1000.00", 333.3333333333333)])
    adapter, _ = woo(lambda request: httpx.Response(201, json=reply))
    assert adapter.place_order(WOO_REQUEST).lines == (AcceptedLine("12", 3, None, 100000),)


def test_woocommerce_find_order_lists_the_window_when_search_does_not_cover_meta() -> None:
    # Core WooCommerce search ignores meta: an empty search result proves nothing.
    page_one = [woo_order(id=700 + n, meta_data=[]) for n in range(100)]
    page_two = [woo_order(id=800, meta_data=[]), woo_order(id=801)]

    def handler(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if "search" in params:
            return httpx.Response(200, json=[])
        return httpx.Response(200, json=page_one if params["page"] == "1" else page_two)

    adapter, transport = woo(handler)
    found = adapter.find_order("oc-ref-0002", sent_since=datetime.now(UTC))
    assert found is not None and found.marketplace_order_id == "801"
    listing = transport.requests[1].url.params
    assert listing["dates_are_gmt"] == "true" and listing["order"] == "asc"
    assert listing["per_page"] == "100" and listing["after"]
    assert [r.url.params.get("page") for r in transport.requests] == [None, "1", "2"]


def test_woocommerce_find_order_is_none_only_after_the_whole_window() -> None:
    adapter, transport = woo(lambda request: httpx.Response(200, json=[woo_order(meta_data=[])]))
    assert adapter.find_order("oc-ref-0002", sent_since=datetime.now(UTC)) is None
    assert len(transport.requests) == 2  # search, then one short page of the window


def test_woocommerce_find_order_with_too_many_orders_cannot_confirm_absence() -> None:
    full = [woo_order(id=n, meta_data=[]) for n in range(100)]
    adapter, transport = woo(lambda request: httpx.Response(200, json=full))
    with pytest.raises(Transient):
        adapter.find_order("oc-ref-0002", sent_since=datetime.now(UTC))
    assert len(transport.requests) == 1 + MAX_SCAN_PAGES


def test_woocommerce_find_order_lists_from_the_first_attempt_less_a_margin() -> None:
    adapter, transport = woo(lambda request: httpx.Response(200, json=[]))
    # Relative to the clock the adapter reads (a fixed date stops being inside the window).
    first_sent = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    adapter.order_lookback = timedelta(days=1)  # covers it
    assert adapter.find_order("oc-ref-0002", sent_since=first_sent) is None
    listed_from = transport.requests[1].url.params["after"]
    assert listed_from == (first_sent - SEND_TIME_MARGIN).strftime("%Y-%m-%dT%H:%M:%S")


@pytest.mark.parametrize(
    "sent_since",
    [datetime.now(UTC) - timedelta(hours=100), None],
    ids=["older-than-the-lookback", "not-given"],
)
def test_woocommerce_cannot_confirm_absence_outside_its_lookback(
    sent_since: datetime | None,
) -> None:
    # A placement in doubt reconciled after the 72 h look-back: an empty listing of the last
    # 72 h does not prove the first attempt made no order, so "not found" would place it twice.
    adapter, transport = woo(lambda request: httpx.Response(200, json=[]))
    with pytest.raises(CannotConfirmAbsence):
        adapter.find_order("oc-ref-0002", sent_since=sent_since)
    assert [r.url.params.get("search") for r in transport.requests] == ["oc-ref-0002"]


def test_woocommerce_finds_an_old_order_its_search_covers() -> None:
    hit = [woo_order(id=728)]
    adapter, _ = woo(lambda request: httpx.Response(200, json=hit))
    found = adapter.find_order("oc-ref-0002", sent_since=datetime.now(UTC) - timedelta(days=30))
    assert found is not None and found.marketplace_order_id == "728"


# --- DummyJSON and Fake Store --------------------------------------------------------------


def cart_request(*lines: tuple[str, int, int], currency: str = "USD") -> OrderRequest:
    return OrderRequest(
        reference="oc-ref-5",
        idempotency_key="oc-ref-5-key",
        lines=[OrderLine(e, q, p, currency) for e, q, p in lines],
        shipping=SHIPPING,
        currency=currency,
    )


def test_dummyjson_cart_reply_with_float_noise_parses_exactly() -> None:
    cart = {
        "id": 51,
        "products": [
            {
                "id": 4,
                "title": "A",
                "price": 89.99,
                "quantity": 3,
                "total": 269.96999999999997,
                "discountPercentage": 0,
                "discountedTotal": 269.96999999999997,
            },
            {
                "id": 17,
                "title": "B",
                "price": 25.99,
                "quantity": 1,
                "total": 25.99,
                "discountPercentage": 10.5,
                "discountedTotal": 23.26,
            },
        ],
        "total": 295.96,
        "discountedTotal": 293.22999999999996,
        "userId": 1,
        "totalProducts": 2,
        "totalQuantity": 4,
    }
    transport = RecordingTransport(lambda request: httpx.Response(201, json=cart))
    dummy = DummyJsonAdapter(marketplace_config("dummyjson"), transport=transport)
    placed = dummy.place_order(cart_request(("17", 1, 2599), ("4", 3, 8999)))
    assert placed.total_minor == 29323 and placed.currency == "USD"
    assert placed.lines == (
        AcceptedLine("4", 3, 8999, 26997),
        AcceptedLine("17", 1, None, 2326),  # discounted: the unit price is not what was billed
    )
    # carts/add has no price field: only ids and quantities are sent.
    assert json.loads(transport.requests[0].content)["products"] == [
        {"id": 4, "quantity": 3},
        {"id": 17, "quantity": 1},
    ]


def test_dummyjson_cart_that_dropped_an_unknown_id_shows_the_missing_line() -> None:
    cart = {"id": 52, "products": [], "total": 0, "discountedTotal": 0, "userId": 1}
    transport = RecordingTransport(lambda request: httpx.Response(201, json=cart))
    dummy = DummyJsonAdapter(marketplace_config("dummyjson"), transport=transport)
    placed = dummy.place_order(cart_request(("9999", 1, 100)))
    assert placed.lines == () and placed.total_minor == 0


def test_fake_store_cart_reply_gives_quantities_only() -> None:
    cart = {
        "id": 11,
        "userId": 1,
        "date": "2026-12-02",
        "products": [{"productId": 3, "quantity": 1}],
        "__v": 0,
    }
    transport = RecordingTransport(lambda request: httpx.Response(201, json=cart))
    store = FakeStoreAdapter(marketplace_config("fakestore", currency="EUR"), transport=transport)
    placed = store.place_order(cart_request(("3", 2, 5599), ("9", 1, 6400), currency="EUR"))
    assert placed.total_minor is None
    assert placed.lines == (AcceptedLine("3", 1),)  # short and missing lines are visible


# --- Accepted, but the reply cannot be read -----------------------------------------------


def test_a_2xx_placement_whose_reply_cannot_be_read_is_unknown_not_failed() -> None:
    garbled = RecordingTransport(lambda request: httpx.Response(201, text="<html>oops"))
    dummy = DummyJsonAdapter(marketplace_config("dummyjson"), transport=garbled)
    with pytest.raises(OutcomeUnknown):
        dummy.place_order(cart_request(("4", 1, 999)))
    adapter, _ = woo(lambda request: httpx.Response(201, json={"status": "processing"}))
    with pytest.raises(OutcomeUnknown):
        adapter.place_order(WOO_REQUEST)
    no_order = {"data": {"orderCreate": {"order": None, "userErrors": []}}}
    fake = FakeShopifyAdmin({"orderCreate": no_order})
    shop = ShopifyAdapter(
        marketplace_config("shopify", slug="shopwave", api_key="shpat_x"), transport=fake.transport
    )
    with pytest.raises(OutcomeUnknown):
        shop.place_order(SHOPIFY_REQUEST)


def test_a_shopify_refusal_after_an_attempt_that_may_have_arrived_is_unknown() -> None:
    # Attempt 1 timed out after sending (the order may exist); attempt 2 is refused because
    # attempt 1 took the last item. That refusal says nothing about attempt 1.
    refused = {
        "data": {
            "orderCreate": {
                "order": None,
                "userErrors": [{"field": ["order"], "message": "Inventory unavailable"}],
            }
        }
    }
    answers: list[Any] = [httpx.ReadTimeout("slow"), httpx.Response(200, json=refused)]
    fake = FakeShopifyAdmin({})

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(".json") and "graphql" not in request.url.path:
            return fake.handle(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    shop = ShopifyAdapter(
        marketplace_config("shopify", slug="shopwave", api_key="shpat_x"),
        transport=RecordingTransport(handler),
        sleep=lambda seconds: None,
    )
    with pytest.raises(OutcomeUnknown, match="Inventory unavailable"):
        shop.place_order(SHOPIFY_REQUEST)


def test_woocommerce_cancel_of_an_unknown_order_is_not_found_even_as_a_400() -> None:
    invalid = {
        "code": "woocommerce_rest_shop_order_invalid_id",
        "message": "Invalid ID.",
        "data": {"status": 400},
    }
    adapter, _ = woo(lambda request: httpx.Response(400, json=invalid))
    with pytest.raises(NotFound):
        adapter.cancel_order("999")
    refused = {
        "code": "woocommerce_rest_cannot_cancel",
        "message": "shipped",
        "data": {"status": 400},
    }
    adapter, _ = woo(lambda request: httpx.Response(400, json=refused))
    with pytest.raises(Rejected):
        adapter.cancel_order("727")

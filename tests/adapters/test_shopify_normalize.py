"""Shopify storefront and Admin product payloads, normalized; catalog paging."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from adapters.base import BadPayload, NotFound, Rejected
from adapters.shopify import ShopifyAdapter
from tests.adapters.configs import (
    RecordingTransport,
    SleepRecorder,
    marketplace_config,
    offline_transport,
)

# The shape of https://{shop}/products.json, one product.
STOREFRONT_PRODUCT: dict[str, Any] = {
    "id": 6857758064813,
    "title": "Sony WH-1000XM5 Wireless Noise Cancelling Headphones - Black",
    "handle": "sony-wh-1000xm5-black",
    "body_html": "<p>Industry-leading <strong>noise cancelling</strong>.</p><ul><li>30h battery</li></ul>",
    "published_at": "2026-01-05T10:00:00-05:00",
    "created_at": "2026-01-05T10:00:00-05:00",
    "updated_at": "2026-03-01T09:30:00-05:00",
    "vendor": "Sony",
    "product_type": "Headphones",
    "tags": ["audio", "wireless"],
    "variants": [
        {
            "id": 40312345678901,
            "title": "Default Title",
            "option1": "Default Title",
            "option2": None,
            "option3": None,
            "sku": "WH-1000XM5",
            "requires_shipping": True,
            "taxable": True,
            "featured_image": None,
            "available": True,
            "price": "349.99",
            "grams": 250,
            "compare_at_price": "399.99",
            "position": 1,
            "product_id": 6857758064813,
            "barcode": "4548736132610",
            "created_at": "2026-01-05T10:00:00-05:00",
            "updated_at": "2026-03-01T09:30:00-05:00",
        }
    ],
    "images": [
        {
            "id": 30123456789,
            "position": 1,
            "product_id": 6857758064813,
            "variant_ids": [],
            "src": "https://cdn.shopify.com/s/files/1/0000/0001/products/wh1000xm5.jpg?v=1",
            "width": 1000,
            "height": 1000,
        }
    ],
    "options": [{"name": "Title", "position": 1, "values": ["Default Title"]}],
}


def adapter(**kwargs: Any) -> ShopifyAdapter:
    return ShopifyAdapter(
        marketplace_config("shopify", slug="shopwave", **kwargs), transport=offline_transport()
    )


def product(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(STOREFRONT_PRODUCT)
    record.update(changes)
    return record


def variant_product(**variant_changes: Any) -> dict[str, Any]:
    record = product()
    record["variants"][0].update(variant_changes)
    return record


def test_storefront_product_becomes_an_offer() -> None:
    offer = adapter().normalize_record(STOREFRONT_PRODUCT)
    assert offer.marketplace == "shopwave"
    assert offer.external_id == "6857758064813"
    assert offer.title == "Sony WH-1000XM5 Wireless Noise Cancelling Headphones - Black"
    assert (offer.price_minor, offer.currency) == (34999, "USD")
    assert offer.description == "Industry-leading noise cancelling.\n\n30h battery"
    assert offer.brand == "Sony"
    assert offer.model == offer.sku == "WH-1000XM5"
    assert offer.gtin == "4548736132610"
    assert offer.category == "Headphones"
    assert offer.image_url == STOREFRONT_PRODUCT["images"][0]["src"]
    assert offer.product_url == "https://shop.example.com/products/sony-wh-1000xm5-black"
    assert offer.available is True
    assert offer.rating is None


def test_currency_is_the_shops_configured_currency() -> None:
    offer = adapter(currency="JPY").normalize_record(variant_product(price="52000"))
    assert (offer.price_minor, offer.currency) == (52000, "JPY")


def test_invalid_barcode_drops_the_gtin_but_keeps_the_offer() -> None:
    offer = adapter().normalize_record(variant_product(barcode="4548736132611"))
    assert offer.gtin is None
    assert offer.price_minor == 34999


def test_sold_out_product_is_unavailable() -> None:
    assert adapter().normalize_record(variant_product(available=False)).available is False


def test_first_available_variant_sets_the_price() -> None:
    record = product()
    sold_out = {**record["variants"][0], "id": 1, "available": False, "price": "299.00"}
    record["variants"] = [sold_out, {**record["variants"][0], "price": "349.99"}]
    assert adapter().normalize_record(record).price_minor == 34999


def test_admin_variant_availability_comes_from_inventory() -> None:
    record = variant_product(
        inventory_management="shopify", inventory_policy="deny", inventory_quantity=0
    )
    del record["variants"][0]["available"]
    offer = adapter().normalize_record(record)
    assert offer.available is False
    assert offer.stock == 0


@pytest.mark.parametrize(
    ("inventory", "stock"),
    [
        ({"inventory_management": "shopify", "inventory_policy": "deny"}, 3),
        # Inventory not tracked, or sold beyond zero: the quantity is no limit.
        ({"inventory_management": None, "inventory_policy": "deny"}, None),
        ({"inventory_management": "shopify", "inventory_policy": "continue"}, None),
    ],
)
def test_the_stock_limits_only_variants_that_track_inventory_and_deny_overselling(
    inventory: dict[str, Any], stock: int | None
) -> None:
    record = variant_product(inventory_quantity=3, **inventory)
    assert adapter().normalize_record(record).stock == stock


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (product(id=None), "missing_id"),
        (product(title=""), "missing_title"),
        (product(title="Sony \ufffd Headphones"), "broken_utf8"),
        (variant_product(price=None), "missing_price"),
        (variant_product(price="abc"), "bad_price"),
        (variant_product(price="19.999"), "bad_price"),
        (variant_product(price="-19.99"), "non_positive_price"),
        (variant_product(price="0.00"), "non_positive_price"),
        (product(variants=[]), "missing_price"),
        (product(variants=["oops"]), "bad_record"),
        (["not", "a", "product"], "bad_record"),
    ],
)
def test_malformed_products_are_rejected(record: Any, reason: str) -> None:
    with pytest.raises(BadPayload) as caught:
        adapter().normalize_record(record)
    assert caught.value.reason == reason


def test_script_in_title_is_kept_as_text() -> None:
    offer = adapter().normalize_record(product(title="<script>alert(1)</script> Headphones"))
    assert offer.title == "<script>alert(1)</script> Headphones"


def test_catalog_pages_until_a_short_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        count = {1: 2, 2: 2, 3: 1}[page]
        products = [product(id=page * 10 + n) for n in range(count)]
        return httpx.Response(200, json={"products": products})

    transport = RecordingTransport(handler)
    shop = ShopifyAdapter(
        marketplace_config("shopify", page_size=2), transport=transport, sleep=SleepRecorder()
    )
    pages = list(shop.fetch_catalog_pages())
    assert [page.page for page in pages] == [1, 2, 3]
    assert [record["id"] for page in pages for record in page.records] == [10, 11, 20, 21, 30]
    assert [request.url.params["limit"] for request in transport.requests] == ["2"] * 3


def test_catalog_stops_at_an_empty_page_and_caps_the_limit() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        products = [product(id=n) for n in range(250)] if page == 1 else []
        return httpx.Response(200, json={"products": products})

    transport = RecordingTransport(handler)
    shop = ShopifyAdapter(marketplace_config("shopify", page_size=1000), transport=transport)
    pages = list(shop.fetch_catalog_pages())
    assert len(pages) == 1
    assert transport.requests[0].url.params["limit"] == "250"
    assert len(transport.requests) == 2


def test_lookup_reads_the_admin_product_with_the_access_token() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/products/6857758064813.json"):
            return httpx.Response(200, json={"product": variant_product(price="329.99")})
        return httpx.Response(404, json={"errors": "Not Found"})

    transport = RecordingTransport(handler)
    shop = ShopifyAdapter(marketplace_config("shopify", api_key="shpat_test"), transport=transport)
    offer = shop.lookup_offer("6857758064813")
    assert offer.price_minor == 32999
    request = transport.requests[0]
    assert request.url.path == "/admin/api/2024-10/products/6857758064813.json"
    assert request.headers["X-Shopify-Access-Token"] == "shpat_test"
    with pytest.raises(NotFound):
        shop.lookup_offer("1")


def test_lookup_without_a_token_names_the_variable_to_set() -> None:
    shop = ShopifyAdapter(
        marketplace_config("shopify", api_key_env="ONECART_MARKETPLACE_KEY_SHOPWAVE")
    )
    with pytest.raises(Rejected, match="ONECART_MARKETPLACE_KEY_SHOPWAVE"):
        shop.lookup_offer("1")

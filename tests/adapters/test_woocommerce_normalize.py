"""WooCommerce Store API products, normalized; catalog paging by X-WP-TotalPages."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.base import BadPayload, NotFound
from adapters.woocommerce import WooCommerceAdapter
from tests.adapters.configs import RecordingTransport, marketplace_config, offline_transport

# The shape of GET /wp-json/wc/store/v1/products (one element), as documented by WooCommerce.
STORE_PRODUCT: dict[str, Any] = {
    "id": 34,
    "name": "Ramtons RM/577 Kettle &amp; Toaster Set",
    "slug": "ramtons-rm-577-kettle-toaster-set",
    "parent": 0,
    "type": "simple",
    "variation": "",
    "permalink": "https://kiondo.example.co.ke/product/ramtons-rm-577/",
    "sku": "RM/577",
    "short_description": "<p>Breakfast set.</p>",
    "description": "<p>A 1.7 L cordless kettle &amp; a 2-slice toaster.</p>",
    "on_sale": False,
    "prices": {
        "price": "549900",
        "regular_price": "599900",
        "sale_price": "549900",
        "price_range": None,
        "currency_code": "KES",
        "currency_symbol": "KSh",
        "currency_minor_unit": 2,
        "currency_decimal_separator": ".",
        "currency_thousand_separator": ",",
        "currency_prefix": "KSh",
        "currency_suffix": "",
    },
    "price_html": '<span class="woocommerce-Price-amount amount">KSh5,499.00</span>',
    "average_rating": "4.30",
    "review_count": 12,
    "images": [
        {
            "id": 57,
            "src": "https://kiondo.example.co.ke/wp-content/uploads/rm577.jpg",
            "thumbnail": "https://kiondo.example.co.ke/wp-content/uploads/rm577-324x324.jpg",
            "srcset": "",
            "sizes": "",
            "name": "rm577.jpg",
            "alt": "",
        }
    ],
    "categories": [{"id": 20, "name": "Home &amp; Kitchen", "slug": "home-kitchen", "link": ""}],
    "brands": [{"id": 5, "name": "Ramtons", "slug": "ramtons", "link": ""}],
    "tags": [],
    "attributes": [],
    "variations": [],
    "has_options": False,
    "is_purchasable": True,
    "is_in_stock": True,
    "is_on_backorder": False,
    "low_stock_remaining": None,
    "sold_individually": False,
    "extensions": {},
}


def adapter(**kwargs: Any) -> WooCommerceAdapter:
    kwargs.setdefault("currency", "KES")
    return WooCommerceAdapter(
        marketplace_config("woocommerce", slug="kiondo", **kwargs), transport=offline_transport()
    )


def product(**changes: Any) -> dict[str, Any]:
    record = copy.deepcopy(STORE_PRODUCT)
    record.update(changes)
    return record


def priced(**price_changes: Any) -> dict[str, Any]:
    record = product()
    record["prices"].update(price_changes)
    return record


def test_store_api_product_becomes_an_offer() -> None:
    offer = adapter().normalize_record(STORE_PRODUCT)
    assert offer.external_id == "34"
    assert offer.title == "Ramtons RM/577 Kettle & Toaster Set"
    assert (offer.price_minor, offer.currency) == (549900, "KES")
    assert offer.description == "A 1.7 L cordless kettle & a 2-slice toaster."
    assert offer.brand == "Ramtons"
    assert offer.model == offer.sku == "RM/577"
    assert offer.category == "Home & Kitchen"
    assert offer.gtin is None
    assert offer.rating == Decimal("4.30")
    assert offer.rating_count == 12
    assert offer.image_url == "https://kiondo.example.co.ke/wp-content/uploads/rm577.jpg"
    assert offer.product_url == "https://kiondo.example.co.ke/product/ramtons-rm-577/"
    assert offer.available is True


@pytest.mark.parametrize(
    ("prices", "minor", "currency"),
    [
        ({"price": "1105", "currency_code": "GBP", "currency_minor_unit": 2}, 1105, "GBP"),
        ({"price": "1500", "currency_code": "JPY", "currency_minor_unit": 0}, 1500, "JPY"),
        ({"price": "12345", "currency_code": "KWD", "currency_minor_unit": 3}, 12345, "KWD"),
        # A Kenyan store configured without decimals sends whole shillings.
        ({"price": "5499", "currency_code": "KES", "currency_minor_unit": 0}, 549900, "KES"),
    ],
)
def test_prices_use_the_payloads_currency_and_scale(
    prices: dict[str, Any], minor: int, currency: str
) -> None:
    offer = adapter().normalize_record(priced(**prices))
    assert (offer.price_minor, offer.currency) == (minor, currency)


def cart(maximum: object) -> dict[str, Any]:
    return {"text": "Add to cart", "minimum": 1, "maximum": maximum, "multiple_of": 1}


def test_the_store_api_tells_the_stock_in_the_cart_maximum_whether_low_or_not() -> None:
    # QuantityLimits: a managed stock without backorders lowers the 9999 cap to what is left.
    assert adapter().normalize_record(product(add_to_cart=cart(48))).stock == 48
    assert adapter().normalize_record(product(add_to_cart=cart(3))).stock == 3
    # At the cap: the stock is not managed (or backorders are allowed): no limit known.
    assert adapter().normalize_record(product(add_to_cart=cart(9999))).stock is None
    # Sold individually: 1 a cart, whatever the stock.
    record = product(add_to_cart=cart(1), sold_individually=True)
    assert adapter().normalize_record(record).stock is None


def test_low_stock_remaining_counts_where_the_cart_maximum_says_nothing() -> None:
    # A sold-out managed product: the cap (its 0 is dropped) and low_stock_remaining 0.
    record = product(add_to_cart=cart(9999), low_stock_remaining=0, is_in_stock=False)
    assert adapter().normalize_record(record).stock == 0
    # Store APIs before quantity limits send no maximum: the low-stock figure, when low.
    assert adapter().normalize_record(product(low_stock_remaining=3)).stock == 3
    assert adapter().normalize_record(product(low_stock_remaining=None)).stock is None


def test_a_rest_v3_stock_quantity_wins() -> None:
    record = product(stock_quantity=12, add_to_cart=cart(3), low_stock_remaining=3)
    assert adapter().normalize_record(record).stock == 12


def test_out_of_stock_or_unpurchasable_is_unavailable() -> None:
    assert adapter().normalize_record(product(is_in_stock=False)).available is False
    assert adapter().normalize_record(product(is_purchasable=False)).available is False


def test_unreviewed_product_has_no_rating() -> None:
    offer = adapter().normalize_record(product(average_rating="0", review_count=0))
    assert offer.rating is None and offer.rating_count == 0


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (product(id=None), "missing_id"),
        (product(name=None), "missing_title"),
        (product(name="Kettle \ufffd Set"), "broken_utf8"),
        (product(prices=None), "missing_price"),
        (product(prices="5499"), "bad_record"),
        (priced(price=None), "missing_price"),
        (priced(price="54.99"), "bad_price"),
        (priced(currency_minor_unit=None), "bad_price"),
        (priced(price="-549900"), "non_positive_price"),
        (priced(price="0"), "non_positive_price"),
        (priced(currency_code="KSH"), "unknown_currency"),
        (priced(currency_code=404), "unknown_currency"),
        ("not an object", "bad_record"),
    ],
)
def test_malformed_products_are_rejected(record: Any, reason: str) -> None:
    with pytest.raises(BadPayload) as caught:
        adapter().normalize_record(record)
    assert caught.value.reason == reason


def test_catalog_follows_x_wp_totalpages() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        body = [product(id=page * 100 + n) for n in range(2)]
        return httpx.Response(200, json=body, headers={"X-WP-Total": "6", "X-WP-TotalPages": "3"})

    transport = RecordingTransport(handler)
    woo = WooCommerceAdapter(marketplace_config("woocommerce", page_size=500), transport=transport)
    pages = list(woo.fetch_catalog_pages())
    assert [page.page for page in pages] == [1, 2, 3]
    assert len(transport.requests) == 3
    assert transport.requests[0].url.path == "/wp-json/wc/store/v1/products"
    assert transport.requests[0].url.params["per_page"] == "100"


def test_lookup_reads_one_store_product() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/wp-json/wc/store/v1/products/34":
            return httpx.Response(200, json=priced(price="499900"))
        return httpx.Response(
            404,
            json={
                "code": "woocommerce_rest_product_invalid_id",
                "message": "Invalid ID.",
                "data": {"status": 404},
            },
        )

    woo = WooCommerceAdapter(
        marketplace_config("woocommerce", currency="KES"), transport=httpx.MockTransport(handler)
    )
    assert woo.lookup_offer("34").price_minor == 499900
    with pytest.raises(NotFound):
        woo.lookup_offer("35")

"""The field-level rules every adapter shares: prices in every encoding, rejection reasons,
descriptions, availability words, dotted paths and lenient body decoding."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from adapters.base import MAX_DESCRIPTION_CHARS, BadPayload
from adapters.fields import (
    availability_from_value,
    availability_from_word,
    category_leaf,
    decode_json_body,
    description_text,
    dig,
    html_to_text,
    iter_json_array,
    marketplace_message,
    optional_url,
    require_amount_currency_price,
    require_decimal_price,
    require_external_id,
    require_minor_unit_price,
    require_title,
)
from adapters.marketplace_http import decode_json


def reason_of(call, *args, **kwargs) -> str:
    with pytest.raises(BadPayload) as caught:
        call(*args, marketplace="testmart", **kwargs)
    assert caught.value.marketplace == "testmart"
    return caught.value.reason


# --- Prices ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        (9.99, "USD", 999),  # DummyJSON float, read through its repr, never binary arithmetic
        (109.95, "EUR", 10995),  # Fake Store float
        (0.1, "USD", 10),
        (19, "USD", 1900),
        ("19.99", "USD", 1999),  # Shopify decimal string
        ("29.35", "USD", 2935),
        ("1500", "JPY", 1500),  # JPY has no minor unit
        ("12.345", "KWD", 12345),  # KWD has three decimals
        ("12.3", "KWD", 12300),
        ("12.50", "USD", 1250),
    ],
)
def test_decimal_prices_become_exact_minor_units(value: object, currency: str, minor: int) -> None:
    assert require_decimal_price(value, currency, marketplace="testmart") == minor


@pytest.mark.parametrize(
    ("value", "scale", "currency", "minor"),
    [
        ("1105", 2, "USD", 1105),  # WooCommerce Store API: 11.05
        ("1500", 0, "JPY", 1500),
        ("12345", 3, "KWD", 12345),  # 12.345 KWD
        ("110500", 2, "KES", 110500),
        ("1105", 0, "KES", 110500),  # a KES store run with 0 decimals: 1105 shillings
        ("11050", 3, "USD", 1105),  # finer scale than the currency, but exact
        ("1105", "2", "USD", 1105),  # scale sent as a string
    ],
)
def test_minor_unit_prices_use_their_own_scale(
    value: object, scale: object, currency: str, minor: int
) -> None:
    assert require_minor_unit_price(value, scale, currency, marketplace="testmart") == minor


@pytest.mark.parametrize(
    ("text", "minor", "currency"),
    [
        ("15.00 USD", 1500, "USD"),
        ("15000.00 NGN", 1500000, "NGN"),
        ("12.50 EUR", 1250, "EUR"),
        ("1500 JPY", 1500, "JPY"),
        ("12.345 KWD", 12345, "KWD"),
        ("  9.99 gbp ", 999, "GBP"),
    ],
)
def test_amount_currency_text_carries_its_currency(text: str, minor: int, currency: str) -> None:
    assert require_amount_currency_price(text, marketplace="testmart") == (minor, currency)


@pytest.mark.parametrize(
    ("value", "currency", "reason"),
    [
        (None, "USD", "missing_price"),
        ("", "USD", "missing_price"),
        ("  ", "USD", "missing_price"),
        ("abc", "USD", "bad_price"),
        ("19,99", "USD", "bad_price"),
        ("1e3", "USD", "bad_price"),
        (float("nan"), "USD", "bad_price"),
        (True, "USD", "bad_price"),
        ({"amount": "1"}, "USD", "bad_price"),
        ("9.999", "USD", "bad_price"),  # more decimals than USD has: noticed, not rounded
        ("1.5", "JPY", "bad_price"),
        ("0", "USD", "non_positive_price"),
        ("-5.00", "USD", "non_positive_price"),
        (-1, "USD", "non_positive_price"),
        ("10.00", "XYZ", "unknown_currency"),
        ("10.00", "usd", "unknown_currency"),
    ],
)
def test_bad_decimal_prices_are_rejected_with_a_reason(
    value: object, currency: str, reason: str
) -> None:
    assert reason_of(require_decimal_price, value, currency) == reason


@pytest.mark.parametrize(
    ("value", "scale", "reason"),
    [
        (None, 2, "missing_price"),
        ("11.05", 2, "bad_price"),  # minor units are integers
        ("abc", 2, "bad_price"),
        ("1105", None, "bad_price"),
        ("1105", 9, "bad_price"),
        ("11055", 3, "bad_price"),  # 11.055 USD cannot be represented
        ("-1105", 2, "non_positive_price"),
        ("0", 2, "non_positive_price"),
    ],
)
def test_bad_minor_unit_prices_are_rejected(value: object, scale: object, reason: str) -> None:
    assert reason_of(require_minor_unit_price, value, scale, "USD") == reason


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "missing_price"),
        ("", "missing_price"),
        ("15.00", "bad_price"),  # Google requires the currency
        ("USD 15.00", "bad_price"),
        ("fifteen USD", "bad_price"),
        (15.0, "bad_price"),
        ("15.00 XYZ", "unknown_currency"),
        ("15.00 US$", "unknown_currency"),
        ("15.00 EURO", "unknown_currency"),
        ("-15.00 USD", "non_positive_price"),
        ("0.00 USD", "non_positive_price"),
        ("15.001 USD", "bad_price"),
    ],
)
def test_bad_amount_currency_text_is_rejected(text: object, reason: str) -> None:
    assert reason_of(require_amount_currency_price, text) == reason


# --- Ids and titles -------------------------------------------------------------------------


def test_ids_become_text() -> None:
    assert require_external_id(42, marketplace="m") == "42"
    assert require_external_id(" SKU-1 ", marketplace="m") == "SKU-1"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "missing_id"),
        ("", "missing_id"),
        ("   ", "missing_id"),
        (True, "bad_record"),
        ({}, "bad_record"),
        (1.5, "bad_record"),
    ],
)
def test_bad_ids_are_rejected(value: object, reason: str) -> None:
    assert reason_of(require_external_id, value) == reason


def test_titles_keep_markup_as_text() -> None:
    title = '<script>alert("x")</script> Sony WH-1000XM5'
    assert require_title(title, marketplace="m") == title


def test_titles_lose_control_characters_and_are_cut() -> None:
    assert require_title("  Sony\x00 WH-1000XM5\x07 ", marketplace="m") == "Sony WH-1000XM5"
    assert len(require_title("x" * 1000, marketplace="m")) == 300


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "missing_title"),
        ("", "missing_title"),
        ("  \x00 ", "missing_title"),
        ("Sony WH\ufffd1000XM5", "broken_utf8"),
        (123, "bad_record"),
    ],
)
def test_bad_titles_are_rejected(value: object, reason: str) -> None:
    assert reason_of(require_title, value) == reason


# --- Descriptions ---------------------------------------------------------------------------


def test_html_becomes_readable_text() -> None:
    html = (
        "<p>Industry-leading <strong>noise&nbsp;cancelling</strong> &amp; 30h battery.</p>"
        "<ul><li>Bluetooth 5.2</li><li>USB-C</li></ul>"
        "<script>track()</script><style>p{color:red}</style>"
    )
    assert html_to_text(html) == (
        "Industry-leading noise cancelling & 30h battery.\n\nBluetooth 5.2\n\nUSB-C"
    )


def test_plain_descriptions_are_left_alone() -> None:
    assert description_text("Size < 5 cm & light") == "Size < 5 cm & light"


def test_long_descriptions_are_cut_not_rejected() -> None:
    text = description_text("<p>" + "a" * 100_000 + "</p>")
    assert len(text) == MAX_DESCRIPTION_CHARS


# --- Availability, paths, URLs, categories --------------------------------------------------


@pytest.mark.parametrize(
    ("word", "available"),
    [
        ("in_stock", True),
        ("in stock", True),
        ("In Stock", True),
        ("Low Stock", True),
        ("preorder", True),
        ("backorder", True),
        ("out_of_stock", False),
        ("Out of Stock", False),
        ("out of stock", False),
        ("discontinued", False),
        ("maybe", None),
        (None, None),
    ],
)
def test_availability_words(word: object, available: bool | None) -> None:
    assert availability_from_word(word) is available


def test_availability_from_stock_numbers() -> None:
    assert availability_from_value(3) is True
    assert availability_from_value(0) is False
    assert availability_from_value(False) is False


def test_dotted_paths_reach_into_lists() -> None:
    record = {"images": [{"src": "a.jpg"}, {"src": "b.jpg"}], "pricing": {"display": "1 EUR"}}
    assert dig(record, "images.1.src") == "b.jpg"
    assert dig(record, "pricing.display") == "1 EUR"
    assert dig(record, "images.5.src") is None
    assert dig(record, "pricing.display.x") is None
    assert dig([1, 2], "") == [1, 2]


def test_urls_must_be_absolute() -> None:
    assert optional_url("https://cdn.example.com/a.jpg") == "https://cdn.example.com/a.jpg"
    assert optional_url("/products/a") is None
    assert optional_url("javascript:alert(1)") is None
    assert optional_url(["https://cdn.example.com/a.jpg"]) == "https://cdn.example.com/a.jpg"


def test_category_leaf() -> None:
    assert category_leaf("Electronics > Audio > Headphones") == "Headphones"
    assert category_leaf(["Home", "Kitchen", "Mugs"]) == "Mugs"
    assert category_leaf("") is None


# --- Bodies and error messages --------------------------------------------------------------


def test_one_broken_byte_does_not_lose_the_page() -> None:
    body = b'[{"id": 1, "title": "Good"}, {"id": 2, "title": "Bad \xff\xfe title"}]'
    response = httpx.Response(
        200, content=body, request=httpx.Request("GET", "https://shop.example.com/products")
    )
    records = decode_json_body(response, marketplace="m")
    assert [record["id"] for record in records] == [1, 2]
    assert reason_of(require_title, records[1]["title"]) == "broken_utf8"


def test_non_json_body_is_a_bad_payload() -> None:
    response = httpx.Response(
        200, content=b"<html>oops</html>", request=httpx.Request("GET", "https://x.example/p")
    )
    with pytest.raises(BadPayload) as caught:
        decode_json_body(response, marketplace="m")
    assert caught.value.reason == "invalid_json"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"code":"woocommerce_rest_cannot_cancel","message":"Cannot cancel"}', "Cannot cancel"),
        ('{"errors":"Not Found"}', "Not Found"),
        ('{"errors":{"line_items":["is invalid"]}}', "line_items is invalid"),
        ('{"errors":[{"message":"Throttled"}]}', "Throttled"),
        ("plain words", "plain words"),
        ("", ""),
    ],
)
def test_marketplace_messages_are_extracted(body: str, message: str) -> None:
    assert marketplace_message(body) == message


# --- Streaming a single huge list -----------------------------------------------------------


def chunked(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


@pytest.mark.parametrize("size", [1, 2, 7, 64, 100_000])
def test_a_json_list_is_read_element_by_element_whatever_the_chunking(size: int) -> None:
    elements = [
        {"id": 1, "title": "Backpack", "price": 109.95, "rating": {"rate": 3.9, "count": 120}},
        {"id": 2, "title": 'Quote " and \\ backslash', "price": 22.3},
        12345,
        "text",
        None,
        [1, [2, 3]],
    ]
    text = " [ " + " , ".join(json.dumps(element) for element in elements) + " ] \n"
    assert list(iter_json_array(chunked(text, size), marketplace="m")) == elements


def test_an_empty_json_list_has_no_elements() -> None:
    assert list(iter_json_array(["[", " ", "]"], marketplace="m")) == []


@pytest.mark.parametrize("text", ["", "{}", "[1,", "[", "[1 2]", "[1]x", "[,]", '[{"a": ]'])
def test_text_that_is_not_one_json_list_is_invalid(text: str) -> None:
    with pytest.raises(BadPayload) as caught:
        list(iter_json_array(chunked(text, 2) or [""], marketplace="m"))
    assert caught.value.reason == "invalid_json"


@pytest.mark.parametrize("decode", [decode_json_body, decode_json])
def test_an_undecodable_answer_names_its_url_without_the_query(decode: Any) -> None:
    """Security review, fifth pass: BadPayload's detail carried the whole request URL, and a
    declarative marketplace may take its API key as a query parameter (api_key_param), so the
    key reached run logs and stored errors with the first non-JSON answer."""
    request = httpx.Request(
        "GET", "https://user:pw@shop.example.com:8443/api/products?api_key=SECRET-KEY-42&page=2"
    )
    response = httpx.Response(200, content=b"<html>maintenance</html>", request=request)
    with pytest.raises(BadPayload) as raised:
        decode(response, marketplace="shop")
    text = str(raised.value)
    assert "SECRET-KEY-42" not in text and "pw@" not in text
    assert "https://shop.example.com:8443/api/products" in text

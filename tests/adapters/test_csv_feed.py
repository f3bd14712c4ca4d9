"""Affiliate CSV/TSV feeds: column mapping, price encodings, streaming, and a malformed feed whose
bad rows are each rejected with a reason while the good ones survive."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from adapters.base import BadPayload, Capability
from adapters.csv_feed import CsvFeedAdapter, parse_csv_feed_options, parse_feed_rows, text_lines
from adapters.registry import MarketplaceConfigError
from tests.adapters.configs import marketplace_config

COLUMNS = {
    "external_id": "product_id",
    "title": "product_name",
    "description": "description",
    "price": "price",
    "sale_price": "sale_price",
    "currency": "currency",
    "product_url": "deeplink",
    "image_url": "image_url",
    "brand": "brand",
    "gtin": "ean",
    "category": "category_path",
    "availability": "availability",
    "stock": "stock_quantity",
}
HEADER = (
    "product_id,product_name,description,price,sale_price,currency,deeplink,image_url,brand,"
    "ean,category_path,availability,stock_quantity\r\n"
)
# Rows the way affiliate networks write them: quoted fields with commas and line breaks, an
# empty sale price, a NGN row in a KES feed, and one broken row of each kind.
MALFORMED_FEED = (
    HEADER + 'JM-1001,"Tecno Spark 20, 8GB",Fast phone,"24999.00",,KES,'
    "https://soko.example/p/1?aff=x,https://img.example/1.jpg,Tecno,6974210590016,"
    "Phones > Smartphones,in stock,12\r\n"
    + 'JM-1002,Ramtons Kettle,"Boils fast.\nAuto off.",3499.00,2999.00,KES,'
    "https://soko.example/p/2,,Ramtons,,Home > Kitchen,out of stock,0\r\n"
    + "JM-1003,Infinix Hot 40,,285000.00,,NGN,https://soko.example/p/3,,Infinix,,Phones,,\r\n"
    + "JM-1004,No Price Phone,,,,KES,https://soko.example/p/4,,X,,Phones,in stock,1\r\n"
    + "JM-1005,Negative,,-10.00,,KES,https://soko.example/p/5,,X,,Phones,in stock,1\r\n"
    + "JM-1006,Bad Code,,10.00,,KSH,https://soko.example/p/6,,X,,Phones,in stock,1\r\n"
    + "JM-1007,Words,,ten shillings,,KES,https://soko.example/p/7,,X,,Phones,in stock,1\r\n"
    + "JM-1008,Short row,12.00\r\n"
    + ",No id,,10.00,,KES,https://soko.example/p/9,,X,,Phones,in stock,1\r\n"
    + "JM-1010,,,10.00,,KES,https://soko.example/p/10,,X,,Phones,in stock,1\r\n"
    + "\r\n"
    + "JM-1011,Too many decimals,,10.005,,KES,https://soko.example/p/11,,X,,Phones,in stock,1\r\n"
)


def feed_adapter(
    body: str | bytes, *, options: dict[str, Any] | None = None, page_size: int = 100
) -> CsvFeedAdapter:
    def handle(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/feeds/products.csv"
        content = body.encode("utf-8") if isinstance(body, str) else body
        return httpx.Response(200, content=content, headers={"Content-Type": "text/csv"})

    config = marketplace_config(
        "csv_feed",
        slug="sokoni",
        currency="KES",
        base_url="https://network.example",
        page_size=page_size,
        options={
            "feed_path": "feeds/products.csv",
            "columns": COLUMNS,
            **(options or {}),
        },
    )
    return CsvFeedAdapter(config, transport=httpx.MockTransport(handle))


def outcomes(adapter: CsvFeedAdapter) -> tuple[list[Any], list[tuple[str, str]]]:
    offers, rejected = [], []
    for page in adapter.fetch_catalog_pages():
        for record in page.records:
            try:
                offers.append(adapter.normalize_record(record))
            except BadPayload as exc:
                rejected.append((str(record.get("product_id")), exc.reason))
    return offers, rejected


def test_a_malformed_feed_keeps_its_good_rows_and_rejects_each_bad_one_with_a_reason() -> None:
    offers, rejected = outcomes(feed_adapter(MALFORMED_FEED))
    assert [offer.external_id for offer in offers] == ["JM-1001", "JM-1002", "JM-1003"]
    assert rejected == [
        ("JM-1004", "missing_price"),
        ("JM-1005", "non_positive_price"),
        ("JM-1006", "unknown_currency"),
        ("JM-1007", "bad_price"),
        ("JM-1008", "bad_record"),
        ("", "missing_id"),
        ("JM-1010", "missing_title"),
        ("JM-1011", "bad_price"),
    ]


def test_rows_become_offers_through_the_column_mapping() -> None:
    offers, _ = outcomes(feed_adapter(MALFORMED_FEED))
    phone, kettle, nigerian = offers
    assert phone.title == "Tecno Spark 20, 8GB"
    assert (phone.price_minor, phone.currency) == (2499900, "KES")
    assert phone.gtin == "6974210590016" and phone.brand == "Tecno"
    assert phone.category == "Smartphones" and phone.available and phone.stock == 12
    assert phone.product_url == "https://soko.example/p/1?aff=x"
    assert phone.image_url == "https://img.example/1.jpg"
    assert kettle.price_minor == 299900  # the sale price wins
    assert kettle.description == "Boils fast.\nAuto off."
    assert kettle.available is False and kettle.image_url is None
    assert (nigerian.price_minor, nigerian.currency) == (28500000, "NGN")
    assert nigerian.available is True  # no availability and no stock: listed means for sale


def test_a_short_row_is_rejected_naming_its_line() -> None:
    adapter = feed_adapter(MALFORMED_FEED)
    records = [record for page in adapter.fetch_catalog_pages() for record in page.records]
    short = next(record for record in records if record["product_id"] == "JM-1008")
    with pytest.raises(BadPayload, match=r"line 10: 3 fields where the header has 13"):
        adapter.normalize_record(short)


def test_broken_bytes_reject_one_row_not_the_feed() -> None:
    body = (
        HEADER.encode()
        + b"JM-1,Edici\xff\xfen Phone,,10.00,,KES,https://s.example/1,,X,,Phones,in stock,1\r\n"
        + b"JM-2,Good Phone,,11.00,,KES,https://s.example/2,,X,,Phones,in stock,1\r\n"
    )
    offers, rejected = outcomes(feed_adapter(body))
    assert [offer.external_id for offer in offers] == ["JM-2"]
    assert rejected == [("JM-1", "broken_utf8")]


def test_a_header_without_a_mapped_column_fails_the_feed() -> None:
    body = "id,name,price\r\n1,Phone,10.00\r\n"
    with pytest.raises(BadPayload) as caught:
        list(feed_adapter(body).fetch_catalog_pages())
    assert caught.value.reason == "bad_feed_header"
    assert "'product_id'" in str(caught.value)


def test_an_empty_feed_is_an_error_not_an_empty_catalog() -> None:
    with pytest.raises(BadPayload) as caught:
        list(feed_adapter("").fetch_catalog_pages())
    assert caught.value.reason == "invalid_csv"


def test_tsv_with_thousands_separators_and_prices_naming_their_currency() -> None:
    body = (
        "sku\ttitle\tprice\r\n"
        "A1\tHisense 65A6K TV\t649,999.00 KES\r\n"
        "A2\tOraimo Earbuds\t18,500 NGN\r\n"
    )
    adapter = feed_adapter(
        body,
        options={
            "delimiter": "tab",
            "price_encoding": "amount_currency_text",
            "thousands_separator": ",",
            "columns": {"external_id": "sku", "title": "title", "price": "price"},
        },
    )
    offers, rejected = outcomes(adapter)
    assert rejected == []
    assert [(o.price_minor, o.currency) for o in offers] == [(64999900, "KES"), (1850000, "NGN")]


def test_minor_unit_prices_use_their_declared_scale() -> None:
    body = "sku,title,price\r\nK1,Kettle,349900\r\n"
    adapter = feed_adapter(
        body,
        options={
            "price_encoding": "minor_units",
            "price_scale": 2,
            "columns": {"external_id": "sku", "title": "title", "price": "price"},
        },
    )
    [offer], _ = outcomes(adapter)
    assert (offer.price_minor, offer.currency) == (349900, "KES")


def test_pages_are_handed_on_as_the_feed_downloads() -> None:
    rows = "".join(
        f"JM-{n},Phone {n},,{n}.00,,KES,https://s.example/{n},,X,,Phones,in stock,1\r\n"
        for n in range(1, 251)
    )
    pages = list(feed_adapter(HEADER + rows, page_size=100).fetch_catalog_pages())
    assert [len(page.records) for page in pages] == [100, 100, 50]
    assert [page.page for page in pages] == [1, 2, 3]


def test_lines_are_split_across_chunks_without_losing_a_quoted_line_break() -> None:
    chunks = ["a,b\r", '\n1,"x\ny"\r\n2', ",z\r\n"]
    assert list(text_lines(chunks)) == ["a,b\r\n", '1,"x\n', 'y"\r\n', "2,z\r\n"]
    records = list(parse_feed_rows(chunks, delimiter=",", marketplace="m"))
    assert [(r["a"], r["b"]) for r in records] == [("1", "x\ny"), ("2", "z")]


def test_the_feed_is_catalog_only() -> None:
    assert feed_adapter(HEADER).capabilities == frozenset({Capability.CATALOG})


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"feed_path": ""}, "feed_path"),
        ({"delimiter": ":"}, "delimiter"),
        ({"columns": {"title": "t", "price": "p"}}, "columns.external_id"),
        ({"columns": {**COLUMNS, "colour": "c"}}, "columns.colour"),
        ({"price_encoding": "float"}, "price_encoding"),
        ({"price_encoding": "minor_units"}, "price_scale"),
        ({"price_scale": 2}, "price_scale"),
        ({"price_encoding": "amount_currency_text"}, "columns.currency"),
        ({"thousands_separator": "_"}, "thousands_separator"),
        ({"feed": "x.csv"}, "feed"),
    ],
)
def test_a_bad_option_fails_at_start_up_naming_it(change: dict[str, Any], option: str) -> None:
    options = {"feed_path": "feed.csv", "columns": COLUMNS, **change}
    with pytest.raises(MarketplaceConfigError, match=f"options.{option}"):
        parse_csv_feed_options("sokoni", options)

"""The declarative JSON adapter: option validation, every pagination style, every price encoding."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapters.base import BadPayload, Capability, NotFound, Unsupported
from adapters.declarative import DeclarativeJsonAdapter, parse_declarative_options
from adapters.registry import MarketplaceConfigError
from onecart.settings import REPO_ROOT
from tests.adapters.configs import RecordingTransport, marketplace_config, offline_transport


def bazaar_options() -> dict[str, Any]:
    """The options of `bazaar` exactly as marketplaces.toml ships them."""
    with open(REPO_ROOT / "marketplaces.toml", "rb") as handle:
        document = tomllib.load(handle)
    [entry] = [entry for entry in document["marketplace"] if entry["slug"] == "bazaar"]
    return entry["options"]


BAZAAR_ITEM: dict[str, Any] = {
    "sku": "BZ-000123",
    "name": "Stanley Classic Legendary Bottle 1.4 L",
    "summary": "<p>Keeps drinks cold for 35 hours.</p>",
    "pricing": {"display": "42.50 EUR"},
    "media": {"thumb": "https://bazaar.example.fr/img/bz-000123.jpg"},
    "url": "https://bazaar.example.fr/p/bz-000123",
    "taxonomy": {"path": ["Home", "Kitchen", "Flasks"], "leaf": "Flasks"},
    "maker": {"name": "Stanley", "model": "10-08266-001"},
    "ean": "4006381333931",
    "score": 4.6,
    "votes": 87,
    "in_stock": True,
    "stock_level": 14,
}


def adapter(
    options: dict[str, Any] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    **kwargs: Any,
) -> DeclarativeJsonAdapter:
    kwargs.setdefault("currency", "EUR")
    kwargs.setdefault("api_key", "bz-key")
    config = marketplace_config(
        "declarative", slug="bazaar", options=options or bazaar_options(), **kwargs
    )
    return DeclarativeJsonAdapter(config, transport=transport or offline_transport())


def with_options(**changes: Any) -> dict[str, Any]:
    options = bazaar_options()
    options.update(changes)
    return {key: value for key, value in options.items() if value is not None}


# --- Normalization --------------------------------------------------------------------------


def test_bazaar_item_becomes_an_offer() -> None:
    offer = adapter().normalize_record(BAZAAR_ITEM)
    assert offer.marketplace == "bazaar"
    assert offer.external_id == "BZ-000123"
    assert offer.title == "Stanley Classic Legendary Bottle 1.4 L"
    assert (offer.price_minor, offer.currency) == (4250, "EUR")
    assert offer.description == "Keeps drinks cold for 35 hours."
    assert offer.brand == "Stanley"
    assert offer.model == "10-08266-001"
    assert offer.gtin == "4006381333931"
    assert offer.category == "Flasks"
    assert offer.rating == Decimal("4.60")
    assert offer.rating_count == 87
    assert offer.available is True
    assert offer.stock == 14
    assert offer.image_url == "https://bazaar.example.fr/img/bz-000123.jpg"
    assert offer.product_url == "https://bazaar.example.fr/p/bz-000123"


def test_a_gbp_item_keeps_its_own_currency() -> None:
    offer = adapter().normalize_record({**BAZAAR_ITEM, "pricing": {"display": "36.99 GBP"}})
    assert (offer.price_minor, offer.currency) == (3699, "GBP")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sku": None}, "missing_id"),
        ({"name": ""}, "missing_title"),
        ({"name": "Stanley \ufffd Bottle"}, "broken_utf8"),
        ({"pricing": {}}, "missing_price"),
        ({"pricing": None}, "missing_price"),
        ({"pricing": {"display": "42.50"}}, "bad_price"),
        ({"pricing": {"display": "42.50 EUX"}}, "unknown_currency"),
        ({"pricing": {"display": "-42.50 EUR"}}, "non_positive_price"),
    ],
)
def test_malformed_items_are_rejected(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(BadPayload) as caught:
        adapter().normalize_record({**BAZAAR_ITEM, **changes})
    assert caught.value.reason == reason


def encoding_options(encoding: str, **extra: Any) -> dict[str, Any]:
    return {
        "list_path": "products",
        "pagination": "none",
        "records_path": "",
        "price_encoding": encoding,
        "fields": {"external_id": "id", "title": "title", "price": "price.value"},
        **extra,
    }


@pytest.mark.parametrize(
    ("encoding", "extra", "price", "record_extra", "currency", "minor"),
    [
        ("float", {}, 9.99, {}, "USD", 999),
        ("float", {}, 109.95, {}, "EUR", 10995),
        ("decimal_string", {}, "19.99", {}, "USD", 1999),
        ("decimal_string", {}, "1500", {}, "JPY", 1500),
        ("decimal_string", {}, "12.345", {}, "KWD", 12345),
        ("minor_units", {"price_scale": 0}, 1500, {}, "JPY", 1500),
        ("minor_units", {"price_scale": 2}, "1999", {}, "USD", 1999),
        ("minor_units", {"price_scale": 3}, "12345", {}, "KWD", 12345),
        ("minor_units", {"price_scale_path": "price.scale"}, "1105", {"scale": 2}, "USD", 1105),
        ("amount_currency_text", {}, "12.50 EUR", {}, "EUR", 1250),
        ("amount_currency_text", {}, "1500 JPY", {}, "JPY", 1500),
        ("amount_currency_text", {}, "12.345 KWD", {}, "KWD", 12345),
    ],
)
def test_every_price_encoding(
    encoding: str,
    extra: dict[str, Any],
    price: object,
    record_extra: dict[str, Any],
    currency: str,
    minor: int,
) -> None:
    store = adapter(
        encoding_options(encoding, **extra),
        currency=currency if encoding != "amount_currency_text" else "USD",
    )
    offer = store.normalize_record(
        {"id": 1, "title": "Thing", "price": {"value": price, **record_extra}}
    )
    assert (offer.price_minor, offer.currency) == (minor, currency)


def test_currency_path_reads_the_records_currency() -> None:
    options = encoding_options("decimal_string", currency_path="price.currency")
    record = {"id": 1, "title": "Thing", "price": {"value": "1500", "currency": "jpy"}}
    offer = adapter(options, currency="EUR").normalize_record(record)
    assert (offer.price_minor, offer.currency) == (1500, "JPY")
    no_currency = {"id": 1, "title": "Thing", "price": {"value": "15.00"}}
    assert adapter(options, currency="EUR").normalize_record(no_currency).currency == "EUR"


@pytest.mark.parametrize(
    ("encoding", "value"),
    [("float", "9.99"), ("decimal_string", 9.99), ("float", True), ("minor_units_bad", None)],
)
def test_a_price_of_the_wrong_json_type_is_bad(encoding: str, value: object) -> None:
    if encoding == "minor_units_bad":
        options = encoding_options("minor_units", price_scale=2)
        value = "19.99"
    else:
        options = encoding_options(encoding)
    with pytest.raises(BadPayload) as caught:
        adapter(options).normalize_record({"id": 1, "title": "Thing", "price": {"value": value}})
    assert caught.value.reason == "bad_price"


def test_availability_from_stock_when_no_flag_is_mapped() -> None:
    options = encoding_options("float")
    options["fields"] = {**options["fields"], "stock": "qty"}
    store = adapter(options)
    assert (
        store.normalize_record({"id": 1, "title": "T", "price": {"value": 1.0}, "qty": 0}).available
        is False
    )
    assert (
        store.normalize_record({"id": 1, "title": "T", "price": {"value": 1.0}, "qty": 2}).available
        is True
    )


def test_list_indexes_in_field_paths() -> None:
    options = encoding_options("float")
    options["fields"] = {**options["fields"], "image_url": "images.0.src"}
    record = {
        "id": 1,
        "title": "T",
        "price": {"value": 1.0},
        "images": [{"src": "https://x.example/a.png"}],
    }
    assert adapter(options).normalize_record(record).image_url == "https://x.example/a.png"


# --- Option validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"list_path": None}, "options.list_path"),
        ({"pagination": "infinite"}, "options.pagination"),
        ({"pagination": "page"}, "options.cursor_param"),  # a cursor option with page paging
        ({"price_encoding": "cents"}, "options.price_encoding"),
        ({"price_encoding": "minor_units"}, "options.price_scale"),
        ({"price_encoding": "minor_units", "price_scale": 7}, "options.price_scale"),
        ({"price_scale": 2}, "options.price_scale"),
        ({"currency_path": "pricing.currency"}, "options.currency_path"),
        ({"cursor_path": None}, "options.cursor_path"),
        ({"records_path": "data..items"}, "options.records_path"),
        ({"fields": None}, "options.fields"),
        ({"fields": {"external_id": "sku", "title": "name"}}, "options.fields.price"),
        (
            {"fields": {"external_id": "sku", "title": "name", "price": "p", "colour": "c"}},
            "options.fields.colour",
        ),
        ({"fields": {"external_id": "sku", "title": "name", "price": ""}}, "options.fields.price"),
        ({"item_path": "api/v1/listings"}, "options.item_path"),
        ({"page_size": 5}, "options.page_size"),  # unknown option: a typo for the entry's page_size
    ],
)
def test_bad_options_fail_at_construction_naming_the_option(
    changes: dict[str, Any], named: str
) -> None:
    with pytest.raises(MarketplaceConfigError) as caught:
        adapter(with_options(**changes))
    assert named in str(caught.value)
    assert "bazaar" in str(caught.value)


def test_the_shipped_bazaar_options_are_valid() -> None:
    options = parse_declarative_options("bazaar", bazaar_options())
    assert options.pagination == "cursor"
    assert options.fields["price"] == "pricing.display"


# --- Pagination -----------------------------------------------------------------------------


def item(number: int) -> dict[str, Any]:
    return {**BAZAAR_ITEM, "sku": f"BZ-{number}"}


def ids(pages) -> list[list[str]]:
    return [[record["sku"] for record in page.records] for page in pages]


def test_cursor_pagination_as_bazaar_uses_it() -> None:
    cursors = {None: ("c1", [1, 2]), "c1": ("c2", [3, 4]), "c2": (None, [5])}

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["X-Api-Key"] == "bz-key"
        next_cursor, numbers = cursors[request.url.params.get("cursor")]
        return httpx.Response(
            200, json={"data": {"items": [item(n) for n in numbers]}, "next_cursor": next_cursor}
        )

    transport = RecordingTransport(handler)
    pages = list(adapter(transport=transport, page_size=2).fetch_catalog_pages())
    assert ids(pages) == [["BZ-1", "BZ-2"], ["BZ-3", "BZ-4"], ["BZ-5"]]
    assert transport.requests[0].url.path == "/api/v1/listings"
    assert transport.requests[0].url.params["limit"] == "2"
    assert "cursor" not in transport.requests[0].url.params


def test_a_repeating_cursor_is_reported_not_followed_forever() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": {"items": [item(1)]}, "next_cursor": "same"})

    with pytest.raises(BadPayload) as caught:
        list(adapter(transport=httpx.MockTransport(handler)).fetch_catalog_pages())
    assert caught.value.reason == "pagination_loop"


def test_page_pagination_stops_at_an_empty_page() -> None:
    options = with_options(
        pagination="page",
        cursor_param=None,
        cursor_path=None,
        limit_param=None,
        page_param="p",
        per_page_param="size",
        start_page=0,
    )

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["p"])
        numbers = {0: [1, 2], 1: [3]}.get(page, [])
        return httpx.Response(200, json={"data": {"items": [item(n) for n in numbers]}})

    transport = RecordingTransport(handler)
    pages = list(adapter(options, transport=transport, page_size=2).fetch_catalog_pages())
    assert ids(pages) == [["BZ-1", "BZ-2"], ["BZ-3"]]
    assert [request.url.params["p"] for request in transport.requests] == ["0", "1", "2"]
    assert transport.requests[0].url.params["size"] == "2"


def test_offset_pagination_stops_at_the_total() -> None:
    options = with_options(
        pagination="offset",
        cursor_param=None,
        cursor_path=None,
        offset_param="skip",
        total_path="meta.total",
    )

    def handler(request: httpx.Request) -> httpx.Response:
        skip, limit = int(request.url.params["skip"]), int(request.url.params["limit"])
        numbers = list(range(1, 6))[skip : skip + limit]
        return httpx.Response(
            200, json={"data": {"items": [item(n) for n in numbers]}, "meta": {"total": 5}}
        )

    transport = RecordingTransport(handler)
    pages = list(adapter(options, transport=transport, page_size=2).fetch_catalog_pages())
    assert ids(pages) == [["BZ-1", "BZ-2"], ["BZ-3", "BZ-4"], ["BZ-5"]]
    assert len(transport.requests) == 3


def test_link_pagination_follows_rel_next_and_keeps_the_api_key_param() -> None:
    options = with_options(
        pagination="link",
        cursor_param=None,
        cursor_path=None,
        api_key_header=None,
        api_key_param="key",
    )

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.params["key"] == "bz-key"
        page = int(request.url.params.get("page", "1"))
        headers = (
            {"Link": f'</api/v1/listings?page={page + 1}&limit=2>; rel="next"'} if page < 3 else {}
        )
        return httpx.Response(200, json={"data": {"items": [item(page)]}}, headers=headers)

    transport = RecordingTransport(handler)
    pages = list(adapter(options, transport=transport, page_size=2).fetch_catalog_pages())
    assert ids(pages) == [["BZ-1"], ["BZ-2"], ["BZ-3"]]
    assert str(transport.requests[2].url).startswith(
        "https://shop.example.com/api/v1/listings?page=3"
    )


def test_link_pagination_can_read_the_next_url_from_the_body() -> None:
    options = with_options(
        pagination="link", cursor_param=None, cursor_path=None, next_path="links.next"
    )

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        next_url = f"https://shop.example.com/api/v1/listings?page={page + 1}" if page < 2 else None
        return httpx.Response(
            200, json={"data": {"items": [item(page)]}, "links": {"next": next_url}}
        )

    pages = list(adapter(options, transport=httpx.MockTransport(handler)).fetch_catalog_pages())
    assert ids(pages) == [["BZ-1"], ["BZ-2"]]


def test_a_page_without_the_record_list_is_a_bad_payload() -> None:
    handler = lambda request: httpx.Response(200, json={"items": []})  # noqa: E731
    with pytest.raises(BadPayload) as caught:
        list(adapter(transport=httpx.MockTransport(handler)).fetch_catalog_pages())
    assert caught.value.reason == "bad_page"


# --- Live offers ----------------------------------------------------------------------------


def test_without_item_path_there_is_no_live_offer() -> None:
    store = adapter()
    assert store.capabilities == frozenset({Capability.CATALOG})
    with pytest.raises(Unsupported):
        store.lookup_offer("BZ-1")


def test_item_path_enables_live_offers() -> None:
    options = with_options(item_path="api/v1/listings/{id}", item_record_path="data")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/listings/BZ-000123":
            return httpx.Response(
                200, json={"data": {**BAZAAR_ITEM, "pricing": {"display": "39.90 EUR"}}}
            )
        return httpx.Response(404, json={"error": "not found"})

    store = adapter(options, transport=httpx.MockTransport(handler))
    assert Capability.LIVE_OFFER in store.capabilities
    assert store.lookup_offer("BZ-000123").price_minor == 3990
    with pytest.raises(NotFound):
        store.lookup_offer("BZ-9")

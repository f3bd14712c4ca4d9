"""The vectorized normalization gives exactly what the adapters' normalize_record gives.

Property: for every record of every format, the pipeline's bulk path (warehouse.normalize) and
the per-record path (warehouse.offers.normalize_catalog over the adapter's normalize_record, the
code the live lookups use) produce identical products, rejections and GTIN counts. The records
are the sandbox's real catalogs over HTTP (its malformed records included) and, for each format,
the same records with their fields rewritten into the shapes the formats allow (numbers as text,
entities, accents, lists, sale windows, several variants, …).
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import warehouse
from adapters.base import MarketplaceConfig
from adapters.registry import build_adapter, load_marketplaces
from onecart.services import sandbox_credentials
from onecart.settings import get_settings
from warehouse.normalize import normalize_stored_catalog
from warehouse.offers import (
    NormalizedCatalog,
    RawRecord,
    normalize_catalog,
    payload_text,
    record_hash,
)
from warehouse.vectorized import PRINTABLE_CLASS, vectorized_query
from warehouse.vectorized_formats import VECTORIZED_FORMATS

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
PAGE_SIZE = 50
# Placeholder keys for every marketplace marketplaces.toml serves from the sandbox.
SANDBOX_CREDENTIALS = sandbox_credentials(get_settings(), environ={})


def _class_characters(content: str) -> Iterator[str]:
    position = 0
    while position < len(content):
        if position + 2 < len(content) and content[position + 1] == "-":
            for code in range(ord(content[position]), ord(content[position + 2]) + 1):
                yield chr(code)
            position += 3
        else:
            yield content[position]
            position += 1


def test_the_printable_class_is_what_python_leaves_alone() -> None:
    """clean_text keeps exactly str.isprintable characters and strip() removes whitespace: text
    made of the class's characters may only lose surrounding spaces."""
    characters = list(_class_characters(PRINTABLE_CLASS))
    assert len(characters) > 500
    for character in characters:
        assert character.isprintable(), hex(ord(character))
        assert character == " " or not character.isspace(), hex(ord(character))


@pytest.fixture(scope="module")
def sandbox_catalogs(sandbox_server: str) -> dict[str, tuple[MarketplaceConfig, list[Any]]]:
    """Every sandbox marketplace's configuration and raw records, fetched over HTTP."""
    env = {**os.environ, "ONECART_SANDBOX_URL": sandbox_server, **SANDBOX_CREDENTIALS}
    catalogs = {}
    for config in load_marketplaces(Path("marketplaces.toml"), env):
        adapter = build_adapter(config)
        try:
            records = [record for page in adapter.fetch_catalog_pages() for record in page.records]
        finally:
            adapter.close()
        catalogs[config.slug] = (config, records)
    return catalogs


def _both_ways(
    tmp_path: Path, config: MarketplaceConfig, records: list[Any]
) -> tuple[NormalizedCatalog, NormalizedCatalog]:
    adapter = build_adapter(config)
    raw = [
        RawRecord(
            page=position // PAGE_SIZE,
            record_index=position % PAGE_SIZE,
            payload=record if isinstance(record, str) else payload_text(record),
            fetched_at=NOW,
        )
        for position, record in enumerate(records)
    ]
    expected = normalize_catalog(
        config.slug, raw, adapter.normalize_record, {}, now=NOW, run_id="run"
    )
    with warehouse.connect(tmp_path / f"{config.slug}.duckdb") as conn:
        conn.executemany(
            "INSERT INTO raw_catalog VALUES (?, ?, ?, ?, ?, 'run', ?)",
            [
                [
                    config.slug,
                    r.page,
                    r.record_index,
                    r.payload,
                    r.fetched_at,
                    record_hash(r.payload),
                ]
                for r in raw
            ],
        )
        got = normalize_stored_catalog(
            conn, config, adapter.normalize_record, now=NOW, run_id="run"
        )
    adapter.close()
    return expected, got


def _assert_same(expected: NormalizedCatalog, got: NormalizedCatalog) -> None:
    assert got.products.schema == expected.products.schema
    for expected_row, got_row in zip(
        expected.products.iter_rows(named=True), got.products.iter_rows(named=True), strict=True
    ):
        assert got_row == expected_row
    order = ["payload", "reason"]
    assert got.rejected.sort(order).to_dicts() == expected.rejected.sort(order).to_dicts()
    assert (got.raw_records, got.gtin_claimed, got.gtin_invalid) == (
        expected.raw_records,
        expected.gtin_claimed,
        expected.gtin_invalid,
    )
    assert got.content_fingerprint == expected.content_fingerprint


# --- Field rewrites: each takes a record and returns a variant of it -------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def rewrite(record: dict[str, Any]) -> dict[str, Any]:
        target: Any = record
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target.setdefault(key, {})
        if isinstance(target, list):
            target[int(keys[-1])] = value
        else:
            target[keys[-1]] = value
        return record

    return rewrite


def _drop(path: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def rewrite(record: dict[str, Any]) -> dict[str, Any]:
        target: Any = record
        keys = path.split(".")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target.get(key, {})
        if isinstance(target, dict):
            target.pop(keys[-1], None)
        return record

    return rewrite


TEXT_VALUES = [
    "  Déjà Vu Café ™ – “quoted” ",
    "Tom &amp; Jerry &#39;s",
    "Tabs\tand\nlines",
    "",
    "   ",
    "Bad\u00a0space",
    "Zero\u200bwidth",
    12345,
    None,
    True,
    ["a", "b"],
    "A > B > C",
    "x" * 400,
]
DESCRIPTIONS = [
    "<p>One &amp; two</p>\n<ul>\n <li> Three  \t four </li><li>Five&#x27;s</li></ul>",
    "<div><p>Para</p><br/><hr /><p>Next</p></div>",
    "<p>Entity &eacute; here</p>",
    "<p class='x'>Attributes</p>",
    "Plain < text > with & ampersand",
    "Plain &copy; entity",
    "<!-- comment --><p>x</p>",
    "<script>alert(1)</script><p>x</p>",
    "\n\n  spaced  \n\n",
    "y" * 25_000,
    None,
    7,
]
NUMBERS = ["19.99", "19.9", "19", "0", "-5", "1e3", " 12.50 ", "12.345", 19.99, 20, 0.1, True, None]
GTINS = [
    "4006381333931",
    "400638133393",
    "12345670",
    "0012345678905",
    "4006381333932",
    "12-345670",
    " 4006381333931",
    4006381333931,
    "",
    "abc",
    None,
]
RATINGS = ["4.5", 4.25, 3, "4.255", 7, -1, "x", None]
COUNTS = [0, 5, -3, "12", 2.0, 2.5, None]
AVAILABILITY = ["in stock", "Out-Of-Stock", "preorder", "maybe", "", True, False, 3, None]
URLS = [
    "https://x.example/a",
    "HTTP://X.example/b",
    "ftp://x",
    "/relative",
    " https://x/y ",
    None,
    ["https://x/first"],
]


# Where each format's record keeps its price.
_PRICE_PATHS = {
    "shopify": "variants.0.price",
    "woocommerce": "prices.price",
    "dummyjson": "price",
    "fakestore": "price",
    "google_feed": "g:price",
    "declarative": "pricing.display",
    "csv_feed": "price",
}


def _rewrites(kind: str) -> list[Callable[[dict[str, Any]], dict[str, Any]]]:
    fields: dict[str, tuple[str, ...]] = {
        "shopify": ("title", "vendor", "product_type", "handle", "variants.0.sku"),
        "woocommerce": ("name", "sku", "categories.0.name", "brands.0.name", "permalink"),
        "dummyjson": ("title", "brand", "category", "sku", "availabilityStatus"),
        "fakestore": ("title", "category", "image"),
        "google_feed": ("g:title", "g:brand", "g:product_type", "g:mpn", "g:link"),
        "declarative": ("name", "maker.name", "maker.model", "taxonomy.leaf", "url"),
        "csv_feed": ("product_name", "brand", "model", "category_path", "deeplink"),
    }[kind]
    description = {
        "shopify": "body_html",
        "woocommerce": "description",
        "dummyjson": "description",
        "fakestore": "description",
        "google_feed": "g:description",
        "declarative": "summary",
        "csv_feed": "description",
    }[kind]
    price = _PRICE_PATHS[kind]
    gtin = {
        "shopify": "variants.0.barcode",
        "woocommerce": "global_unique_id",
        "dummyjson": "meta.barcode",
        "fakestore": "ean",
        "google_feed": "g:gtin",
        "declarative": "ean",
        "csv_feed": "ean",
    }[kind]
    identifier = {"google_feed": "g:id", "declarative": "sku", "csv_feed": "product_id"}.get(
        kind, "id"
    )
    rewrites = [_set(field, value) for field in fields for value in TEXT_VALUES]
    rewrites += [_drop(field) for field in fields]
    rewrites += [_set(description, value) for value in DESCRIPTIONS]
    rewrites += [_set(gtin, value) for value in GTINS]
    rewrites += [_set(identifier, value) for value in ["A/1", " 77 ", "", None, 12, -4, 1.5, "é1"]]
    if kind in ("google_feed", "declarative"):
        rewrites += [
            _set(price, f"{amount} {code}")
            for amount in ("15.00", "15", "15.5", "1.234")
            for code in ("NGN", "EUR", "JPY", "KWD", "XXX", "eur")
        ]
        rewrites += [_set(price, value) for value in ("15.00  NGN", "fifteen NGN", None, 15)]
    elif kind == "woocommerce":
        rewrites += [_set(price, value) for value in ("1105", "0", "-1", "11.05", 1105, None)]
        rewrites += [_set("prices.currency_minor_unit", v) for v in (0, 3, "2", 5, None)]
        rewrites += [_set("prices.currency_code", v) for v in ("JPY", "usd", " KES", None, 5)]
        rewrites += [_set("review_count", value) for value in COUNTS]
        rewrites += [_set("average_rating", value) for value in RATINGS]
        rewrites += [_set("is_in_stock", v) for v in (False, None, "no")]
        rewrites += [_set("images", v) for v in ([], None, ["x"], [{"src": None}])]
        rewrites += [_set("categories", v) for v in ([], None, [{"name": ""}, {"name": "Two"}])]
        rewrites += [_set("description", ""), _set("stock_quantity", -2)]
        # The Store API's stock: the cart maximum (capped at 9999, 1 when sold individually),
        # else low_stock_remaining; REST v3's stock_quantity wins over both.
        rewrites += [
            _set("add_to_cart.maximum", v) for v in (7, 0, 9998, 9999, 10_000, -1, "7", 2.0, None)
        ]
        rewrites += [_set("sold_individually", v) for v in (True, "yes", None)]
        rewrites += [_drop("add_to_cart"), _set("add_to_cart", [7])]
        rewrites += [_set("low_stock_remaining", v) for v in (0, 3, -1, None)]
        rewrites.append(_set("stock_quantity", 12))
    else:
        rewrites += [_set(price, value) for value in NUMBERS]
    if kind == "shopify":
        rewrites += [_set("variants.0.available", v) for v in (False, None, "yes")]
        rewrites += [_set("variants.0.inventory_quantity", value) for value in COUNTS]
        rewrites += [_set("images", v) for v in ([], None, [{"src": "/x"}, {"src": "https://a/b"}])]
        rewrites += [_set("variants", v) for v in ([], None, ["x"])]
        rewrites.append(
            lambda r: {
                **r,
                "variants": [
                    {**r["variants"][0], "available": False, "price": "1.00"},
                    {**r["variants"][0], "id": 2},
                ],
            }
        )
    if kind == "google_feed":
        rewrites += [_set("g:availability", value) for value in AVAILABILITY]
        rewrites += [
            _set("g:sale_price", v) for v in ("9.00 NGN", "", "  ", "9.999 NGN", ["1 NGN"])
        ]
        rewrites.append(_set("g:sale_price_effective_date", "2020-01-01/2020-02-01"))
        rewrites += [_set("title", "Plain title"), _set("g:title", ["A", "B"])]
    if kind == "dummyjson":
        rewrites += [_set("availabilityStatus", value) for value in AVAILABILITY]
        rewrites += [_set("stock", value) for value in COUNTS]
        rewrites += [_set("rating", value) for value in RATINGS]
        rewrites += [_set("thumbnail", value) for value in URLS]
        rewrites += [_drop("images"), _set("gtin", "4006381333931"), _set("upc", "x")]
    if kind == "fakestore":
        rewrites += [_set("rating.count", value) for value in COUNTS]
        rewrites += [_set("rating.rate", value) for value in RATINGS]
        rewrites += [_set("image", value) for value in URLS]
    if kind == "csv_feed":
        # Feed cells are text; the other values stand for hand-built records.
        rewrites += [_set("sale_price", v) for v in ("9.00", "", "  ", " 8.5 ", "9.999", "x", 3)]
        rewrites += [_set("currency", v) for v in ("NGN", "ngn", " KES ", "", "KSH", "JPY", None)]
        rewrites += [_set("availability", value) for value in AVAILABILITY]
        rewrites += [
            _set("stock_quantity", v)
            for v in ("0", "12", "-3", "+4", " 7 ", "2.0", "", "1234567890", "007", "x", 5)
        ]
        rewrites += [_set("_problem", "3 fields where the header has 14"), _drop("_line")]
        rewrites += [_set("upc", "4006381333931"), _drop("ean")]
    if kind == "declarative":
        rewrites += [_set("in_stock", value) for value in AVAILABILITY]
        rewrites += [_set("stock_level", value) for value in COUNTS]
        rewrites += [_set("score", value) for value in RATINGS]
        rewrites += [_set("votes", value) for value in COUNTS]
        rewrites += [_set("media.thumb", value) for value in URLS]
    return rewrites


@pytest.mark.parametrize("kind", sorted(VECTORIZED_FORMATS))
def test_the_pipeline_reads_every_record_as_the_adapter_does(
    kind: str, sandbox_catalogs: dict[str, tuple[MarketplaceConfig, list[Any]]], tmp_path: Path
) -> None:
    (config, records), *_ = [entry for entry in sandbox_catalogs.values() if entry[0].kind == kind]
    assert vectorized_query(config, "raw") is not None
    samples = [r for r in records if isinstance(r, dict)][:12]
    variants: list[Any] = list(records)
    for rewrite in _rewrites(kind):
        for sample in samples[:3]:
            variants.append(rewrite(copy.deepcopy(sample)))
    # raw_catalog.payload is JSON: text that is not JSON never reaches normalization.
    variants += [json.dumps([1, 2]), json.dumps("text"), "null"]
    # Repeats: the second of each is a duplicate, whichever path read the first.
    variants += [copy.deepcopy(records[0]), copy.deepcopy(records[-1])]
    expected, got = _both_ways(tmp_path, config, variants)
    assert expected.products.height > len(records) * 0.9
    assert set(expected.rejected.get_column("reason")) >= {"duplicate_external_id"}
    _assert_same(expected, got)


@pytest.mark.parametrize("kind", sorted(VECTORIZED_FORMATS))
def test_a_repeat_of_a_quarantined_first_record_is_quarantined_both_ways(
    kind: str, sandbox_catalogs: dict[str, tuple[MarketplaceConfig, list[Any]]], tmp_path: Path
) -> None:
    """The first record naming an id claims it even when it is quarantined: the adapter names
    the id in its rejection, and the record repeating the id later is a duplicate, whichever
    path reads either (here a priceless copy of an offer comes first, the offer itself later)."""
    (config, records), *_ = [entry for entry in sandbox_catalogs.values() if entry[0].kind == kind]
    adapter = build_adapter(config)
    try:
        sample = next(r for r in records[5:] if isinstance(r, dict) and _offer_or_none(adapter, r))
        external_id = adapter.normalize_record(sample).external_id
    finally:
        adapter.close()
    priceless = _drop(_PRICE_PATHS[kind])(copy.deepcopy(sample))
    expected, got = _both_ways(tmp_path, config, [priceless, *records])
    _assert_same(expected, got)
    assert external_id not in expected.products.get_column("external_id").to_list()
    reasons = expected.rejected.filter(pl.col("external_id") == external_id).sort(
        "page", "record_index"
    )
    assert reasons.get_column("reason").to_list()[1:] == ["duplicate_external_id"]
    assert reasons.get_column("reason").to_list()[0].endswith("price")


def _offer_or_none(adapter: Any, record: dict[str, Any]) -> Any:
    try:
        return adapter.normalize_record(record)
    except Exception:
        return None


def test_a_format_without_a_vectorized_path_is_read_record_by_record(
    sandbox_catalogs: dict[str, tuple[MarketplaceConfig, list[Any]]], tmp_path: Path
) -> None:
    """A declarative marketplace whose paths index lists, like a format this module does not
    know, has no query: every record goes through normalize_record, with the same result."""
    config, records = sandbox_catalogs["bazaar"]
    options = {**config.options, "fields": {**config.options["fields"], "image_url": "media.0"}}
    indexed = MarketplaceConfig(**{**_fields_of(config), "options": options})
    assert vectorized_query(indexed, "raw") is None
    expected, got = _both_ways(tmp_path, indexed, records[:120])
    _assert_same(expected, got)


def _fields_of(config: MarketplaceConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__dataclass_fields__}


def test_content_hashes_agree_between_python_and_the_frame(tmp_path: Path) -> None:
    from adapters.base import Offer
    from warehouse.offers import content_hash

    offer = Offer(
        marketplace="m",
        external_id="1",
        title="T",
        price_minor=5,
        currency="EUR",
        rating=__import__("decimal").Decimal("4.5"),
        available=False,
        stock=3,
    )
    frame = pl.DataFrame([offer.as_row()]).with_columns(
        pl.col("rating").cast(pl.Decimal(3, 2)), pl.lit(None, pl.String).alias("category")
    )
    with warehouse.connect(tmp_path / "h.duckdb") as conn:
        from warehouse.normalize import _with_content_hash

        hashed = _with_content_hash(conn, frame)
    assert hashed.get_column("content_hash")[0] == content_hash(offer)

"""Normalizing raw records into products and quarantined rows (pure logic, no database)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from adapters.base import BadPayload, Offer
from warehouse.offers import (
    PRODUCTS_SCHEMA,
    REJECTED_SCHEMA,
    PreviousOffer,
    RawRecord,
    claimed_gtin,
    content_hash,
    normalize_catalog,
    payload_text,
    preview_markdown,
)

NOW = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=3)


def shop_normalize(record: Mapping[str, Any]) -> Offer:
    """A tiny adapter for a made-up format: {"id", "title", "price", "barcode"}."""
    if "id" not in record:
        raise BadPayload("missing_id", detail="no id", marketplace="shop")
    if record.get("price") is None:
        raise BadPayload("missing_price", detail=f"id {record['id']}", marketplace="shop")
    if record.get("explode"):
        raise KeyError("an adapter bug")
    return Offer(
        marketplace="shop",
        external_id=str(record["id"]),
        title=record["title"],
        price_minor=int(record["price"]),
        currency=record.get("currency", "USD"),
        gtin=record.get("barcode") if record.get("barcode") == "4548736132610" else None,
        rating=Decimal("4.30"),
    )


def raw(records: list[object]) -> list[RawRecord]:
    return [
        RawRecord(page=1, record_index=i, payload=payload_text(r), fetched_at=NOW)
        for i, r in enumerate(records)
    ]


def normalize(records: list[object], previous: Mapping[str, PreviousOffer] | None = None):
    return normalize_catalog(
        "shop", raw(records), shop_normalize, previous or {}, now=NOW, run_id="run-1"
    )


def test_every_record_becomes_a_product_or_a_quarantined_row() -> None:
    records: list[object] = [
        {"id": 1, "title": "Mug", "price": 1000},
        {"id": 2, "title": "Kettle"},  # no price
        {"title": "No id", "price": 5},
        {"id": 1, "title": "Mug again", "price": 900},  # duplicate id
        {"id": 3, "title": "Buggy", "price": 5, "explode": True},
        {"id": 4, "title": "Free", "price": 0},
        {"id": 5, "title": "Odd money", "price": 100, "currency": "XYZ"},
        ["not", "an", "object"],
    ]
    catalog = normalize(records)
    assert catalog.raw_records == len(records)
    assert catalog.products.height + catalog.rejected.height == len(records)
    assert catalog.products.get_column("external_id").to_list() == ["1"]
    assert catalog.rejected_by_reason == {
        "missing_price": 1,
        "missing_id": 1,
        "duplicate_external_id": 1,
        "bad_record": 2,
        "non_positive_price": 1,
        "unknown_currency": 1,
    }
    rejected = {row["reason"]: row for row in catalog.rejected.iter_rows(named=True)}
    assert rejected["duplicate_external_id"]["external_id"] == "1"
    assert json.loads(rejected["duplicate_external_id"]["payload"])["title"] == "Mug again"
    bad_records = sorted(
        row["detail"]
        for row in catalog.rejected.iter_rows(named=True)
        if row["reason"] == "bad_record"
    )
    assert bad_records[0].startswith("KeyError") and bad_records[1] == "record is not an object"
    assert all(row["run_id"] == "run-1" for row in catalog.rejected.iter_rows(named=True))


def test_the_first_record_naming_an_id_claims_it_even_when_quarantined() -> None:
    """A repeated id is another record listed under an id an earlier one already named (the
    marketplace's own lookup of the id answers with the first): when the first is quarantined,
    the repeat is quarantined too, never taken for the offer in its place. Otherwise a
    speaker whose title had broken bytes became the coffee machine repeating its id, and price
    history recorded a -68% drop and then a +215% rise (bench/RESULTS.md, ops QA pass 2)."""
    catalog = normalize(
        [
            {"id": 7, "title": "Speaker"},  # no price: quarantined
            {"id": 8, "title": "Free kettle", "price": 0},  # refused by the pipeline's check
            {"id": 7, "title": "Coffee machine", "price": 894900},
            {"id": 8, "title": "Kettle", "price": 3000},
            {"id": 9, "title": "Mug", "price": 1000},
        ]
    )
    assert catalog.products.get_column("external_id").to_list() == ["9"]
    rejected = catalog.rejected.select("record_index", "external_id", "reason").rows()
    assert rejected == [
        (0, "7", "missing_price"),
        (1, "8", "non_positive_price"),
        (2, "7", "duplicate_external_id"),
        (3, "8", "duplicate_external_id"),
    ]
    assert catalog.removed_offers == 0


def test_frames_carry_the_declared_schemas() -> None:
    catalog = normalize([{"id": 1, "title": "Mug", "price": 1000}, {"id": 2, "title": "x"}])
    assert catalog.products.schema == PRODUCTS_SCHEMA
    assert catalog.rejected.schema == REJECTED_SCHEMA
    empty = normalize([])
    assert empty.products.schema == PRODUCTS_SCHEMA and empty.products.height == 0


def test_first_seen_survives_and_updated_at_moves_only_when_content_changes() -> None:
    mug = {"id": 1, "title": "Mug", "price": 1000}
    kettle = {"id": 2, "title": "Kettle", "price": 3000}
    first = normalize([mug, kettle])
    hashes = dict(first.products.select("external_id", "content_hash").iter_rows())
    previous = {
        "1": PreviousOffer(hashes["1"], first_seen_at=EARLIER, updated_at=EARLIER),
        "2": PreviousOffer(hashes["2"], first_seen_at=EARLIER, updated_at=EARLIER),
        "9": PreviousOffer("gone", first_seen_at=EARLIER, updated_at=EARLIER),
    }
    second = normalize(
        [mug, {**kettle, "price": 2500}, {"id": 3, "title": "Tray", "price": 700}], previous
    )
    rows = {row["external_id"]: row for row in second.products.iter_rows(named=True)}
    assert rows["1"]["first_seen_at"] == EARLIER and rows["1"]["updated_at"] == EARLIER
    assert rows["2"]["first_seen_at"] == EARLIER and rows["2"]["updated_at"] == NOW
    assert rows["3"]["first_seen_at"] == NOW
    assert (second.new_offers, second.changed_offers, second.removed_offers) == (1, 1, 1)


def test_content_fingerprint_is_stable_for_the_same_catalog() -> None:
    records = [
        {"id": 1, "title": "Mug", "price": 1000},
        {"id": 2, "title": "Kettle", "price": 3000},
    ]
    assert normalize(records).content_fingerprint == normalize(records[::-1]).content_fingerprint
    changed = [records[0], {**records[1], "price": 2999}]
    assert normalize(changed).content_fingerprint != normalize(records).content_fingerprint


def test_content_hash_ignores_nothing_a_shopper_sees() -> None:
    base = Offer(marketplace="shop", external_id="1", title="Mug", price_minor=1000, currency="USD")
    assert content_hash(base) == content_hash(Offer(**{**base.as_row(), "rating": None}))
    for change in ({"price_minor": 999}, {"available": False}, {"title": "Mug XL"}):
        assert content_hash(Offer(**{**base.as_row(), "rating": None, **change})) != content_hash(
            base
        )


@pytest.mark.parametrize(
    ("record", "claim"),
    [
        ({"variants": [{"barcode": "4548736132610"}]}, "4548736132610"),
        ({"meta": {"barcode": "1234567890123"}}, "1234567890123"),
        ({"g:gtin": "4548736132610"}, "4548736132610"),
        ({"ean": None, "title": "x"}, None),
        ({"sku": "WH-1000XM5"}, None),
        # Amazon's Creators API lists them (itemInfo.externalIds.eans/upcs.displayValues): the
        # claim is the GTIN the adapter takes (the first valid one), else the first listed.
        (
            {"itemInfo": {"externalIds": {"eans": {"displayValues": ["6943226985031"]}}}},
            "6943226985031",
        ),
        (
            {
                "itemInfo": {
                    "externalIds": {
                        "eans": {"displayValues": ["6943226985032"], "label": "EAN"},
                        "upcs": {"displayValues": ["036000291452"], "label": "UPC"},
                    }
                }
            },
            "036000291452",
        ),
        ({"externalIds": {"eans": {"displayValues": ["6943226985032"]}}}, "6943226985032"),
        ({"externalIds": {"eans": {"displayValues": []}}}, None),
    ],
)
def test_claimed_gtins_are_found_wherever_the_format_puts_them(
    record: dict[str, object], claim: str | None
) -> None:
    assert claimed_gtin(record) == claim


def test_invalid_gtin_claims_are_counted() -> None:
    catalog = normalize(
        [
            {"id": 1, "title": "Mug", "price": 1000, "barcode": "4548736132610"},
            {"id": 2, "title": "Kettle", "price": 3000, "barcode": "1234567890123"},
            {"id": 3, "title": "Tray", "price": 700},
        ]
    )
    assert (catalog.gtin_claimed, catalog.gtin_invalid) == (2, 1)


def test_payload_text_survives_lone_surrogates() -> None:
    text = payload_text({"title": "Edici\udcc3n"})
    assert json.loads(text)["title"].startswith("Edici")
    text.encode("utf-8")  # storable as UTF-8


def test_preview_is_a_markdown_table_of_the_first_rows() -> None:
    catalog = normalize([{"id": i, "title": f"Mug | {i}", "price": 100 + i} for i in range(20)])
    preview = preview_markdown(catalog.products, ["external_id", "title", "price_minor"], rows=5)
    lines = preview.splitlines()
    assert lines[0] == "| external_id | title | price_minor |"
    assert len(lines) == 2 + 5
    assert "Mug \\| 0" in lines[2]

"""Search documents are built exactly as the data contract says, with exact money."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from search_index.documents import (
    DocumentError,
    build_document,
    compute_document_hash,
    convert_to_usd_minor,
    document_id,
)

CONTRACT_FIELDS = {
    "id",
    "marketplace",
    "marketplace_name",
    "marketplace_logo",
    "external_id",
    "title",
    "description",
    "brand",
    "model",
    "category",
    "image_url",
    "product_url",
    "price_minor",
    "currency",
    "price_usd_minor",
    "rating",
    "rating_count",
    "available",
    "gtin",
    "group_id",
    "group_size",
    "group_marketplaces",
    "group_available",
    "group_available_marketplaces",
    "group_min_price_usd_minor",
    "previous_price_minor",
    "price_dropped_at",
    "updated_at",
    "content_hash",
}
FX = {"EUR": Decimal("0.92"), "KES": Decimal("129.50"), "JPY": Decimal("151.37")}
MARKETPLACE = {"slug": "kiondo", "name": "Kiondo Market", "logo": "/static/logos/kiondo.svg"}


def offer_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "marketplace": "kiondo",
        "external_id": "1042",
        "title": "Sony WH-1000XM5 Wireless Headphones",
        "description": "Noise cancelling.",
        "price_minor": 4_599_900,
        "currency": "KES",
        "image_url": "http://127.0.0.1:8800/_sandbox/images/x.svg",
        "product_url": "http://127.0.0.1:8800/kiondo/p/1042",
        "category": "headphones",
        "brand": "Sony",
        "model": "WH-1000XM5",
        "gtin": "4548736132610",
        "mpn": None,
        "sku": "WH-1000XM5",
        "rating": Decimal("4.30"),
        "rating_count": 87,
        "available": True,
        "stock": 4,
        "content_hash": "c0ffee",
        "updated_at": datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
    }
    row.update(overrides)
    return row


def test_plain_ids_are_marketplace_and_external_id() -> None:
    assert document_id("shopwave", "8012345") == "shopwave--8012345"
    assert document_id("bazaar", "SKU_12-ab") == "bazaar--SKU_12-ab"


@pytest.mark.parametrize(
    "external_id", ["a/b", "a.b", "a b", "ü-1", "x:y@z", "100%", "'; DROP TABLE", "😀"]
)
def test_odd_characters_are_replaced_and_made_unique(external_id: str) -> None:
    identifier = document_id("bazaar", external_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", identifier)
    assert identifier.startswith("bazaar--")
    assert identifier == document_id("bazaar", external_id)  # stable across runs


def test_ids_that_collapse_to_the_same_replacement_stay_distinct() -> None:
    candidates = ["a/b", "a.b", "a b", "a_b"]
    assert len({document_id("bazaar", c) for c in candidates}) == len(candidates)


def test_very_long_external_ids_fit_meilisearch_limit() -> None:
    first = document_id("bazaar", "x" * 2000)
    second = document_id("bazaar", "x" * 1999 + "y")
    assert len(first.encode()) <= 511
    assert first != second


@pytest.mark.parametrize(
    ("minor", "currency", "exponent"),
    [
        (4_599_900, "KES", 2),
        (1, "EUR", 2),
        (999, "EUR", 2),
        (123_456_789, "EUR", 2),
        (15_000, "JPY", 0),
        (7, "JPY", 0),
    ],
)
def test_usd_conversion_matches_exact_rational_arithmetic(
    minor: int, currency: str, exponent: int
) -> None:
    cents = Fraction(minor, 10**exponent) / Fraction(FX[currency]) * 100
    expected = round(cents)  # Fraction rounds half to even, exactly
    converted = convert_to_usd_minor(minor, currency, FX)
    assert type(converted) is int
    assert converted == expected


def test_usd_conversion_rounds_exact_midpoints_half_even() -> None:
    # 0.80 EUR per USD: 2 euro cents are exactly 2.5 US cents, 6 are exactly 7.5.
    rates = {"EUR": Decimal("0.80")}
    assert convert_to_usd_minor(2, "EUR", rates) == 2
    assert convert_to_usd_minor(6, "EUR", rates) == 8


def test_usd_conversion_near_a_midpoint_is_not_fooled_by_a_rounded_reciprocal() -> None:
    # 3 yen at 600 yen per USD is exactly half a cent: rounds to even (0), not up.
    assert convert_to_usd_minor(3, "JPY", {"JPY": Decimal("600")}) == 0
    assert convert_to_usd_minor(9, "JPY", {"JPY": Decimal("600")}) == 2


def test_usd_prices_need_no_rate() -> None:
    assert convert_to_usd_minor(1999, "USD", {}) == 1999


def test_missing_or_float_rates_are_refused() -> None:
    with pytest.raises(DocumentError, match="no USD exchange rate for GBP"):
        convert_to_usd_minor(100, "GBP", FX)
    with pytest.raises(DocumentError, match="must be a Decimal"):
        convert_to_usd_minor(100, "EUR", {"EUR": 0.92})  # type: ignore[dict-item]
    with pytest.raises(DocumentError, match="positive"):
        convert_to_usd_minor(100, "EUR", {"EUR": Decimal(0)})
    with pytest.raises(DocumentError, match="unknown currency"):
        convert_to_usd_minor(100, "XXQ", FX)


def test_document_has_exactly_the_contract_fields_and_integer_money() -> None:
    document = build_document(
        offer_row(),
        marketplace=MARKETPLACE,
        group={
            "group_id": "g-0123456789abcdef",
            "group_size": 3,
            "group_marketplaces": 2,
            "group_min_price_usd_minor": 32_000,
        },
        fx_usd_rates=FX,
        history={
            "previous_price_minor": 4_899_900,
            "price_dropped_at": datetime(2026, 11, 19, tzinfo=UTC),
        },
    )
    assert set(document) == CONTRACT_FIELDS | {"doc_hash"}
    assert document["id"] == "kiondo--1042"
    assert document["marketplace_name"] == "Kiondo Market"
    assert document["marketplace_logo"] == "/static/logos/kiondo.svg"
    assert document["price_minor"] == 4_599_900
    assert document["price_usd_minor"] == round(Fraction(45_999) / Fraction("129.50") * 100)
    for money_field in (
        "price_minor",
        "price_usd_minor",
        "group_min_price_usd_minor",
        "previous_price_minor",
    ):
        assert type(document[money_field]) is int, money_field
    assert document["rating"] == 4.3
    assert document["group_id"] == "g-0123456789abcdef"
    assert (document["group_size"], document["group_marketplaces"]) == (3, 2)
    assert document["price_dropped_at"] == int(datetime(2026, 11, 19, tzinfo=UTC).timestamp())
    assert document["updated_at"] == int(datetime(2026, 11, 20, 12, tzinfo=UTC).timestamp())
    assert document["content_hash"] == "c0ffee"
    assert document["doc_hash"] == compute_document_hash(document)


def test_ungrouped_offer_stands_alone_at_its_own_price() -> None:
    document = build_document(
        offer_row(currency="USD", price_minor=2599, rating=None, updated_at=None),
        marketplace=MARKETPLACE,
        group=None,
        fx_usd_rates={},
        history=None,
    )
    assert document["group_id"] is None
    assert (document["group_size"], document["group_marketplaces"]) == (1, 1)
    assert document["group_min_price_usd_minor"] == 2599
    assert document["previous_price_minor"] is None
    assert document["price_dropped_at"] is None
    assert document["rating"] is None
    assert document["updated_at"] is None


def test_group_view_column_names_are_understood() -> None:
    document = build_document(
        offer_row(),
        marketplace={"slug": "kiondo", "name": "Kiondo", "logo_url": "/k.svg"},
        group={
            "group_id": "g-1",
            "offer_count": 4,
            "marketplace_count": 3,
            "min_price_usd_minor": 1,
        },
        fx_usd_rates=FX,
        history=None,
    )
    assert (document["group_size"], document["group_marketplaces"]) == (4, 3)
    assert document["group_min_price_usd_minor"] == 1
    assert document["marketplace_logo"] == "/k.svg"


def test_long_descriptions_are_cut_to_a_thousand_characters() -> None:
    document = build_document(
        offer_row(description="x" * 100_000),
        marketplace=MARKETPLACE,
        group=None,
        fx_usd_rates=FX,
        history=None,
    )
    assert len(document["description"]) == 1000


def test_float_prices_are_refused() -> None:
    with pytest.raises(DocumentError, match="price_minor must be an integer"):
        build_document(
            offer_row(price_minor=19.99),
            marketplace=MARKETPLACE,
            group=None,
            fx_usd_rates=FX,
            history=None,
        )


def test_doc_hash_follows_fx_and_group_changes_but_not_key_order() -> None:
    def build(fx: dict[str, Decimal], group_id: str) -> dict[str, Any]:
        return build_document(
            offer_row(),
            marketplace=MARKETPLACE,
            group={"group_id": group_id, "group_size": 2},
            fx_usd_rates=fx,
            history=None,
        )

    base = build(FX, "g-1")
    assert build(FX, "g-1")["doc_hash"] == base["doc_hash"]
    assert build({**FX, "KES": Decimal("130.10")}, "g-1")["doc_hash"] != base["doc_hash"]
    assert build(FX, "g-2")["doc_hash"] != base["doc_hash"]
    reordered = dict(reversed(list(base.items())))
    assert compute_document_hash(reordered) == base["doc_hash"]


@pytest.mark.parametrize(
    "units_per_usd", ["0.92", "0.80", "129.50", "0.78125", "3.6725", "1520.5", "0.30", "600"]
)
def test_usd_conversion_is_exact_for_many_amounts(units_per_usd: str) -> None:
    generator = random.Random(units_per_usd)
    rate = Decimal(units_per_usd)
    for _ in range(500):
        minor = generator.randrange(0, 10**9)
        for currency, exponent in (("EUR", 2), ("JPY", 0), ("KWD", 3)):
            expected = round(Fraction(minor, 10**exponent) / Fraction(rate) * 100)
            assert convert_to_usd_minor(minor, currency, {currency: rate}) == expected


def test_a_group_summary_counts_the_priced_offers_it_is_given_and_prefers_available_prices() -> (
    None
):
    from search_index.documents import GroupSummary, group_fields, summarize_groups

    summaries = summarize_groups(
        [
            ("g1", "shopwave", 500, False),  # the cheapest, but out of stock
            ("g1", "kiondo", 900, True),
            ("g1", "kiondo", 700, True),
            ("g1", "sokoni", None, True),  # no USD price: no document, not counted
            ("g2", "amazon", 300, False),  # none available: the cheapest of all
            ("g2", "amazon", 200, False),
            (None, "amazon", 100, True),  # ungrouped
        ]
    )
    assert summaries == {
        # Of them in stock: Kiondo's two offers (Sokoni's has no USD price).
        "g1": GroupSummary(
            size=3, marketplaces=2, min_price_usd_minor=700, available=2, available_marketplaces=1
        ),
        "g2": GroupSummary(
            size=2, marketplaces=1, min_price_usd_minor=200, available=0, available_marketplaces=0
        ),
    }
    assert group_fields(summaries["g1"].as_group("g1"), 900) == {
        "group_id": "g1",
        "group_size": 3,
        "group_marketplaces": 2,
        "group_available": 2,
        "group_available_marketplaces": 1,
        "group_min_price_usd_minor": 700,
    }
    assert group_fields(summaries["g2"].as_group("g2"), 300)["group_available"] == 0
    # A group none of whose offers counts (every seller disabled) reads as a group of one.
    assert group_fields({"group_id": "g3"}, 450) == {
        "group_id": "g3",
        "group_size": 1,
        "group_marketplaces": 1,
        "group_available": 1,
        "group_available_marketplaces": 1,
        "group_min_price_usd_minor": 450,
    }

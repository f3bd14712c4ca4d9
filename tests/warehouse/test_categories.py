"""Mapping marketplace category spellings to one canonical display name (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.base import Offer
from adapters.fields import category_leaf
from sandbox.assortment import CATEGORIES
from sandbox.assortment_schema import Category
from sandbox.fakestore import category_name as fakestore_category
from warehouse.categories import (
    CategoryMappingError,
    canonical_category,
    category_key,
    category_mapping,
    cleaned_category,
    parse_category_mapping,
)
from warehouse.offers import RawRecord, content_hash, normalize_catalog, payload_text

NOW = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def sandbox_spellings(category: Category) -> set[str]:
    """Every way a sandbox marketplace writes one category, as its adapter hands it over."""
    name, slug, path, google = category.name, category.slug, category.path, category.google_category
    raw_values: list[object] = [
        name,  # Shopify product_type, WooCommerce categories[0].name
        slug,  # DummyJSON category, WooCommerce slug
        fakestore_category(name),  # Fake Store: lower-case name
        path[-1],  # the bazaar JSON API's taxonomy.leaf
        " > ".join(path),  # Google feed product_type
        google,  # Google feed google_product_category when product_type is missing
        list(path),  # a taxonomy given as a list
    ]
    spellings = {leaf for value in raw_values if (leaf := category_leaf(value)) is not None}
    spellings |= {" > ".join(path), google}  # the mapping also accepts whole paths
    return spellings


@pytest.mark.parametrize("category", CATEGORIES, ids=lambda c: c.slug)
def test_every_sandbox_spelling_maps_to_one_canonical_name(category: Category) -> None:
    names = {canonical_category(spelling) for spelling in sandbox_spellings(category)}
    assert len(names) == 1, names
    (name,) = names
    assert name in set(category_mapping().values())


def test_sandbox_categories_stay_distinct() -> None:
    canonical = [canonical_category(category.name) for category in CATEGORIES]
    assert len(set(canonical)) == len(CATEGORIES)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Running Shoes", "Running Shoes"),
        ("running-shoes", "Running Shoes"),
        ("RUNNING_SHOES", "Running Shoes"),
        ("Sports > Footwear > Running Shoes", "Running Shoes"),
        ("beauty", "Beauty & Personal Care"),
        ("Beauty & Personal Care", "Beauty & Personal Care"),
        ("beauty-and-personal-care", "Beauty & Personal Care"),
        ("  Toys   and Games ", "Toys & Games"),
    ],
)
def test_known_spellings(raw: str, expected: str) -> None:
    assert canonical_category(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("garden tools", "Garden Tools"),
        ("garden-tools", "Garden Tools"),
        ("Garden_Tools", "Garden Tools"),
        ("iPad cases", "iPad Cases"),
        ("Home > TV stands", "TV Stands"),
        ("T-Shirts & Tops", "T-Shirts & Tops"),
    ],
)
def test_unknown_categories_keep_a_cleaned_title_cased_form(raw: str, expected: str) -> None:
    assert canonical_category(raw) == expected


def test_a_parent_segment_never_claims_an_unknown_leaf() -> None:
    # "Books" is known, but a path ending in an unknown leaf is that leaf, not its parent.
    assert canonical_category("Books > Audio Dramas") == "Audio Dramas"


@pytest.mark.parametrize("raw", [None, "", "   ", " > "])
def test_no_category_stays_none(raw: str | None) -> None:
    assert canonical_category(raw) is None


def test_keys_ignore_case_separators_and_ampersands() -> None:
    assert category_key("Beauty & Personal Care") == category_key("beauty-and-personal_care")
    assert category_key("Mugs/Flasks") == category_key("mugs flasks")
    assert cleaned_category("kitchen_scales") == "Kitchen Scales"


def test_a_spelling_claimed_by_two_categories_is_refused() -> None:
    with pytest.raises(CategoryMappingError, match="maps to both"):
        parse_category_mapping({"categories": {"Toys": ["games"], "Games": []}})


@pytest.mark.parametrize(
    "table",
    [
        {},
        {"categories": {"Toys": "toy"}},
        {"categories": {"Toys": [""]}},
        {"categories": {" ": []}},
    ],
)
def test_a_malformed_mapping_is_refused(table: dict[str, object]) -> None:
    with pytest.raises(CategoryMappingError):
        parse_category_mapping(table)


def test_an_explicit_mapping_overrides_the_checked_in_one() -> None:
    mapping = parse_category_mapping({"categories": {"Footwear": ["running shoes"]}})
    assert canonical_category("running-shoes", mapping) == "Footwear"


def test_normalize_catalog_keeps_the_raw_category_next_to_the_canonical_one() -> None:
    def normalize_record(record: dict[str, object]) -> Offer:
        return Offer(
            marketplace="shop",
            external_id=str(record["id"]),
            title="Trainer",
            price_minor=9900,
            currency="USD",
            category=record.get("category"),  # type: ignore[arg-type]
        )

    records = [
        {"id": 1, "category": "running-shoes"},
        {"id": 2, "category": "Running Shoes"},
        {"id": 3, "category": "garden-tools"},
        {"id": 4},
    ]
    raw = [
        RawRecord(page=1, record_index=i, payload=payload_text(r), fetched_at=NOW)
        for i, r in enumerate(records)
    ]
    catalog = normalize_catalog("shop", raw, normalize_record, {}, now=NOW, run_id="run-1")
    rows = catalog.products.select("external_id", "category", "category_raw").rows()
    assert rows == [
        ("1", "Running Shoes", "running-shoes"),
        ("2", "Running Shoes", "Running Shoes"),
        ("3", "Garden Tools", "garden-tools"),
        ("4", None, None),
    ]
    # The stored digest covers the canonical name: two spellings of one category hash alike.
    hashes = catalog.products.get_column("content_hash").to_list()
    assert hashes[0] == hashes[1]
    offer = normalize_record(records[0])
    assert content_hash(offer) == hashes[0]

"""Reading and writing the warehouse tables against a real DuckDB file."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

import warehouse
from adapters.base import BadPayload, CatalogPage, Offer
from warehouse.catalog import (
    load_raw_catalog,
    read_previous_offers,
    read_raw_records,
    recent_loads,
    replace_products,
    stage_raw_catalog,
)
from warehouse.derived import (
    append_price_changes,
    product_group_stats,
    read_latest_rates,
    read_offer_frame,
    read_offers_for_matching,
    replace_product_groups,
    store_fx_rates,
)
from warehouse.fx_rates import RateTable
from warehouse.matching import assign_groups
from warehouse.offers import normalize_catalog

# Recent, so the 7-day views see the changes made in these tests.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)


def normalize_shop(record: Mapping[str, Any]) -> Offer:
    """A made-up format: {"id", "title", "price", "gtin", "brand", "model", "in_stock"}."""
    if record.get("price") is None:
        raise BadPayload("missing_price", detail=str(record.get("id")), marketplace="x")
    return Offer(
        marketplace="x",
        external_id=str(record["id"]),
        title=record["title"],
        price_minor=int(record["price"]),
        currency=record.get("currency", "USD"),
        gtin=record.get("gtin"),
        brand=record.get("brand"),
        model=record.get("model"),
        available=record.get("in_stock", True),
    )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "pipeline.duckdb"


def load_catalog(db: Path, slug: str, records: list[dict[str, Any]], at: datetime) -> None:
    """What raw_catalog and normalized_products do for one marketplace, minus Dagster."""
    staging = db.parent / f"{slug}-{at.timestamp()}.parquet"
    pages = [CatalogPage(records=records[:2], page=1, fetched_at=at)]
    if records[2:]:
        pages.append(CatalogPage(records=records[2:], page=2, fetched_at=at))
    stats = stage_raw_catalog(pages, staging, marketplace=slug, run_id=f"run-{at.isoformat()}")
    assert stats.records == len(records)
    with warehouse.connect(db) as conn:
        load_raw_catalog(conn, slug, staging)
        raw = read_raw_records(conn, slug)
        previous = read_previous_offers(conn, slug)
    catalog = normalize_catalog(slug, raw, normalize_shop, previous, now=at, run_id="run")
    with warehouse.connect(db) as conn:
        replace_products(conn, slug, catalog, run_id="run", loaded_at=at)


def test_raw_records_are_replaced_per_marketplace_in_page_order(db: Path) -> None:
    load_catalog(db, "a", [{"id": i, "title": f"A{i}", "price": 100} for i in range(3)], T0)
    load_catalog(db, "b", [{"id": 1, "title": "B", "price": 100}], T0)
    load_catalog(db, "a", [{"id": 9, "title": "A9", "price": 100}], T0 + timedelta(hours=1))
    with warehouse.connect(db, read_only=True) as conn:
        a_raw = read_raw_records(conn, "a")
        b_raw = read_raw_records(conn, "b")
    assert [r.payload for r in a_raw] == ['{"id": 9, "title": "A9", "price": 100}']
    assert len(b_raw) == 1


def test_products_rejections_and_loads_are_written_together(db: Path) -> None:
    records = [
        {"id": 1, "title": "Mug", "price": 1000},
        {"id": 2, "title": "Kettle"},
        {"id": 1, "title": "Mug twice", "price": 1000},
    ]
    load_catalog(db, "a", records, T0)
    with warehouse.connect(db, read_only=True) as conn:
        products = conn.execute("SELECT external_id, price_minor FROM products").fetchall()
        rejected = conn.execute(
            "SELECT reason, external_id FROM rejected_products ORDER BY reason"
        ).fetchall()
        (load,) = recent_loads(conn, "a")
    assert products == [("1", 1000)]
    assert rejected == [("duplicate_external_id", "1"), ("missing_price", "2")]
    assert (load.raw_records, load.products, load.rejected, load.new_offers) == (3, 1, 2, 1)


def test_a_failed_write_leaves_the_previous_catalog(db: Path) -> None:
    load_catalog(db, "a", [{"id": 1, "title": "Mug", "price": 1000}], T0)
    with warehouse.connect(db) as conn:
        previous = read_previous_offers(conn, "a")
    catalog = normalize_catalog(
        "a",
        [],
        normalize_shop,
        previous,
        now=T0,
        run_id="broken",
    )
    # A frame that does not fit the table fails inside the transaction, after the DELETE.
    broken = dataclasses.replace(catalog, products=catalog.products.rename({"title": "headline"}))
    with warehouse.connect(db) as conn, pytest.raises(duckdb.Error, match="title"):
        replace_products(conn, "a", broken, run_id="x", loaded_at=T0)
    with warehouse.connect(db, read_only=True) as conn:
        assert conn.execute("SELECT external_id FROM products").fetchall() == [("1",)]


def test_price_history_appends_only_changes_and_feeds_the_offer_rows(db: Path) -> None:
    mug = {"id": 1, "title": "Mug", "price": 1000}
    kettle = {"id": 2, "title": "Kettle", "price": 3000}
    load_catalog(db, "a", [mug, kettle], T0)
    with warehouse.connect(db) as conn:
        assert append_price_changes(conn) == 2
        assert append_price_changes(conn) == 0

    later = T0 + timedelta(days=1)
    load_catalog(db, "a", [{**mug, "price": 800}, {**kettle, "in_stock": False}], later)
    with warehouse.connect(db) as conn:
        assert append_price_changes(conn) == 2
        # price_changes_7d shows the offers of live marketplaces (offers_usd.live).
        conn.execute(
            "INSERT INTO marketplaces (slug, name, kind, currency, country, match_identifier, "
            "updated_at) VALUES ('a', 'A', 'shopify', 'USD', 'US', 'gtin', ?)",
            [later],
        )
        warehouse.refresh_views(conn)
        offers = {row["external_id"]: row for row in read_offer_frame(conn).iter_rows(named=True)}
        drops = conn.execute(
            "SELECT external_id, old_price_minor, new_price_minor FROM price_changes_7d"
        ).fetchall()
    assert offers["1"]["previous_price_minor"] == 1000
    assert offers["1"]["price_dropped_at"] == later
    assert offers["2"]["previous_price_minor"] is None  # only availability changed
    assert drops == [("1", 1000, 800)]


def test_fx_rates_keep_one_row_per_currency_and_day(db: Path) -> None:
    day1 = RateTable(as_of=date(2026, 11, 23), rates={"USD": Decimal(1), "EUR": Decimal("0.9")})
    day2 = RateTable(as_of=date(2026, 11, 24), rates={"EUR": Decimal("0.86408019")})
    with warehouse.connect(db) as conn:
        store_fx_rates(conn, day1)
        store_fx_rates(conn, day1)
        store_fx_rates(conn, day2)
        (rows,) = conn.execute("SELECT count(*) FROM fx_rates").fetchone() or (0,)
        latest = read_latest_rates(conn)
    assert rows == 3
    assert latest is not None
    assert latest.rates == {"USD": Decimal(1), "EUR": Decimal("0.86408019")}
    assert latest.as_of == date(2026, 11, 24)


def test_product_groups_are_rebuilt_from_the_current_offers(db: Path) -> None:
    gtin = "4548736132610"
    load_catalog(db, "a", [{"id": 1, "title": "Sony WH-1000XM5", "price": 1, "gtin": gtin}], T0)
    load_catalog(
        db,
        "b",
        [
            {"id": 7, "title": "Sony WH1000XM5", "price": 2, "gtin": gtin},
            {"id": 8, "title": "Mug", "price": 2},
        ],
        T0,
    )
    with warehouse.connect(db) as conn:
        replace_product_groups(conn, assign_groups(read_offers_for_matching(conn)))
        replace_product_groups(conn, assign_groups(read_offers_for_matching(conn)))
        stats = product_group_stats(conn)
        offers = read_offer_frame(conn)
    assert (stats.groups, stats.offers, stats.multi_offer_groups) == (2, 3, 1)
    assert stats.groups_by_marketplace_count == {1: 1, 2: 1}
    assert stats.offers_by_method == {"gtin": 2, "single": 1}
    sizes = dict(offers.select("external_id", "group_size").iter_rows())
    assert sizes == {"1": 2, "7": 2, "8": 1}


def test_one_fetch_stamps_every_page_with_its_first_pages_time(db: Path) -> None:
    """The analysts' copy keeps fetched_at once per marketplace (warehouse/published_products.py):
    a fetch whose pages came over a minute gives every record and offer the first page's time."""
    records = [{"id": i, "title": f"A{i}", "price": 100} for i in range(4)]
    staging = db.parent / "slow.parquet"
    pages = [
        CatalogPage(records=records[:2], page=1, fetched_at=T0),
        CatalogPage(records=records[2:], page=2, fetched_at=T0 + timedelta(minutes=1)),
    ]
    stats = stage_raw_catalog(pages, staging, marketplace="a", run_id="run")
    assert {seen for _, _, seen in stats.page_hashes.values()} == {T0}
    with warehouse.connect(db) as conn:
        load_raw_catalog(conn, "a", staging)
        raw = read_raw_records(conn, "a")
    assert {record.fetched_at for record in raw} == {T0}

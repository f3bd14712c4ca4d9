"""A refresh that asks for each catalog page conditionally (If-None-Match, 304 Not Modified: the
ETags DummyJSON's Express server sends, and Bazaar's cursor pages) gives exactly the tables of a
full run, against the real sandbox over HTTP, through real Dagster materializations.

Two pipeline homes hold the same first ingest of DummyMart (DummyJSON, skip/limit pages) and
Bazaar (the declarative adapter, cursor pages). Then the sandbox changes the catalogs the way a
store does: prices move (price epochs) and records break and mend (another malformed rate: titles
with markup or broken bytes, missing and negative prices, repeated ids). One home refreshes with
conditional page requests, the other with `full_refresh`: products, rejected_products,
product_groups and price_history must be identical, every record must sit where a full fetch puts
it, and the pages nothing changed on must have been answered 304.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

import warehouse
from onecart.settings import Settings
from pipelines.run import IngestReport
from tests.pipelines.conftest import sandbox_credential_environment
from tests.pipelines.test_changed_since import set_knobs
from tests.pipelines.test_incremental import Home, paired_homes, positions

pytestmark = pytest.mark.timeout(1200)
PAGE_SIZE = 10
SLUGS = ("dummymart", "bazaar")
MARKETPLACES_TOML = f"""
[[marketplace]]
slug = "dummymart"
name = "DummyMart"
kind = "dummyjson"
base_url = "{{url}}/dummymart"
currency = "USD"
country = "US"
match_identifier = "gtin"
page_size = {PAGE_SIZE}

[[marketplace]]
slug = "bazaar"
name = "Euro Bazaar"
kind = "declarative"
base_url = "{{url}}/bazaar"
api_key_env = "ONECART_MARKETPLACE_KEY_BAZAAR"
currency = "EUR"
country = "FR"
match_identifier = "gtin"
page_size = {PAGE_SIZE}

[marketplace.options]
list_path = "api/v1/listings"
pagination = "cursor"
cursor_param = "cursor"
cursor_path = "next_cursor"
limit_param = "limit"
records_path = "data.items"
api_key_header = "X-Api-Key"
price_encoding = "amount_currency_text"

[marketplace.options.fields]
external_id = "sku"
title = "name"
description = "summary"
price = "pricing.display"
image_url = "media.thumb"
product_url = "url"
category = "taxonomy.leaf"
brand = "maker.name"
model = "maker.model"
gtin = "ean"
rating = "score"
rating_count = "votes"
available = "in_stock"
stock = "stock_level"
"""


def page_validators(home: Home) -> dict[str, dict[int, str]]:
    """The ETag held for each page, by marketplace."""
    held: dict[str, dict[int, str]] = {slug: {} for slug in SLUGS}
    with warehouse.connect(home.warehouse_path, read_only=True) as conn:
        for slug, page, etag in conn.execute(
            "SELECT marketplace, page, etag FROM page_validators"
        ).fetchall():
            held[slug][page] = etag
    return held


def not_modified(report: IngestReport) -> dict[str, int]:
    return {slug: report.partitions[slug].pages_not_modified for slug in SLUGS}


@pytest.fixture(scope="module")
def homes(settings: Settings, sandbox_server: str, meili_server: str) -> Iterator[list[Home]]:
    yield paired_homes(
        settings,
        "page-validators",
        MARKETPLACES_TOML.format(url=sandbox_server),
        sandbox_credential_environment(),
    )


def test_a_refresh_by_conditional_pages_gives_the_tables_of_a_full_run(
    homes: list[Home], sandbox_control: httpx.Client
) -> None:
    incremental, full = homes
    set_knobs(sandbox_control, {slug: {"price_epoch": 0, "malformed_rate": 0.02} for slug in SLUGS})
    first = incremental.ingest(full_refresh=False)
    assert first.success, first.failed_partitions
    assert not_modified(first) == {slug: 0 for slug in SLUGS}
    pages = {slug: first.partitions[slug].pages for slug in SLUGS}
    held = page_validators(incremental)
    for slug in SLUGS:
        assert sorted(held[slug]) == list(range(1, pages[slug] + 1)), slug
        assert all(held[slug].values())
    full.start_from(incremental)

    # Nothing changed: every page is answered 304.
    reports = {}
    for home in homes:
        home.second_run_at = datetime.now(UTC)
        reports[home.name] = home.ingest(full_refresh=home is full)
        assert reports[home.name].success, reports[home.name].failed_partitions
    assert not_modified(reports["incremental"]) == pages
    assert incremental.tables() == full.tables()
    assert positions(incremental) == positions(full)
    assert page_validators(incremental) == held

    # Prices move (3 epochs: ~3% of offers) and records break and mend (5%).
    set_knobs(sandbox_control, {slug: {"price_epoch": 3, "malformed_rate": 0.05} for slug in SLUGS})
    for home in homes:
        home.second_run_at = datetime.now(UTC)
        reports[home.name] = home.ingest(full_refresh=home is full)
        assert reports[home.name].success, reports[home.name].failed_partitions
    got, expected = incremental.tables(), full.tables()
    for table in expected:
        assert got[table] == expected[table], table
    assert positions(incremental) == positions(full)
    # Some pages changed and some did not: those were answered 304 (the full refresh asks
    # unconditionally), and the validators held are the full run's for every page.
    refreshed = page_validators(incremental)
    assert refreshed == page_validators(full)
    for slug in SLUGS:
        changed = {page for page in held[slug] if refreshed[slug][page] != held[slug][page]}
        assert 0 < len(changed) < pages[slug], slug
        assert not_modified(reports["incremental"])[slug] == pages[slug] - len(changed)
    assert not_modified(reports["full"]) == {slug: 0 for slug in SLUGS}


def test_a_marketplace_down_during_a_conditional_refresh_keeps_its_catalog_and_validators(
    homes: list[Home], sandbox_control: httpx.Client
) -> None:
    """DummyMart fails during a refresh: its partition fails alone and keeps its catalog and
    page validators, while Bazaar refreshes. The next refresh asks conditionally again and
    matches a full run."""
    incremental, full = homes
    if not incremental.runs:  # run alone: a first ingest to refresh
        assert incremental.ingest(full_refresh=False).success
        full.start_from(incremental)
    split = incremental.second_run_at
    before, held = incremental.tables(), page_validators(incremental)
    set_knobs(
        sandbox_control,
        {"dummymart": {"down": True, "price_epoch": 5}, "bazaar": {"price_epoch": 5}},
    )
    for home in homes:
        home.second_run_at = datetime.now(UTC)
        assert home.ingest(full_refresh=home is full).failed_partitions == ["dummymart"]
    incremental.second_run_at = split
    after = incremental.tables()
    for table in ("products", "rejected_products"):  # DummyMart's: the last good fetch's
        kept = [row for row in after[table] if row[0] == "dummymart"]
        assert kept and kept == [row for row in before[table] if row[0] == "dummymart"]
    assert page_validators(incremental)["dummymart"] == held["dummymart"]
    set_knobs(sandbox_control, {"dummymart": {"down": False}})
    reports = {}
    for home in homes:
        home.second_run_at = datetime.now(UTC)
        reports[home.name] = home.ingest(full_refresh=home is full)
        assert reports[home.name].success
    assert incremental.tables() == full.tables()
    assert positions(incremental) == positions(full)
    assert page_validators(incremental) == page_validators(full)
    assert not_modified(reports["incremental"])["dummymart"] > 0

"""A refresh that asks for each catalog page conditionally (DummyJSON's ETags: If-None-Match, 304
Not Modified) gives exactly the tables of a full run, against the real sandbox over HTTP, through
real Dagster materializations.

Two pipeline homes hold the same first ingest of DummyMart (DummyJSON). Then the sandbox changes
the catalog the way a store does: prices move (price epochs) and records break and mend (another
malformed rate: titles with markup or broken bytes, missing and negative prices, repeated ids).
One home refreshes with conditional page requests, the other with `full_refresh`: products,
rejected_products, product_groups and price_history must be identical, every record must sit where
a full fetch puts it, and the pages nothing changed on must have been answered 304.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

import warehouse
from onecart.settings import Settings
from tests.pipelines.conftest import SANDBOX_CREDENTIALS
from tests.pipelines.test_changed_since import set_knobs
from tests.pipelines.test_incremental import Home, positions

pytestmark = pytest.mark.timeout(1200)
PAGE_SIZE = 10
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
"""


def page_validators(home: Home) -> dict[int, str]:
    """The ETag held for each page."""
    with warehouse.connect(home.warehouse_path, read_only=True) as conn:
        return dict(
            conn.execute(
                "SELECT page, etag FROM page_validators WHERE marketplace = 'dummymart'"
            ).fetchall()
        )


@pytest.fixture(scope="module")
def homes(settings: Settings, sandbox_server: str, meili_server: str) -> Iterator[list[Home]]:
    run = uuid.uuid4().hex[:8]
    base = settings.home_dir / f"page-validators-{run}"
    base.mkdir(parents=True)
    toml = base / "marketplaces.toml"
    toml.write_text(MARKETPLACES_TOML.format(url=sandbox_server))
    credentials = {
        name: os.environ.get(name) or value for name, value in SANDBOX_CREDENTIALS.items()
    }
    yield [
        Home(
            name,
            {
                "ONECART_HOME": str(base / name),
                "ONECART_MARKETPLACES": str(toml),
                "MEILI_INDEX": f"page_validators_{name}_{run}",
                "ONECART_ASSISTANT_EMBEDDINGS": "off",
                "ONECART_PIPELINE_WORKERS": "1",
                **credentials,
            },
        )
        for name in ("incremental", "full")
    ]


def test_a_refresh_by_conditional_pages_gives_the_tables_of_a_full_run(
    homes: list[Home], sandbox_control: httpx.Client
) -> None:
    incremental, full = homes
    set_knobs(sandbox_control, {"dummymart": {"price_epoch": 0, "malformed_rate": 0.02}})
    first = incremental.ingest(full_refresh=False)
    assert first.success, first.failed_partitions
    assert first.partitions["dummymart"].pages_not_modified == 0
    pages = first.partitions["dummymart"].pages
    held = page_validators(incremental)
    assert sorted(held) == list(range(1, pages + 1))
    assert all(etag for etag in held.values())
    full.start_from(incremental)

    # Nothing changed: every page is answered 304.
    reports = {}
    for home in homes:
        home.second_run_at = datetime.now(UTC)
        reports[home.name] = home.ingest(full_refresh=home is full)
        assert reports[home.name].success, reports[home.name].failed_partitions
    assert reports["incremental"].partitions["dummymart"].pages_not_modified == pages
    assert incremental.tables() == full.tables()
    assert positions(incremental) == positions(full)
    assert page_validators(incremental) == held

    # Prices move (3 epochs: ~3% of offers) and records break and mend (5%).
    set_knobs(sandbox_control, {"dummymart": {"price_epoch": 3, "malformed_rate": 0.05}})
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
    changed = {page for page in held if refreshed[page] != held[page]}
    assert 0 < len(changed) < pages
    assert reports["incremental"].partitions["dummymart"].pages_not_modified == pages - len(changed)
    assert reports["full"].partitions["dummymart"].pages_not_modified == 0


def test_a_marketplace_down_during_a_conditional_refresh_keeps_its_catalog_and_validators(
    homes: list[Home], sandbox_control: httpx.Client
) -> None:
    """DummyMart fails during a refresh: its partition fails and keeps its catalog and page
    validators. The next refresh asks conditionally again and matches a full run."""
    incremental, full = homes
    if not incremental.runs:  # run alone: a first ingest to refresh
        assert incremental.ingest(full_refresh=False).success
        full.start_from(incremental)
    split = incremental.second_run_at
    before, held = incremental.tables(), page_validators(incremental)
    set_knobs(sandbox_control, {"dummymart": {"down": True, "price_epoch": 5}})
    for home in homes:
        home.second_run_at = datetime.now(UTC)
        assert home.ingest(full_refresh=home is full).failed_partitions == ["dummymart"]
    incremental.second_run_at = split
    assert incremental.tables() == before
    assert page_validators(incremental) == held
    set_knobs(sandbox_control, {"dummymart": {"down": False}})
    for home in homes:
        home.second_run_at = datetime.now(UTC)
        report = home.ingest(full_refresh=home is full)
        assert report.success
    assert incremental.tables() == full.tables()
    assert positions(incremental) == positions(full)
    assert page_validators(incremental) == page_validators(full)

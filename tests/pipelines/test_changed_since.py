"""A refresh that fetches only what changed (Shopify's `updated_at_min`, WooCommerce's `after` with
`date_column=modified_gmt`, and an id-only listing for removals) gives exactly the tables of a
full run, against the real sandbox over HTTP, through real Dagster materializations.

Two pipeline homes hold the same first ingest of ShopWave (Shopify) and Kiondo (WooCommerce).
Then the sandbox changes the catalogs the way a store does: prices move (price epochs), records
break and mend (another malformed rate: titles with markup or broken bytes, missing and negative
prices, repeated ids), products are taken off the catalog and others come back (new offers). One
home refreshes with changed-since fetches, the other with `full_refresh`; products,
rejected_products, product_groups and price_history must be identical, and every record must sit
where a full fetch puts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

import warehouse
from onecart.settings import Settings
from tests.conftest import serve_sandbox
from tests.pipelines.conftest import sandbox_credential_environment
from tests.pipelines.test_incremental import Home, paired_homes, positions

pytestmark = pytest.mark.timeout(1200)
SLUGS = ("shopwave", "kiondo")
MARKETPLACES_TOML = """
[[marketplace]]
slug = "shopwave"
name = "ShopWave"
kind = "shopify"
base_url = "{url}/shopwave"
api_key_env = "ONECART_MARKETPLACE_KEY_SHOPWAVE"
currency = "USD"
country = "US"
match_identifier = "gtin"
page_size = 30

[[marketplace]]
slug = "kiondo"
name = "Kiondo Market"
kind = "woocommerce"
base_url = "{url}/kiondo"
api_key_env = "ONECART_MARKETPLACE_KEY_KIONDO"
currency = "KES"
country = "KE"
match_identifier = "sku"
page_size = 20
"""


def listed_ids(http: httpx.Client, slug: str) -> list[str]:
    """Every product id of the marketplace's catalog as listed now, in order."""
    if slug == "shopwave":
        response = http.get(
            "/shopwave/admin/api/2024-10/products.json",
            params={"limit": 250, "fields": "id"},
            headers={"X-Shopify-Access-Token": "shpat_test"},
        )
        assert "next" not in response.links
        return [str(p["id"]) for p in response.json()["products"]]
    ids: list[str] = []
    page = 1
    while True:
        response = http.get(
            "/kiondo/wp-json/wc/store/v1/products",
            params={"per_page": 100, "_fields": "id", "page": page},
        )
        ids.extend(str(p["id"]) for p in response.json())
        if page >= int(response.headers["X-WP-TotalPages"]):
            return ids
        page += 1


def set_knobs(http: httpx.Client, knobs: dict[str, dict[str, object]]) -> None:
    for slug, values in knobs.items():
        http.post(f"/_sandbox/knobs/{slug}", json=values).raise_for_status()


def watermarks(home: Home) -> dict[str, tuple[datetime, datetime]]:
    """(last fetch's start, last full fetch's start) per marketplace."""
    with warehouse.connect(home.warehouse_path, read_only=True) as conn:
        rows = conn.execute(
            "SELECT marketplace, fetch_started_at, full_fetch_started_at FROM catalog_watermarks"
        ).fetchall()
    return {slug: (started, full) for slug, started, full in rows}


@pytest.fixture(scope="module")
def sandbox_server(settings: Settings) -> Iterator[str]:
    """This module's own sandbox. A changed-since refresh asks for the changes since ten minutes
    before its last fetch began (WATERMARK_OVERLAP), and a catalog state the shared sandbox
    serves for the first time re-dates every record it touches: other modules' tests within that
    window (tests/adapters/test_against_sandbox.py moves ShopWave's prices) would rightly make
    the refresh here fetch in full."""
    with serve_sandbox(settings, "sandbox-changed-since") as url:
        yield url


@pytest.fixture(scope="module")
def homes(settings: Settings, sandbox_server: str, meili_server: str) -> Iterator[list[Home]]:
    yield paired_homes(
        settings,
        "changed-since",
        MARKETPLACES_TOML.format(url=sandbox_server),
        sandbox_credential_environment(),
    )


def test_a_changed_since_refresh_gives_the_tables_of_a_full_run(
    homes: list[Home], sandbox_control: httpx.Client
) -> None:
    incremental, full = homes
    ids = {slug: listed_ids(sandbox_control, slug) for slug in SLUGS}
    # Two products of each are off the catalog at first, and come back later: new offers.
    set_knobs(
        sandbox_control,
        {slug: {"unlisted_products": ids[slug][5:7], "price_epoch": 0} for slug in SLUGS},
    )
    first = incremental.ingest(full_refresh=False)
    assert first.success, first.failed_partitions
    full.start_from(incremental)
    first_marks = watermarks(incremental)
    assert set(first_marks) == set(SLUGS)
    assert all(started == full_start for started, full_start in first_marks.values())

    # Prices move (3 epochs: ~3% of offers), records break and mend, 3 products go (one of
    # them the first: every later record moves), the two unlisted ones come back.
    set_knobs(
        sandbox_control,
        {
            slug: {
                "price_epoch": 3,
                "malformed_rate": 0.05,
                "unlisted_products": [ids[slug][0], ids[slug][40], ids[slug][41]],
            }
            for slug in SLUGS
        },
    )
    for home in homes:
        home.second_run_at = datetime.now(UTC)
        second = home.ingest(full_refresh=home is full)
        assert second.success, second.failed_partitions
    got, expected = incremental.tables(), full.tables()
    for table in expected:
        assert got[table] == expected[table], table
    assert positions(incremental) == positions(full)
    # The incremental home fetched changes since its first fetch, and did not fetch in full.
    marks = watermarks(incremental)
    for slug in SLUGS:
        started, full_start = marks[slug]
        assert full_start == first_marks[slug][1] and started > full_start, slug
    full_marks = watermarks(full)
    assert all(started == full_start for started, full_start in full_marks.values())
    # The sandbox's catalog now: the returned products are there, the removed ones are not.
    now = {slug: listed_ids(sandbox_control, slug) for slug in SLUGS}
    with warehouse.connect(incremental.warehouse_path, read_only=True) as conn:
        for slug in SLUGS:
            held = [
                record_id
                for (record_id,) in conn.execute(
                    "SELECT json_extract_string(payload, '$.id') FROM raw_catalog "
                    "WHERE marketplace = ? ORDER BY page, record_index",
                    [slug],
                ).fetchall()
            ]
            assert held == now[slug]
            assert set(ids[slug][5:7]) <= set(held)
            assert not {ids[slug][0], ids[slug][40]} & set(held)


def test_a_marketplace_failing_during_a_changed_since_fetch_fails_alone_then_fetches_in_full(
    homes: list[Home], sandbox_control: httpx.Client
) -> None:
    """Kiondo is down for the refresh: its partition fails, keeps its catalog and forgets its
    watermark; ShopWave refreshes by changes. The next refresh fetches Kiondo in full."""
    incremental, full = homes
    if not incremental.runs:  # run alone: a first ingest to refresh
        assert incremental.ingest(full_refresh=False).success
        full.start_from(incremental)
    split = incremental.second_run_at
    before = incremental.tables()
    set_knobs(sandbox_control, {"kiondo": {"down": True}, "shopwave": {"price_epoch": 5}})
    for home in homes:  # both, so that both hold the same history
        home.second_run_at = datetime.now(UTC)
        assert home.ingest(full_refresh=home is full).failed_partitions == ["kiondo"]
    assert "kiondo" not in watermarks(incremental)
    started, full_start = watermarks(incremental)["shopwave"]
    assert started > full_start  # ShopWave was refreshed by changes meanwhile
    incremental.second_run_at = split
    after = incremental.tables()
    for table in ("products", "rejected_products"):  # Kiondo's: the last good fetch's
        kept = [row for row in after[table] if row[0] == "kiondo"]
        assert kept and kept == [row for row in before[table] if row[0] == "kiondo"]
    set_knobs(sandbox_control, {"kiondo": {"down": False, "price_epoch": 5}})
    for home in homes:
        home.second_run_at = datetime.now(UTC)
        assert home.ingest(full_refresh=home is full).success
    assert incremental.tables() == full.tables()
    assert positions(incremental) == positions(full)
    started, full_start = watermarks(incremental)["kiondo"]
    assert started == full_start  # fetched in full after the failure

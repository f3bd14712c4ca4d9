"""A refresh that does not parse the feed items it has seen (source digests, raw_sources) gives
exactly the tables of a full run, against the real sandbox's NaijaMall Google feed over HTTP,
through real Dagster materializations.

Two pipeline homes hold the same first ingest. Then the sandbox changes the feed the way a store
does: prices move (price epochs) and items break and mend (another malformed rate: titles with
markup or broken bytes, missing and negative prices, repeated ids). One home refreshes, parsing
only the items whose text it has not seen, the other with `full_refresh`: products,
rejected_products, product_groups and price_history must be identical, every record must sit
where a full fetch puts it, and raw_sources must be the full run's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

import warehouse
from onecart.settings import Settings
from tests.pipelines.conftest import sandbox_credential_environment
from tests.pipelines.test_changed_since import set_knobs
from tests.pipelines.test_incremental import Home, paired_homes, positions

pytestmark = pytest.mark.timeout(1200)
SLUG = "naijamall"
MARKETPLACES_TOML = """
[[marketplace]]
slug = "naijamall"
name = "NaijaMall"
kind = "google_feed"
base_url = "{url}/naijamall"
currency = "NGN"
country = "NG"
match_identifier = "gtin"
page_size = 25

[marketplace.options]
feed_path = "feed.xml"
"""


def raw_sources(home: Home) -> list[tuple[str, str]]:
    with warehouse.connect(home.warehouse_path, read_only=True) as conn:
        return conn.execute(
            "SELECT source_digest, payload_hash FROM raw_sources WHERE marketplace = ? "
            "ORDER BY source_digest",
            [SLUG],
        ).fetchall()


def held_hashes(home: Home) -> set[str]:
    with warehouse.connect(home.warehouse_path, read_only=True) as conn:
        rows = conn.execute(
            "SELECT payload_hash FROM raw_catalog WHERE marketplace = ?", [SLUG]
        ).fetchall()
    return {digest for (digest,) in rows}


@pytest.fixture(scope="module")
def homes(settings: Settings, sandbox_server: str, meili_server: str) -> Iterator[list[Home]]:
    yield paired_homes(
        settings,
        "feed-sources",
        MARKETPLACES_TOML.format(url=sandbox_server),
        sandbox_credential_environment(),
    )


def test_a_refresh_parsing_only_unseen_feed_items_gives_the_tables_of_a_full_run(
    homes: list[Home], sandbox_control: httpx.Client
) -> None:
    incremental, full = homes
    set_knobs(sandbox_control, {SLUG: {"price_epoch": 0, "malformed_rate": 0.02}})
    first = incremental.ingest(full_refresh=False)
    assert first.success, first.failed_partitions
    assert first.partitions[SLUG].records_unparsed == 0
    records = first.partitions[SLUG].fetched
    # A first fetch takes every item's source digest, for the next refresh.
    sources = raw_sources(incremental)
    assert len(sources) > 0.9 * records
    assert {digest for _, digest in sources} <= held_hashes(incremental)
    full.start_from(incremental)

    # Prices move (3 epochs: ~3% of offers) and items break and mend (5%).
    set_knobs(sandbox_control, {SLUG: {"price_epoch": 3, "malformed_rate": 0.05}})
    reports = {}
    for home in homes:
        home.second_run_at = datetime.now(UTC)
        reports[home.name] = home.ingest(full_refresh=home is full)
        assert reports[home.name].success, reports[home.name].failed_partitions
    got, expected = incremental.tables(), full.tables()
    for table in expected:
        assert got[table] == expected[table], table
    assert positions(incremental) == positions(full)
    # Most items were seen before and not parsed; those that changed were. A full refresh
    # parses every item but takes the digests all the same.
    unparsed = reports["incremental"].partitions[SLUG].records_unparsed
    assert 0.5 * records < unparsed < records
    assert reports["full"].partitions[SLUG].records_unparsed == 0
    assert raw_sources(incremental) == raw_sources(full)

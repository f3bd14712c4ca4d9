"""Offers in a currency the exchange rates lack: the pipeline accepts any ISO-4217 currency
(`currency_is_iso` passes), but an offer without a USD rate cannot become a search document
("no USD exchange rate"), and the analysts' views give it no `price`, no `price_usd`, and leave
it out of `cheapest_offer_per_group`. Nothing said so: every check was green and the ingest
printed nothing. `fx_rates` now checks that its rates cover every offer's currency."""

from __future__ import annotations

import os
from collections.abc import Iterator

import dagster as dg
import pytest

from onecart.settings import Settings, get_settings
from pipelines.run import materialize_all
from tests.pipelines.conftest import clear_settings_caches
from tests.pipelines.test_incremental import (
    MARKETPLACE_TOML,
    CatalogServer,
    catalog,
    paired_homes,
)


@pytest.fixture(scope="module")
def server() -> Iterator[CatalogServer]:
    catalog_server = CatalogServer()
    kwacha = catalog("Z", 40, shared_from=100)
    # Zambia's kwacha: ISO-4217 (two decimals), accepted, and not among the bundled rates.
    for record in kwacha[:5]:
        record["price"] = record["price"].replace("EUR", "ZMW")
    catalog_server.catalogs["lusaka"] = kwacha
    catalog_server.catalogs["paris"] = catalog("P", 40, shared_from=100)
    catalog_server.thread.start()
    yield catalog_server
    catalog_server.server.shutdown()


def test_offers_in_a_currency_without_a_rate_fail_the_fx_rates_check(
    settings: Settings, server: CatalogServer, meili_server: str
) -> None:
    (home, _) = paired_homes(
        settings,
        "fx-coverage",
        "".join(
            MARKETPLACE_TOML.format(slug=slug, url=server.url, page_size=20)
            for slug in ("lusaka", "paris")
        ),
    )
    saved = {name: os.environ.get(name) for name in [*home.env, "DAGSTER_HOME"]}
    os.environ.update(home.env)
    os.environ.pop("DAGSTER_HOME", None)
    clear_settings_caches()
    lines: list[str] = []
    instance = dg.DagsterInstance.ephemeral()
    try:
        assert get_settings().home_dir.name == "incremental"
        report = materialize_all(
            instance=instance,
            progress=lines.append,
            downstream_assets=("fx_rates",),
            embeddings=False,
        )
    finally:
        instance.dispose()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        clear_settings_caches()
    assert not report.failed_partitions, lines
    assert report.partitions["lusaka"].normalized == 38, lines  # a "free" price, a repeated id
    (warning,) = [line for line in lines if "rates_cover_offer_currencies" in line]
    assert "ERROR" in warning, warning
    assert "missing_rates=['ZMW']" in warning, warning
    assert "offers_without_rate={'lusaka': 5}" in warning, warning

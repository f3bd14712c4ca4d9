"""The analysts' copy says which offers shoppers can buy, as search does, and prices every offer
in its own currency (data QA pass 4's leftovers), through real Dagster runs of the pipeline
against the sandbox, DuckDB and Meilisearch.

Before, a marketplace set `active = false` in marketplaces.toml kept its offers in the views
with nothing to tell them apart (search leaves them out), and `offers_usd.price` came from the
FX rate's row."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from onecart.settings import Settings, get_settings
from pipelines.run import materialize_all
from tests.pipelines.conftest import clear_settings_caches

FETCHED = ["kiondo", "fakestore"]


def _deactivated(source: Path, target: Path, slug: str) -> Path:
    """marketplaces.toml with `active = false` added to one marketplace's table."""
    text = source.read_text(encoding="utf-8")
    marker = f'[[marketplace]]\nslug = "{slug}"\n'
    assert marker in text
    target.write_text(text.replace(marker, f"{marker}active = false\n"), encoding="utf-8")
    return target


@pytest.fixture(scope="module")
def fakestore_deactivated(
    pipeline_settings: Settings, instance: dg.DagsterInstance, meili: object
) -> Iterator[Settings]:
    """Kiondo and Fake Store ingested; then Fake Store set `active = false` and Kiondo
    refreshed (its downstream run publishes the copy)."""
    report = materialize_all(
        instance=instance, progress=lambda _line: None, marketplaces=FETCHED, embeddings=False
    )
    assert not report.failed_partitions
    saved = os.environ.get("ONECART_MARKETPLACES")
    os.environ["ONECART_MARKETPLACES"] = str(
        _deactivated(
            pipeline_settings.marketplaces_file,
            pipeline_settings.home_dir / "marketplaces.toml",
            "fakestore",
        )
    )
    clear_settings_caches()
    try:
        report = materialize_all(
            instance=instance,
            progress=lambda _line: None,
            marketplaces=["kiondo"],
            full_refresh=True,
            embeddings=False,
        )
        assert not report.failed_partitions
        yield get_settings()
    finally:
        if saved is None:
            os.environ.pop("ONECART_MARKETPLACES", None)
        else:
            os.environ["ONECART_MARKETPLACES"] = saved
        clear_settings_caches()


def _copy(settings: Settings) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(settings.warehouse_path), read_only=True)


def test_the_copy_marks_an_inactive_marketplace_s_offers_not_live(
    fakestore_deactivated: Settings,
) -> None:
    with _copy(fakestore_deactivated) as copy:
        live = dict(
            copy.execute(
                "SELECT marketplace, list_distinct(list(live)) FROM offers_usd "
                "WHERE marketplace IN ('kiondo', 'fakestore') GROUP BY ALL"
            ).fetchall()
        )
        active = dict(
            copy.execute(
                "SELECT slug, active FROM marketplaces WHERE slug IN ('kiondo', 'fakestore')"
            ).fetchall()
        )
        (cheapest_of_fakestore,) = copy.execute(
            "SELECT count(*) FROM cheapest_offer_per_group WHERE marketplace = 'fakestore'"
        ).fetchone()
    # Its offers stay for analysts, told apart; the cheapest offer is never one of them.
    assert live == {"kiondo": [True], "fakestore": [False]}
    assert active == {"kiondo": True, "fakestore": False}
    assert cheapest_of_fakestore == 0


def test_the_copy_holds_every_iso_currency_s_minor_unit(fakestore_deactivated: Settings) -> None:
    with _copy(fakestore_deactivated) as copy:
        (currencies,) = copy.execute("SELECT count(*) FROM currencies").fetchone()
        (missing_price,) = copy.execute(
            "SELECT count(*) FROM offers_usd WHERE price IS NULL"
        ).fetchone()
        (kes,) = copy.execute("SELECT minor_unit FROM currencies WHERE currency = 'KES'").fetchone()
    assert currencies > 150 and kes == 2
    assert missing_price == 0


def test_the_summary_views_count_only_what_shoppers_can_buy(
    fakestore_deactivated: Settings,
) -> None:
    """`category_price_stats`, `marketplace_coverage` and `product_group_summary` counted the
    offers of an inactive marketplace beside the live ones (data QA leftovers): a category's
    offers and prices, a marketplace's shared groups and a group's size and cheapest price
    included offers no shopper can find. Each now counts live offers (`offers_usd.live`), and the
    coverage and group summary say how many held offers they leave out (`not_live_offers`)."""
    with _copy(fakestore_deactivated) as copy:
        (fakestore_offers,) = copy.execute(
            "SELECT count(*) FROM products WHERE marketplace = 'fakestore'"
        ).fetchone()
        categories = copy.execute(
            "SELECT category, offers, marketplaces, min_usd, max_usd FROM category_price_stats "
            "ORDER BY category"
        ).fetchall()
        live_categories = copy.execute(
            "SELECT coalesce(category, '(none)') AS category, count(*), "
            "count(DISTINCT marketplace), min(price_usd), max(price_usd) FROM offers_usd "
            "WHERE live GROUP BY ALL ORDER BY category"
        ).fetchall()
        coverage = {
            row[0]: row[1:]
            for row in copy.execute(
                "SELECT marketplace, live, offers, available_offers, groups, shared_groups, "
                "not_live_offers FROM marketplace_coverage "
                "WHERE marketplace IN ('kiondo', 'fakestore')"
            ).fetchall()
        }
        (kiondo_live, kiondo_available, kiondo_groups) = copy.execute(
            "SELECT count(*), count(*) FILTER (WHERE available), count(DISTINCT group_id) "
            "FROM offers_usd WHERE marketplace = 'kiondo'"
        ).fetchone()
        (shared_with_fakestore, fakestore_offers_shared) = copy.execute(
            "SELECT count(DISTINCT group_id), count(*) FROM product_groups "
            "WHERE marketplace = 'fakestore' AND group_id IN "
            "(SELECT group_id FROM product_groups WHERE marketplace = 'kiondo')"
        ).fetchone()
        groups = copy.execute(
            "SELECT group_id, offers, marketplaces, min_price_usd, not_live_offers "
            "FROM product_group_summary ORDER BY group_id"
        ).fetchall()
        live_groups = copy.execute(
            "SELECT group_id, count(*) FILTER (WHERE live), "
            "count(DISTINCT marketplace) FILTER (WHERE live), "
            "min(price_usd) FILTER (WHERE live), count(*) FILTER (WHERE NOT live) "
            "FROM offers_usd WHERE group_id IS NOT NULL GROUP BY group_id "
            "HAVING bool_or(live) ORDER BY group_id"
        ).fetchall()
    assert fakestore_offers > 0
    assert categories == live_categories
    assert sum(row[1] for row in categories) == kiondo_live
    # The sandbox's stores share products: the two shared groups before Fake Store went off.
    assert shared_with_fakestore > 0
    assert coverage["fakestore"] == (False, 0, 0, 0, 0, fakestore_offers)
    assert coverage["kiondo"] == (True, kiondo_live, kiondo_available, kiondo_groups, 0, 0)
    assert groups == live_groups
    assert sum(row[4] for row in groups) == fakestore_offers_shared

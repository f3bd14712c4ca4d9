"""The per-marketplace asset checks against a real DuckDB warehouse: what each one finds in the
marketplace's whole catalog, from the facts they now read once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

import warehouse
from pipelines.checks import CATALOG_CHECKS, evaluate_catalog_checks

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def add_offer(
    conn: duckdb.DuckDBPyConnection, marketplace: str, external_id: str, price: int, currency: str
) -> None:
    conn.execute(
        "INSERT INTO products (marketplace, external_id, title, description, price_minor, "
        "currency, available, content_hash, first_seen_at, updated_at, fetched_at) "
        "VALUES (?, ?, 'A kettle', '', ?, ?, true, 'h', ?, ?, ?)",
        [marketplace, external_id, price, currency, T0, T0, T0],
    )


def add_load(
    conn: duckdb.DuckDBPyConnection,
    marketplace: str,
    at: datetime,
    products: int,
    gtin_claimed: int,
    gtin_invalid: int,
    rejected: int = 0,
) -> None:
    conn.execute(
        "INSERT INTO catalog_loads (marketplace, run_id, loaded_at, raw_records, products, "
        "rejected, gtin_claimed, gtin_invalid, new_offers, changed_offers, removed_offers, "
        "content_fingerprint) VALUES (?, 'run', ?, ?, ?, ?, ?, ?, 0, 0, 0, 'f')",
        [marketplace, at, products + rejected, products, rejected, gtin_claimed, gtin_invalid],
    )


def add_rejection(conn: duckdb.DuckDBPyConnection, marketplace: str, reason: str) -> None:
    conn.execute(
        "INSERT INTO rejected_products (marketplace, external_id, reason, detail, payload, "
        "rejected_at, run_id) VALUES (?, NULL, ?, 'why', '{}', ?, 'r')",
        [marketplace, reason, T0],
    )


@pytest.fixture
def conn(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    with warehouse.connect(tmp_path / "pipeline.duckdb") as connection:
        yield connection


def results(conn: duckdb.DuckDBPyConnection, slug: str) -> dict[str, dg.AssetCheckResult]:
    return {result.check_name: result for result in evaluate_catalog_checks(conn, slug)}


def meta(result: dg.AssetCheckResult, key: str) -> object:
    value = result.metadata[key]
    return getattr(value, "value", value)


def test_each_check_finds_what_is_wrong_with_its_marketplace_only(
    conn: duckdb.DuckDBPyConnection,
) -> None:
    add_offer(conn, "x", "1", 1999, "USD")
    add_offer(conn, "x", "2", 0, "USD")
    add_offer(conn, "x", "3", -5, "XXZ")
    add_offer(conn, "x", "4", 500, "EUR")
    conn.execute(
        "INSERT INTO rejected_products (marketplace, external_id, reason, detail, payload, "
        "rejected_at, run_id) VALUES ('x', '1', 'duplicate_external_id', 'again', '{}', ?, 'r')",
        [T0],
    )
    add_load(conn, "x", T0, products=100, gtin_claimed=10, gtin_invalid=1)
    add_load(conn, "x", T0 + timedelta(hours=1), products=4, gtin_claimed=10, gtin_invalid=5)
    # Another marketplace, clean: the checks of x must not see its rows, nor x's its own.
    add_offer(conn, "y", "1", 100, "KES")
    add_load(conn, "y", T0, products=1, gtin_claimed=0, gtin_invalid=0)

    x = results(conn, "x")
    assert set(x) == set(CATALOG_CHECKS)
    assert not x["price_is_positive"].passed
    assert meta(x["price_is_positive"], "non_positive_prices") == 2
    assert meta(x["price_is_positive"], "offers") == 4
    assert not x["currency_is_iso"].passed
    assert meta(x["currency_is_iso"], "currencies") == ["EUR", "USD", "XXZ"]
    assert meta(x["currency_is_iso"], "unknown") == ["XXZ"]
    assert x["offer_keys_are_unique"].passed
    assert meta(x["offer_keys_are_unique"], "quarantined_duplicates") == 1
    assert not x["gtin_checksum_share"].passed  # the latest load: 5 of 10
    assert meta(x["gtin_checksum_share"], "invalid_share") == 0.5
    assert not x["row_count_drift"].passed  # 100 -> 4
    assert meta(x["row_count_drift"], "previous_products") == 100

    y = results(conn, "y")
    assert all(result.passed for result in y.values())
    assert meta(y["currency_is_iso"], "currencies") == ["KES"]
    assert meta(y["row_count_drift"], "note") == "first load, nothing to compare"


def test_a_marketplace_without_offers_has_nothing_to_fail(conn: duckdb.DuckDBPyConnection) -> None:
    checks = results(conn, "empty")
    assert all(result.passed for result in checks.values())
    assert meta(checks["price_is_positive"], "offers") == 0
    assert meta(checks["currency_is_iso"], "currencies") == []


def test_only_the_selected_checks_are_evaluated(conn: duckdb.DuckDBPyConnection) -> None:
    add_offer(conn, "x", "1", 0, "USD")
    chosen = evaluate_catalog_checks(conn, "x", {"price_is_positive"})
    assert [result.check_name for result in chosen] == ["price_is_positive"]
    assert not chosen[0].passed
    assert evaluate_catalog_checks(conn, "x", set()) == []


def test_a_feed_whose_records_are_largely_quarantined_warns_with_its_reasons(
    conn: duckdb.DuckDBPyConnection,
) -> None:
    # A third of a feed malformed (the sandbox's malformed_rate 0.5) was quarantined with its
    # reasons, yet every check passed: the offers dropped by a third, under the drift threshold.
    for _ in range(40):
        add_rejection(conn, "x", "missing_price")
    for _ in range(27):
        add_rejection(conn, "x", "unknown_currency")
    add_load(conn, "x", T0, products=198, gtin_claimed=0, gtin_invalid=0, rejected=2)
    add_load(
        conn,
        "x",
        T0 + timedelta(hours=1),
        products=133,
        gtin_claimed=0,
        gtin_invalid=0,
        rejected=67,
    )
    add_rejection(conn, "y", "missing_price")
    add_load(conn, "y", T0, products=197, gtin_claimed=0, gtin_invalid=0, rejected=3)

    x = results(conn, "x")
    assert x["row_count_drift"].passed  # 198 -> 133: not what drift looks for
    check = x["rejected_share"]
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert meta(check, "rejected") == 67
    assert meta(check, "raw_records") == 200
    assert meta(check, "rejected_share") == 0.335
    assert meta(check, "reasons") == {"missing_price": 40, "unknown_currency": 27}
    assert results(conn, "y")["rejected_share"].passed  # 3 of 200: the usual few

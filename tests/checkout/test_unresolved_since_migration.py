"""Migration 0024_unresolved_since adds `marketplace_orders.unresolved_since` and the card holds'
`stripe_failed_since` and `flagged_at`, NULL on the rows before it (the long-unresolved flag
then counts from the checkout), and goes down again keeping every row; so does
0025_cancel_sweep_claims with `marketplace_orders.cancel_claimed_at`. On SQLite, and on
PostgreSQL when DATABASE_URL points at one."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from commerce.db import create_storefront_engine
from storefront.db_migrate import alembic_config
from tests.checkout.test_offer_stock_migration import _insert

BEFORE = "0023_provider_call_attempts"
AFTER = "0024_unresolved_since"
CLAIMS = "0025_cancel_sweep_claims"
ADDED = {
    "marketplace_orders": {"unresolved_since"},
    "card_holds_in_doubt": {"stripe_failed_since", "flagged_at"},
}


def _columns(url: str) -> dict[str, set[str]]:
    engine = create_storefront_engine(url)
    try:
        inspector = sa.inspect(engine)
        return {table: {c["name"] for c in inspector.get_columns(table)} for table in ADDED}
    finally:
        engine.dispose()


def _rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = create_storefront_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: [
                    tuple(row) for row in connection.execute(sa.text(f"SELECT id FROM {table}"))
                ]
                for table in ADDED
            }
    finally:
        engine.dispose()


def _check(url: str) -> None:
    command.upgrade(alembic_config(url), BEFORE)
    engine = create_storefront_engine(url)
    try:
        with engine.begin() as connection:
            user = _insert(connection, "users", username="u1", email="u1@example.com")
            market = _insert(
                connection,
                "marketplaces",
                slug="dummymart",
                name="DummyMart",
                kind="dummyjson",
                currency="USD",
                capabilities=["catalog", "order"],
                active=True,
            )
            order = _insert(
                connection,
                "orders",
                user_id=user,
                status="processing",
                payment_method="wallet",
                total_minor=100,
                currency="USD",
            )
            _insert(
                connection,
                "marketplace_orders",
                order_id=order,
                marketplace_id=market,
                status="reconciling",
                amount_minor=100,
                currency="USD",
                charge_minor=100,
                charge_currency="USD",
            )
            _insert(
                connection,
                "card_holds_in_doubt",
                user_id=user,
                idempotency_key="k1",
                amount_minor=100,
                currency="USD",
            )
    finally:
        engine.dispose()
    before = _rows(url)
    assert all(not (_columns(url)[table] & added) for table, added in ADDED.items())

    command.upgrade(alembic_config(url), AFTER)
    assert all(added <= _columns(url)[table] for table, added in ADDED.items())
    assert _rows(url) == before
    engine = create_storefront_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(
                sa.text("SELECT unresolved_since FROM marketplace_orders")
            ).all() == [(None,)]
            assert connection.execute(
                sa.text("SELECT stripe_failed_since, flagged_at FROM card_holds_in_doubt")
            ).all() == [(None, None)]
    finally:
        engine.dispose()

    command.downgrade(alembic_config(url), BEFORE)
    assert all(not (_columns(url)[table] & added) for table, added in ADDED.items())
    assert _rows(url) == before
    command.upgrade(alembic_config(url), AFTER)
    assert _rows(url) == before


def _check_claims(url: str) -> None:
    _check(url)
    before = _rows(url)
    command.upgrade(alembic_config(url), CLAIMS)
    engine = create_storefront_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.execute(
                sa.text("SELECT cancel_claimed_at FROM marketplace_orders")
            ).all() == [(None,)]
    finally:
        engine.dispose()
    command.downgrade(alembic_config(url), AFTER)
    assert "cancel_claimed_at" not in _columns(url)["marketplace_orders"]
    assert _rows(url) == before
    command.upgrade(alembic_config(url), CLAIMS)
    assert _rows(url) == before


def test_0024_and_0025_add_their_columns_and_go_down_keeping_rows_on_sqlite(
    tmp_path: Path,
) -> None:
    _check_claims(f"sqlite:///{tmp_path / 'unresolved.db'}")


def test_0024_and_0025_add_their_columns_and_go_down_keeping_rows_on_postgresql(
    postgres_url: str,
) -> None:
    _check_claims(postgres_url)

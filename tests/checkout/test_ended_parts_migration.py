"""Migration 0026_ended_unresolved_since clears `unresolved_since` on parts that ended
(neither placing nor reconciling) and keeps it on the ones still unresolved; down changes no row,
and up again is the same. On SQLite, and on PostgreSQL when DATABASE_URL points at one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from commerce.db import create_storefront_engine
from storefront.db_migrate import alembic_config
from tests.checkout.test_offer_stock_migration import _insert

BEFORE = "0025_cancel_sweep_claims"
AFTER = "0026_ended_unresolved_since"
SINCE = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
STATUSES = ("placing", "reconciling", "placed", "failed", "cancelled", "needs_attention")


def _unresolved(url: str) -> dict[str, bool]:
    """Each part's status → whether it still has an `unresolved_since`."""
    engine = create_storefront_engine(url)
    try:
        with engine.connect() as connection:
            return {
                status: since is not None
                for status, since in connection.execute(
                    sa.text("SELECT status, unresolved_since FROM marketplace_orders")
                )
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
            for status in STATUSES:
                # One part per order (an order has one part per marketplace).
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
                    status=status,
                    amount_minor=100,
                    currency="USD",
                    charge_minor=100,
                    charge_currency="USD",
                    unresolved_since=SINCE,
                )
    finally:
        engine.dispose()
    assert all(_unresolved(url).values())

    command.upgrade(alembic_config(url), AFTER)
    cleared = {"placing": True, "reconciling": True} | {status: False for status in STATUSES[2:]}
    assert _unresolved(url) == cleared

    command.downgrade(alembic_config(url), BEFORE)
    assert _unresolved(url) == cleared
    command.upgrade(alembic_config(url), AFTER)
    assert _unresolved(url) == cleared


def test_0026_clears_ended_parts_and_goes_down_and_up_on_sqlite(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path / 'ended.db'}")


def test_0026_clears_ended_parts_and_goes_down_and_up_on_postgresql(postgres_url: str) -> None:
    _check(postgres_url)

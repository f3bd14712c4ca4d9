"""Upgrading a SQLite storefront that holds orders keeps every row.

Alembic alters a SQLite table by copying it into a new one and dropping the old. With foreign keys
on (commerce.db turns them on for every connection), SQLite's DROP TABLE deletes the old table's
rows first and runs the ON DELETE actions of the tables that point at it, so recreating `orders`
or `marketplace_orders` used to cascade away every sub-order, item, refund and event. The
migrations now run with foreign keys off and check them before committing."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from commerce.db import create_storefront_engine
from storefront.db_migrate import alembic_config, upgrade_database
from tests.checkout.test_offer_stock_migration import _insert

# Before the revisions that recreate `orders` (0016) and `marketplace_orders` (0017).
START = "0015_sub_order_poll_backoff"
TABLES = ("users", "cart_items", "orders", "marketplace_orders", "order_items", "order_events")


def _counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table: int(connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() or 0)
            for table in TABLES
        }


def test_upgrading_a_sqlite_storefront_with_orders_keeps_every_row(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    command.upgrade(alembic_config(url), START)
    engine = create_storefront_engine(url)
    try:
        with engine.begin() as connection:
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
            product = _insert(
                connection,
                "products",
                marketplace_id=market,
                external_id="1",
                title="Mug",
                price_minor=100,
                currency="USD",
                available=True,
            )
            user = _insert(connection, "users", username="ada", email="ada@example.com")
            _insert(
                connection,
                "cart_items",
                user_id=user,
                product_id=product,
                quantity=1,
                price_seen_minor=100,
                currency_seen="USD",
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
            sub_order = _insert(
                connection,
                "marketplace_orders",
                order_id=order,
                marketplace_id=market,
                status="placed",
                amount_minor=100,
                currency="USD",
                charge_minor=100,
                charge_currency="USD",
            )
            _insert(
                connection,
                "order_items",
                order_id=order,
                sub_order_id=sub_order,
                product_id=product,
                quantity=2,
                unit_price_minor=100,
                currency="USD",
                charge_minor=100,
            )
            _insert(
                connection, "order_events", order_id=order, sub_order_id=sub_order, step="placed"
            )
        before = _counts(engine)

        upgrade_database(url)

        assert _counts(engine) == before == dict.fromkeys(TABLES, 1)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    finally:
        engine.dispose()

"""Migration 0019_offer_stock_holds counts the orders made before it: every live sub-order at a
marketplace whose orders take no stock holds its items' units; Shopify's, finished ones and
hand-offs hold none. 0021_order_item_held_units gives each line of a held sub-order its whole
quantity as held, and both go down again keeping every order row. On SQLite, and on PostgreSQL
when DATABASE_URL points at one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command

from commerce.db import create_storefront_engine
from storefront.db_migrate import alembic_config

BEFORE = "0018_pending_email_change"
AFTER = "0019_offer_stock_holds"
LINES_HELD = "0021_order_item_held_units"


def _filler(column: sa.Column[Any]) -> object:
    """A value for a NOT NULL column the test does not care about (unique where it may be)."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, (sa.Integer, sa.Numeric)):
        return 0
    if isinstance(kind, sa.DateTime):
        return datetime.now(UTC)
    if isinstance(kind, sa.Date):
        return datetime.now(UTC).date()
    if isinstance(kind, sa.JSON):
        return []
    length = getattr(kind, "length", None) or 32
    return uuid.uuid4().hex[: min(length, 32)]


def _insert(connection: sa.Connection, table_name: str, **values: object) -> int:
    table = sa.Table(table_name, sa.MetaData(), autoload_with=connection)
    for column in table.columns:
        needed = not column.nullable and column.server_default is None
        if needed and column.name not in values and not column.primary_key:
            values[column.name] = _filler(column)
    return connection.execute(table.insert().values(**values)).inserted_primary_key[0]


def _check_backfill(url: str, target: str = AFTER) -> None:
    command.upgrade(alembic_config(url), BEFORE)
    engine = create_storefront_engine(url)
    try:
        with engine.begin() as connection:
            markets = {
                slug: _insert(
                    connection,
                    "marketplaces",
                    slug=slug,
                    name=slug,
                    kind=kind,
                    currency="USD",
                    capabilities=["catalog", "order"],
                    active=True,
                )
                for slug, kind in (("dummymart", "dummyjson"), ("shopwave", "shopify"))
            }
            products = {
                name: _insert(
                    connection,
                    "products",
                    marketplace_id=markets[slug],
                    external_id=name,
                    title=name,
                    price_minor=100,
                    currency="USD",
                    available=True,
                    stock=10,
                )
                for name, slug in (("dm1", "dummymart"), ("dm2", "dummymart"), ("sw", "shopwave"))
            }
            user = _insert(connection, "users", username="ada", email="ada@example.com")

            def sub_order(slug: str, status: str, lines: dict[str, int]) -> None:
                order = _insert(
                    connection,
                    "orders",
                    user_id=user,
                    status="processing",
                    payment_method="wallet",
                    total_minor=100,
                    currency="USD",
                )
                sub = _insert(
                    connection,
                    "marketplace_orders",
                    order_id=order,
                    marketplace_id=markets[slug],
                    status=status,
                    amount_minor=100,
                    currency="USD",
                    charge_minor=100,
                    charge_currency="USD",
                )
                for name, quantity in lines.items():
                    _insert(
                        connection,
                        "order_items",
                        order_id=order,
                        sub_order_id=sub,
                        product_id=products[name],
                        quantity=quantity,
                        unit_price_minor=100,
                        currency="USD",
                        charge_minor=100,
                    )

            sub_order("dummymart", "placed", {"dm1": 2, "dm2": 1})
            sub_order("dummymart", "pending", {"dm1": 3})
            sub_order("dummymart", "delivered", {"dm2": 4})
            sub_order("dummymart", "cancelled", {"dm1": 5})
            sub_order("dummymart", "failed", {"dm2": 6})
            sub_order("shopwave", "placed", {"sw": 7})

        command.upgrade(alembic_config(url), target)

        with engine.connect() as connection:
            held = dict(
                connection.execute(
                    sa.text("SELECT product_id, held_units FROM offer_stock_holds")
                ).all()
            )
            flags = {
                (slug, status): bool(flag)
                for slug, status, flag in connection.execute(
                    sa.text(
                        "SELECT m.slug, o.status, o.stock_held FROM marketplace_orders o "
                        "JOIN marketplaces m ON m.id = o.marketplace_id"
                    )
                )
            }
    finally:
        engine.dispose()
    assert held == {products["dm1"]: 5, products["dm2"]: 5}
    assert flags == {
        ("dummymart", "placed"): True,
        ("dummymart", "pending"): True,
        ("dummymart", "delivered"): True,
        ("dummymart", "cancelled"): False,
        ("dummymart", "failed"): False,
        ("shopwave", "placed"): False,  # Shopify's orders take its own stock
    }


def _item_holds(url: str) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """(marketplace slug, sub-order status) → its lines' (quantity, held units)."""
    engine = create_storefront_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT m.slug, o.status, i.quantity, i.held_units FROM order_items i "
                    "JOIN marketplace_orders o ON o.id = i.sub_order_id "
                    "JOIN marketplaces m ON m.id = o.marketplace_id ORDER BY i.id"
                )
            ).all()
    finally:
        engine.dispose()
    lines: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for slug, status, quantity, held in rows:
        lines.setdefault((slug, status), []).append((quantity, held))
    return lines


def _count_rows(url: str) -> dict[str, int]:
    engine = create_storefront_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("orders", "marketplace_orders", "order_items")
            }
    finally:
        engine.dispose()


def _check_lines_held_and_downgrade(url: str) -> None:
    _check_backfill(url, LINES_HELD)
    assert _item_holds(url) == {
        ("dummymart", "placed"): [(2, 2), (1, 1)],
        ("dummymart", "pending"): [(3, 3)],
        ("dummymart", "delivered"): [(4, 4)],
        ("dummymart", "cancelled"): [(5, 0)],
        ("dummymart", "failed"): [(6, 0)],
        ("shopwave", "placed"): [(7, 0)],
    }
    rows = _count_rows(url)
    assert rows == {"orders": 6, "marketplace_orders": 6, "order_items": 7}
    command.downgrade(alembic_config(url), AFTER)
    assert _count_rows(url) == rows
    command.downgrade(alembic_config(url), BEFORE)
    assert _count_rows(url) == rows
    command.upgrade(alembic_config(url), LINES_HELD)
    assert _count_rows(url) == rows


def test_the_orders_before_the_migration_are_counted_on_sqlite(tmp_path: Path) -> None:
    _check_backfill(f"sqlite:///{tmp_path / 'holds.db'}")


def test_the_orders_before_the_migration_are_counted_on_postgresql(postgres_url: str) -> None:
    _check_backfill(postgres_url)


def test_lines_hold_their_units_and_both_revisions_go_down_keeping_rows_on_sqlite(
    tmp_path: Path,
) -> None:
    _check_lines_held_and_downgrade(f"sqlite:///{tmp_path / 'lines.db'}")


def test_lines_hold_their_units_and_both_revisions_go_down_keeping_rows_on_postgresql(
    postgres_url: str,
) -> None:
    _check_lines_held_and_downgrade(postgres_url)

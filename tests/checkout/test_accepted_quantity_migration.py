"""Migration 0029_accepted_quantity adds `order_items.accepted_quantity`: the lines made before it
have none (read as their whole quantity), a line can then record the units accepted, and down
drops the column keeping every order row; up again works. On SQLite, and on PostgreSQL when
DATABASE_URL points at one."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from commerce.db import create_storefront_engine
from storefront.db_migrate import alembic_config
from tests.checkout.test_offer_stock_migration import _count_rows, _insert

BEFORE = "0028_refusal_told_by_name"
AFTER = "0029_accepted_quantity"


def _columns(url: str) -> set[str]:
    engine = create_storefront_engine(url)
    try:
        with engine.connect() as connection:
            return {column["name"] for column in sa.inspect(connection).get_columns("order_items")}
    finally:
        engine.dispose()


def _one_order_line(url: str) -> int:
    """An order with one line of 3 units placed before the revision; the line's id."""
    engine = create_storefront_engine(url)
    try:
        with engine.begin() as connection:
            market = _insert(
                connection,
                "marketplaces",
                slug="kiondo",
                name="Kiondo Market",
                kind="woocommerce",
                currency="KES",
                capabilities=["catalog", "order"],
                active=True,
            )
            product = _insert(
                connection,
                "products",
                marketplace_id=market,
                external_id="k1",
                title="Kikoi",
                price_minor=100,
                currency="KES",
                available=True,
                stock=10,
            )
            user = _insert(connection, "users", username="ada", email="ada@example.com")
            order = _insert(
                connection,
                "orders",
                user_id=user,
                status="processing",
                payment_method="wallet",
                total_minor=300,
                currency="KES",
            )
            sub = _insert(
                connection,
                "marketplace_orders",
                order_id=order,
                marketplace_id=market,
                status="placed",
                amount_minor=300,
                currency="KES",
                charge_minor=300,
                charge_currency="KES",
            )
            return _insert(
                connection,
                "order_items",
                order_id=order,
                sub_order_id=sub,
                product_id=product,
                quantity=3,
                unit_price_minor=100,
                currency="KES",
                charge_minor=300,
            )
    finally:
        engine.dispose()


def _accepted(url: str, item_id: int, record: int | None = None) -> int | None:
    """The line's accepted units, after recording `record` when given."""
    engine = create_storefront_engine(url)
    try:
        with engine.begin() as connection:
            if record is not None:
                connection.execute(
                    sa.text("UPDATE order_items SET accepted_quantity = :units WHERE id = :id"),
                    {"units": record, "id": item_id},
                )
            return connection.execute(
                sa.text("SELECT accepted_quantity FROM order_items WHERE id = :id"),
                {"id": item_id},
            ).scalar_one()
    finally:
        engine.dispose()


def _check(url: str) -> None:
    command.upgrade(alembic_config(url), BEFORE)
    assert "accepted_quantity" not in _columns(url)
    item_id = _one_order_line(url)
    rows = _count_rows(url)

    command.upgrade(alembic_config(url), AFTER)
    assert "accepted_quantity" in _columns(url)
    assert _accepted(url, item_id) is None  # not known before the revision: the whole quantity
    assert _accepted(url, item_id, record=1) == 1
    assert _count_rows(url) == rows

    command.downgrade(alembic_config(url), BEFORE)
    assert "accepted_quantity" not in _columns(url)
    assert _count_rows(url) == rows
    command.upgrade(alembic_config(url), AFTER)
    assert _accepted(url, item_id) is None
    assert _count_rows(url) == rows


def test_lines_gain_accepted_quantity_and_lose_it_keeping_rows_on_sqlite(tmp_path: Path) -> None:
    _check(f"sqlite:///{tmp_path / 'accepted.db'}")


def test_lines_gain_accepted_quantity_and_lose_it_keeping_rows_on_postgresql(
    postgres_url: str,
) -> None:
    _check(postgres_url)

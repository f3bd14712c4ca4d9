"""The orders migration: exactly one Alembic head, and the schema it builds matches the models on
SQLite and on PostgreSQL (when DATABASE_URL points at one)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import commerce.order_models  # noqa: F401 - registers the order tables on Base.metadata
import storefront  # noqa: F401 - every other area's models, so only real differences show
from commerce.db import create_storefront_engine
from commerce.models import Base
from storefront.db_migrate import alembic_config, upgrade_database

ORDER_TABLES = {
    "orders",
    "marketplace_orders",
    "order_items",
    "payments",
    "refunds",
    "notifications",
    "outbox_messages",
    "checkout_locks",
    "processed_webhook_events",
    "card_holds_in_doubt",
    "payment_disputes",
    "unowned_card_holds",
}


def _order_table_differences(url: str) -> list[object]:
    engine = create_storefront_engine(url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    return [diff for diff in differences if any(name in repr(diff) for name in ORDER_TABLES)]


def test_there_is_exactly_one_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, heads


def test_migrations_build_the_order_tables_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'orders.db'}"
    upgrade_database(url)
    engine = create_storefront_engine(url)
    try:
        assert set(sa.inspect(engine).get_table_names()) >= ORDER_TABLES
    finally:
        engine.dispose()
    assert _order_table_differences(url) == []


def test_migrations_build_the_order_tables_on_postgresql(postgres_url: str) -> None:
    upgrade_database(postgres_url)
    assert _order_table_differences(postgres_url) == []

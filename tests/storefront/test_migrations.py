"""Migrations build the schema the models describe, on an empty SQLite file and on PostgreSQL."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from commerce.db import create_storefront_engine
from commerce.models import Base, import_all_models
from storefront.db_migrate import (
    alembic_config,
    current_revision,
    prepare_database,
    upgrade_database,
)

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def setup_module() -> None:
    """Every table-declaring module, so the comparison covers later issues' tables too."""
    import_all_models()


def _differences(url: str) -> list[object]:
    engine = create_storefront_engine(url)
    try:
        with engine.connect() as connection:
            return compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()


def _table_names(url: str) -> set[str]:
    engine = create_storefront_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_on_empty_sqlite_file_matches_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nested' / 'empty.db'}"
    assert current_revision(url) is None

    upgrade_database(url)

    assert current_revision(url) == _head()
    assert _differences(url) == []
    assert {t.name for t in Base.metadata.sorted_tables} <= _table_names(url)


def test_upgrade_twice_is_a_no_op(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'twice.db'}"
    upgrade_database(url)
    upgrade_database(url)
    assert current_revision(url) == _head()


def test_prepare_database_seeds_every_configured_marketplace_once(tmp_path: Path) -> None:
    from adapters.registry import load_marketplaces
    from commerce.models import Marketplace

    url = f"sqlite:///{tmp_path / 'seeded.db'}"
    prepare_database(url)
    prepare_database(url)

    engine = create_storefront_engine(url)
    try:
        with engine.connect() as connection:
            slugs = connection.scalars(sa.select(Marketplace.slug)).all()
    finally:
        engine.dispose()
    assert sorted(slugs) == sorted(config.slug for config in load_marketplaces())


def test_sqlite_connections_enforce_foreign_keys_and_use_wal(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pragmas.db'}"
    upgrade_database(url)
    engine = create_storefront_engine(url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            with pytest.raises(sa.exc.IntegrityError):
                connection.execute(
                    sa.text(
                        "INSERT INTO cart_items (user_id, product_id, quantity, price_seen_minor,"
                        " currency_seen, added_at) VALUES (999, 999, 1, 100, 'USD', '2026-01-01')"
                    )
                )
    finally:
        engine.dispose()


@pytest.fixture
def postgres_schema_url() -> str:
    """A fresh, empty schema in the CI PostgreSQL database; dropped afterwards."""
    admin = sa.create_engine(POSTGRES_URL)
    schema = f"mig_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at 127.0.0.1:5432: {exc.orig}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_upgrade_on_empty_postgresql_schema_matches_models(postgres_schema_url: str) -> None:
    assert current_revision(postgres_schema_url) is None

    upgrade_database(postgres_schema_url)

    assert current_revision(postgres_schema_url) == _head()
    assert _differences(postgres_schema_url) == []
    assert {t.name for t in Base.metadata.sorted_tables} <= _table_names(postgres_schema_url)


def test_plain_postgresql_url_is_given_the_psycopg3_driver() -> None:
    from commerce.db import normalize_database_url

    assert normalize_database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_database_url("sqlite:///x.db") == "sqlite:///x.db"

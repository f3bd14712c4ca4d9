"""Alembic environment for the storefront DB.

The URL comes from the Alembic config (`sqlalchemy.url`, set by storefront.db_migrate) or else
from settings.storefront_database_url. SQLite uses batch mode so later revisions can alter tables.
"""

from __future__ import annotations

from alembic import context

from commerce.db import create_storefront_engine, resolve_database_url
from commerce.models import Base, UTCDateTime, import_all_models

import_all_models()
config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return resolve_database_url(config.get_main_option("sqlalchemy.url") or None)


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of connecting (`alembic upgrade --sql`)."""
    url = _url()
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Connect and migrate; reuses a connection handed in through `config.attributes`."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = create_storefront_engine(_url())
    try:
        with engine.connect() as connection:
            _migrate(connection)
    finally:
        engine.dispose()


def render_item(type_: str, obj: object, autogen_context: object) -> str | bool:
    """Render model-only column types as plain SQLAlchemy types, so revisions never import models."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _migrate(connection) -> None:  # type: ignore[no-untyped-def]
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=sqlite,
        compare_type=True,
        render_item=render_item,
    )
    if not sqlite:
        with context.begin_transaction():
            context.run_migrations()
        return
    # Batch mode alters a SQLite table by copying it and dropping the old one; with foreign keys
    # on, that DROP deletes the old rows first and runs the ON DELETE actions of every table
    # pointing at it (recreating `orders` cascaded away all sub-orders and items). So foreign
    # keys are off while migrating (SQLite's own ALTER TABLE procedure) and checked before the
    # commit: a migration that breaks one fails and is rolled back.
    driver = connection.connection.driver_connection
    foreign_keys_were_on = driver.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    if driver.in_transaction:
        raise RuntimeError(
            "SQLite migrations must start outside a transaction (PRAGMA foreign_keys)"
        )
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        with context.begin_transaction():
            context.run_migrations()
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"the migration breaks foreign keys: {broken[:5]}")
    finally:
        if foreign_keys_were_on:
            driver.execute("PRAGMA foreign_keys=ON")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()

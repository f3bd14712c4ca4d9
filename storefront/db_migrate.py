"""Bring the storefront database to the newest Alembic revision.

Run by `onecart up` and by the tests before any server starts; the application itself never
creates tables (the site's worker processes would race).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from commerce.db import resolve_database_url

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "commerce" / "migrations"


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config for the storefront DB at `url` (default: the settings' URL), no .ini file."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' must be doubled for ConfigParser interpolation (URL-encoded options contain it).
    config.set_main_option("sqlalchemy.url", resolve_database_url(url).replace("%", "%%"))
    return config


def upgrade_database(url: str | None = None) -> None:
    """Apply every pending migration to the storefront DB (creating the SQLite file if needed)."""
    command.upgrade(alembic_config(url), "head")


def current_revision(url: str | None = None) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    from commerce.db import create_storefront_engine

    engine = create_storefront_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def prepare_database(url: str | None = None) -> None:
    """Migrate, then create or refresh the marketplaces from marketplaces.toml, so the stores
    page and the admin area are right before the pipeline's first run (admin edits are kept)."""
    from adapters.registry import load_marketplaces
    from commerce.catalog_sync import seed_marketplaces
    from commerce.db import get_session_factory

    upgrade_database(url)
    session = get_session_factory(url)()
    try:
        seed_marketplaces(session, load_marketplaces())
        session.commit()
    finally:
        session.close()

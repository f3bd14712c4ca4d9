"""The storefront database: one engine per URL and a session factory, shared by the Flask site,
the RQ jobs and the pipeline's storefront sync (plain SQLAlchemy 2, no Flask-SQLAlchemy).

SQLite (the default, a file under ONECART_HOME) gets foreign keys ON, WAL journaling and a busy
timeout on every connection, so the site, the workers and the sync can share one file. A savepoint
(`session.begin_nested()`) opens the transaction first, as it does on PostgreSQL.
PostgreSQL URLs are normalized to the psycopg 3 driver.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 15_000

_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker[Session]] = {}
_lock = threading.Lock()


def normalize_database_url(url: str) -> str:
    """`postgres://` and `postgresql://` URLs use psycopg 3; anything else is returned unchanged."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def resolve_database_url(url: str | None = None) -> str:
    """The URL to use: the one given, else settings.storefront_database_url (read now, not at import)."""
    if url is None:
        from onecart.settings import get_settings

        url = get_settings().storefront_database_url
    return normalize_database_url(url)


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _begin_before_sqlite_savepoint(connection: sa.Connection, _name: str | None) -> None:
    """Open the transaction before a SAVEPOINT that would otherwise come first.

    pysqlite's legacy transaction handling emits BEGIN only before INSERT/UPDATE/DELETE, so a
    savepoint taken before the transaction's first write ran as a transaction of its own: its
    release committed, and an outer rollback undid nothing. BEGIN IMMEDIATE (not a deferred BEGIN)
    keeps what the rest of the code relies on, that a transaction writes from its start: reads
    inside the savepoint cannot go stale before its writes, which would otherwise fail at once
    with SQLITE_BUSY instead of waiting out the busy timeout.
    """
    dbapi_connection = connection.connection.dbapi_connection
    if dbapi_connection is not None and not dbapi_connection.in_transaction:
        dbapi_connection.execute("BEGIN IMMEDIATE")


def create_storefront_engine(url: str | None = None) -> Engine:
    """A new engine for `url` (default: the settings' storefront DB); callers own its disposal.

    For SQLite the file's directory is created, since ONECART_HOME may not exist yet.
    """
    resolved = resolve_database_url(url)
    parsed = make_url(resolved)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(resolved, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _configure_sqlite_connection)
        event.listen(engine, "savepoint", _begin_before_sqlite_savepoint)
        return engine
    return sa.create_engine(resolved, pool_pre_ping=True)


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for `url` (created on first use, then reused)."""
    resolved = resolve_database_url(url)
    with _lock:
        engine = _engines.get(resolved)
        if engine is None:
            engine = create_storefront_engine(resolved)
            _engines[resolved] = engine
        return engine


def get_session_factory(url: str | None = None) -> sessionmaker[Session]:
    """A session factory bound to the engine for `url`; objects stay usable after commit."""
    resolved = resolve_database_url(url)
    engine = get_engine(resolved)
    with _lock:
        factory = _factories.get(resolved)
        if factory is None:
            factory = sessionmaker(bind=engine, expire_on_commit=False)
            _factories[resolved] = factory
        return factory


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session for a job or a script: commits on success, rolls back on error, always closes."""
    session = get_session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_engines() -> None:
    """Close every pooled connection (tests switch databases; forked workers start clean)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _factories.clear()


def storefront_tables_exist(engine: Engine) -> bool:
    """True once migrations have created the storefront tables (the pipeline sync checks this)."""
    return sa.inspect(engine).has_table("products")

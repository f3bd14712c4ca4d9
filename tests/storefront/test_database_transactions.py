"""Transactions on the storefront engine behave the same on SQLite as on PostgreSQL.

pysqlite's legacy transaction handling opens a transaction only before an INSERT/UPDATE/DELETE, so
a `session.begin_nested()` that comes before the transaction's first write used to emit a bare
SAVEPOINT, which SQLite runs as a transaction of its own: releasing it committed, and the outer
rollback undid nothing. commerce.db now opens the transaction (BEGIN IMMEDIATE) before such a
savepoint.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from commerce.db import create_storefront_engine

# Unique per run: the PostgreSQL run shares its database with other test runs.
PROBE = f"savepoint_probe_{uuid.uuid4().hex[:10]}"


# SQLite always; PostgreSQL too when DATABASE_URL points at it (`make test`'s second pass).
POSTGRES_URL = os.environ.get("DATABASE_URL", "")
DATABASES = ["sqlite", *(["postgresql"] if POSTGRES_URL.startswith("postgresql") else [])]


@pytest.fixture(params=DATABASES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'transactions.db'}" if request.param == "sqlite" else POSTGRES_URL
    engine = create_storefront_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE TABLE {PROBE} (name VARCHAR(20) PRIMARY KEY)")
    try:
        yield engine
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP TABLE {PROBE}")
        engine.dispose()


def _names(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(f"SELECT name FROM {PROBE} ORDER BY name")
        return [row[0] for row in rows]


def _insert(session: Session, name: str) -> None:
    session.execute(sa.text(f"INSERT INTO {PROBE} (name) VALUES (:name)"), {"name": name})


def test_a_savepoint_before_the_first_write_is_undone_by_the_outer_rollback(engine: Engine) -> None:
    with Session(engine) as session:
        session.execute(sa.text(f"SELECT count(*) FROM {PROBE}"))
        with session.begin_nested():
            _insert(session, "nested")
        _insert(session, "outer")
        session.rollback()

    assert _names(engine) == []


def test_a_savepoint_first_thing_in_the_session_commits_with_the_session(engine: Engine) -> None:
    with Session(engine) as session:
        with session.begin_nested():
            _insert(session, "nested")
        _insert(session, "outer")
        session.commit()

    assert _names(engine) == ["nested", "outer"]


def test_a_savepoint_rolled_back_keeps_the_outer_work(engine: Engine) -> None:
    with Session(engine) as session:
        _insert(session, "outer")
        nested = session.begin_nested()
        _insert(session, "nested")
        nested.rollback()
        session.commit()

    assert _names(engine) == ["outer"]


def test_sqlite_savepoint_holds_the_write_lock_from_its_start(tmp_path: Path) -> None:
    """What is read inside the savepoint cannot change before its writes: another writer waits
    (here it gives up at once) instead of the savepoint's first write failing on a stale read."""
    database = tmp_path / "locks.db"
    engine = create_storefront_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE TABLE {PROBE} (name VARCHAR(20) PRIMARY KEY)")
    other = sqlite3.connect(database, timeout=0.05, isolation_level=None)
    try:
        with Session(engine) as session:
            with session.begin_nested():
                session.execute(sa.text(f"SELECT count(*) FROM {PROBE}"))
                with pytest.raises(sqlite3.OperationalError, match="locked"):
                    other.execute(f"INSERT INTO {PROBE} (name) VALUES ('other')")
                _insert(session, "nested")
            session.commit()
        other.execute(f"INSERT INTO {PROBE} (name) VALUES ('other')")
    finally:
        other.close()
        engine.dispose()
    assert _names_at(database) == ["nested", "other"]


def _names_at(database: Path) -> list[str]:
    with sqlite3.connect(database) as connection:
        return [row[0] for row in connection.execute(f"SELECT name FROM {PROBE} ORDER BY name")]

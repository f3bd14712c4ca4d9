"""Opening the pipeline's DuckDB file: one writer at a time, serialized by an fcntl lock file.

DuckDB lets only one process hold a database file open for writing, and while it does, other
processes cannot even open it read-only. Partition runs of the pipeline (threads of one process,
or separate `dagster` run processes) therefore take an exclusive lock on `<db>.lock` beside the
file for the few seconds a connection is open. Connections are short-lived on purpose.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).resolve().parent / "sql"
SCHEMA_FILE = SQL_DIR / "schema.sql"
VIEWS_FILE = SQL_DIR / "views.sql"

# How long a connection waits for another process's connection to finish before giving up.
LOCK_TIMEOUT_S = 300.0
LOCK_POLL_S = 0.05

_held = threading.local()


class WarehouseLockTimeout(TimeoutError):
    """Another process kept the warehouse locked for longer than the timeout."""


class WarehouseMissing(FileNotFoundError):
    """A read-only connection was asked for a DuckDB file that does not exist yet."""


def lock_path_for(db_path: Path) -> Path:
    """The lock file that guards `db_path` (beside it, `<name>.lock`)."""
    return db_path.with_name(db_path.name + ".lock")


def default_pipeline_db_path() -> Path:
    """The settings' pipeline DuckDB file (read when called, never at import)."""
    from onecart.settings import get_settings

    return get_settings().pipeline_db_path


@contextmanager
def exclusive_file_lock(lock_path: Path, *, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold an exclusive flock on `lock_path`; raise WarehouseLockTimeout after `timeout` seconds.

    flock locks belong to an open file description, so two threads of one process that each open
    the lock file exclude each other just like two processes do. A thread that already holds the
    lock and asks again would wait for itself forever, so that is refused immediately.
    """
    held: set[Path] = _held.__dict__.setdefault("paths", set())
    key = lock_path.resolve()
    if key in held:
        raise RuntimeError(f"{lock_path} is already held by this thread (nested warehouse.connect)")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WarehouseLockTimeout(
                        f"{lock_path} stayed locked for {timeout:.0f}s by another connection"
                    ) from None
                time.sleep(LOCK_POLL_S)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def apply_sql_file(conn: duckdb.DuckDBPyConnection, sql_file: Path) -> None:
    """Run every statement of a .sql file (they are written to be idempotent)."""
    conn.execute(sql_file.read_text(encoding="utf-8"))


def apply_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the warehouse tables that do not exist yet (warehouse/sql/schema.sql)."""
    apply_sql_file(conn, SCHEMA_FILE)


def refresh_views(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """(Re)create the analyst views of warehouse/sql/views.sql; return their names."""
    apply_sql_file(conn, VIEWS_FILE)
    rows = conn.execute(
        "SELECT view_name FROM duckdb_views() WHERE NOT internal AND schema_name = 'main' "
        "ORDER BY view_name"
    ).fetchall()
    return [name for (name,) in rows]


@contextmanager
def connect(
    path: Path | str | None = None,
    *,
    read_only: bool = False,
    lock_timeout: float = LOCK_TIMEOUT_S,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection to the pipeline's warehouse file, held under its exclusive lock.

    `path` defaults to settings.pipeline_db_path. Read-write connections apply the schema first,
    so callers can rely on every table existing. Close it quickly: other partition runs wait.
    """
    db_path = Path(path) if path is not None else default_pipeline_db_path()
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_file_lock(lock_path_for(db_path), timeout=lock_timeout):
        if read_only and not db_path.exists():
            raise WarehouseMissing(f"{db_path} does not exist yet: run the pipeline first")
        conn = duckdb.connect(str(db_path), read_only=read_only)
        try:
            conn.execute("SET TimeZone = 'UTC'")
            if not read_only:
                apply_schema(conn)
            yield conn
        finally:
            conn.close()


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN … COMMIT around a block, ROLLBACK if it raises: a partition's rows change together."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")

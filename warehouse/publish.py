"""Publishing the analysts' read-only copy of the warehouse.

Analysts never open the pipeline's own file (an open reader would block the pipeline's writer and
vice versa). After each run the pipeline copies the tables into `warehouse.next.duckdb`, adds the
analyst views, and `os.replace`s it over `warehouse.duckdb`: a reader that has the old file open
keeps reading the old snapshot, the next one sees the new file, and nobody sees half a copy.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import duckdb

from warehouse.connection import (
    apply_schema,
    connect,
    exclusive_file_lock,
    lock_path_for,
    refresh_views,
)

# Copied into the published file. raw_catalog stays private: it is large, and everything an
# analyst needs from it (the payloads of rejected records) is in rejected_products.
PUBLISHED_TABLES: tuple[str, ...] = (
    "marketplaces",
    "products",
    "rejected_products",
    "catalog_loads",
    "fx_rates",
    "product_groups",
    "price_history",
)

COPY_BATCH_ROWS = 50_000


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What was published where: row counts per table and the view names."""

    path: Path
    table_rows: dict[str, int]
    views: list[str]


def default_published_path() -> Path:
    """settings.warehouse_path, read when called."""
    from onecart.settings import get_settings

    return get_settings().warehouse_path


def next_path_for(published: Path) -> Path:
    """`warehouse.duckdb` -> `warehouse.next.duckdb` (built beside it, then renamed over it)."""
    return published.with_name(f"{published.stem}.next{published.suffix}")


def _table_columns(conn: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [name for (name,) in rows]


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def copy_table(
    source: duckdb.DuckDBPyConnection, target: duckdb.DuckDBPyConnection, table: str
) -> int:
    """Stream one table's rows from `source` into the same table of `target` through Arrow."""
    if table not in PUBLISHED_TABLES:
        raise ValueError(f"{table!r} is not a published table")
    columns = [c for c in _table_columns(target, table) if c in set(_table_columns(source, table))]
    column_list = ", ".join(_quoted(c) for c in columns)
    reader = source.sql(f"SELECT {column_list} FROM {table}").to_arrow_reader(COPY_BATCH_ROWS)
    target.register("incoming_rows", reader)
    try:
        target.execute(
            f"INSERT INTO {table} ({column_list}) SELECT {column_list} FROM incoming_rows"
        )
    finally:
        target.unregister("incoming_rows")
    (count,) = target.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)
    return int(count)


def _remove_database_file(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)


def publish(source: Path | str | None = None, target: Path | str | None = None) -> PublishResult:
    """Build a fresh copy of the warehouse with the analyst views and swap it in atomically.

    `source` defaults to settings.pipeline_db_path and `target` to settings.warehouse_path.
    The published file is made read-only on disk, so an analyst who forgets `read_only=True`
    gets an error instead of edits that the next publish would silently discard.
    """
    published = Path(target) if target is not None else default_published_path()
    next_path = next_path_for(published)
    table_rows: dict[str, int] = {}
    with (
        connect(source, read_only=True) as source_conn,
        exclusive_file_lock(lock_path_for(next_path)),
    ):
        # A copy left by an interrupted publish is discarded, never appended to.
        _remove_database_file(next_path)
        next_conn = duckdb.connect(str(next_path))
        try:
            next_conn.execute("SET TimeZone = 'UTC'")
            apply_schema(next_conn)
            for table in PUBLISHED_TABLES:
                table_rows[table] = copy_table(source_conn, next_conn, table)
            views = refresh_views(next_conn)
            next_conn.execute("CHECKPOINT")
        finally:
            next_conn.close()
        os.chmod(next_path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(next_path, published)
    return PublishResult(path=published, table_rows=table_rows, views=views)

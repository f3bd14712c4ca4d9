"""Publishing the analysts' read-only copy of the warehouse.

Analysts never open the pipeline's own file (an open reader would block the pipeline's writer and
vice versa). After each run the pipeline builds `warehouse.next.duckdb`, adds the analyst views,
and `os.replace`s it over `warehouse.duckdb`: a reader that has the old file open keeps reading the
old snapshot, the next one sees the new file, and nobody sees half a copy.

The next copy starts from the published one when its layout (schema and views) is current, and
only the tables whose content differs from the pipeline's are written again: a table whose rows
did not change is kept, an append-only table (price history, load log) gets only its new rows
(those past the copy's row count, once the pipeline's first rows are shown to be the copy's by
their fingerprint), a changed table with a primary key is merged (the rows whose columns changed,
and the gone and new keys, deleted and inserted), any other changed table is replaced.
`products` is a view in the copy over `product_rows` and `marketplace_fetches`
(warehouse/published_products.py): every fetch moves every offer's `fetched_at`, which the copy
holds once per marketplace, so a refresh after a few price changes writes the changed offers and
a row per marketplace, not a million offers nor a million fetch times (both took most of a
refresh's publish at a million offers). `published_tables` in the copy says what happened to
each table, so an analyst can see how fresh it is. The copy is written into the snapshot the
previous swap displaced when nobody reads it any more, instead of a byte copy of the published
file (warehouse/publish_files.py). What remains proportional to the catalog is one hash pass over
the pipeline's offers and the fingerprints of the other tables.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from warehouse import publish_files, published_products
from warehouse.connection import (
    SCHEMA_FILE,
    VIEWS_FILE,
    WarehouseMissing,
    apply_schema,
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
    "currencies",
    "product_groups",
    "price_history",
)
# Tables the pipeline only ever appends to: a publish appends their new rows. (If one ever lost
# or changed a row, the copy would notice and replace the table instead.)
APPEND_ONLY_TABLES: frozenset[str] = frozenset({"catalog_loads", "price_history"})

# How each table of a publish was brought up to date (published_tables.refresh).
KEPT, APPENDED, MERGED, COPIED = "kept", "appended", "merged", "copied"

PUBLISHED_TABLES_DDL = """
CREATE TABLE IF NOT EXISTS published_tables (
    table_name VARCHAR PRIMARY KEY,
    row_count BIGINT NOT NULL,
    refresh VARCHAR NOT NULL,
    layout VARCHAR NOT NULL,
    published_at TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE published_tables IS '{comment}';
""".format(
    # One line: `onecart sql` lists the tables and views with their comments, a line apiece.
    comment="How each table of this snapshot was brought up to date by the publish that made it, "
    "from the older snapshot it was written into (usually the one before the previous): kept "
    "(unchanged), appended (new rows only), merged (changed rows only, by primary key) or copied "
    "(replaced), with its row count and when."
)

SOURCE_ALIAS = "pipeline_source"
# DuckDB's memory while the copy is written. Unbounded (DuckDB's default, 80% of RAM) the
# publish of a million offers took the pipeline process 0.75 GiB above its resting size; copies
# and index builds spill to the temp directory beside the file, so a small limit costs time only
# (0.41 -> 0.30 GiB peak at 200,000 offers with 256MB).
PUBLISH_MEMORY_LIMIT = "512MB"


@dataclass(frozen=True, slots=True)
class PublishResult:
    """What was published where: row counts per table, how each table was refreshed (kept,
    appended, merged or copied), the view names and which file the copy started from."""

    path: Path
    table_rows: dict[str, int]
    views: list[str]
    refreshed: dict[str, str]
    # What the copy was written into: the previous snapshot (publish_files.FROM_SPARE), a byte
    # copy of the published file (FROM_COPY) or an empty file (FROM_EMPTY).
    started_from: str = publish_files.FROM_EMPTY
    # Rows the publish wrote behind the products view: product_rows and marketplace_fetches (a
    # refresh that changed no offer writes a fetch time per marketplace fetched, and no offer
    # unless the snapshot it started from missed the publish before).
    products_written: dict[str, int] = field(default_factory=dict)


def default_published_path() -> Path:
    """settings.warehouse_path, read when called."""
    from onecart.settings import get_settings

    return get_settings().warehouse_path


def default_source_path() -> Path:
    """settings.pipeline_db_path, read when called."""
    from onecart.settings import get_settings

    return get_settings().pipeline_db_path


def layout_fingerprint() -> str:
    """What a published file's tables and views are made of: a copy made under another schema
    or view set is rebuilt from scratch."""
    digest = hashlib.sha256()
    parts = (
        SCHEMA_FILE.read_bytes(),
        VIEWS_FILE.read_bytes(),
        published_products.LAYOUT_SQL,
        PUBLISHED_TABLES_DDL,
        # Copies made while the pipeline-only tables were kept (empty) are rebuilt without them.
        "pipeline-only tables dropped",
    )
    for part in (*parts, *PUBLISHED_TABLES):
        digest.update(part if isinstance(part, bytes) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def drop_pipeline_only_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """schema.sql creates the pipeline's private tables too (raw_catalog, the search state, …);
    the copy holds none of them, so an analyst's query of one fails by name instead of reading
    a table that is always empty there."""
    tables = conn.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main'"
    ).fetchall()
    for (table,) in tables:
        if table not in PUBLISHED_TABLES:
            conn.execute(f"DROP TABLE {_quoted(table)}")


def _table_columns(conn: duckdb.DuckDBPyConnection, catalog: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_catalog = ? "
        "AND table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
        [catalog, table],
    ).fetchall()
    return [name for (name,) in rows]


def _fingerprint(
    conn: duckdb.DuckDBPyConnection, relation: str, column_list: str
) -> tuple[int, int]:
    """(rows, sum of row hashes): equal for two tables with the same rows, in any order."""
    row = conn.execute(
        f"SELECT count(*), coalesce(sum(hash({column_list})::HUGEINT), 0) FROM {relation}"
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _count(conn: duckdb.DuckDBPyConnection, sql: str) -> int:
    (count,) = conn.execute(f"SELECT count(*) FROM ({sql})").fetchone() or (0,)
    return int(count)


def _primary_key(conn: duckdb.DuckDBPyConnection, catalog: str, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() WHERE database_name = ? "
        "AND schema_name = 'main' AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
        [catalog, table],
    ).fetchall()
    return list(rows[0][0]) if rows else []


class _TableCopy:
    """One published table and the SQL that reads it from the pipeline file and from the copy."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, table: str) -> None:
        if table not in PUBLISHED_TABLES:
            raise ValueError(f"{table!r} is not a published table")
        source_columns = set(_table_columns(conn, SOURCE_ALIAS, table))
        (own_catalog,) = conn.execute("SELECT current_database()").fetchone() or ("",)
        columns = [c for c in _table_columns(conn, own_catalog, table) if c in source_columns]
        # Both sides must be keyed alike for a merge to give the pipeline's rows.
        key = _primary_key(conn, own_catalog, table)
        self.key = key if key == _primary_key(conn, SOURCE_ALIAS, table) else []
        self.table = table
        self.column_list = ", ".join(_quoted(c) for c in columns)
        self.source = f"{SOURCE_ALIAS}.main.{_quoted(table)}"
        self.target = f"main.{_quoted(table)}"
        self.incoming = f"SELECT {self.column_list} FROM {self.source}"
        self.held = f"SELECT {self.column_list} FROM {self.target}"
        self.products = (
            published_products.ProductsCopy(self.source, columns) if table == "products" else None
        )
        # APPENDED: the pipeline's rows from this rowid on are the new ones (None: find them by
        # EXCEPT ALL).
        self.appended_from: int | None = None

    def plan(self, conn: duckdb.DuckDBPyConnection) -> str:
        """KEPT when the copy holds the pipeline's rows, APPENDED when it holds a part of an
        append-only table's rows, MERGED for products and tables with a primary key, else
        COPIED. (Products are compared row by row by their merge, which says if it kept them.)"""
        if self.products is not None:
            return MERGED
        held = _fingerprint(conn, self.target, self.column_list)
        if _fingerprint(conn, self.source, self.column_list) == held:
            return KEPT
        if self.table in APPEND_ONLY_TABLES:
            # Appends take the next rowids: when the pipeline's first rows are the copy's, the
            # rest are the new ones (a light pass over the pipeline's rows; EXCEPT ALL built a
            # hash table of every row of both sides, twice).
            prefix = f"(SELECT * FROM {self.source} WHERE rowid < {held[0]})"
            if _fingerprint(conn, prefix, self.column_list) == held:
                self.appended_from = held[0]
                return APPENDED
            if _count(conn, f"{self.held} EXCEPT ALL {self.incoming}") == 0:
                return APPENDED
        if self.key:
            return MERGED
        return COPIED

    def _merge(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Make the copy hold the pipeline's rows by key: the rows that changed, and the keys
        that are gone, deleted; the changed and new rows inserted. Every step runs on its own (a
        key deleted and inserted again in one DuckDB transaction can trip its index)."""
        key_list = ", ".join(_quoted(c) for c in self.key)

        def same_key(left: str, right: str) -> str:
            return " AND ".join(f"{left}.{_quoted(c)} = {right}.{_quoted(c)}" for c in self.key)

        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE publish_changed_keys AS SELECT {key_list} FROM ("
            f"{self.incoming} EXCEPT {self.held})"
        )
        try:
            conn.execute(
                f"DELETE FROM {self.target} AS t WHERE EXISTS (SELECT 1 FROM "
                f"publish_changed_keys AS c WHERE {same_key('c', 't')}) OR NOT EXISTS ("
                f"SELECT 1 FROM {self.source} AS s WHERE {same_key('s', 't')})"
            )
            conn.execute(
                f"INSERT INTO {self.target} ({self.column_list}) SELECT {self.column_list} "
                f"FROM {self.source} AS s WHERE EXISTS (SELECT 1 FROM publish_changed_keys AS c "
                f"WHERE {same_key('c', 's')})"
            )
        finally:
            conn.execute("DROP TABLE publish_changed_keys")

    def apply(self, conn: duckdb.DuckDBPyConnection, refresh: str) -> tuple[str, int]:
        """Write what `refresh` says into the (for COPIED: empty) table; return how it was
        refreshed (a merge that found nothing to write kept it) and its rows."""
        target = self.target
        if self.products is not None:
            target = published_products.PRODUCT_ROWS
            if refresh == COPIED:
                self.products.copy(conn)
            elif not self.products.merge(conn):
                refresh = KEPT
        elif refresh == APPENDED and self.appended_from is not None:
            conn.execute(
                f"INSERT INTO {self.target} ({self.column_list}) "
                f"{self.incoming} WHERE rowid >= {self.appended_from}"
            )
        elif refresh == APPENDED:
            conn.execute(
                f"INSERT INTO {self.target} ({self.column_list}) "
                f"{self.incoming} EXCEPT ALL {self.held}"
            )
        elif refresh == MERGED:
            self._merge(conn)
        elif refresh == COPIED:
            conn.execute(f"INSERT INTO {self.target} ({self.column_list}) {self.incoming}")
        (count,) = conn.execute(f"SELECT count(*) FROM {target}").fetchone() or (0,)
        return refresh, int(count)


def refresh_tables(
    conn: duckdb.DuckDBPyConnection, *, from_previous: bool
) -> tuple[dict[str, str], dict[str, int], dict[str, int]]:
    """Bring every published table of `conn` up to date with the attached pipeline file; return
    how each was refreshed, its row count, and the rows written behind the products view.
    Without `from_previous` every table is empty and copied whole."""
    copies = {table: _TableCopy(conn, table) for table in PUBLISHED_TABLES}
    planned = {
        table: copy.plan(conn) if from_previous else COPIED for table, copy in copies.items()
    }
    for table, refresh in planned.items():
        if from_previous and refresh == COPIED:
            # Only tables without a primary key are replaced once the copy's layout is current
            # (keyed ones are merged), so emptying them is cheap; re-applying schema.sql would
            # collide with the copy's products view.
            conn.execute(f"DELETE FROM {copies[table].target}")
    refreshed, rows = {}, {}
    for table, refresh in planned.items():
        refreshed[table], rows[table] = copies[table].apply(conn, refresh)
    products = copies["products"].products
    return refreshed, rows, dict(products.written) if products is not None else {}


def publish(source: Path | str | None = None, target: Path | str | None = None) -> PublishResult:
    """Bring a copy of the warehouse with the analyst views up to date and swap it in atomically.

    `source` defaults to settings.pipeline_db_path and `target` to settings.warehouse_path.
    The published file is made read-only on disk, so an analyst who forgets `read_only=True`
    gets an error instead of edits that the next publish would silently discard.
    """
    source_path = Path(source) if source is not None else default_source_path()
    published = Path(target) if target is not None else default_published_path()
    next_path = publish_files.next_path_for(published)
    layout = layout_fingerprint()
    with (
        exclusive_file_lock(lock_path_for(source_path)),
        exclusive_file_lock(lock_path_for(next_path)),
    ):
        if not source_path.exists():
            raise WarehouseMissing(f"{source_path} does not exist yet: run the pipeline first")
        next_conn, started_from = publish_files.open_next(
            published,
            layout,
            lambda path: duckdb.connect(str(path), config={"memory_limit": PUBLISH_MEMORY_LIMIT}),
        )
        from_previous = started_from != publish_files.FROM_EMPTY
        try:
            next_conn.execute("SET TimeZone = 'UTC'")
            if not from_previous:
                apply_schema(next_conn)
                drop_pipeline_only_tables(next_conn)
                next_conn.execute(published_products.LAYOUT_SQL)
                next_conn.execute(PUBLISHED_TABLES_DDL)
            # A path is not a bindable value in ATTACH; quote it as a string literal.
            quoted_source = "'" + str(source_path).replace("'", "''") + "'"
            next_conn.execute(f"ATTACH {quoted_source} AS {SOURCE_ALIAS} (READ_ONLY)")
            try:
                refreshed, table_rows, products_written = refresh_tables(
                    next_conn, from_previous=from_previous
                )
            finally:
                next_conn.execute(f"DETACH {SOURCE_ALIAS}")
            now = datetime.now(UTC)
            next_conn.executemany(
                "INSERT OR REPLACE INTO published_tables "
                "(table_name, row_count, refresh, layout, published_at) VALUES (?, ?, ?, ?, ?)",
                [
                    [table, table_rows[table], refreshed[table], layout, now]
                    for table in PUBLISHED_TABLES
                ],
            )
            views = refresh_views(next_conn)
            next_conn.execute("CHECKPOINT")
        finally:
            next_conn.close()
        publish_files.swap_in(published, started_from)
    return PublishResult(
        path=published,
        table_rows=table_rows,
        views=views,
        refreshed=refreshed,
        started_from=started_from,
        products_written=products_written,
    )

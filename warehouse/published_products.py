"""The analysts' `products` in the published copy: the pipeline's rows split by how often they move.

Every fetch of a marketplace moves every one of its offers' `fetched_at` (the fetch's time, one
value for the whole fetch: warehouse.catalog.stage_raw_catalog), while ~1% of the offers change
otherwise between two refreshes. Kept per row, the copy had to update every offer's `fetched_at`
on every publish (at a million offers most of a refresh's publish). So the copy holds

- `product_rows`: the pipeline's `products` rows, column for column, but `fetched_at` is NULL
  where it is the marketplace's latest fetch time (the usual case: every offer of the last fetch),
  plus `row_hash`, DuckDB's 64-bit hash() of the row but `fetched_at`, which the next publish
  compares with the pipeline's rows to find the changed ones;
- `marketplace_fetches`: per marketplace, the latest `fetched_at` of its offers;
- the view `products`, which joins them back into exactly the pipeline's rows and columns.

A publish then writes the rows whose other columns changed (found by their hash: a change is
missed only if a row's two versions collide in 64 bits), the gone and new keys, the few offers
whose `fetched_at` is not their marketplace's latest (a marketplace whose last fetch failed half
way keeps its older offers' times, and the copy with them), and one row per marketplace.
"""

from __future__ import annotations

import duckdb

PRODUCT_ROWS = "product_rows"
FETCHES = "marketplace_fetches"
KEY = ("marketplace", "external_id")
VOLATILE = "fetched_at"

# One line each: `onecart sql` lists the tables and views with their comments, a line apiece.
ROWS_COMMENT = (
    "The offers of the view products, but fetched_at NULL where it is its marketplace''s latest "
    "(marketplace_fetches), and row_hash (hash of the row but fetched_at, for the next publish). "
    "Query the view products instead."
)
FETCHES_COMMENT = (
    "Per marketplace, the latest fetched_at of its offers: the time of its last fetch that the "
    "offers come from."
)
PRODUCTS_COMMENT = (
    "Current offers, exactly the pipeline''s products table: fetched_at is the offer''s own where "
    "it differs from its marketplace''s latest fetch, else that fetch''s."
)

# The copy's layout of products (part of publish.layout_fingerprint: a copy made before is
# rebuilt from scratch). Applied to a fresh copy after schema.sql made `products` a table.
LAYOUT_SQL = f"""
ALTER TABLE products RENAME TO {PRODUCT_ROWS};
ALTER TABLE {PRODUCT_ROWS} ALTER {VOLATILE} DROP NOT NULL;
ALTER TABLE {PRODUCT_ROWS} ADD COLUMN row_hash UBIGINT;
COMMENT ON TABLE {PRODUCT_ROWS} IS '{ROWS_COMMENT}';
CREATE TABLE {FETCHES} (
    marketplace VARCHAR PRIMARY KEY,
    fetched_at TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE {FETCHES} IS '{FETCHES_COMMENT}';
CREATE VIEW products AS
SELECT r.* EXCLUDE (row_hash) REPLACE (coalesce(r.{VOLATILE}, f.fetched_at) AS {VOLATILE})
FROM {PRODUCT_ROWS} AS r LEFT JOIN {FETCHES} AS f ON f.marketplace = r.marketplace;
COMMENT ON VIEW products IS '{PRODUCTS_COMMENT}';
"""


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class ProductsCopy:
    """Brings the copy's product_rows and marketplace_fetches up to date with `source_table`
    (the pipeline's products, attached), given the copy's `columns` of products."""

    def __init__(self, source_table: str, columns: list[str]) -> None:
        if VOLATILE not in columns or not set(KEY) <= set(columns):
            raise ValueError("products lacks fetched_at or its key")
        self.source = source_table
        self.columns = columns
        self.column_list = ", ".join(_quoted(c) for c in columns)
        stable = ", ".join(_quoted(c) for c in columns if c != VOLATILE)
        self.row_hash = f"hash({stable})"
        # Rows the last copy() or merge() wrote: product_rows (deleted, inserted or given a
        # fetch time) and marketplace_fetches.
        self.written = {PRODUCT_ROWS: 0, FETCHES: 0}

    def _same_key(self, left: str, right: str) -> str:
        return " AND ".join(f"{left}.{_quoted(c)} = {right}.{_quoted(c)}" for c in KEY)

    def _insert(self, conn: duckdb.DuckDBPyConnection, rows: str) -> None:
        """Insert `rows` (the source's columns and row_hash, aliased s) with fetched_at NULL
        where it is the marketplace's latest (temp table publish_fetches)."""
        values = ", ".join(
            f"nullif(s.{_quoted(c)}, f.fetched_at)" if c == VOLATILE else f"s.{_quoted(c)}"
            for c in self.columns
        )
        conn.execute(
            f"INSERT INTO {PRODUCT_ROWS} ({self.column_list}, row_hash) SELECT {values}, "
            f"s.row_hash FROM {rows} AS s LEFT JOIN publish_fetches AS f "
            "ON f.marketplace = s.marketplace"
        )

    def _latest_fetches(self, conn: duckdb.DuckDBPyConnection) -> None:
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE publish_fetches AS SELECT marketplace, "
            f"max({VOLATILE}) AS fetched_at FROM {self.source} GROUP BY marketplace"
        )

    def _write_fetches(self, conn: duckdb.DuckDBPyConnection) -> int:
        """marketplace_fetches := publish_fetches, writing only the rows that differ."""
        changed = conn.execute(
            f"DELETE FROM {FETCHES} AS t WHERE NOT EXISTS (SELECT 1 FROM publish_fetches AS f "
            "WHERE f.marketplace = t.marketplace AND f.fetched_at = t.fetched_at)"
        ).fetchall()[0][0]
        inserted = conn.execute(
            f"INSERT INTO {FETCHES} SELECT marketplace, fetched_at FROM publish_fetches AS f "
            f"WHERE NOT EXISTS (SELECT 1 FROM {FETCHES} AS t WHERE t.marketplace = f.marketplace)"
        ).fetchall()[0][0]
        # A moved time is a row deleted and inserted again: the inserted rows are the times
        # written.
        self.written[FETCHES] = int(inserted)
        return int(changed) + int(inserted)

    def copy(self, conn: duckdb.DuckDBPyConnection) -> None:
        """Fill the (empty) tables from the source."""
        self._latest_fetches(conn)
        try:
            self._insert(conn, f"(SELECT *, {self.row_hash} AS row_hash FROM {self.source})")
            self._write_fetches(conn)
            (rows,) = conn.execute(f"SELECT count(*) FROM {PRODUCT_ROWS}").fetchone() or (0,)
            self.written[PRODUCT_ROWS] = int(rows)
        finally:
            conn.execute("DROP TABLE IF EXISTS publish_fetches")

    def merge(self, conn: duckdb.DuckDBPyConnection) -> bool:
        """Write what changed since the copy was made from the source; return whether anything
        did. One pass over the source's rows hashes them and keeps the new and changed ones;
        the gone keys come from a pass over the keys only."""
        self._latest_fetches(conn)
        try:
            conn.execute(
                "CREATE OR REPLACE TEMP TABLE publish_changed_rows AS SELECT s.* FROM "
                f"(SELECT *, {self.row_hash} AS row_hash FROM {self.source}) AS s "
                f"ANTI JOIN (SELECT marketplace, external_id, row_hash FROM {PRODUCT_ROWS}) AS t "
                f"ON {self._same_key('t', 's')} AND t.row_hash = s.row_hash"
            )
            conn.execute(
                "CREATE OR REPLACE TEMP TABLE publish_gone_keys AS SELECT marketplace, external_id "
                f"FROM {PRODUCT_ROWS} AS t ANTI JOIN (SELECT marketplace, external_id "
                f"FROM {self.source}) AS s ON {self._same_key('s', 't')}"
            )
            # Rows whose fetched_at is not their marketplace's latest, and rows that held such
            # a time (usually none of either).
            conn.execute(
                "CREATE OR REPLACE TEMP TABLE publish_own_fetches AS "
                f"SELECT s.marketplace, s.external_id, s.{VOLATILE} FROM {self.source} AS s "
                "JOIN publish_fetches AS f ON f.marketplace = s.marketplace "
                f"WHERE s.{VOLATILE} <> f.fetched_at"
            )
            # Each step on its own (a key deleted and inserted again in one DuckDB transaction
            # can trip its index).
            conn.execute(
                "INSERT INTO publish_gone_keys SELECT marketplace, external_id "
                "FROM publish_changed_rows"
            )
            deleted = conn.execute(
                f"DELETE FROM {PRODUCT_ROWS} AS t USING publish_gone_keys AS g "
                f"WHERE {self._same_key('g', 't')}"
            ).fetchall()[0][0]
            self._insert(conn, "publish_changed_rows")
            (inserted,) = conn.execute("SELECT count(*) FROM publish_changed_rows").fetchall()[0]
            own = conn.execute(
                f"UPDATE {PRODUCT_ROWS} AS t SET {VOLATILE} = o.{VOLATILE} "
                f"FROM publish_own_fetches AS o WHERE {self._same_key('o', 't')} "
                f"AND t.{VOLATILE} IS DISTINCT FROM o.{VOLATILE}"
            ).fetchall()[0][0]
            latest = conn.execute(
                f"UPDATE {PRODUCT_ROWS} AS t SET {VOLATILE} = NULL WHERE t.{VOLATILE} IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM publish_own_fetches AS o "
                f"WHERE {self._same_key('o', 't')})"
            ).fetchall()[0][0]
            fetches = self._write_fetches(conn)
        finally:
            for table in (
                "publish_fetches",
                "publish_changed_rows",
                "publish_gone_keys",
                "publish_own_fetches",
            ):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
        self.written[PRODUCT_ROWS] = int(deleted + inserted + own + latest)
        return bool(deleted or inserted or own or latest or fetches)

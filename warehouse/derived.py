"""The warehouse tables derived from every marketplace's products: fx_rates, product_groups and
price_history, and the joined rows the search index and the storefront sync are built from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import polars as pl

from onecart.money import currency_exponent, is_iso_currency, known_currencies
from warehouse.connection import transaction
from warehouse.fx_rates import RateTable, rate_table_from_rows
from warehouse.matching import GroupAssignment, OfferForMatching

PRODUCT_GROUPS_SCHEMA = pl.Schema(
    {
        "group_id": pl.String,
        "marketplace": pl.String,
        "external_id": pl.String,
        "method": pl.String,
        "confidence": pl.Decimal(3, 2),
        "matching_key": pl.String,
    }
)


# --- FX rates -------------------------------------------------------------------------------


def store_fx_rates(conn: duckdb.DuckDBPyConnection, rates: RateTable) -> int:
    """Upsert the table's rates (one row per currency and publication date); return the count."""
    rows = rates.rows()
    with transaction(conn):
        for row in rows:
            conn.execute(
                "INSERT OR REPLACE INTO fx_rates (base, currency, rate, as_of, source, minor_unit) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [
                    row["base"],
                    row["currency"],
                    row["rate"],
                    row["as_of"],
                    row["source"],
                    row["minor_unit"],
                ],
            )
    return len(rows)


def store_currencies(conn: duckdb.DuckDBPyConnection) -> int:
    """Make `currencies` hold every ISO-4217 code OneCart accepts with its minor unit: an
    offer's own-currency price needs only that, rate or no rate (any code is accepted, the
    rates cover a few dozen). Rows already right are left alone; return the table's count."""
    rows = sorted(
        (code, currency_exponent(code))
        for code in known_currencies()
        if is_iso_currency(code)  # CLDR lists a few codes of other lengths; those are refused
    )
    frame = pl.DataFrame(rows, schema={"currency": pl.String, "minor_unit": pl.Int8}, orient="row")
    conn.register("known_currencies", frame.to_arrow())
    try:
        with transaction(conn):
            conn.execute(
                "DELETE FROM currencies AS c WHERE NOT EXISTS (SELECT 1 FROM known_currencies "
                "AS k WHERE k.currency = c.currency AND k.minor_unit = c.minor_unit)"
            )
            conn.execute(
                "INSERT INTO currencies SELECT currency, minor_unit FROM known_currencies "
                "WHERE currency NOT IN (SELECT currency FROM currencies)"
            )
    finally:
        conn.unregister("known_currencies")
    return len(rows)


def read_latest_rates(conn: duckdb.DuckDBPyConnection) -> RateTable | None:
    """The newest USD-based rate per currency, or None before fx_rates ran for the first time."""
    rows = conn.execute(
        "SELECT currency, rate, as_of, source FROM fx_rates WHERE base = 'USD' "
        "QUALIFY row_number() OVER (PARTITION BY currency ORDER BY as_of DESC) = 1"
    ).fetchall()
    if not rows:
        return None
    return rate_table_from_rows(
        {"currency": currency, "rate": rate, "as_of": as_of, "source": source}
        for currency, rate, as_of, source in rows
    )


# --- Product groups -------------------------------------------------------------------------


def read_offers_for_matching(conn: duckdb.DuckDBPyConnection) -> list[OfferForMatching]:
    """Every current offer's matching fields."""
    rows = conn.execute(
        "SELECT marketplace, external_id, title, brand, model, gtin, mpn FROM products "
        "ORDER BY marketplace, external_id"
    ).fetchall()
    return [OfferForMatching(*row) for row in rows]


def replace_product_groups(
    conn: duckdb.DuckDBPyConnection, assignments: Iterable[GroupAssignment]
) -> int:
    """Replace product_groups with a fresh assignment of every offer; return the row count."""
    return replace_product_groups_frame(
        conn,
        pl.DataFrame(
            [
                {
                    "group_id": a.group_id,
                    "marketplace": a.marketplace,
                    "external_id": a.external_id,
                    "method": a.method,
                    "confidence": a.confidence,
                    "matching_key": a.matching_key,
                }
                for a in assignments
            ],
            schema=PRODUCT_GROUPS_SCHEMA,
        ),
    )


def replace_product_groups_frame(conn: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> int:
    """Replace product_groups with the rows of `frame` (PRODUCT_GROUPS_SCHEMA); return the row
    count."""
    columns = ", ".join(PRODUCT_GROUPS_SCHEMA.names())
    conn.register("staged_groups", frame.to_arrow())
    try:
        with transaction(conn):
            conn.execute("DELETE FROM product_groups")
            conn.execute(
                f"INSERT INTO product_groups ({columns}) SELECT {columns} FROM staged_groups"
            )
    finally:
        conn.unregister("staged_groups")
    return frame.height


@dataclass(frozen=True, slots=True)
class GroupStats:
    """Numbers that describe a matching run."""

    groups: int
    offers: int
    multi_offer_groups: int
    groups_by_marketplace_count: dict[int, int]
    offers_by_method: dict[str, int]


def product_group_stats(conn: duckdb.DuckDBPyConnection) -> GroupStats:
    """How many groups there are and how widely they span marketplaces."""
    groups, offers, multi = conn.execute(
        "SELECT count(*), coalesce(sum(offers), 0), count(*) FILTER (WHERE offers > 1) FROM ("
        "  SELECT group_id, count(*) AS offers FROM product_groups GROUP BY group_id)"
    ).fetchone() or (0, 0, 0)
    spread = conn.execute(
        "SELECT marketplaces, count(*) FROM ("
        "  SELECT group_id, count(DISTINCT marketplace) AS marketplaces FROM product_groups "
        "  GROUP BY group_id) GROUP BY marketplaces ORDER BY marketplaces"
    ).fetchall()
    methods = conn.execute(
        "SELECT method, count(*) FROM product_groups GROUP BY method ORDER BY count(*) DESC"
    ).fetchall()
    return GroupStats(
        groups=int(groups),
        offers=int(offers),
        multi_offer_groups=int(multi),
        groups_by_marketplace_count={int(k): int(v) for k, v in spread},
        offers_by_method={str(k): int(v) for k, v in methods},
    )


# --- Price history --------------------------------------------------------------------------


# Offers updated up to this long before the last price-history run are looked at again: a
# normalization that began before that run may commit after it with an earlier updated_at.
HISTORY_WATERMARK_MARGIN = "INTERVAL 1 HOUR"


def append_price_changes(conn: duckdb.DuckDBPyConnection, *, full: bool = False) -> int:
    """Append a price_history row for every offer whose price, currency or availability differs
    from its latest row (or that has none yet); return how many rows were appended.

    Only offers updated since the previous call (less a margin) can differ: a price, currency or
    availability change is a content change, which moves updated_at. So this reads the changed
    rows only, not every offer and its whole history. observed_at is the offer's fetched_at: when
    the marketplace showed that price.
    """
    with transaction(conn):
        (before,) = conn.execute("SELECT count(*) FROM price_history").fetchall()[0]
        watermark = conn.execute(
            "SELECT updated_at FROM derived_watermarks WHERE name = 'price_history'"
        ).fetchall()
        since = watermark[0][0] if watermark and not full else None
        conn.execute(
            f"""
            INSERT INTO price_history (marketplace, external_id, price_minor, currency, available,
                                       observed_at)
            WITH candidates AS (
                SELECT marketplace, external_id, price_minor, currency, available, fetched_at
                FROM products
                WHERE $since IS NULL
                   OR updated_at > CAST($since AS TIMESTAMPTZ) - {HISTORY_WATERMARK_MARGIN}
            ),
            latest AS (
                SELECT h.marketplace, h.external_id, h.price_minor, h.currency, h.available
                FROM price_history AS h
                SEMI JOIN candidates AS c USING (marketplace, external_id)
                QUALIFY row_number() OVER (
                    PARTITION BY h.marketplace, h.external_id ORDER BY h.observed_at DESC) = 1
            )
            SELECT p.marketplace, p.external_id, p.price_minor, p.currency, p.available, p.fetched_at
            FROM candidates AS p
            LEFT JOIN latest USING (marketplace, external_id)
            WHERE latest.marketplace IS NULL
               OR latest.price_minor <> p.price_minor
               OR latest.currency <> p.currency
               OR latest.available <> p.available
            """,
            {"since": since},
        )
        conn.execute(
            "INSERT INTO derived_watermarks (name, updated_at) "
            "SELECT 'price_history', max(updated_at) FROM products HAVING count(*) > 0 "
            "ON CONFLICT (name) DO UPDATE SET updated_at = excluded.updated_at"
        )
        (after,) = conn.execute("SELECT count(*) FROM price_history").fetchall()[0]
    return int(after) - int(before)


# --- Rows for the search index and the storefront -------------------------------------------

OFFER_EXPORT_SQL = """
WITH sequenced AS (
    SELECT marketplace, external_id, price_minor, currency, observed_at,
           lag(price_minor) OVER w AS earlier_price_minor,
           lag(currency) OVER w AS earlier_currency
    FROM price_history
    WINDOW w AS (PARTITION BY marketplace, external_id ORDER BY observed_at)
),
last_change AS (
    SELECT * FROM sequenced
    WHERE earlier_price_minor IS NOT NULL
      AND earlier_currency = currency
      AND earlier_price_minor <> price_minor
    QUALIFY row_number() OVER (PARTITION BY marketplace, external_id ORDER BY observed_at DESC) = 1
),
group_sizes AS (
    SELECT group_id, count(*) AS group_size, count(DISTINCT marketplace) AS group_marketplaces
    FROM product_groups
    GROUP BY group_id
)
SELECT
    p.*,
    g.group_id, g.method AS match_method, g.confidence AS match_confidence,
    s.group_size, s.group_marketplaces,
    CASE WHEN c.price_minor = p.price_minor AND c.currency = p.currency
         THEN c.earlier_price_minor END AS previous_price_minor,
    CASE WHEN c.price_minor = p.price_minor AND c.currency = p.currency
              AND c.price_minor < c.earlier_price_minor
         THEN c.observed_at END AS price_dropped_at
FROM products AS p
LEFT JOIN product_groups AS g USING (marketplace, external_id)
LEFT JOIN group_sizes AS s USING (group_id)
LEFT JOIN last_change AS c USING (marketplace, external_id)
ORDER BY p.marketplace, p.external_id
"""


def read_offer_frame(conn: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every current offer joined with its group and price-change summary (the columns of
    products plus group_id, match_method, match_confidence, group_size, group_marketplaces,
    previous_price_minor, price_dropped_at). Columnar, so a million offers stay compact once the
    warehouse connection is closed."""
    return conn.sql(OFFER_EXPORT_SQL).pl()


def read_price_history_since(
    conn: duckdb.DuckDBPyConnection, since: datetime | None = None
) -> list[dict[str, Any]]:
    """price_history rows observed after `since` (all of them when None), oldest first."""
    query = (
        "SELECT marketplace, external_id, price_minor, currency, available, observed_at "
        "FROM price_history"
    )
    params: list[Any] = []
    if since is not None:
        query += " WHERE observed_at > ?"
        params.append(since)
    cursor = conn.execute(query + " ORDER BY observed_at", params)
    names = [column[0] for column in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

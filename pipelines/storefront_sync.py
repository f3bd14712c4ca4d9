"""Copying the warehouse's catalog into the storefront DB, when that DB exists.

The storefront owns its schema (commerce/models.py, created by its Alembic migrations) and the
upsert rules (commerce.catalog_sync.sync_catalog). This module decides whether there is anything
to sync into, gathers the rows from the warehouse, and runs the sync in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from adapters.base import MarketplaceConfig
from warehouse.derived import read_price_history_since

# Price points are re-sent for this long before the newest one the storefront holds, so a point
# observed slightly out of order still arrives (the sync ignores the ones it already has).
PRICE_POINT_OVERLAP = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class StorefrontSyncOutcome:
    """Either why the sync was skipped, or the counts of what it changed."""

    skipped_reason: str | None
    counts: dict[str, int]
    skipped_rows: list[str]


def storefront_unavailable_reason(database_url: str) -> str | None:
    """Why there is nothing to sync into yet (no SQLite file, no tables), or None when ready.

    A missing SQLite file is reported rather than created: the storefront's migrations create it.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if not database or database == ":memory:" or not Path(database).exists():
            return f"storefront DB {database or '(in-memory)'} does not exist yet"
    from commerce.db import create_storefront_engine, storefront_tables_exist

    engine = create_storefront_engine(database_url)
    try:
        if not storefront_tables_exist(engine):
            return (
                f"storefront DB {url.render_as_string(hide_password=True)} has no products table "
                "yet (run the storefront migrations)"
            )
    except sa.exc.OperationalError as exc:
        return f"storefront DB unreachable: {exc.orig or exc}"
    finally:
        engine.dispose()
    return None


def sync_storefront_catalog(
    database_url: str,
    connect_warehouse: Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]],
    *,
    marketplaces: Sequence[MarketplaceConfig],
) -> StorefrontSyncOutcome:
    """Upsert marketplaces, offers (by marketplace slug + external_id), FX rates and new price
    points from the warehouse into the storefront DB, in one transaction; skip when it is absent.
    Then evaluate the shoppers' price alerts against the new prices (commerce.price_alerts).

    The warehouse is read first and closed before the storefront is written, so the DuckDB lock
    is never held while waiting on the other database.
    """
    reason = storefront_unavailable_reason(database_url)
    if reason is not None:
        return StorefrontSyncOutcome(skipped_reason=reason, counts={}, skipped_rows=[])

    from commerce.catalog_sync import sync_catalog
    from commerce.db import create_storefront_engine
    from commerce.models import PricePoint
    from commerce.price_alerts import evaluate_price_alerts

    engine = create_storefront_engine(database_url)
    try:
        with Session(engine) as session:
            newest_point = session.scalar(sa.select(sa.func.max(PricePoint.observed_at)))
            since = newest_point - PRICE_POINT_OVERLAP if newest_point is not None else None
            with connect_warehouse() as conn:
                offers = conn.sql("SELECT * FROM products ORDER BY marketplace, external_id").pl()
                groups = {
                    (slug, external_id): (group_id, method, confidence)
                    for slug, external_id, group_id, method, confidence in conn.execute(
                        "SELECT marketplace, external_id, group_id, method, confidence "
                        "FROM product_groups"
                    ).fetchall()
                }
                fx_rows = [
                    dict(zip(("base", "currency", "rate", "as_of", "source"), row, strict=True))
                    for row in conn.execute(
                        "SELECT base, currency, rate, as_of, source FROM fx_rates "
                        "WHERE base = 'USD' QUALIFY row_number() OVER "
                        "(PARTITION BY currency ORDER BY as_of DESC) = 1"
                    ).fetchall()
                ]
                price_points = read_price_history_since(conn, since)
            report = sync_catalog(
                session,
                marketplaces=list(marketplaces),
                offers=offers.iter_rows(named=True),
                groups=groups,
                fx_rates=fx_rows,
                price_points=price_points,
            )
            session.commit()
        # Prices just changed: tell the shoppers watching a product whose cheapest offer
        # dropped (idempotent, so a re-run of this asset never alerts twice). An error here
        # fails the asset after the sync was committed; the next run evaluates again.
        alerts = evaluate_price_alerts(sessionmaker(engine))
    finally:
        engine.dispose()
    skipped_rows = [f"{row.kind} {row.key}: {row.reason}" for row in report.skipped]
    return StorefrontSyncOutcome(
        skipped_reason=None,
        counts={**report.as_metadata(), **alerts.as_metadata()},
        skipped_rows=skipped_rows,
    )


def disabled_marketplaces(database_url: str) -> set[str]:
    """The slugs of the marketplaces an admin disabled in the storefront DB (/admin/marketplaces):
    the product index leaves their offers out, and no offer document counts them in its group.
    Empty while that DB does not exist yet."""
    if storefront_unavailable_reason(database_url) is not None:
        return set()
    from commerce.catalog import disabled_marketplace_slugs
    from commerce.db import create_storefront_engine

    engine = create_storefront_engine(database_url)
    try:
        with Session(engine) as session:
            return disabled_marketplace_slugs(session)
    finally:
        engine.dispose()

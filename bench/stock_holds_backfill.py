"""The stock-hold migrations on a database with many orders: 0019_offer_stock_holds (counts the
units of every live DummyMart / Fake Store sub-order) and 0021_order_item_held_units (each line
of those holds its quantity), timed on SQLite and PostgreSQL, with the rows checked after.

    .venv/bin/python bench/stock_holds_backfill.py [--orders 20000] [--products 500]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/DB]

What it does:
1. Migrates a fresh DB to 0018 (a SQLite file in a temporary folder; with --database-url, a
   schema of its own in that PostgreSQL database, dropped at the end).
2. Writes --orders orders, each one sub-order with two lines: at DummyMart (its orders take no
   stock) or ShopWave (Shopify: they do), in a mix of live and finished statuses.
3. Times `alembic upgrade` to 0019, then to 0021 (through 0020, a users column), and checks: every order, sub-order and line is
   still there (SQLite recreates `marketplace_orders` and `order_items` in batch mode), the held
   units per offer equal the sum of the live DummyMart lines, and every held line holds its
   quantity. Then times the downgrade back to 0018 and checks the rows once more.

The last line printed is `RESULT key=value …`; the RESULTS.md section is written by hand.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import sqlalchemy as sa  # noqa: E402
from alembic import command  # noqa: E402

from commerce.db import create_storefront_engine, normalize_database_url  # noqa: E402
from storefront.db_migrate import alembic_config  # noqa: E402

BEFORE = "0018_pending_email_change"
HOLDS = "0019_offer_stock_holds"
LINES = "0021_order_item_held_units"
STATUSES = ("pending", "placed", "delivered", "cancelled", "failed", "shipped")
LIVE = {"pending", "placed", "delivered", "shipped"}
BATCH = 2000


def _filler(column: sa.Column[Any], row: int) -> object:
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return False
    if isinstance(kind, (sa.Integer, sa.Numeric)):
        return 0
    if isinstance(kind, sa.DateTime):
        return datetime.now(UTC)
    if isinstance(kind, sa.Date):
        return datetime.now(UTC).date()
    if isinstance(kind, sa.JSON):
        return []
    length = getattr(kind, "length", None) or 32
    return f"{row:x}-{uuid.uuid4().hex}"[: min(length, 40)]


def _rows(table: sa.Table, rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """`rows` with every NOT NULL column they leave out filled (unique where it may be)."""
    needed = [
        column
        for column in table.columns
        if not column.nullable and column.server_default is None and not column.primary_key
    ]
    for number, row in enumerate(rows):
        for column in needed:
            if column.name not in row:
                row[column.name] = _filler(column, number)
    return rows


def _seed(url: str, orders: int, products: int) -> dict[str, int]:
    """Orders at 0018; returns what 0019 must count (expected held units per product id)."""
    engine = create_storefront_engine(url)
    expected: dict[int, int] = {}
    try:
        with engine.begin() as connection:
            meta = sa.MetaData()
            tables = {
                name: sa.Table(name, meta, autoload_with=connection)
                for name in (
                    "marketplaces",
                    "products",
                    "users",
                    "orders",
                    "marketplace_orders",
                    "order_items",
                )
            }
            markets = {}
            for slug, kind in (("dummymart", "dummyjson"), ("shopwave", "shopify")):
                markets[slug] = connection.execute(
                    tables["marketplaces"]
                    .insert()
                    .values(
                        _rows(
                            tables["marketplaces"],
                            [
                                {
                                    "slug": slug,
                                    "name": slug,
                                    "kind": kind,
                                    "currency": "USD",
                                    "capabilities": ["catalog", "order"],
                                    "active": True,
                                }
                            ],
                        )[0]
                    )
                ).inserted_primary_key[0]
            product_ids: dict[str, list[int]] = {}
            for slug, market in markets.items():
                connection.execute(
                    tables["products"].insert(),
                    _rows(
                        tables["products"],
                        [
                            {
                                "marketplace_id": market,
                                "external_id": f"{slug}-{n}",
                                "title": f"{slug} {n}",
                                "price_minor": 100,
                                "currency": "USD",
                                "available": True,
                                "stock": 1_000_000,
                            }
                            for n in range(products)
                        ],
                    ),
                )
                product_ids[slug] = list(
                    connection.scalars(
                        sa.select(tables["products"].c.id)
                        .where(tables["products"].c.marketplace_id == market)
                        .order_by(tables["products"].c.id)
                    )
                )
            user = connection.execute(
                tables["users"]
                .insert()
                .values(
                    _rows(tables["users"], [{"username": "ada", "email": "ada@example.com"}])[0]
                )
            ).inserted_primary_key[0]
            for start in range(0, orders, BATCH):
                numbers = range(start, min(start + BATCH, orders))
                connection.execute(
                    tables["orders"].insert(),
                    _rows(
                        tables["orders"],
                        [
                            {
                                "id": n + 1,
                                "user_id": user,
                                "status": "processing",
                                "payment_method": "wallet",
                                "total_minor": 200,
                                "currency": "USD",
                            }
                            for n in numbers
                        ],
                    ),
                )
                subs = []
                items = []
                for n in numbers:
                    slug = "dummymart" if n % 3 else "shopwave"
                    status = STATUSES[n % len(STATUSES)]
                    subs.append(
                        {
                            "id": n + 1,
                            "order_id": n + 1,
                            "marketplace_id": markets[slug],
                            "status": status,
                            "amount_minor": 200,
                            "currency": "USD",
                            "charge_minor": 200,
                            "charge_currency": "USD",
                        }
                    )
                    for line in range(2):
                        product = product_ids[slug][(n * 2 + line) % products]
                        quantity = 1 + (n + line) % 4
                        items.append(
                            {
                                "order_id": n + 1,
                                "sub_order_id": n + 1,
                                "product_id": product,
                                "quantity": quantity,
                                "unit_price_minor": 100,
                                "currency": "USD",
                                "charge_minor": 100,
                            }
                        )
                        if slug == "dummymart" and status in LIVE:
                            expected[product] = expected.get(product, 0) + quantity
                connection.execute(
                    tables["marketplace_orders"].insert(), _rows(tables["marketplace_orders"], subs)
                )
                connection.execute(
                    tables["order_items"].insert(), _rows(tables["order_items"], items)
                )
            if connection.dialect.name == "postgresql":
                for table in ("orders", "marketplace_orders"):
                    connection.execute(
                        sa.text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) FROM {table}))"
                        )
                    )
    finally:
        engine.dispose()
    return {str(k): v for k, v in expected.items()}


def _counts(url: str) -> dict[str, int]:
    engine = create_storefront_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in ("orders", "marketplace_orders", "order_items")
            }
    finally:
        engine.dispose()


def _check_after(url: str, expected: dict[str, int]) -> None:
    engine = create_storefront_engine(url)
    try:
        with engine.connect() as connection:
            held = {
                str(product): units
                for product, units in connection.execute(
                    sa.text("SELECT product_id, held_units FROM offer_stock_holds")
                )
            }
            wrong_lines = connection.execute(
                sa.text(
                    "SELECT count(*) FROM order_items i JOIN marketplace_orders o "
                    "ON o.id = i.sub_order_id WHERE i.held_units <> "
                    "CASE WHEN o.stock_held THEN i.quantity ELSE 0 END"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert held == expected, "held units differ from the live DummyMart lines"
    assert wrong_lines == 0, f"{wrong_lines} lines hold other than their quantity"


def run(url: str, orders: int, products: int) -> dict[str, float]:
    command.upgrade(alembic_config(url), BEFORE)
    expected = _seed(url, orders, products)
    rows = _counts(url)
    timings: dict[str, float] = {}
    for name, action, target in (
        ("up_0019", command.upgrade, HOLDS),
        ("up_0021", command.upgrade, LINES),
    ):
        started = time.perf_counter()
        action(alembic_config(url), target)
        timings[name] = time.perf_counter() - started
    assert _counts(url) == rows, "the upgrade lost rows"
    _check_after(url, expected)
    started = time.perf_counter()
    command.downgrade(alembic_config(url), BEFORE)
    timings["down_0018"] = time.perf_counter() - started
    assert _counts(url) == rows, "the downgrade lost rows"
    timings["items"] = rows["order_items"]
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--products", type=int, default=500)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    if not 1 <= args.orders <= 200_000 or not 1 <= args.products <= 10_000:
        parser.error("--orders 1..200000, --products 1..10000")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        results["sqlite"] = run(
            f"sqlite:///{Path(folder) / 'holds.db'}", args.orders, args.products
        )
    if args.database_url:
        base = normalize_database_url(args.database_url)
        schema = f"holds_bench_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(base)
        with admin.begin() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        try:
            results["postgresql"] = run(
                f"{base}?options=-csearch_path%3D{schema}", args.orders, args.products
            )
        finally:
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    print(f"{'backend':<11} {'lines':>7} {'up 0019 s':>10} {'up 0021 s':>10} {'down s':>8}")
    for backend, t in results.items():
        print(
            f"{backend:<11} {int(t['items']):>7} {t['up_0019']:>10.2f} {t['up_0021']:>10.2f} "
            f"{t['down_0018']:>8.2f}"
        )
    parts = [f"bench=stock_holds_backfill orders={args.orders}"]
    for backend, t in results.items():
        parts.append(f"{backend}_up_s={t['up_0019'] + t['up_0021']:.2f}")
    print("RESULT " + " ".join(parts) + " rows_kept=yes counts_right=yes")


if __name__ == "__main__":
    main()

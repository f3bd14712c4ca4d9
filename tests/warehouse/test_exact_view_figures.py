"""Money-derived figures of the analyst views are exact DECIMALs (ops5 leftover): change_pct of
`price_changes_7d` was a DOUBLE (round() of a division), and `category_price_stats.avg_usd` went
through DuckDB's DOUBLE average (an average of x.xx5 came out a cent off either way) while its
median_usd truncated. Each is now DECIMAL(18, 2), the exact quotient rounded half to even like
offers_usd.price_usd. A small warehouse written here (tests/warehouse/test_views.py's)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import warehouse
from tests.warehouse.test_views import NOW, _fill
from warehouse.connection import refresh_views
from warehouse.derived import store_currencies

# (external_id, old price_minor, new price_minor): change_pct exactly, in hundredths of a percent
CHANGES = [
    ("1", 3, 4, Decimal("33.33")),  # 33.333…
    ("2", 20000, 20005, Decimal("0.02")),  # 0.025: half to even
    ("3", 20000, 20015, Decimal("0.08")),  # 0.075: half to even, up
    ("4", 20000, 19995, Decimal("-0.02")),  # -0.025
    ("5", 8, 9, Decimal("12.50")),
    ("6", 0, 500, None),  # no percentage of nothing
]
# (category, USD prices in cents): median_usd, avg_usd
CATEGORIES = [
    ("half-cent", [1, 2], Decimal("0.02"), Decimal("0.02")),  # 0.015 both
    ("binary-half", [103, 104], Decimal("1.04"), Decimal("1.04")),  # 1.035: 1.0349… as a DOUBLE
    ("half-even-down", [1, 4], Decimal("0.02"), Decimal("0.02")),  # 0.025
    ("odd", [100, 200, 201], Decimal("2.00"), Decimal("1.67")),  # 501 / 3 = 1.67
]


def _column_types(db: object, view: str) -> dict[str, str]:
    return dict(
        db.execute(  # type: ignore[attr-defined]
            "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ?", [view]
        ).fetchall()
    )


def test_price_changes_7d_change_pct_is_an_exact_decimal(tmp_path: Path) -> None:
    with warehouse.connect(tmp_path / "views.duckdb") as db:
        _fill(db)
        store_currencies(db)
        for external_id, old, new, _ in CHANGES:
            db.execute(
                "INSERT INTO products (marketplace, external_id, title, description, price_minor, "
                "currency, available, content_hash, first_seen_at, updated_at, fetched_at) "
                "VALUES ('a', ?, 'Changed', '', ?, 'USD', true, 'h', ?, ?, ?)",
                [f"p{external_id}", new, NOW, NOW, NOW],
            )
            db.execute(
                "INSERT INTO price_history VALUES "
                "('a', ?, ?, 'USD', true, now() - INTERVAL 2 DAY), "
                "('a', ?, ?, 'USD', true, now() - INTERVAL 1 DAY)",
                [f"p{external_id}", old, f"p{external_id}", new],
            )
        changes = dict(
            db.execute("SELECT external_id, change_pct FROM price_changes_7d").fetchall()
        )
        types = _column_types(db, "price_changes_7d")
    assert types["change_pct"] == "DECIMAL(18,2)"
    assert {key: (value, type(value)) for key, value in changes.items()} == {
        f"p{external_id}": (pct, Decimal if pct is not None else type(None))
        for external_id, _, _, pct in CHANGES
    }


def test_category_price_stats_median_and_average_are_exact_to_the_cent(tmp_path: Path) -> None:
    with warehouse.connect(tmp_path / "views.duckdb") as db:
        _fill(db)
        store_currencies(db)
        for category, cents, _, _ in CATEGORIES:
            for index, price in enumerate(cents):
                db.execute(
                    "INSERT INTO products (marketplace, external_id, title, description, "
                    "price_minor, currency, available, content_hash, first_seen_at, updated_at, "
                    "fetched_at, category) VALUES ('b', ?, 'Priced', '', ?, 'USD', true, 'h', "
                    "?, ?, ?, ?)",
                    [f"{category}-{index}", price, NOW, NOW, NOW, category],
                )
        refresh_views(db)
        stats = {
            category: (median, average)
            for category, median, average in db.execute(
                "SELECT category, median_usd, avg_usd FROM category_price_stats"
            ).fetchall()
        }
        types = _column_types(db, "category_price_stats")
        # No analyst view has a float column derived from money: the only DOUBLE is a share
        # of offers (marketplace_coverage.with_gtin).
        floats = db.execute(
            "SELECT table_name, column_name FROM duckdb_columns() AS c "
            "JOIN duckdb_views() AS v ON v.view_name = c.table_name AND NOT v.internal "
            "WHERE data_type IN ('DOUBLE', 'FLOAT') ORDER BY ALL"
        ).fetchall()
    assert (types["median_usd"], types["avg_usd"]) == ("DECIMAL(18,2)", "DECIMAL(18,2)")
    for category, _, median, average in CATEGORIES:
        assert stats[category] == (median, average), category
    assert floats == [("marketplace_coverage", "with_gtin")]


def test_the_readme_s_median_example_is_exact_as_category_price_stats(tmp_path: Path) -> None:
    """warehouse/README.md's running-shoe example ("in USD, of the live offers, as
    category_price_stats") took DuckDB's `median` of `price_usd` as is, which truncates a
    DECIMAL: offers at $0.01 and $0.04 gave $0.02 but $0.01 and $0.02 gave $0.01, where the view
    gives $0.02 (half to even). Run as the README prints it, each marketplace's median is the
    view's figure for the same offers."""
    readme = (Path(__file__).resolve().parents[2] / "warehouse" / "README.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", readme, flags=re.DOTALL)
    (example,) = [block for block in blocks if "median(" in block]
    with warehouse.connect(tmp_path / "views.duckdb") as db:
        _fill(db)
        store_currencies(db)
        for category, cents, _, _ in CATEGORIES:
            for index, price in enumerate(cents):
                # One marketplace per case, all of them running shoes.
                db.execute(
                    "INSERT INTO products (marketplace, external_id, title, description, "
                    "price_minor, currency, available, content_hash, first_seen_at, updated_at, "
                    "fetched_at, category) VALUES ('b', ?, 'Priced', '', ?, 'USD', true, 'h', "
                    "?, ?, ?, 'running shoes')",
                    [f"{category}-{index}", price, NOW, NOW, NOW],
                )
                db.execute(
                    "INSERT INTO products (marketplace, external_id, title, description, "
                    "price_minor, currency, available, content_hash, first_seen_at, updated_at, "
                    "fetched_at, category) VALUES ('b', ?, 'Priced', '', ?, 'USD', true, 'h', "
                    "?, ?, ?, ?)",
                    [f"{category}-view-{index}", price, NOW, NOW, NOW, category],
                )
            refresh_views(db)
            (row,) = db.execute(example).fetchall()
            (view_median,) = db.execute(
                "SELECT median_usd FROM category_price_stats WHERE category = ?", [category]
            ).fetchall()[0]
            assert row[3] == view_median, (category, row)
            db.execute("DELETE FROM products WHERE category = 'running shoes'")

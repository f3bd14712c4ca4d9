"""The analyst views of warehouse/sql/views.sql answer what warehouse/README.md says they do, on
a small warehouse written here."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb

import warehouse
from warehouse.connection import refresh_views

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
# (marketplace, external_id, price_minor, group_id, method, confidence)
OFFERS = [
    # A group formed by GTIN that a third offer joined by brand and model only.
    ("a", "1", 1000, "g-mixed", "gtin", 1.00),
    ("b", "1", 1100, "g-mixed", "gtin", 1.00),
    ("c", "1", 1200, "g-mixed", "brand_model", 0.90),
    # A group of GTIN and title matches: the title match is its weakest link.
    ("a", "2", 2000, "g-title", "gtin", 1.00),
    ("b", "2", 2100, "g-title", "gtin", 1.00),
    ("c", "2", 2200, "g-title", "title", 0.72),
    # A group of one.
    ("a", "3", 3000, "g-single", "single", 1.00),
]


def _fill(db: duckdb.DuckDBPyConnection) -> None:
    db.execute("INSERT INTO fx_rates VALUES ('USD', 'USD', 1, DATE '2026-12-01', 'test', 2)")
    for marketplace, external_id, price, group_id, method, confidence in OFFERS:
        db.execute(
            "INSERT INTO products (marketplace, external_id, title, description, price_minor, "
            "currency, available, content_hash, first_seen_at, updated_at, fetched_at) "
            "VALUES (?, ?, ?, '', ?, 'USD', true, 'h', ?, ?, ?)",
            [marketplace, external_id, f"Offer {marketplace}{external_id}", price, NOW, NOW, NOW],
        )
        db.execute(
            "INSERT INTO product_groups VALUES (?, ?, ?, ?, ?, ?)",
            [group_id, marketplace, external_id, method, confidence, group_id],
        )
    refresh_views(db)


def test_a_group_summary_names_the_weakest_evidence_holding_it_and_single_for_one(
    tmp_path: Path,
) -> None:
    """`product_group_summary.method` is how the group was formed: `single` for a group of one
    (it was NULL), and for a group whose offers were matched in several ways the weakest of
    them, whatever its spelling (the alphabetical minimum called a GTIN + title group `gtin`
    and a GTIN + brand/model group `brand_model`)."""
    with warehouse.connect(tmp_path / "views.duckdb") as db:
        _fill(db)
        methods = dict(db.execute("SELECT group_id, method FROM product_group_summary").fetchall())
    assert methods == {"g-mixed": "brand_model", "g-title": "title", "g-single": "single"}


def test_coverage_lists_a_marketplace_whose_every_record_was_quarantined(tmp_path: Path) -> None:
    """A feed broken through and through (every record rejected, say a new currency code) is the
    one analysts most need to see in `marketplace_coverage`: it was left out, its `rejected`
    count with it, since the view started from the offers."""
    with warehouse.connect(tmp_path / "views.duckdb") as db:
        _fill(db)
        for index in range(3):
            db.execute(
                "INSERT INTO rejected_products (marketplace, external_id, reason, detail, payload, "
                "rejected_at, run_id) VALUES ('d', ?, 'unknown_currency', 'KSH', '{}', ?, 'r')",
                [str(index), NOW],
            )
        rows = db.execute(
            "SELECT marketplace, offers, available_offers, groups, rejected, last_fetched_at "
            "FROM marketplace_coverage ORDER BY marketplace"
        ).fetchall()
    assert [row[0] for row in rows] == ["a", "b", "c", "d"]
    assert rows[3] == ("d", 0, 0, 0, 3, None)
    assert rows[0][1:5] == (3, 3, 3, 0)


def test_cheapest_offer_compares_the_available_offers_as_its_documentation_says(
    tmp_path: Path,
) -> None:
    """`cheapest_offer_per_group` compares the offers a shopper can buy: its counts are of the
    group's available offers, and a group with one available offer has nothing to compare.
    README and the view's comment said "every group with 2+ offers" and `offers_in_group`,
    which reads as the group's size (product_group_summary.offers): an analyst joining the two
    saw 3 against 4, and groups of 2+ offers missing."""
    with warehouse.connect(tmp_path / "views.duckdb") as db:
        _fill(db)
        db.execute(
            "UPDATE products SET available = false WHERE external_id = '1' AND marketplace = 'c'"
        )
        db.execute(
            "UPDATE products SET available = false WHERE external_id = '2' AND marketplace <> 'a'"
        )
        rows = db.execute(
            "SELECT group_id, offers_in_group, marketplaces_in_group FROM cheapest_offer_per_group"
        ).fetchall()
        (comment,) = db.execute(
            "SELECT comment FROM duckdb_views() WHERE view_name = 'cheapest_offer_per_group'"
        ).fetchone()
    assert rows == [("g-mixed", 2, 2)]
    readme = (Path(warehouse.__file__).parent / "README.md").read_text(encoding="utf-8")
    (row,) = [
        line for line in readme.splitlines() if line.startswith("| `cheapest_offer_per_group`")
    ]
    for text in (row, comment):
        assert "2+ available offers" in text, text

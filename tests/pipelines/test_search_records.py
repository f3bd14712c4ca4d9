"""The offers' change marker (pipelines/search_records.py OFFER_MARKER_SQL) on a real warehouse:
it reads a row's content hash instead of its content, so it must still cover every column a
search document reads, and move with every column but fetched_at."""

from __future__ import annotations

from pathlib import Path

import pytest

import warehouse
from pipelines.search_records import MARKED_PRODUCT_COLUMNS, OFFER_MARKER_SQL
from search_index.documents import OFFER_FIELDS
from warehouse.offers import CONTENT_FIELDS, PRODUCTS_SCHEMA

ROW = (
    "INSERT INTO products (marketplace, external_id, title, description, price_minor, currency, "
    "available, content_hash, first_seen_at, updated_at, fetched_at, category_raw) VALUES "
    "('shop', '1', 'Mug', 'A mug', 1000, 'USD', true, 'h1', TIMESTAMPTZ '2026-12-01 10:00:00+00', "
    "TIMESTAMPTZ '2026-12-02 10:00:00+00', TIMESTAMPTZ '2026-12-03 10:00:00+00', 'Kitchen')"
)
GROUP = (
    "INSERT INTO product_groups VALUES ('g1', 'shop', '1', 'gtin', 0.90, 'gtin:1'), "
    "('g2', 'shop', '2', 'single', 1.00, 'single:2')"
)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "pipeline.duckdb"
    with warehouse.connect(path) as conn:
        conn.execute(ROW)
        conn.execute(GROUP)
    return path


def marker(db: Path) -> int:
    with warehouse.connect(db, read_only=True) as conn:
        rows = conn.execute(f"SELECT row_marker FROM ({OFFER_MARKER_SQL})").fetchall()
    assert len(rows) == 1
    return int(rows[0][0])


def test_the_marker_covers_every_products_column_and_every_column_a_document_reads(
    db: Path,
) -> None:
    with warehouse.connect(db, read_only=True) as conn:
        columns = [row[0] for row in conn.execute("DESCRIBE products").fetchall()]
    assert columns == PRODUCTS_SCHEMA.names()
    covered = {"marketplace", "external_id", "fetched_at", *CONTENT_FIELDS, *MARKED_PRODUCT_COLUMNS}
    assert covered == set(columns)
    assert "fetched_at" not in OFFER_FIELDS
    assert {"content_hash", "updated_at"} <= set(MARKED_PRODUCT_COLUMNS)


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE products SET content_hash = 'h2'",
        "UPDATE products SET updated_at = updated_at + INTERVAL 1 SECOND",
        "UPDATE products SET first_seen_at = first_seen_at - INTERVAL 1 DAY",
        "UPDATE products SET category_raw = 'Kitchen & dining'",
        "UPDATE products SET category_raw = NULL",
        "UPDATE product_groups SET group_id = 'g2' WHERE external_id = '1'",
        "UPDATE product_groups SET method = 'title' WHERE external_id = '1'",
        "UPDATE product_groups SET confidence = 0.80 WHERE external_id = '1'",
        "DELETE FROM product_groups WHERE external_id = '1'",
    ],
)
def test_the_marker_moves_with_every_column_but_fetched_at(db: Path, edit: str) -> None:
    before = marker(db)
    with warehouse.connect(db) as conn:
        conn.execute("UPDATE products SET fetched_at = fetched_at + INTERVAL 1 HOUR")
    assert marker(db) == before
    with warehouse.connect(db) as conn:
        conn.execute(edit)
    assert marker(db) != before

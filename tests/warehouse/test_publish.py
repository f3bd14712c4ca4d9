"""Publishing the analysts' copy: complete, read-only, with views, swapped in atomically."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

import warehouse
from warehouse.publish import PUBLISHED_TABLES
from warehouse.publish_files import next_path_for, spare_path_for

VIEWS = {
    "latest_fx_rates",
    "offers_usd",
    "product_group_summary",
    "cheapest_offer_per_group",
    "price_changes_7d",
    "marketplace_coverage",
    "marketplace_overlap",
    "category_price_stats",
    "rejection_summary",
}


def add_offer(db: Path, external_id: str, price_minor: int) -> None:
    with warehouse.connect(db) as conn:
        conn.execute(
            "INSERT INTO products (marketplace, external_id, title, description, price_minor, "
            "currency, available, content_hash, first_seen_at, updated_at, fetched_at) "
            "VALUES ('shop', ?, 'Mug', '', ?, 'EUR', true, 'h', now(), now(), now())",
            [external_id, price_minor],
        )
        conn.execute(
            "INSERT INTO raw_catalog VALUES ('shop', 1, 0, '{\"id\": 1}', now(), 'run', 'h')"
        )
        conn.execute(
            "INSERT OR REPLACE INTO fx_rates VALUES ('USD', 'EUR', 0.8, DATE '2026-11-24', 't', 2)"
        )
        conn.execute(
            "INSERT INTO product_groups VALUES ('g-1', 'shop', ?, 'single', 1.00, 'offer:shop|x')",
            [external_id],
        )


def count_products(path: Path) -> int:
    conn = duckdb.connect(str(path), read_only=True)
    try:
        (count,) = conn.execute("SELECT count(*) FROM products").fetchone() or (0,)
        return int(count)
    finally:
        conn.close()


def test_published_copy_has_the_tables_and_views_but_not_the_raw_payloads(tmp_path: Path) -> None:
    source, target = tmp_path / "pipeline.duckdb", tmp_path / "warehouse.duckdb"
    add_offer(source, "1", 1000)
    result = warehouse.publish(source, target)
    assert result.path == target
    assert set(result.table_rows) == set(PUBLISHED_TABLES)
    assert "raw_catalog" not in result.table_rows
    assert result.table_rows["products"] == 1
    assert set(result.views) >= VIEWS

    conn = duckdb.connect(str(target), read_only=True)
    try:
        tables = {name for (name,) in conn.execute("SHOW TABLES").fetchall()}
        assert "products" in tables
        # The pipeline-only tables (warehouse/README.md) are not there, not even empty: a query
        # of one fails by name.
        base_tables = {
            name
            for (name,) in conn.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'"
            ).fetchall()
        }
        assert base_tables == (set(PUBLISHED_TABLES) - {"products"}) | {
            "product_rows",
            "marketplace_fetches",
            "published_tables",
        }
        with pytest.raises(duckdb.CatalogException, match="raw_catalog"):
            conn.execute("SELECT count(*) FROM raw_catalog")
        (price_usd,) = conn.execute("SELECT price_usd FROM offers_usd").fetchone() or (None,)
        assert str(price_usd) == "12.50"  # 10.00 EUR at 0.8 EUR per USD
        comments = dict(
            conn.execute(
                "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        )
        assert all(comments[view] for view in VIEWS)
        # A comment is one line: `onecart sql` lists each view and table with its comment, and
        # the products view's broke that list (ops QA pass 3).
        described = conn.execute(
            "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal "
            "UNION ALL SELECT table_name, comment FROM duckdb_tables()"
        ).fetchall()
        assert [name for name, comment in described if comment and "\n" in comment] == []
    finally:
        conn.close()


def test_published_file_is_read_only_on_disk(tmp_path: Path) -> None:
    source, target = tmp_path / "pipeline.duckdb", tmp_path / "warehouse.duckdb"
    add_offer(source, "1", 1000)
    warehouse.publish(source, target)
    assert not os.access(target, os.W_OK) or os.geteuid() == 0
    assert oct(target.stat().st_mode & 0o777) == oct(0o444)
    conn = duckdb.connect(str(target), read_only=True)
    try:
        with pytest.raises(duckdb.Error):
            conn.execute("DELETE FROM products")
    finally:
        conn.close()


def test_a_reader_keeps_its_snapshot_while_a_new_copy_is_swapped_in(tmp_path: Path) -> None:
    source, target = tmp_path / "pipeline.duckdb", tmp_path / "warehouse.duckdb"
    add_offer(source, "1", 1000)
    warehouse.publish(source, target)
    reader = duckdb.connect(str(target), read_only=True)
    try:
        add_offer(source, "2", 2000)
        warehouse.publish(source, target)
        assert reader.execute("SELECT count(*) FROM products").fetchone() == (1,)
    finally:
        reader.close()
    assert count_products(target) == 2


def test_a_copy_left_by_an_interrupted_publish_is_discarded(tmp_path: Path) -> None:
    source, target = tmp_path / "pipeline.duckdb", tmp_path / "warehouse.duckdb"
    add_offer(source, "1", 1000)
    leftover = next_path_for(target)
    assert leftover.name == "warehouse.next.duckdb"
    leftover.write_bytes(b"half a database")
    warehouse.publish(source, target)
    assert not leftover.exists()
    assert count_products(target) == 1


def published_rows(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Every published table's rows, sorted, and how the last publish refreshed each."""
    conn = duckdb.connect(str(path), read_only=True)
    try:
        tables = {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            for table in PUBLISHED_TABLES
        }
        tables["published_tables"] = conn.execute(
            "SELECT table_name, row_count, refresh FROM published_tables ORDER BY ALL"
        ).fetchall()
        return tables
    finally:
        conn.close()


def test_a_republish_writes_only_what_changed_and_equals_a_fresh_copy(tmp_path: Path) -> None:
    source, target = tmp_path / "pipeline.duckdb", tmp_path / "warehouse.duckdb"
    add_offer(source, "1", 1000)
    with warehouse.connect(source) as conn:
        conn.execute(
            "INSERT INTO price_history VALUES ('shop', '1', 1000, 'EUR', true, now() - INTERVAL 1 DAY)"
        )
    first = warehouse.publish(source, target)
    assert set(first.refreshed.values()) == {"copied"}

    with warehouse.connect(source) as conn:  # a refresh: one price moves, every offer is seen
        conn.execute("UPDATE products SET price_minor = 900, fetched_at = now()")
        conn.execute("INSERT INTO price_history VALUES ('shop', '1', 900, 'EUR', true, now())")
    second = warehouse.publish(source, target)
    assert second.refreshed == {
        "marketplaces": "kept",
        "products": "merged",
        "rejected_products": "kept",
        "catalog_loads": "kept",
        "fx_rates": "kept",
        "currencies": "kept",
        "product_groups": "kept",
        "price_history": "appended",
    }
    assert second.table_rows["price_history"] == 2

    fresh = tmp_path / "fresh.duckdb"
    warehouse.publish(source, fresh)
    got, expected = published_rows(target), published_rows(fresh)
    assert got.pop("published_tables") != expected.pop("published_tables")  # kept vs copied
    assert got == expected
    assert count_products(target) == 1


def test_a_merge_of_changed_removed_and_new_rows_equals_a_fresh_copy(tmp_path: Path) -> None:
    """Keyed tables are merged: a changed title, a changed price, a removed offer, a new offer,
    a group move and every offer's fetched_at moving give the rows a fresh copy gives."""
    source, target = tmp_path / "pipeline.duckdb", tmp_path / "warehouse.duckdb"
    for external_id in ("1", "2", "3", "4"):
        add_offer(source, external_id, 1000)
    warehouse.publish(source, target)

    with warehouse.connect(source) as conn:
        conn.execute("UPDATE products SET fetched_at = now() + INTERVAL 1 HOUR")
        conn.execute("UPDATE products SET title = 'Big mug' WHERE external_id = '1'")
        conn.execute("UPDATE products SET price_minor = 1, stock = 3 WHERE external_id = '2'")
        conn.execute("DELETE FROM products WHERE external_id = '3'")
        conn.execute("DELETE FROM product_groups WHERE external_id = '3'")
        conn.execute("UPDATE product_groups SET group_id = 'g-2' WHERE external_id = '4'")
    add_offer(source, "5", 500)
    result = warehouse.publish(source, target)
    assert result.refreshed["products"] == "merged"
    assert result.refreshed["product_groups"] == "merged"
    assert result.table_rows["products"] == 4

    fresh = tmp_path / "fresh.duckdb"
    warehouse.publish(source, fresh)
    got, expected = published_rows(target), published_rows(fresh)
    assert got.pop("published_tables") != expected.pop("published_tables")
    assert got == expected
    with warehouse.connect(source, read_only=True) as conn:
        assert got["products"] == conn.execute("SELECT * FROM products ORDER BY ALL").fetchall()


def test_a_history_that_lost_rows_is_copied_again_not_appended(tmp_path: Path) -> None:
    source, target = tmp_path / "pipeline.duckdb", tmp_path / "warehouse.duckdb"
    add_offer(source, "1", 1000)
    with warehouse.connect(source) as conn:
        conn.execute("INSERT INTO price_history VALUES ('shop', '1', 1000, 'EUR', true, now())")
    warehouse.publish(source, target)
    with warehouse.connect(source) as conn:
        conn.execute("DELETE FROM price_history")
        conn.execute("INSERT INTO price_history VALUES ('shop', '1', 800, 'EUR', true, now())")
    result = warehouse.publish(source, target)
    assert result.refreshed["price_history"] == "copied"
    assert published_rows(target)["price_history"] == published_rows_of_source(source)


def published_rows_of_source(source: Path) -> list[tuple[object, ...]]:
    with warehouse.connect(source, read_only=True) as conn:
        return conn.execute("SELECT * FROM price_history ORDER BY ALL").fetchall()


def test_a_copy_made_under_another_layout_is_rebuilt_from_scratch(tmp_path: Path) -> None:
    source, target = tmp_path / "pipeline.duckdb", tmp_path / "warehouse.duckdb"
    add_offer(source, "1", 1000)
    warehouse.publish(source, target)
    # As if the schema or the views had changed since: the snapshot and the spare (the previous
    # snapshot, which the next copy would be written into) were both made under the old layout.
    for made in (target, spare_path_for(target)):
        os.chmod(made, 0o644)
        conn = duckdb.connect(str(made))
        try:
            conn.execute("UPDATE published_tables SET layout = 'an older layout'")
        finally:
            conn.close()
    result = warehouse.publish(source, target)
    assert set(result.refreshed.values()) == {"copied"}
    assert count_products(target) == 1


def copy_tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """The copy's own tables behind its products view."""
    conn = duckdb.connect(str(path), read_only=True)
    try:
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()
            for table in ("product_rows", "marketplace_fetches")
        }
    finally:
        conn.close()


def test_fetch_times_are_kept_per_marketplace_and_the_copy_equals_a_fresh_one(
    tmp_path: Path,
) -> None:
    """A fetch moves every offer's fetched_at to the fetch's time: the copy writes it once per
    marketplace, not per offer. An offer whose fetched_at is not its marketplace's latest (a fetch
    that failed half way) keeps its own. After each refresh the copy's products are the
    pipeline's, fetched_at included, and every table equals a copy made from scratch."""
    source, target = tmp_path / "pipeline.duckdb", tmp_path / "warehouse.duckdb"
    for external_id in ("1", "2", "3"):
        add_offer(source, external_id, 1000)
    with warehouse.connect(source) as conn:
        conn.execute("UPDATE products SET fetched_at = TIMESTAMPTZ '2026-12-01 10:00:00+00'")
    warehouse.publish(source, target)

    def refresh(sql: str) -> None:
        with warehouse.connect(source) as conn:
            conn.execute(sql)
        result = warehouse.publish(source, target)
        assert result.refreshed["products"] == "merged"
        fresh = tmp_path / "fresh.duckdb"
        fresh.unlink(missing_ok=True)
        warehouse.publish(source, fresh)
        got, expected = published_rows(target), published_rows(fresh)
        assert got.pop("published_tables") != expected.pop("published_tables")
        assert got == expected
        assert copy_tables(target) == copy_tables(fresh)
        with warehouse.connect(source, read_only=True) as conn:
            assert got["products"] == conn.execute("SELECT * FROM products ORDER BY ALL").fetchall()

    def own_fetch_times() -> list[tuple[object, ...]]:
        return [row for row in copy_tables(target)["product_rows"] if row[21] is not None]

    refresh("UPDATE products SET fetched_at = fetched_at + INTERVAL 1 HOUR")
    assert own_fetch_times() == []
    # Offer 3 missed the latest fetch (its marketplace's other offers moved on).
    refresh(
        "UPDATE products SET fetched_at = fetched_at + INTERVAL 1 HOUR WHERE external_id <> '3'"
    )
    assert [row[1] for row in own_fetch_times()] == ["3"]
    refresh("UPDATE products SET fetched_at = TIMESTAMPTZ '2026-12-02 10:00:00+00', title = 'Cup'")
    assert own_fetch_times() == []
    assert copy_tables(target)["marketplace_fetches"] == [
        ("shop", datetime(2026, 12, 2, 10, tzinfo=UTC))
    ]
    # Nothing changed: the first publish writes the last change into the snapshot before it
    # (the spare it starts from), the next one writes nothing.
    assert warehouse.publish(source, target).refreshed["products"] == "merged"
    assert warehouse.publish(source, target).refreshed["products"] == "kept"


def test_the_next_copy_is_written_into_the_previous_snapshot_when_nobody_reads_it(
    tmp_path: Path,
) -> None:
    """No byte copy of the published file: a fresh build leaves a spare, and each publish
    writes into the snapshot the previous swap displaced; the result equals a fresh copy."""
    source, target = tmp_path / "pipeline.duckdb", tmp_path / "warehouse.duckdb"
    add_offer(source, "1", 1000)
    first = warehouse.publish(source, target)
    assert first.started_from == "empty"
    spare = spare_path_for(target)
    assert count_products(spare) == 1
    for external_id, price in (("2", 2000), ("3", 3000), ("4", 4000)):
        displaced = target.stat().st_ino
        add_offer(source, external_id, price)
        result = warehouse.publish(source, target)
        assert result.started_from == "spare"
        assert spare.stat().st_ino == displaced
        assert oct(target.stat().st_mode & 0o777) == oct(0o444)
    fresh = tmp_path / "fresh" / "warehouse.duckdb"
    fresh.parent.mkdir()
    assert warehouse.publish(source, fresh).started_from == "empty"
    got, expected = published_rows(target), published_rows(fresh)
    assert got.pop("published_tables") != expected.pop("published_tables")
    assert got == expected
    assert count_products(target) == 4


def test_a_snapshot_read_in_this_process_is_not_written_into(tmp_path: Path) -> None:
    source, target = tmp_path / "pipeline.duckdb", tmp_path / "warehouse.duckdb"
    add_offer(source, "1", 1000)
    warehouse.publish(source, target)
    reader = duckdb.connect(str(target), read_only=True)
    try:
        # The first publish displaces the reader's snapshot (it becomes the spare), the second
        # would write into it and copies instead, the third writes into the second's spare.
        for external_id, started_from in (("2", "spare"), ("3", "copy"), ("4", "spare")):
            add_offer(source, external_id, 1000)
            assert warehouse.publish(source, target).started_from == started_from
            assert reader.execute("SELECT count(*) FROM products").fetchone() == (1,)
    finally:
        reader.close()
    assert count_products(target) == 4


READER = """
import sys, duckdb
conn = duckdb.connect(sys.argv[1], read_only=True)
print(conn.execute("SELECT count(*) FROM products").fetchone()[0], flush=True)
sys.stdin.readline()
print(conn.execute("SELECT count(*) FROM products").fetchone()[0], flush=True)
"""


def test_a_snapshot_another_process_reads_is_not_written_into(tmp_path: Path) -> None:
    """An analyst's connection in another process holds DuckDB's lock on its file: the publish
    that would write into that snapshot copies the published file instead."""
    source, target = tmp_path / "pipeline.duckdb", tmp_path / "warehouse.duckdb"
    add_offer(source, "1", 1000)
    warehouse.publish(source, target)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(target)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout is not None and reader.stdin is not None
        assert reader.stdout.readline().strip() == "1"
        add_offer(source, "2", 1000)
        assert warehouse.publish(source, target).started_from == "spare"
        add_offer(source, "3", 1000)
        assert warehouse.publish(source, target).started_from == "copy"
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "1"
    finally:
        reader.communicate(timeout=60)
    assert count_products(target) == 3


def test_a_swap_cut_short_never_writes_into_the_published_file(tmp_path: Path) -> None:
    """Killed between linking the spare and the rename, the spare is the published file itself:
    it is dropped, never written into."""
    source, target = tmp_path / "pipeline.duckdb", tmp_path / "warehouse.duckdb"
    add_offer(source, "1", 1000)
    warehouse.publish(source, target)
    spare = spare_path_for(target)
    spare.unlink()
    os.link(target, spare)
    reader = duckdb.connect(str(target), read_only=True)
    reader.close()
    add_offer(source, "2", 1000)
    assert warehouse.publish(source, target).started_from == "copy"
    assert count_products(target) == 2
    assert count_products(spare) == 1

"""Rebuilding the full catalog from a changed-since fetch and the raw records held: what is
staged, where, and when it refuses (pure logic on a Parquet staging file; the pipeline test
tests/pipelines/test_changed_since.py runs it against the sandbox)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import warehouse
from adapters.changed_since import CatalogChanges, ChangesUnavailable
from warehouse.changed_since import (
    FULL_FETCH_EVERY,
    WATERMARK_OVERLAP,
    changes_since,
    forget_watermark,
    stage_changed_catalog,
    store_watermark,
)
from warehouse.offers import payload_text, record_hash

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def digest(record: dict[str, Any]) -> str:
    return record_hash(payload_text(record))


def held_of(records: list[dict[str, Any]]) -> list[tuple[str | None, str]]:
    return [(str(r["id"]), digest(r)) for r in records]


def stage(
    tmp_path: Path,
    changes: CatalogChanges,
    held: list[tuple[str | None, str]],
    by_id: dict[str, list[dict[str, Any]]] | None = None,
) -> tuple[list[dict[str, Any]], dict[int, tuple[str, int, datetime]], list[list[str]]]:
    asked: list[list[str]] = []

    def fetch_by_ids(ids: list[str]) -> list[dict[str, Any]]:
        asked.append(ids)
        return [record for i in ids for record in (by_id or {}).get(i, [])]

    path = tmp_path / "staged.parquet"
    stats = stage_changed_catalog(
        changes, held, fetch_by_ids, path, marketplace="m", run_id="r", fetched_at=NOW
    )
    rows = pq.read_table(path).to_pylist()
    assert stats.records == len(rows) and stats.pages == len(stats.page_hashes)
    return rows, stats.page_hashes, asked


def test_changed_records_new_ones_and_removals_sit_where_a_full_fetch_puts_them(
    tmp_path: Path,
) -> None:
    old = [{"id": n, "price": n * 10} for n in range(1, 6)]
    changed = [{"id": 2, "price": 99}, {"id": 7, "price": 70}]
    # 3 is gone, 7 is new and listed first; 1, 4, 5 did not change.
    changes = CatalogChanges(changed, [7, 1, 2, 4, 5], page_size=2, started_at=NOW)
    rows, pages, asked = stage(tmp_path, changes, held_of(old))
    assert [(r["page"], r["record_index"]) for r in rows] == [
        (1, 0),
        (1, 1),
        (2, 0),
        (2, 1),
        (3, 0),
    ]
    expected = [changed[1], old[0], changed[0], old[3], old[4]]
    assert [r["payload_hash"] for r in rows] == [digest(r) for r in expected]
    # Payloads the warehouse holds are not staged again.
    assert [r["payload"] for r in rows] == [
        payload_text(changed[1]),
        None,
        payload_text(changed[0]),
        None,
        None,
    ]
    assert {page: count for page, (_, count, _) in pages.items()} == {1: 2, 2: 2, 3: 1}
    assert all(r["fetched_at"] == NOW for r in rows) and not asked


def test_records_sharing_an_id_are_fetched_again_by_id_and_kept_in_listing_order(
    tmp_path: Path,
) -> None:
    old = [{"id": 1, "v": "a"}, {"id": 1, "v": "b"}, {"id": 2, "v": "c"}]
    now_listed = [{"id": 1, "v": "b"}, {"id": 1, "v": "a2"}]
    changes = CatalogChanges([{"id": 1, "v": "a2"}], [1, 1, 2], page_size=10, started_at=NOW)
    rows, _, asked = stage(tmp_path, changes, held_of(old), {"1": now_listed})
    assert asked == [["1"]]
    assert [r["payload_hash"] for r in rows] == [digest(r) for r in [*now_listed, old[2]]]
    assert [r["payload"] is None for r in rows] == [True, False, True]


@pytest.mark.parametrize(
    ("ids", "by_id", "why"),
    [
        ([1, 2, 8], {}, "id 8 is neither changed nor held"),
        ([1, {"x": 1}, 2], {}, "no usable id"),
        ([1, 1, 2], {"1": [{"id": 1, "v": 0}]}, "2 records listed, 1 fetched by id"),
    ],
)
def test_what_cannot_be_rebuilt_exactly_asks_for_a_full_fetch(
    tmp_path: Path, ids: list[object], by_id: dict[str, list[dict[str, Any]]], why: str
) -> None:
    old = [{"id": 1}, {"id": 2}]
    with pytest.raises(ChangesUnavailable, match=why):
        stage(tmp_path, CatalogChanges([], ids, page_size=5, started_at=NOW), held_of(old), by_id)


def test_changes_are_asked_for_since_the_last_fetch_until_a_day_after_the_last_full_one(
    tmp_path: Path,
) -> None:
    with warehouse.connect(tmp_path / "w.duckdb") as conn:
        assert changes_since(conn, "m", now=NOW) is None  # never fetched: in full
        store_watermark(conn, "m", NOW, full=True, now=NOW)
        later = NOW + timedelta(hours=6)
        assert changes_since(conn, "m", now=later) == NOW - WATERMARK_OVERLAP
        store_watermark(conn, "m", later, full=False, now=later)
        assert changes_since(conn, "m", now=later) == later - WATERMARK_OVERLAP
        # A day after the last full fetch, however recent the last fetch by changes.
        assert changes_since(conn, "m", now=NOW + FULL_FETCH_EVERY + timedelta(seconds=1)) is None
        forget_watermark(conn, "m")
        assert changes_since(conn, "m", now=later) is None

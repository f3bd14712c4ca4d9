"""Conditional page requests on the warehouse's side: which page validators are offered again, and
how a page answered 304 is staged (pure logic on a real DuckDB file and Parquet staging; the
pipeline test tests/pipelines/test_page_validators.py runs it against the sandbox)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import warehouse
from adapters.base import CatalogPage, PageValidator
from warehouse.catalog import STAGING_BATCH_ROWS, stage_raw_catalog
from warehouse.offers import payload_text, record_hash
from warehouse.pages import held_page_validators, page_digest, store_page_validators
from warehouse.records import held_payload_hashes, held_sources, load_changed_records

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def records(start: int, count: int, price: int = 10) -> list[dict[str, Any]]:
    return [{"id": i, "title": f"Item {i}", "price": price} for i in range(start, start + count)]


def store(
    db: Path,
    tmp_path: Path,
    pages: list[CatalogPage],
    validators: dict[int, PageValidator],
    *,
    first: bool,
    held_pages: dict[int, list[str]] | None = None,
) -> Any:
    staging = tmp_path / "staged.parquet"
    with warehouse.connect(db) as conn:
        held = None if first else held_payload_hashes(conn, "m")
    stats = stage_raw_catalog(
        pages, staging, marketplace="m", run_id="r", held_hashes=held, held_pages=held_pages
    )
    rows = pq.read_table(staging).to_pylist()
    with warehouse.connect(db) as conn:
        load_changed_records(conn, "m", staging, stats.page_hashes, replace_all=first)
        store_page_validators(conn, "m", validators, stats.page_hashes)
    return stats, rows


def validator(page: int, count: int) -> PageValidator:
    return PageValidator(f"products?limit=3&skip={3 * (page - 1)}", f'W/"{page}"', None, {
        "records": count,
        "total": 6,
    })  # fmt: skip


def test_a_page_answered_304_is_staged_from_the_hashes_held_for_it(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    first = [CatalogPage(records(0, 3), 1, NOW), CatalogPage(records(3, 3), 2, NOW)]
    validators = {1: validator(1, 3), 2: validator(2, 3)}
    stats, _ = store(db, tmp_path, first, validators, first=True)
    with warehouse.connect(db) as conn:
        offered, held_pages = held_page_validators(conn, "m")
    assert offered == validators
    assert page_digest(held_pages[1]) == stats.page_hashes[1][0]

    # Page 1 not modified, page 2 re-priced: page 1 is staged without payloads, from its
    # held hashes, at the same content hash; page 2's new records with theirs.
    second = [CatalogPage([], 1, NOW, held=True), CatalogPage(records(3, 3, price=12), 2, NOW)]
    stats2, rows = store(
        db, tmp_path, second, {1: validators[1]}, first=False, held_pages=held_pages
    )
    assert (stats2.pages_not_modified, stats2.records_not_modified, stats2.records) == (1, 3, 6)
    assert stats2.page_hashes[1][0] == stats.page_hashes[1][0]
    assert [(r["page"], r["record_index"], r["payload"]) for r in rows[:3]] == [
        (1, 0, None),
        (1, 1, None),
        (1, 2, None),
    ]
    assert all(r["payload"] is not None for r in rows[3:])
    with warehouse.connect(db) as conn:
        held = conn.execute(
            "SELECT page, record_index, json_extract(payload, '$.price')::INT FROM raw_catalog "
            "ORDER BY page, record_index"
        ).fetchall()
        offered, _ = held_page_validators(conn, "m")
    assert held == [(1, i, 10) for i in range(3)] + [(2, i, 12) for i in range(3)]
    assert offered == {1: validators[1]}  # page 2 came without one this time


def test_a_validator_is_not_offered_once_its_page_holds_other_records(tmp_path: Path) -> None:
    db = tmp_path / "w.duckdb"
    store(db, tmp_path, [CatalogPage(records(0, 3), 1, NOW)], {1: validator(1, 3)}, first=True)
    with warehouse.connect(db) as conn:
        # The page's records changed since the validator came (another writer, a partial
        # restore): its content hash no longer matches, so no conditional request for it.
        conn.execute("UPDATE raw_pages SET content_hash = 'other' WHERE marketplace = 'm'")
        assert held_page_validators(conn, "m") == ({}, {})


def test_a_page_answered_304_without_held_records_fails_the_staging(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="page 2 was not modified"):
        stage_raw_catalog(
            [CatalogPage(records(0, 3), 1, NOW), CatalogPage([], 2, NOW, held=True)],
            tmp_path / "staged.parquet",
            marketplace="m",
            run_id="r",
            held_hashes=set(),
            held_pages={1: ["x"]},
        )


def test_pages_staged_in_batches_keep_every_row_in_page_order(tmp_path: Path) -> None:
    """Staging writes STAGING_BATCH_ROWS rows at a time: pages that straddle a batch, a 304 page
    between fetched ones and the last partial batch come out row for row as staged page by
    page (position, payload only when not held, hash, fetch time, run)."""
    size = STAGING_BATCH_ROWS // 2 + 7  # pages straddle every batch boundary
    fetched = {page: records(page * 10_000, size, price=page) for page in (1, 2, 4, 5, 6)}
    held_page = [record_hash(payload_text(r)) for r in records(3 * 10_000, size)]
    held = {record_hash(payload_text(r)) for r in fetched[2]} | set(held_page)
    later = datetime(2026, 12, 3, 13, 0, tzinfo=UTC)
    pages = [
        CatalogPage(records=fetched[1], page=1, fetched_at=NOW),
        CatalogPage(records=fetched[2], page=2, fetched_at=NOW),
        CatalogPage(records=[], page=3, fetched_at=later, held=True),
        *(CatalogPage(records=fetched[p], page=p, fetched_at=later) for p in (4, 5, 6)),
    ]
    staging = tmp_path / "staged.parquet"
    stats = stage_raw_catalog(
        pages, staging, marketplace="m", run_id="r", held_hashes=held, held_pages={3: held_page}
    )
    expected = []
    for page in (1, 2, 3, 4, 5, 6):
        texts = [None] * size if page == 3 else [payload_text(r) for r in fetched[page]]
        hashes = held_page if page == 3 else [record_hash(t) for t in texts if t]
        for index, (text, digest) in enumerate(zip(texts, hashes, strict=True)):
            expected.append(
                {
                    "marketplace": "m",
                    "page": page,
                    "record_index": index,
                    "payload": None if digest in held else text,
                    "fetched_at": NOW,  # one fetch, one time: the first page's
                    "run_id": "r",
                    "payload_hash": digest,
                    "source_digest": None,
                }
            )
    assert pq.read_table(staging).to_pylist() == expected
    assert stats.records == 6 * size
    assert stats.payloads_staged == 4 * size
    assert stats.page_hashes[3] == (page_digest(held_page), size, NOW)


def test_records_not_parsed_are_staged_from_held_hashes_and_their_sources_kept(
    tmp_path: Path,
) -> None:
    """A feed read with source digests: the digests are staged and kept in raw_sources with the
    records' payload hashes; a record not parsed is staged from its held hash, and one whose
    hash the warehouse does not hold fails the staging; held_sources offers only digests of
    payloads still held."""
    db = tmp_path / "w.duckdb"
    catalog = records(0, 4)
    hashes = [record_hash(payload_text(r)) for r in catalog]
    sources = [f"source-{i}" for i in range(4)]
    first = [CatalogPage(records=catalog, page=1, sources=sources, held_hashes=[None] * 4)]
    store(db, tmp_path, first, {}, first=True)
    with warehouse.connect(db) as conn:
        held = held_payload_hashes(conn, "m")
        assert held_sources(conn, "m", held or set()) == dict(zip(sources, hashes, strict=True))

    changed = {**catalog[2], "price": 11}
    page = CatalogPage(
        records=[None, None, changed, None],  # type: ignore[list-item]
        page=1,
        sources=["source-0", "source-1", "source-2b", "source-3"],
        held_hashes=[hashes[0], hashes[1], None, hashes[3]],
    )
    stats, rows = store(db, tmp_path, [page], {}, first=False)
    assert stats.records_unparsed == 3
    assert stats.payloads_staged == 1
    new_hash = record_hash(payload_text(changed))
    assert [(r["payload"], r["payload_hash"], r["source_digest"]) for r in rows] == [
        (None, hashes[0], "source-0"),
        (None, hashes[1], "source-1"),
        (payload_text(changed), new_hash, "source-2b"),
        (None, hashes[3], "source-3"),
    ]
    with warehouse.connect(db) as conn:
        held = held_payload_hashes(conn, "m") or set()
        assert held_sources(conn, "m", held) == {
            "source-0": hashes[0],
            "source-1": hashes[1],
            "source-2b": new_hash,
            "source-3": hashes[3],
        }
        # A digest whose payload is no longer held is not offered.
        assert "source-0" not in held_sources(conn, "m", held - {hashes[0]})

    gone = CatalogPage(
        records=[None],
        page=1,
        sources=["source-x"],
        held_hashes=[hashes[2]],  # type: ignore[list-item]
    )
    with pytest.raises(RuntimeError, match="seen before"):
        stage_raw_catalog(
            [gone], tmp_path / "s.parquet", marketplace="m", run_id="r", held_hashes=held
        )

"""Skipping what did not change, by catalog document: conditional requests.

A catalog that is one document (a Google Merchant feed, Fake Store's unpaged list) is asked for
with the validators it last came with (`If-None-Match`/`If-Modified-Since`); a `304 Not
Modified` keeps everything the warehouse holds (:func:`confirm_unchanged_catalog`). A paged
catalog whose pages come with validators (DummyJSON's Express ETags) is asked for page by page
the same way (:func:`held_page_validators`): a page answered 304 is staged from the payload
hashes the warehouse holds for it, and the records of the other pages are skipped record by
record (warehouse/records.py). raw_pages keeps each page's hash, record count and fetch time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime

import duckdb
import polars as pl

from adapters.base import PageValidator


def held_validators(conn: duckdb.DuckDBPyConnection, marketplace: str) -> dict[str, str]:
    """The validators of the catalog the warehouse holds, for a conditional request; none when
    it holds no raw records (a 304 would then leave it empty)."""
    rows = conn.execute(
        "SELECT v.etag, v.last_modified FROM catalog_validators AS v WHERE v.marketplace = ? "
        "AND EXISTS (SELECT 1 FROM raw_pages AS r WHERE r.marketplace = v.marketplace "
        "AND r.content_hash IS NOT NULL)",
        [marketplace],
    ).fetchall()
    if not rows:
        return {}
    etag, last_modified = rows[0]
    return {
        name: value for name, value in (("etag", etag), ("last_modified", last_modified)) if value
    }


def store_validators(
    conn: duckdb.DuckDBPyConnection, marketplace: str, validators: dict[str, str], *, now: datetime
) -> None:
    """Keep what the marketplace sent with the catalog just stored (or forget stale ones)."""
    if not validators:
        conn.execute("DELETE FROM catalog_validators WHERE marketplace = ?", [marketplace])
        return
    conn.execute(
        "INSERT OR REPLACE INTO catalog_validators (marketplace, etag, last_modified, checked_at) "
        "VALUES (?, ?, ?, ?)",
        [marketplace, validators.get("etag"), validators.get("last_modified"), now],
    )


def confirm_unchanged_catalog(
    conn: duckdb.DuckDBPyConnection, marketplace: str, *, now: datetime
) -> tuple[int, int]:
    """After a 304: every held page was seen again now. Returns (pages, raw records)."""
    conn.execute(
        "UPDATE raw_pages SET fetched_at = ? WHERE marketplace = ? AND content_hash IS NOT NULL",
        [now, marketplace],
    )
    conn.execute(
        "UPDATE catalog_validators SET checked_at = ? WHERE marketplace = ?", [now, marketplace]
    )
    pages, records = conn.execute(
        "SELECT count(*), coalesce(sum(records), 0) FROM raw_pages "
        "WHERE marketplace = ? AND content_hash IS NOT NULL",
        [marketplace],
    ).fetchall()[0]
    return int(pages), int(records)


def page_digest(hashes: list[str]) -> str:
    """A page's content hash (raw_pages.content_hash): SHA-256 of its payload hashes in order."""
    return hashlib.sha256("\n".join(hashes).encode("ascii")).hexdigest()


def held_page_validators(
    conn: duckdb.DuckDBPyConnection, marketplace: str
) -> tuple[dict[int, PageValidator], dict[int, list[str]]]:
    """The validators of the pages the warehouse holds exactly as they came with them, and each
    such page's payload hashes in order (what a 304 for the page stands for).

    A validator counts only while raw_pages still holds the content hash it was stored with
    and the raw records of its page still add up to that hash: a 304 then means these records."""
    rows = conn.execute(
        "SELECT v.page, v.request, v.etag, v.last_modified, v.follow, v.content_hash "
        "FROM page_validators AS v JOIN raw_pages AS r "
        "ON r.marketplace = v.marketplace AND r.page = v.page AND r.content_hash = v.content_hash "
        "WHERE v.marketplace = ?",
        [marketplace],
    ).fetchall()
    if not rows:
        return {}, {}
    pages = conn.execute(
        "SELECT page, list(payload_hash ORDER BY record_index) FROM raw_catalog "
        "WHERE marketplace = ? AND page IN (SELECT page FROM page_validators WHERE marketplace = ?) "
        "GROUP BY page",
        [marketplace, marketplace],
    ).fetchall()
    hashes_by_page = {int(page): list(hashes) for page, hashes in pages}
    validators: dict[int, PageValidator] = {}
    held: dict[int, list[str]] = {}
    for page, request, etag, last_modified, follow, content_hash in rows:
        hashes = hashes_by_page.get(int(page))
        if not hashes or page_digest(hashes) != content_hash:
            continue
        validators[int(page)] = PageValidator(request, etag, last_modified, json.loads(follow))
        held[int(page)] = hashes
    return validators, held


def store_page_validators(
    conn: duckdb.DuckDBPyConnection,
    marketplace: str,
    validators: Mapping[int, PageValidator],
    page_hashes: Mapping[int, tuple[str, int, datetime]],
) -> None:
    """Keep the validators received with the pages just stored (`page_hashes`: raw_pages'
    content hash of each); every other page's are forgotten."""
    conn.execute("DELETE FROM page_validators WHERE marketplace = ?", [marketplace])
    rows = [
        (page, v.request, v.etag, v.last_modified, json.dumps(dict(v.follow)), page_hashes[page][0])
        for page, v in validators.items()
        if page in page_hashes
    ]
    if not rows:
        return
    frame = pl.DataFrame(
        rows,
        schema={
            "page": pl.Int32,
            "request": pl.String,
            "etag": pl.String,
            "last_modified": pl.String,
            "follow": pl.String,
            "content_hash": pl.String,
        },
        orient="row",
    )
    conn.register("received_page_validators", frame.to_arrow())
    try:
        conn.execute(
            "INSERT INTO page_validators (marketplace, page, request, etag, last_modified, "
            "follow, content_hash) SELECT ?, page, request, etag, last_modified, follow, "
            "content_hash FROM received_page_validators",
            [marketplace],
        )
    finally:
        conn.unregister("received_page_validators")

"""Skipping what did not change, by catalog document: conditional requests.

A catalog that is one document (a Google Merchant feed, Fake Store's unpaged list) is asked for
with the validators it last came with (`If-None-Match`/`If-Modified-Since`); a `304 Not
Modified` keeps everything the warehouse holds (:func:`confirm_unchanged_catalog`). Paged
catalogs are fetched in full and skipped record by record (warehouse/records.py); raw_pages keeps
each page's hash, record count and fetch time for both.
"""

from __future__ import annotations

from datetime import datetime

import duckdb


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

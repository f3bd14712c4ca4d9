"""A refresh that fetches only what changed: the watermark of each marketplace's last complete
fetch, and the full catalog rebuilt from a changed-since fetch and the raw records held.

The adapters of platforms that filter by modification time (adapters/changed_since.py) bring the
records modified since the watermark less WATERMARK_OVERLAP, and every record's id in the full
listing's order. :func:`stage_changed_catalog` walks those ids: a changed record is staged with
its payload, any other with the payload hash the warehouse holds for its id (no payload: the
warehouse has it), each at the page and position a full fetch would have put it. The staging
file is then exactly what a full fetch would have staged, so warehouse/records.py loads and
normalizes it as it does any refresh, and the tables equal a full run's
(tests/pipelines/test_changed_since.py).

Whatever cannot be rebuilt exactly raises ChangesUnavailable and the catalog is fetched in
full: an id neither changed nor held (a product created with an older modification time), an
id the listing or the warehouse holds more than once whose records cannot be told apart (they
are fetched again by id first), a record without a usable id, or more changes than
MAX_CHANGED_SHARE of the catalog.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from adapters.changed_since import CatalogChanges, ChangesUnavailable
from warehouse.catalog import RAW_STAGING_SCHEMA, RawFetchStats, raw_staging_page
from warehouse.offers import payload_text

# Changes are asked for since the last fetch's start less this: modification times a little
# behind the marketplace's clock (a save committed after the time it records, clock skew between
# a platform's servers) are still caught. Records seen twice are staged as held: no cost.
WATERMARK_OVERLAP = timedelta(minutes=10)
# A full fetch at least this often: it bounds what a change that did not move a record's
# modification time can cost (real Shopify keeps a product's updated_at when only an inventory
# level changes), and after a long pause most of a catalog has changed anyway.
FULL_FETCH_EVERY = timedelta(hours=24)
# More changed records than this share of the catalog held: a full fetch, which streams.
MAX_CHANGED_SHARE = 0.25


def changes_since(
    conn: duckdb.DuckDBPyConnection, marketplace: str, *, now: datetime
) -> datetime | None:
    """The moment to ask the marketplace for changes since: the last complete fetch's start
    less WATERMARK_OVERLAP; None (fetch in full) without one, or when the last full fetch
    began more than FULL_FETCH_EVERY before `now` (the marketplace's clock, as near as ours)."""
    rows = conn.execute(
        "SELECT fetch_started_at, full_fetch_started_at FROM catalog_watermarks "
        "WHERE marketplace = ?",
        [marketplace],
    ).fetchall()
    if not rows:
        return None
    started, full_started = rows[0]
    if now - full_started > FULL_FETCH_EVERY:
        return None
    return started - WATERMARK_OVERLAP


def store_watermark(
    conn: duckdb.DuckDBPyConnection,
    marketplace: str,
    started_at: datetime,
    *,
    full: bool,
    now: datetime,
) -> None:
    """The fetch that began at `started_at` (by the marketplace's clock) is stored: the next
    asks for changes since then."""
    conn.execute(
        "INSERT INTO catalog_watermarks (marketplace, fetch_started_at, full_fetch_started_at, "
        "stored_at) VALUES ($m, $started, $started, $now) ON CONFLICT (marketplace) DO UPDATE "
        "SET fetch_started_at = excluded.fetch_started_at, stored_at = excluded.stored_at"
        + (", full_fetch_started_at = excluded.full_fetch_started_at" if full else ""),
        {"m": marketplace, "started": started_at, "now": now},
    )


def forget_watermark(conn: duckdb.DuckDBPyConnection, marketplace: str) -> None:
    """After a failed or replayed fetch: the next one is a full fetch."""
    conn.execute("DELETE FROM catalog_watermarks WHERE marketplace = ?", [marketplace])


def held_records(conn: duckdb.DuckDBPyConnection, marketplace: str) -> list[tuple[str | None, str]]:
    """(id, payload hash) of every raw record held, in catalog order."""
    rows = conn.execute(
        "SELECT json_extract_string(payload, '$.id'), payload_hash FROM raw_catalog "
        "WHERE marketplace = ? ORDER BY page, record_index",
        [marketplace],
    ).fetchall()
    return [(record_id, digest) for record_id, digest in rows]


def _id_text(value: object) -> str | None:
    """An id as json_extract_string reads it from a stored payload; None if not a scalar."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | str):
        return str(value)
    return None


def stage_changed_catalog(
    changes: CatalogChanges,
    held: list[tuple[str | None, str]],
    fetch_by_ids: Callable[[list[str]], list[dict[str, Any]]],
    staging_path: Path,
    *,
    marketplace: str,
    run_id: str,
    fetched_at: datetime,
) -> RawFetchStats:
    """Stage the full catalog a full fetch would have brought, from `changes` and the `held`
    records (see the module's docstring); ChangesUnavailable when it cannot be exact."""
    ids = [_id_text(value) for value in changes.ids]
    if any(record_id is None for record_id in ids):
        raise ChangesUnavailable("a record of the id listing has no usable id")
    listed = Counter(ids)
    held_by_id: dict[str, list[str]] = defaultdict(list)
    for record_id, digest in held:
        if record_id is not None:
            held_by_id[record_id].append(digest)
    changed: dict[str, dict[str, Any]] = {}
    repeated = {i for i, count in listed.items() if count > 1}
    repeated |= {i for i, digests in held_by_id.items() if len(digests) > 1 and i in listed}
    for record in changes.changed:
        record_id = _id_text(record.get("id")) if isinstance(record, dict) else None
        if record_id is None or record_id not in listed:
            continue  # gone since it changed, or unusable: the id listing decides
        if record_id in changed:
            repeated.add(record_id)
        changed[record_id] = record
    # Records sharing an id: fetched again, all of them, and placed in listing order.
    again: dict[str, deque[dict[str, Any]]] = defaultdict(deque)
    if repeated:
        for record in fetch_by_ids(sorted(repeated)):
            record_id = _id_text(record.get("id")) if isinstance(record, dict) else None
            if record_id in repeated:
                again[record_id].append(record)
        for record_id in repeated:
            if len(again[record_id]) != listed[record_id]:
                raise ChangesUnavailable(
                    f"id {record_id}: {listed[record_id]} records listed, "
                    f"{len(again[record_id])} fetched by id"
                )
    held_hashes = {digest for _, digest in held}
    staging_path.parent.mkdir(parents=True, exist_ok=True)
    page_size = max(1, changes.page_size)
    page_hashes: dict[int, tuple[str, int, datetime]] = {}
    byte_count = payloads_staged = 0
    with pq.ParquetWriter(staging_path, RAW_STAGING_SCHEMA) as writer:
        for start in range(0, len(ids), page_size):
            page = start // page_size + 1
            payloads: list[str | None] = []
            hashes: list[str] = []
            for record_id in ids[start : start + page_size]:
                assert record_id is not None
                if record_id in repeated:
                    record: dict[str, Any] | None = again[record_id].popleft()
                else:
                    record = changed.get(record_id)
                if record is None:
                    digests = held_by_id.get(record_id)
                    if not digests:
                        raise ChangesUnavailable(f"id {record_id} is neither changed nor held")
                    payloads.append(None)
                    hashes.append(digests[0])
                    continue
                text = payload_text(record)
                data = text.encode("utf-8")
                digest = hashlib.sha256(data).hexdigest()
                byte_count += len(data)
                held_payload = digest in held_hashes
                payloads.append(None if held_payload else text)
                payloads_staged += not held_payload
                hashes.append(digest)
            page_digest = hashlib.sha256("\n".join(hashes).encode("ascii")).hexdigest()
            page_hashes[page] = (page_digest, len(hashes), fetched_at)
            writer.write_table(
                raw_staging_page(
                    marketplace,
                    page,
                    payloads=payloads,
                    hashes=hashes,
                    fetched_at=fetched_at,
                    run_id=run_id,
                )
            )
    return RawFetchStats(
        pages=len(page_hashes),
        records=len(ids),
        bytes=byte_count,
        staging_path=staging_path,
        page_hashes=page_hashes,
        payloads_staged=payloads_staged,
    )

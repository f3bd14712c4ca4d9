"""Fetching only what changed: what the adapters whose platform filters by modification time
(Shopify's Admin REST `updated_at_min`, WooCommerce's Store API `after` with
`date_column=modified_gmt`) hand the pipeline instead of every page.

A changed-since fetch brings the records modified since a moment and, to see removals, every
record's id in the full listing's order (`fields=id` / `_fields=id`: a few bytes a record). The
pipeline rebuilds the full catalog from those and the raw records it holds
(warehouse/changed_since.py); when it cannot do so exactly it raises ChangesUnavailable and the
catalog is fetched in full.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from adapters.base import CatalogPage


class ChangesUnavailable(Exception):
    """The changed-since fetch cannot stand in for a full one (too many changes, an id neither
    changed nor held, repeated ids that cannot be told apart): fetch the catalog in full."""


@dataclass(frozen=True, slots=True)
class CatalogChanges:
    """What a changed-since fetch brought back."""

    # Records modified since the moment asked for, as the full listing would send them.
    changed: list[dict[str, Any]]
    # Every record's id, in the full listing's order (repeated ids repeated).
    ids: list[object]
    # Records a page of the full listing holds: the positions a full fetch would record.
    page_size: int
    # The marketplace's clock when this fetch began: the next fetch asks for changes since then.
    started_at: datetime


def server_time(response: httpx.Response) -> datetime:
    """The response's `Date` header (the marketplace's clock, which its modification times
    follow) as an aware UTC datetime; our clock when it is missing or unreadable."""
    raw = response.headers.get("Date")
    if raw:
        try:
            moment = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            moment = None
        if moment is not None:
            return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC)


def clocked_catalog_pages(
    adapter: Any, pages: Iterable[tuple[list[dict[str, Any]], httpx.Response]]
) -> Iterator[CatalogPage]:
    """`pages` (records, response) as CatalogPages numbered from 1 until the first empty one,
    noting the marketplace's clock at the first response in `adapter.catalog_started_at`: the
    moment the next changed-since fetch asks from."""
    adapter.catalog_started_at = None
    for page, (records, response) in enumerate(pages, start=1):
        if adapter.catalog_started_at is None:
            adapter.catalog_started_at = server_time(response)
        if not records:
            return
        yield CatalogPage(records=records, page=page)


def collect_changed(pages: Iterable[list[dict[str, Any]]], *, at_most: int) -> list[dict[str, Any]]:
    """The changed records of every page; ChangesUnavailable past `at_most` (a full fetch
    streams what would otherwise be held in memory here)."""
    records: list[dict[str, Any]] = []
    for page in pages:
        records.extend(page)
        if len(records) > at_most:
            raise ChangesUnavailable(f"more than {at_most} records changed")
    return records


def listed_ids(pages: Iterable[list[Mapping[str, Any]]]) -> list[object]:
    """The `id` of every record of an id-only listing, in order."""
    return [
        record.get("id") if isinstance(record, Mapping) else None for p in pages for record in p
    ]

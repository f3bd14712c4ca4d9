"""Affiliate product feeds published as CSV or TSV, read through a column mapping in
marketplaces.toml (``kind = "csv_feed"``). Marketplaces without a buyer API (Jumia and many
others) reach affiliates this way: networks publish one unpaged file per catalog with their own
column names, a price in one of a few encodings, often a separate currency column.

The feed is streamed: bytes are decoded as they arrive (broken bytes become U+FFFD, so one bad
row cannot cost the rest), rows are parsed one at a time and handed on in pages of `page_size`,
so a feed of a million rows never sits in memory. A row that cannot be an offer is kept as a raw
record carrying its problem and rejected by :meth:`CsvFeedAdapter.normalize_record` with a
reason, like every adapter's records: the pipeline quarantines it, nothing is dropped.
See docs/amazon-and-affiliate-feeds.md for every option.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from adapters.base import (
    BadPayload,
    Capability,
    CatalogPage,
    MarketplaceConfig,
    Offer,
    pages_of,
)
from adapters.fields import (
    reject,
    require_amount_currency_price,
    require_decimal_price,
    require_mapping,
    require_minor_unit_price,
)
from adapters.http_adapter import HttpMarketplaceAdapter
from adapters.mapped_offer import offer_from_mapped_fields
from adapters.registry import MarketplaceConfigError

PRICE_ENCODINGS = ("decimal_string", "amount_currency_text", "minor_units")
REQUIRED_COLUMNS = ("external_id", "title", "price")
OPTIONAL_COLUMNS = (
    "sale_price",
    "currency",
    "description",
    "product_url",
    "image_url",
    "brand",
    "model",
    "gtin",
    "mpn",
    "sku",
    "category",
    "availability",
    "stock",
)
DELIMITERS = {",": ",", ";": ";", "|": "|", "tab": "\t", "\t": "\t"}
FEED_ACCEPT = "text/csv, text/tab-separated-values;q=0.9, text/plain;q=0.5"
# One field may be long (a 100 KB description), not unbounded.
MAX_FIELD_CHARS = 1_000_000
# Keys a raw record carries besides the feed's own columns.
LINE_KEY = "_line"
PROBLEM_KEY = "_problem"
_KNOWN_OPTIONS = frozenset(
    {
        "feed_path",
        "delimiter",
        "columns",
        "price_encoding",
        "price_scale",
        "thousands_separator",
        "decimal_comma",
        # The HTTP client's (adapters.http_adapter), as for every format.
        "read_timeout_s",
        "deadline_s",
    }
)


@dataclass(frozen=True, slots=True)
class CsvFeedOptions:
    """The validated options of one CSV feed marketplace."""

    feed_path: str
    delimiter: str
    columns: Mapping[str, str]  # Offer field -> the feed's column name
    price_encoding: str
    price_scale: int | None
    thousands_separator: str | None
    decimal_comma: bool


def parse_csv_feed_options(slug: str, options: Mapping[str, Any]) -> CsvFeedOptions:
    """Validate `[marketplace.options]`; every error names the marketplace and the option."""

    def fail(option: str, problem: str) -> MarketplaceConfigError:
        return MarketplaceConfigError(f"marketplace {slug}: options.{option}: {problem}")

    unknown = sorted(set(options) - _KNOWN_OPTIONS)
    if unknown:
        raise fail(unknown[0], "unknown option (a typo?)")
    feed_path = options.get("feed_path")
    if not isinstance(feed_path, str) or not feed_path.strip():
        raise fail("feed_path", "is required: the feed's path or URL")
    delimiter = options.get("delimiter", ",")
    if delimiter not in DELIMITERS:
        raise fail("delimiter", f"{delimiter!r} is not one of ',', ';', '|', 'tab'")
    columns = options.get("columns")
    if not isinstance(columns, Mapping):
        raise fail("columns", "is required: a table mapping Offer fields to the feed's columns")
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            raise fail(f"columns.{name}", "is required")
    for name, column in columns.items():
        if name not in REQUIRED_COLUMNS and name not in OPTIONAL_COLUMNS:
            fields = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
            raise fail(f"columns.{name}", f"is not an Offer field (one of {fields})")
        if not isinstance(column, str) or not column.strip():
            raise fail(f"columns.{name}", f"must be a column name, not {column!r}")
    encoding = options.get("price_encoding", "decimal_string")
    if encoding not in PRICE_ENCODINGS:
        raise fail("price_encoding", f"{encoding!r} is not one of {', '.join(PRICE_ENCODINGS)}")
    scale = options.get("price_scale")
    if encoding == "minor_units":
        if isinstance(scale, bool) or not isinstance(scale, int) or not 0 <= scale <= 4:
            raise fail("price_scale", f"minor_units needs an integer from 0 to 4, not {scale!r}")
    elif scale is not None:
        raise fail("price_scale", "only applies to price_encoding = 'minor_units'")
    if encoding == "amount_currency_text" and "currency" in columns:
        raise fail("columns.currency", "amount_currency_text prices carry their own currency")
    thousands = options.get("thousands_separator")
    if thousands is not None and thousands not in (",", ".", " ", "'"):
        raise fail("thousands_separator", f"{thousands!r} is not one of ',', '.', ' ', \"'\"")
    decimal_comma = options.get("decimal_comma", False)
    if not isinstance(decimal_comma, bool):
        raise fail("decimal_comma", "must be true or false")
    if decimal_comma and thousands == ",":
        raise fail("thousands_separator", "',' cannot also be the decimal separator")
    return CsvFeedOptions(
        feed_path=feed_path.strip(),
        delimiter=DELIMITERS[delimiter],
        columns={str(k): str(v).strip() for k, v in columns.items()},
        price_encoding=encoding,
        price_scale=scale,
        thousands_separator=thousands,
        decimal_comma=decimal_comma,
    )


def text_lines(chunks: Iterable[str]) -> Iterator[str]:
    """Text chunks as lines with their line endings kept (what the csv module reads; a quoted
    field may span lines), never holding more than one line beyond the current chunk."""
    pending = ""
    for chunk in chunks:
        pending += chunk
        lines = pending.splitlines(keepends=True)
        # The last piece may be a line still arriving (or a lone "\r" before its "\n").
        pending = lines.pop() if lines and not lines[-1].endswith("\n") else ""
        yield from lines
    if pending:
        yield pending


def parse_feed_rows(
    chunks: Iterable[str], *, delimiter: str, marketplace: str
) -> Iterator[dict[str, Any]]:
    """Every data row of a CSV/TSV feed as a record {column: value}, plus ``_line`` (the row's
    number, header = 1) and, for a row with the wrong number of fields, ``_problem``.

    Raises BadPayload("invalid_csv") when there is no header or the text is not CSV at all.
    """
    reader = csv.reader(text_lines(chunks), delimiter=delimiter, strict=False)
    try:
        header = next(reader, None)
        if header is None or not any(cell.strip() for cell in header):
            raise BadPayload(
                "invalid_csv", detail="the feed has no header row", marketplace=marketplace
            )
        names = [cell.strip().lstrip("\ufeff") for cell in header]
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line
            record: dict[str, Any] = dict(zip(names, row, strict=False))
            record[LINE_KEY] = reader.line_num
            if len(row) != len(names):
                record[PROBLEM_KEY] = f"{len(row)} fields where the header has {len(names)}"
            yield record
    except csv.Error as exc:
        raise BadPayload(
            "invalid_csv", detail=f"line {reader.line_num}: {exc}", marketplace=marketplace
        ) from exc


class CsvFeedAdapter(HttpMarketplaceAdapter):
    """A CSV/TSV affiliate feed: one document, every row an offer; catalog only (hand-off)."""

    capabilities = frozenset({Capability.CATALOG})

    # Sends no writes (catalog only), so there is nothing a key could make safe to resend;
    # a format that gains an order API must decide this anew.
    honours_idempotency_keys = False

    def __init__(
        self,
        config: MarketplaceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.options = parse_csv_feed_options(config.slug, config.options)
        super().__init__(config, transport=transport, sleep=sleep)
        self.page_size = max(1, config.page_size)

    def fetch_catalog_pages(self) -> Iterator[CatalogPage]:
        """The feed from one request, handed on in pages of `page_size` rows as it downloads.
        A header without a mapped required column fails the whole feed (the mapping is wrong)."""
        if csv.field_size_limit() < MAX_FIELD_CHARS:
            csv.field_size_limit(MAX_FIELD_CHARS)
        chunks = self.stream_text(self.options.feed_path, headers={"Accept": FEED_ACCEPT})
        rows = parse_feed_rows(chunks, delimiter=self.options.delimiter, marketplace=self.slug)
        yield from pages_of(self._header_checked(rows), self.page_size)

    def _header_checked(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        """`rows`, once the first has shown that the header has every mapped required column."""
        for position, record in enumerate(rows):
            if position == 0:
                self._check_columns(record)
            yield record

    def _check_columns(self, record: Mapping[str, Any]) -> None:
        missing = [
            column
            for field, column in self.options.columns.items()
            if field in REQUIRED_COLUMNS and column not in record
        ]
        if missing:
            raise BadPayload(
                "bad_feed_header",
                detail=f"no column {', '.join(repr(c) for c in missing)} in the feed's header",
                marketplace=self.slug,
            )

    # --- Normalization ------------------------------------------------------------------

    def _cell(self, record: Mapping[str, Any], field: str) -> str | None:
        column = self.options.columns.get(field)
        if column is None:
            return None
        value = record.get(column)
        if not isinstance(value, str):
            return None
        value = value.strip()
        return value or None

    def _amount_text(self, text: str) -> str:
        """A written amount as a plain decimal string ("12,499.00" -> "12499.00")."""
        if self.options.thousands_separator:
            text = text.replace(self.options.thousands_separator, "")
        if self.options.decimal_comma:
            text = text.replace(",", ".")
        return text

    def _price(self, record: Mapping[str, Any]) -> tuple[int, str]:
        # A sale price, when the feed has one, is what the shopper pays.
        text = self._cell(record, "sale_price") or self._cell(record, "price")
        if self.options.price_encoding == "amount_currency_text":
            if text is not None:
                amount, _, code = text.rpartition(" ")
                text = f"{self._amount_text(amount)} {code}" if amount else text
            return require_amount_currency_price(text, marketplace=self.slug)
        currency = (self._cell(record, "currency") or self.config.currency).upper()
        if self.options.price_encoding == "minor_units":
            minor = require_minor_unit_price(
                text, self.options.price_scale, currency, marketplace=self.slug
            )
            return minor, currency
        if text is not None:
            text = self._amount_text(text)
        return require_decimal_price(text, currency, marketplace=self.slug), currency

    def normalize_record(self, record: Mapping[str, Any]) -> Offer:
        """One feed row as an Offer, each field read from its mapped column."""
        row = require_mapping(record, marketplace=self.slug)
        problem = row.get(PROBLEM_KEY)
        if problem:
            raise reject(
                "bad_record", f"line {row.get(LINE_KEY)}: {problem}", marketplace=self.slug
            )

        def cell(name: str) -> str | None:
            # The mapping calls the Offer's `available` field by its feed-facing name.
            return self._cell(row, "availability" if name == "available" else name)

        return offer_from_mapped_fields(self.slug, cell, lambda: self._price(row))

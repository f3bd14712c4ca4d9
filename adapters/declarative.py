"""A JSON marketplace described by configuration alone (`[marketplace.options]` in
marketplaces.toml): where the list is, how it pages, where each Offer field lives in a record,
and how the price is written. See docs/declarative-adapter.md for every option and an example.

The options are validated when the adapter is built, so a typo fails at start-up with a message
naming the marketplace and the option, not halfway through a catalog run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from adapters.base import (
    BadPayload,
    Capability,
    CatalogPage,
    MarketplaceConfig,
    NotFound,
    Offer,
    OrderRequest,
    OrderState,
    PlacedOrder,
    unsupported,
)
from adapters.declarative_orders import DeclarativeOrders, parse_order_options
from adapters.fields import (
    decode_json_body,
    dig,
    optional_int,
    optional_text,
    reject,
    require_amount_currency_price,
    require_decimal_price,
    require_mapping,
    require_minor_unit_price,
)
from adapters.http_adapter import HttpMarketplaceAdapter
from adapters.mapped_offer import offer_from_mapped_fields
from adapters.registry import MarketplaceConfigError

PAGINATION_STYLES = ("page", "offset", "link", "cursor", "none")
PRICE_ENCODINGS = ("float", "decimal_string", "minor_units", "amount_currency_text")
REQUIRED_FIELDS = ("external_id", "title", "price")
OPTIONAL_FIELDS = (
    "description",
    "image_url",
    "product_url",
    "category",
    "brand",
    "model",
    "gtin",
    "mpn",
    "sku",
    "rating",
    "rating_count",
    "available",
    "stock",
)

# Which pagination styles each paging option belongs to (None: every style).
_PAGING_OPTIONS: Mapping[str, tuple[str, ...]] = {
    "page_param": ("page",),
    "per_page_param": ("page",),
    "start_page": ("page",),
    "offset_param": ("offset",),
    "total_path": ("offset",),
    "cursor_param": ("cursor",),
    "cursor_path": ("cursor",),
    "next_path": ("link",),
    "limit_param": ("offset", "cursor", "link"),
}
_OTHER_OPTIONS = frozenset(
    {
        "read_timeout_s",
        "deadline_s",
        "retry_unknown_writes",
        "shipping_tax_allowance_minor",
        "shipping_tax_allowance_bps",
        "idempotency_key_retention_hours",
        "list_path",
        "pagination",
        "records_path",
        "fields",
        "price_encoding",
        "price_scale",
        "price_scale_path",
        "currency_path",
        "api_key_header",
        "api_key_param",
        "item_path",
        "item_record_path",
        "orders",
    }
)


@dataclass(frozen=True, slots=True)
class DeclarativeOptions:
    """The validated options of one declarative marketplace."""

    list_path: str
    pagination: str
    records_path: str
    fields: Mapping[str, str]
    price_encoding: str
    page_param: str = "page"
    per_page_param: str = "per_page"
    start_page: int = 1
    offset_param: str = "offset"
    limit_param: str | None = None
    total_path: str | None = None
    cursor_param: str = "cursor"
    cursor_path: str | None = None
    next_path: str | None = None
    price_scale: int | None = None
    price_scale_path: str | None = None
    currency_path: str | None = None
    api_key_header: str | None = None
    api_key_param: str | None = None
    item_path: str | None = None
    item_record_path: str = ""


def _path_ok(path: object) -> bool:
    """A dotted path: non-empty segments without spaces."""
    return (
        isinstance(path, str)
        and path != ""
        and all(
            segment and not segment.isspace() and " " not in segment for segment in path.split(".")
        )
    )


def parse_declarative_options(slug: str, options: Mapping[str, Any]) -> DeclarativeOptions:
    """Validate `[marketplace.options]`; every error names the marketplace and the option."""

    def fail(option: str, problem: str) -> MarketplaceConfigError:
        return MarketplaceConfigError(f"marketplace {slug}: options.{option}: {problem}")

    unknown = sorted(set(options) - _OTHER_OPTIONS - set(_PAGING_OPTIONS))
    if unknown:
        raise fail(unknown[0], "unknown option (a typo?)")

    def text_option(name: str, *, required: bool = False, path: bool = False) -> str | None:
        value = options.get(name)
        if value is None:
            if required:
                raise fail(name, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            raise fail(name, f"must be a non-empty string, not {value!r}")
        if path and not _path_ok(value):
            raise fail(name, f"{value!r} is not a dotted path like 'data.items'")
        return value

    list_path = text_option("list_path", required=True)
    pagination = text_option("pagination", required=True)
    if pagination not in PAGINATION_STYLES:
        raise fail("pagination", f"{pagination!r} is not one of {', '.join(PAGINATION_STYLES)}")
    for name, styles in _PAGING_OPTIONS.items():
        if name in options and pagination not in styles:
            raise fail(name, f"only applies to pagination = {' or '.join(repr(s) for s in styles)}")

    records_path = options.get("records_path", "")
    if records_path != "" and not _path_ok(records_path):
        raise fail(
            "records_path", f"{records_path!r} is not a dotted path (or '' for a top-level list)"
        )

    fields = options.get("fields")
    if not isinstance(fields, Mapping):
        raise fail("fields", "is required: a table mapping Offer fields to dotted paths")
    for name in REQUIRED_FIELDS:
        if name not in fields:
            raise fail(f"fields.{name}", "is required")
    for name, path in fields.items():
        if name not in REQUIRED_FIELDS and name not in OPTIONAL_FIELDS:
            raise fail(
                f"fields.{name}",
                f"is not an Offer field (one of {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)})",
            )
        if not _path_ok(path):
            raise fail(f"fields.{name}", f"{path!r} is not a dotted path like 'pricing.display'")

    price_encoding = text_option("price_encoding", required=True)
    if price_encoding not in PRICE_ENCODINGS:
        raise fail(
            "price_encoding", f"{price_encoding!r} is not one of {', '.join(PRICE_ENCODINGS)}"
        )
    price_scale = options.get("price_scale")
    price_scale_path = text_option("price_scale_path", path=True)
    if price_encoding == "minor_units":
        if (price_scale is None) == (price_scale_path is None):
            raise fail(
                "price_scale", "minor_units needs exactly one of price_scale or price_scale_path"
            )
        if price_scale is not None and (
            isinstance(price_scale, bool)
            or not isinstance(price_scale, int)
            or not 0 <= price_scale <= 4
        ):
            raise fail("price_scale", f"must be an integer from 0 to 4, not {price_scale!r}")
    elif price_scale is not None or price_scale_path is not None:
        name = "price_scale" if price_scale is not None else "price_scale_path"
        raise fail(name, "only applies to price_encoding = 'minor_units'")
    currency_path = text_option("currency_path", path=True)
    if currency_path and price_encoding == "amount_currency_text":
        raise fail("currency_path", "amount_currency_text prices carry their own currency")

    if pagination == "cursor" and not options.get("cursor_path"):
        raise fail("cursor_path", "is required with pagination = 'cursor'")
    start_page = options.get("start_page", 1)
    if isinstance(start_page, bool) or not isinstance(start_page, int) or start_page < 0:
        raise fail("start_page", f"must be a non-negative integer, not {start_page!r}")

    item_path = text_option("item_path")
    if item_path is not None and "{id}" not in item_path:
        raise fail("item_path", "must contain '{id}', e.g. 'api/v1/listings/{id}'")
    item_record_path = options.get("item_record_path", "")
    if item_record_path != "" and not _path_ok(item_record_path):
        raise fail("item_record_path", f"{item_record_path!r} is not a dotted path")
    if "item_record_path" in options and item_path is None:
        raise fail("item_record_path", "only applies together with item_path")

    return DeclarativeOptions(
        list_path=str(list_path),
        pagination=str(pagination),
        records_path=records_path,
        fields={str(name): str(path) for name, path in fields.items()},
        price_encoding=str(price_encoding),
        page_param=text_option("page_param") or "page",
        per_page_param=text_option("per_page_param") or "per_page",
        start_page=start_page,
        offset_param=text_option("offset_param") or "offset",
        limit_param=text_option("limit_param"),
        total_path=text_option("total_path", path=True),
        cursor_param=text_option("cursor_param") or "cursor",
        cursor_path=text_option("cursor_path", path=True),
        next_path=text_option("next_path", path=True),
        price_scale=price_scale,
        price_scale_path=price_scale_path,
        currency_path=currency_path,
        api_key_header=text_option("api_key_header"),
        api_key_param=text_option("api_key_param"),
        item_path=item_path,
        item_record_path=item_record_path,
    )


class DeclarativeJsonAdapter(HttpMarketplaceAdapter):
    """Any paged JSON catalog API, read through its configured paths: catalog, live offers
    when `item_path` names a per-product endpoint, and orders when an `orders` table describes
    the order API (adapters/declarative_orders.py)."""

    @property
    def honours_idempotency_keys(self) -> bool:
        """As configured (default True): the API is described in marketplaces.toml, and so is
        whether it honours Idempotency-Key (`retry_unknown_writes`)."""
        return self.keys_honoured_as_configured

    def __init__(
        self,
        config: MarketplaceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.options = parse_declarative_options(config.slug, config.options)
        super().__init__(config, transport=transport, sleep=sleep)
        self.page_size = max(1, config.page_size)
        capabilities = {Capability.CATALOG}
        if self.options.item_path:
            capabilities.add(Capability.LIVE_OFFER)
        self.orders: DeclarativeOrders | None = None
        if "orders" in config.options:
            order_options = parse_order_options(config.slug, config.options["orders"])
            self.orders = DeclarativeOrders(self, order_options)
            capabilities |= order_options.capabilities
        self.capabilities = frozenset(capabilities)

    # --- Requests ---------------------------------------------------------------------------

    def auth(self) -> tuple[dict[str, str], dict[str, str]]:
        """(headers, query parameters) that carry the API key, as configured."""
        headers: dict[str, str] = {}
        params: dict[str, str] = {}
        if self.options.api_key_header:
            headers[self.options.api_key_header] = self.require_api_key()
        if self.options.api_key_param:
            params[self.options.api_key_param] = self.require_api_key()
        return headers, params

    def get_with_key(self, path: str, params: Mapping[str, Any]) -> tuple[Any, httpx.Response]:
        """GET with the API key where it is configured (header or query parameter)."""
        headers, key_params = self.auth()
        if path.startswith(("http://", "https://")):
            # A followed link already carries its query; httpx would replace it with `params`.
            url = httpx.URL(path).copy_merge_params({**params, **key_params})
            response = self.http.request("GET", str(url), headers=headers)
        else:
            response = self.http.request(
                "GET", path, params={**params, **key_params}, headers=headers
            )
        return decode_json_body(response, marketplace=self.slug), response

    def _records(self, body: Any, where: str) -> list[Any]:
        records = dig(body, self.options.records_path)
        if not isinstance(records, list):
            path = self.options.records_path or "(top level)"
            raise BadPayload(
                "bad_page", detail=f"{where}: no record list at {path}", marketplace=self.slug
            )
        return records

    # --- Catalog ----------------------------------------------------------------------------

    def fetch_catalog_pages(self) -> Iterator[CatalogPage]:
        """Every page in the API's own order, paged the configured way."""
        pages = {
            "page": self._pages_by_number,
            "offset": self._pages_by_offset,
            "link": self._pages_by_link,
            "cursor": self._pages_by_cursor,
            "none": self._single_page,
        }[self.options.pagination]
        yield from pages()

    def _single_page(self) -> Iterator[CatalogPage]:
        body, _ = self.get_with_key(self.options.list_path, {})
        yield CatalogPage(records=self._records(body, self.options.list_path), page=1)

    def _pages_by_number(self) -> Iterator[CatalogPage]:
        # Stops at the first empty page: a short page may only mean the API caps page size lower.
        number = self.options.start_page
        page = 1
        while True:
            params = {self.options.page_param: number, self.options.per_page_param: self.page_size}
            body, _ = self.get_with_key(self.options.list_path, params)
            records = self._records(body, f"page {number}")
            if not records:
                return
            yield CatalogPage(records=records, page=page)
            number, page = number + 1, page + 1

    def _pages_by_offset(self) -> Iterator[CatalogPage]:
        offset = 0
        page = 1
        limit_param = self.options.limit_param or "limit"
        while True:
            params = {self.options.offset_param: offset, limit_param: self.page_size}
            body, _ = self.get_with_key(self.options.list_path, params)
            records = self._records(body, f"offset {offset}")
            if not records:
                return
            yield CatalogPage(records=records, page=page)
            offset += len(records)
            total = (
                optional_int(dig(body, self.options.total_path))
                if self.options.total_path
                else None
            )
            if total is not None and offset >= total:
                return
            page += 1

    def _first_params(self) -> dict[str, Any]:
        return {self.options.limit_param: self.page_size} if self.options.limit_param else {}

    def _pages_by_link(self) -> Iterator[CatalogPage]:
        target = self.options.list_path
        params = self._first_params()
        seen: set[str] = set()
        page = 1
        while True:
            body, response = self.get_with_key(target, params)
            records = self._records(body, f"page {page}")
            if not records:
                return
            yield CatalogPage(records=records, page=page)
            if self.options.next_path:
                next_url = optional_text(dig(body, self.options.next_path), limit=4_000)
            else:
                next_url = response.links.get("next", {}).get("url")
            if not next_url:
                return
            target = str(response.url.join(next_url))
            if target in seen:
                raise BadPayload("pagination_loop", detail=f"{target} again", marketplace=self.slug)
            seen.add(target)
            params = {}
            page += 1

    def _pages_by_cursor(self) -> Iterator[CatalogPage]:
        """Cursor pages, each asked for conditionally when the API sent it with an ETag or
        Last-Modified (a page answered 304 is the one held, and its held body's cursor leads
        on)."""
        cursor: str | None = None
        seen: set[str] = set()
        page = 1
        headers, key_params = self.auth()
        while True:
            params = self._first_params()
            if cursor is not None:
                params[self.options.cursor_param] = cursor
            reply = self.get_catalog_page(
                page, self.options.list_path, params, headers=headers, secret_params=key_params
            )
            if reply is None:
                next_cursor = self.held_page_follow(page).get("next_cursor")
                yield CatalogPage(records=[], page=page, held=True)
            else:
                body = reply[0]
                records = self._records(body, f"page {page}")
                if not records:
                    return
                next_cursor = dig(body, str(self.options.cursor_path))
                if next_cursor is None or next_cursor == "" or next_cursor is False:
                    next_cursor = None
                else:
                    next_cursor = str(next_cursor)
                self.keep_page_validator(
                    page, {"records": len(records), "next_cursor": next_cursor}
                )
                yield CatalogPage(records=records, page=page)
            if next_cursor is None or next_cursor == "":
                return
            cursor = str(next_cursor)
            if cursor in seen:
                raise BadPayload(
                    "pagination_loop", detail=f"cursor {cursor!r} again", marketplace=self.slug
                )
            seen.add(cursor)
            page += 1

    # --- Normalization ----------------------------------------------------------------------

    def _field(self, record: Mapping[str, Any], name: str) -> Any:
        path = self.options.fields.get(name)
        return dig(record, path) if path else None

    def _price(self, record: Mapping[str, Any]) -> tuple[int, str]:
        value = self._field(record, "price")
        encoding = self.options.price_encoding
        if encoding == "amount_currency_text":
            return require_amount_currency_price(value, marketplace=self.slug)
        currency = self._currency(record)
        if encoding == "minor_units":
            scale = (
                self.options.price_scale
                if self.options.price_scale is not None
                else dig(record, str(self.options.price_scale_path))
            )
            return require_minor_unit_price(value, scale, currency, marketplace=self.slug), currency
        if value is not None and value != "":
            expected: type | tuple[type, ...] = (int, float) if encoding == "float" else str
            if isinstance(value, bool) or not isinstance(value, expected):
                raise reject(
                    "bad_price",
                    f"{encoding} price expected, got {value!r}"[:200],
                    marketplace=self.slug,
                )
        return require_decimal_price(value, currency, marketplace=self.slug), currency

    def _currency(self, record: Mapping[str, Any]) -> str:
        if not self.options.currency_path:
            return self.config.currency
        value = dig(record, self.options.currency_path)
        if value is None or value == "":
            return self.config.currency
        if not isinstance(value, str):
            raise reject("unknown_currency", repr(value)[:100], marketplace=self.slug)
        return value.strip().upper()

    def normalize_record(self, record: Mapping[str, Any]) -> Offer:
        """One record as an Offer, each field read from its configured path."""
        item = require_mapping(record, marketplace=self.slug)
        return offer_from_mapped_fields(
            self.slug, lambda name: self._field(item, name), lambda: self._price(item)
        )

    # --- Live offer -------------------------------------------------------------------------

    def lookup_offer(self, external_id: str) -> Offer:
        """The record at `item_path` (Unsupported without it; 404 or no record -> NotFound)."""
        if not self.options.item_path:
            raise unsupported(self, Capability.LIVE_OFFER)
        path = self.options.item_path.replace("{id}", quote(external_id, safe=""))
        body, _ = self.get_with_key(path, {})
        record = dig(body, self.options.item_record_path)
        if record is None or record == {}:
            raise NotFound(f"{self.slug}: {external_id} not found", marketplace=self.slug)
        return self.normalize_record(record)

    # --- Orders (only with an `orders` table) -------------------------------------------------

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        """POST the order as the `orders` table describes; Unsupported without one."""
        if self.orders is None:
            return super().place_order(request)
        return self.orders.place(request)

    def find_order(
        self, reference: str, *, sent_since: datetime | None = None
    ) -> PlacedOrder | None:
        """The order carrying our reference, through `find_path` (a lookup by reference, so
        `sent_since` does not matter); Unsupported without one."""
        if self.orders is None:
            return super().find_order(reference, sent_since=sent_since)
        return self.orders.find(reference)

    def order_status(self, marketplace_order_id: str) -> OrderState:
        if self.orders is None:
            return super().order_status(marketplace_order_id)
        return self.orders.status(marketplace_order_id)

    def cancel_order(self, marketplace_order_id: str) -> OrderState:
        if self.orders is None:
            return super().cancel_order(marketplace_order_id)
        return self.orders.cancel(marketplace_order_id)

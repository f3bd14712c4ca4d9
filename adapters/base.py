"""The one protocol every marketplace adapter speaks, the normalized offer and typed errors.
The shared HTTP client (timeouts, retries, idempotency keys) is adapters.marketplace_http.

An adapter is split in two on purpose: `fetch_catalog_pages` returns *raw* records exactly as the
marketplace sent them (the pipeline stores them), and `normalize_record` turns one raw record into
an :class:`Offer` or raises :class:`BadPayload` with a reason (the pipeline quarantines it).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from onecart.money import MoneyError, is_iso_currency, to_minor_units

# Longest text we keep from a marketplace; longer descriptions are cut, not rejected.
MAX_TITLE_CHARS = 300
MAX_DESCRIPTION_CHARS = 20_000


# --- Errors ---------------------------------------------------------------------------------


class MarketplaceError(Exception):
    """Base of every error an adapter raises; `marketplace` names the slug."""

    def __init__(
        self,
        message: str,
        *,
        marketplace: str = "",
        status: int | None = None,
        response_text: str | None = None,
    ) -> None:
        super().__init__(message)
        self.marketplace = marketplace
        self.status = status
        # The marketplace's full error body, so adapters can surface its own message.
        self.response_text = response_text


class RateLimited(MarketplaceError):
    """429 after every retry; `retry_after` is the marketplace's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Transient(MarketplaceError):
    """Timeouts, connection errors, 408/409/5xx after every retry: worth trying again later."""


class OutcomeUnknown(Transient):
    """A write (place, cancel) that may have reached the marketplace: a timeout or a reset after
    the request was sent, or a 5xx. Never a refusal: ask the marketplace (`find_order` by our
    reference, or `order_status`) before retrying with the same idempotency key or refunding."""


class NotModified(MarketplaceError):
    """304: the resource asked for conditionally (If-None-Match / If-Modified-Since) has not
    changed since the validators we sent. Not a failure: what we hold is current."""


class NotFound(MarketplaceError):
    """The product or order does not exist on the marketplace."""


class Rejected(MarketplaceError):
    """The marketplace understood the request and refused it (4xx other than 404/408/409/429)."""


class Unsupported(MarketplaceError):
    """The marketplace cannot do this at all (see :class:`Capability`)."""


class CannotConfirmAbsence(Unsupported):
    """The marketplace cannot be asked about this one order: it can only search a window of
    recent orders that does not reach back to the attempt (find_order). Like Unsupported, the
    outcome stays unknown: never taken for "no such order"."""


def loggable_url(url: object) -> str:
    """`url` as an error message may carry it: scheme, host, port and path, no credentials and
    no query (a marketplace may take its API key as a query parameter); "?…" marks a query."""
    parts = urlsplit(str(url))
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}" + (
        "?…" if parts.query else ""
    )


class BadPayload(MarketplaceError):
    """A response or record that does not have the documented shape; `reason` is short and stable.

    `external_id`: the id a rejected catalog record names, when the adapter could read it
    (adapters.fields.naming_the_record): the pipeline counts that id as claimed by the record, so
    a later record repeating it is a duplicate, not a stand-in (warehouse.offers)."""

    def __init__(
        self, reason: str, *, detail: str = "", external_id: str | None = None, **kw: Any
    ) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason, **kw)
        self.reason = reason
        self.detail = detail
        self.external_id = external_id


# --- Normalized types -----------------------------------------------------------------------


class Capability(enum.StrEnum):
    CATALOG = "catalog"
    LIVE_SEARCH = "live_search"
    LIVE_OFFER = "live_offer"
    ORDER = "order"
    TRACK = "track"
    CANCEL = "cancel"


# A marketplace with a whole order API (Shopify, WooCommerce): all but live search.
FULL_ORDER_API = frozenset(
    {
        Capability.CATALOG,
        Capability.LIVE_OFFER,
        Capability.ORDER,
        Capability.TRACK,
        Capability.CANCEL,
    }
)


class OrderStatus(enum.StrEnum):
    """Our vocabulary for a sub-order's state; adapters map the marketplace's words onto it."""

    PENDING = "pending"
    PROCESSING = "processing"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    FAILED = "failed"
    REFUNDED = "refunded"


class ShipmentStatus(enum.StrEnum):
    """Where a shipped sub-order's parcel is, when the marketplace says (Shopify's fulfillment
    displayStatus / events); a marketplace that only reports shipped and delivered leaves it out."""

    CONFIRMED = "confirmed"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELAYED = "delayed"
    ATTEMPTED_DELIVERY = "attempted_delivery"
    DELIVERED = "delivered"
    FAILURE = "failure"


@dataclass(frozen=True, slots=True)
class ShipmentEvent:
    """One step of a shipment as the marketplace recorded it, with when it happened."""

    status: ShipmentStatus
    happened_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Offer:
    """One marketplace's offer of one product, normalized. Money is integer minor units."""

    marketplace: str
    external_id: str
    title: str
    price_minor: int
    currency: str
    description: str = ""
    image_url: str | None = None
    product_url: str | None = None
    category: str | None = None
    brand: str | None = None
    model: str | None = None
    gtin: str | None = None
    mpn: str | None = None
    sku: str | None = None
    rating: Decimal | None = None
    rating_count: int | None = None
    available: bool = True
    stock: int | None = None

    def as_row(self) -> dict[str, Any]:
        """A plain dict (ratings as strings) for tables and documents."""
        row = {name: getattr(self, name) for name in self.__slots__}
        row["rating"] = str(self.rating) if self.rating is not None else None
        return row


@dataclass(frozen=True, slots=True)
class CatalogPage:
    """One page of raw records as the marketplace sent them, in a stable order.

    `held`: the marketplace answered the page's conditional request with 304 Not Modified, so
    its records are exactly the ones the warehouse holds for this page (`records` is empty).

    `sources` and `held_hashes` (a feed read with the source digests the warehouse holds,
    adapters/google_feed.read_feed_items): each record's source digest (None: not known), and
    for a record not parsed because its source was seen before, the payload hash it parsed into
    (its `records` entry is then None)."""

    records: list[dict[str, Any]]
    page: int
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    held: bool = False
    sources: list[str | None] | None = None
    held_hashes: list[str | None] | None = None


def pages_of(records: Iterable[Any], page_size: int) -> Iterator[CatalogPage]:
    """`records` handed on as they arrive, in pages of `page_size` numbered from 1 (for a
    catalog sent as one document: nothing waits for the whole of it; no empty last page)."""
    batch: list[Any] = []
    page = 1
    for record in records:
        batch.append(record)
        if len(batch) == page_size:
            yield CatalogPage(records=batch, page=page)
            batch, page = [], page + 1
    if batch:
        yield CatalogPage(records=batch, page=page)


@dataclass(frozen=True, slots=True)
class PageValidator:
    """What a marketplace sent with one catalog page (ETag, Last-Modified), to ask for the same
    page conditionally next time.

    `request` is the page's request (path and sorted query): a validator only ever answers the
    very same request. `follow` is what a 304, which has no body, cannot say: how paging goes on
    after the page (its record count, the catalog's total, the next cursor), as the page's body
    said it when the validator came."""

    request: str
    etag: str | None
    last_modified: str | None
    follow: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class OrderLine:
    external_id: str
    quantity: int
    unit_price_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class ShippingAddress:
    name: str
    line1: str
    city: str
    country: str
    postal_code: str = ""
    line2: str = ""
    phone: str = ""
    email: str = ""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A sub-order to place. `reference` is the order's relation token (the external reference
    used to reconcile a retried placement); `idempotency_key` is reused across retries."""

    reference: str
    idempotency_key: str
    lines: list[OrderLine]
    shipping: ShippingAddress
    currency: str


@dataclass(frozen=True, slots=True)
class AcceptedLine:
    """One line as the marketplace recorded it; `unit_price_minor` is None when its API does not
    say what it billed per unit (or says it inexactly), `line_total_minor` None when it gives
    no line total (WooCommerce bills a line total that need not be unit × quantity)."""

    external_id: str
    quantity: int
    unit_price_minor: int | None = None
    line_total_minor: int | None = None

    @property
    def billed_minor(self) -> int | None:
        """What the line costs: its total, else unit × quantity, else None (not said)."""
        if self.line_total_minor is not None:
            return self.line_total_minor
        if self.unit_price_minor is not None:
            return self.unit_price_minor * self.quantity
        return None


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """What the marketplace holds. `lines` is None when its API does not return the lines (the
    caller cannot verify them); otherwise placement compares them with what was asked.

    `shipping_minor` and `tax_minor`: the shipping and the tax the marketplace added on top of
    the item lines (both within `total_minor`), where its API reports them apart; None when it
    does not say. Tax already inside the line prices (a taxes-included shop) is not added on
    top, so it is 0 here."""

    marketplace_order_id: str
    status: OrderStatus
    total_minor: int | None = None
    currency: str | None = None
    lines: tuple[AcceptedLine, ...] | None = None
    # The order number the marketplace shows people (Shopify's `name` "#1001"), when it has one.
    display_number: str | None = None
    shipping_minor: int | None = None
    tax_minor: int | None = None


@dataclass(frozen=True, slots=True)
class OrderState:
    marketplace_order_id: str
    status: OrderStatus
    raw_status: str
    tracking_number: str | None = None
    carrier: str | None = None
    tracking_url: str | None = None
    display_number: str | None = None
    # The shipment's latest step and its history, when the marketplace reports them.
    shipment_status: ShipmentStatus | None = None
    shipment_events: tuple[ShipmentEvent, ...] = ()
    # What the marketplace has refunded on the order so far, in all (cumulative, exact minor
    # units of `refunded_currency`): WooCommerce's `refunds[].total`, Shopify's
    # `totalRefundedSet`. None when the reply does not say (not the same as nothing refunded).
    refunded_minor: int | None = None
    refunded_currency: str | None = None


@runtime_checkable
class MarketplaceAdapter(Protocol):
    """What OneCart can ask of a marketplace. Methods outside `capabilities` raise Unsupported."""

    slug: str
    capabilities: frozenset[Capability]
    # Whether a write sent again with the same idempotency key is recognised as the same write.
    # Placement resends a placement whose outcome is unknown, on a marketplace that cannot be
    # asked for it, only when this is True; otherwise an operator decides. Every adapter states
    # it: there is no default, since assuming True would make a second order where it is wrong.
    honours_idempotency_keys: bool
    # How long the marketplace remembers an idempotency key after the first write that carried
    # it. A placement in doubt is resent with the same key only within it; older, a resend could
    # make a second order, so an operator decides (commerce.placement).
    idempotency_key_retention: timedelta

    def fetch_catalog_pages(self) -> Iterator[CatalogPage]:
        """Every catalog record, page by page, in a stable order."""
        ...

    def normalize_record(self, record: Mapping[str, Any]) -> Offer:
        """One raw record as an Offer, or BadPayload with the reason it cannot be one."""
        ...

    def lookup_offer(self, external_id: str) -> Offer:
        """The live price and availability of one offer (NotFound when gone)."""
        ...

    def place_order(self, request: OrderRequest) -> PlacedOrder: ...

    def find_order(
        self, reference: str, *, sent_since: datetime | None = None
    ) -> PlacedOrder | None:
        """The order placed earlier with this reference, if any (reconciles retried placements).

        `sent_since`: no placement with this reference was sent before this moment (the caller
        passes the sub-order's creation). A marketplace that can only search a window of recent
        orders answers None only when its window covers that moment; otherwise (or when the
        moment is not given) it cannot confirm the absence and raises Unsupported, so the caller
        treats the outcome as unknown (an operator decides)."""
        ...

    def order_status(self, marketplace_order_id: str) -> OrderState: ...

    def check_orders_api(self) -> None:
        """Ask the order API one cheap question about no order in particular (the same API,
        key and scope as order_status): returns when it answers, MarketplaceError when it does
        not, Unsupported when the format has no such question. Tracking asks it only when no
        order answered in a pass, to tell one order's failing poll from an outage
        (commerce.tracking_health)."""
        ...

    def cancel_order(self, marketplace_order_id: str) -> OrderState: ...


# --- Marketplace configuration --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShippingTaxAllowance:
    """How much shipping and tax a marketplace may add to one sub-order on top of the items,
    which OneCart then pays without charging the shopper (options
    `shipping_tax_allowance_minor` and `shipping_tax_allowance_bps`): a fixed amount in the
    marketplace's minor units plus basis points of the items' asked amount. The default, none,
    means the marketplace must add nothing."""

    fixed_minor: int = 0
    bps: int = 0

    def for_items(self, asked_minor: int) -> int:
        """The allowance for a sub-order whose accepted items were asked at `asked_minor`
        (rounded down: the allowance never grows by a rounding)."""
        return self.fixed_minor + max(asked_minor, 0) * self.bps // 10_000


NO_SHIPPING_OR_TAX = ShippingTaxAllowance()


@dataclass(frozen=True, slots=True)
class MarketplaceConfig:
    """One `[[marketplace]]` entry of marketplaces.toml, with `${VAR}` references resolved."""

    slug: str
    name: str
    kind: str
    base_url: str
    currency: str
    country: str
    api_key: str | None = None
    api_key_env: str | None = None
    logo: str | None = None
    rating: Decimal | None = None
    description: str = ""
    match_identifier: str = "gtin"
    active: bool = True
    page_size: int = 100
    options: Mapping[str, Any] = field(default_factory=dict)


# --- Shared helpers for adapters ------------------------------------------------------------


def minor_units_or_reject(amount: Decimal, currency: str, *, marketplace: str) -> int:
    """Integer minor units of a parsed price, or BadPayload naming what is wrong with it."""
    if not is_iso_currency(currency):
        raise BadPayload("unknown_currency", detail=str(currency), marketplace=marketplace)
    try:
        minor = to_minor_units(amount, currency)
    except MoneyError as exc:
        raise BadPayload("bad_price", detail=str(exc), marketplace=marketplace) from exc
    if minor <= 0:
        raise BadPayload(
            "non_positive_price", detail=f"{amount} {currency}", marketplace=marketplace
        )
    return minor


_TABS_AND_NEWLINES = str.maketrans("", "", "\n\t")


def clean_text(value: object, *, limit: int) -> str:
    """Text as we store it: str, stripped, control characters removed, cut to `limit`."""
    if value is None:
        return ""
    text = str(value)
    # Nearly all text is clean already: str.isprintable (C speed) says so without a Python loop
    # over every character (which cost seconds for the 100 KB descriptions some feeds send).
    if not text.translate(_TABS_AND_NEWLINES).isprintable():
        text = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable())
    return text.strip()[:limit]


def parse_rating(value: object) -> Decimal | None:
    """A 0–5 rating as Decimal with two places, or None when absent or out of range."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        rating = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except ArithmeticError:
        return None
    if not rating.is_finite() or rating < 0 or rating > 5:
        return None
    return rating.quantize(Decimal("0.01"))


def unsupported(adapter: MarketplaceAdapter, what: Capability) -> Unsupported:
    """The error for a capability the marketplace does not have."""
    return Unsupported(f"{adapter.slug} does not support {what.value}", marketplace=adapter.slug)

"""The one protocol every marketplace adapter speaks, the normalized offer, typed errors, and the
shared HTTP client (timeouts, retries, idempotency keys).

An adapter is split in two on purpose: `fetch_catalog_pages` returns *raw* records exactly as the
marketplace sent them (the pipeline stores them), and `normalize_record` turns one raw record into
an :class:`Offer` or raises :class:`BadPayload` with a reason (the pipeline quarantines it).
"""

from __future__ import annotations

import enum
import functools
import random
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any, Protocol, runtime_checkable

import httpx

from onecart.money import MoneyError, is_iso_currency, to_minor_units

# --- HTTP policy: every number in one place -------------------------------------------------

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 15.0
WRITE_TIMEOUT_S = 10.0
POOL_TIMEOUT_S = 5.0
MAX_RETRIES = 4
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 8.0
RETRY_AFTER_CAP_S = 30.0
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "OneCart/0.1 (+https://github.com/onecart)"

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


class BadPayload(MarketplaceError):
    """A response or record that does not have the documented shape; `reason` is short and stable."""

    def __init__(self, reason: str, *, detail: str = "", **kw: Any) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason, **kw)
        self.reason = reason
        self.detail = detail


# --- Normalized types -----------------------------------------------------------------------


class Capability(enum.StrEnum):
    CATALOG = "catalog"
    LIVE_SEARCH = "live_search"
    LIVE_OFFER = "live_offer"
    ORDER = "order"
    TRACK = "track"
    CANCEL = "cancel"


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
    caller cannot verify them); otherwise placement compares them with what was asked."""

    marketplace_order_id: str
    status: OrderStatus
    total_minor: int | None = None
    currency: str | None = None
    lines: tuple[AcceptedLine, ...] | None = None
    # The order number the marketplace shows people (Shopify's `name` "#1001"), when it has one.
    display_number: str | None = None


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


@runtime_checkable
class MarketplaceAdapter(Protocol):
    """What OneCart can ask of a marketplace. Methods outside `capabilities` raise Unsupported."""

    slug: str
    capabilities: frozenset[Capability]

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

    def find_order(self, reference: str) -> PlacedOrder | None:
        """The order placed earlier with this reference, if any (reconciles retried placements)."""
        ...

    def order_status(self, marketplace_order_id: str) -> OrderState: ...

    def cancel_order(self, marketplace_order_id: str) -> OrderState: ...


# --- Marketplace configuration --------------------------------------------------------------


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


# --- HTTP -----------------------------------------------------------------------------------


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry `attempt` (1-based): the server's Retry-After when it sent one
    (capped), else capped exponential backoff with full jitter."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), RETRY_AFTER_CAP_S)
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * (2 ** (attempt - 1)))
    return random.uniform(0, ceiling)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


# Transport failures that prove the request never reached the marketplace: no connection was
# ever made. Everything else (read/write timeouts, resets, protocol errors) may have arrived.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)
# Bounds of a configured read timeout (marketplaces.toml option `read_timeout_s`).
MIN_READ_TIMEOUT_S = 0.05
MAX_READ_TIMEOUT_S = 300.0


# Set in a 2xx response's `extensions` when an earlier attempt of the same write may have
# reached the marketplace (see earlier_attempt_may_have_arrived).
EARLIER_ATTEMPT_MAY_HAVE_ARRIVED = "onecart.earlier_attempt_may_have_arrived"


def earlier_attempt_may_have_arrived(response: httpx.Response) -> str | None:
    """Why an earlier attempt of the write answered by `response` may have taken effect."""
    reason = response.extensions.get(EARLIER_ATTEMPT_MAY_HAVE_ARRIVED)
    return str(reason) if reason else None


def request_may_have_arrived(exc: Exception) -> bool:
    """False only when the transport error proves no byte of the request reached the server."""
    return not isinstance(exc, NOT_SENT_ERRORS)


@functools.lru_cache(maxsize=1)
def shared_ssl_context() -> ssl.SSLContext:
    """The verifying SSL context every marketplace client of this process uses.

    httpx builds one per client by default, which loads the whole CA bundle: tens of
    milliseconds of CPU per adapter, paid again by every worker process for every marketplace.
    One context is safe to share between clients and threads (it only holds settings and the
    trusted CAs) and is built exactly as httpx builds its default one (SSL_CERT_FILE /
    SSL_CERT_DIR, else certifi)."""
    return httpx.create_ssl_context()


class MarketplaceHttp:
    """One httpx client per marketplace: explicit timeouts, bounded retries with backoff.

    Reads retry 408/409/429/5xx and transport errors. A write passes `idempotency_key`, which is
    sent unchanged on every retry so the marketplace can recognise the repeat, and has three
    outcomes: a 2xx; a refusal (Rejected, NotFound, RateLimited after retries) when no attempt
    can have taken effect; or OutcomeUnknown when any attempt may have reached the marketplace
    (a timeout or reset after sending, a 5xx) and none succeeded. With `retry_unknown_writes`
    False, a write is not resent after such an attempt (for marketplaces that ignore
    idempotency keys): the caller must ask the marketplace first.
    """

    def __init__(
        self,
        slug: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        max_retries: int = MAX_RETRIES,
        sleep: Callable[[float], None] = time.sleep,
        read_timeout_s: float = READ_TIMEOUT_S,
        retry_unknown_writes: bool = True,
    ) -> None:
        if not MIN_READ_TIMEOUT_S <= read_timeout_s <= MAX_READ_TIMEOUT_S:
            raise ValueError(
                f"{slug}: read timeout must be between {MIN_READ_TIMEOUT_S} and "
                f"{MAX_READ_TIMEOUT_S} seconds, got {read_timeout_s!r}"
            )
        self.slug = slug
        self.max_retries = max_retries
        self.retry_unknown_writes = retry_unknown_writes
        self._sleep = sleep
        self.client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
            auth=auth,
            timeout=httpx.Timeout(
                connect=CONNECT_TIMEOUT_S,
                read=read_timeout_s,
                write=WRITE_TIMEOUT_S,
                pool=POOL_TIMEOUT_S,
            ),
            transport=transport,
            verify=shared_ssl_context(),
            follow_redirects=True,
        )

    def close(self) -> None:
        self.client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """Send with retries; return a 2xx response or raise the typed error for the failure."""
        return self._send_with_retries(
            method,
            path,
            params=params,
            json=json,
            headers=headers,
            idempotency_key=idempotency_key,
            stream=False,
        )

    def open_stream(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Like :meth:`request`, but the 2xx body is not read yet: iterate it, then `close()` it.

        For bodies too large to hold at once (unpaged product lists, merchant feeds). Only the
        wait for the first byte is retried; a body interrupted halfway is the caller's to report.
        """
        return self._send_with_retries(
            method,
            path,
            params=params,
            json=None,
            headers=headers,
            idempotency_key=None,
            stream=True,
        )

    def _send_with_retries(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        idempotency_key: str | None,
        stream: bool,
    ) -> httpx.Response:
        send_headers = dict(headers or {})
        is_write = idempotency_key is not None
        if idempotency_key:
            send_headers[IDEMPOTENCY_HEADER] = idempotency_key
        attempt = 0
        # Why an earlier attempt of this write may have taken effect (None: none can have).
        maybe_arrived: str | None = None
        while True:
            attempt += 1
            request = self.client.build_request(
                method, path.lstrip("/"), params=params, json=json, headers=send_headers
            )
            try:
                response = self.client.send(request, stream=stream)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                failure = f"{type(exc).__name__}: {exc}"
                if is_write and request_may_have_arrived(exc):
                    maybe_arrived = failure
                    if attempt > self.max_retries or not self.retry_unknown_writes:
                        raise self._unknown(method, path, maybe_arrived, attempt) from exc
                elif attempt > self.max_retries:
                    if maybe_arrived:
                        raise self._unknown(method, path, maybe_arrived, attempt) from exc
                    raise Transient(f"{method} {path}: {failure}", marketplace=self.slug) from exc
                self._sleep(backoff_delay(attempt))
                continue
            if response.is_success:
                if maybe_arrived:
                    # A reply that refuses inside a 2xx body (GraphQL userErrors) must not be
                    # read as a refusal: an earlier attempt may have taken effect.
                    response.extensions[EARLIER_ATTEMPT_MAY_HAVE_ARRIVED] = maybe_arrived
                return response
            if response.status_code == 304:
                response.close()
                raise NotModified(
                    f"{method} {path}: not modified", marketplace=self.slug, status=304
                )
            if stream:
                response.read()
                response.close()
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if is_write and status >= 500:
                maybe_arrived = f"HTTP {status}: {response.text[:200]}"
                if attempt > self.max_retries or not self.retry_unknown_writes:
                    raise self._unknown(
                        method, path, maybe_arrived, attempt, status=status, body=response.text
                    )
                self._sleep(backoff_delay(attempt, retry_after))
                continue
            if status in RETRYABLE_STATUSES and attempt <= self.max_retries:
                self._sleep(backoff_delay(attempt, retry_after))
                continue
            if maybe_arrived:
                # Refused now, but an earlier attempt may have taken effect (a marketplace that
                # ignores idempotency keys refuses the repeat on its own merits): not a refusal.
                raise self._unknown(
                    method, path, maybe_arrived, attempt, status=status, body=response.text
                )
            raise self._error_for(method, path, response)

    def _unknown(
        self,
        method: str,
        path: str,
        why: str,
        attempts: int,
        *,
        status: int | None = None,
        body: str | None = None,
    ) -> OutcomeUnknown:
        return OutcomeUnknown(
            f"{method} {path}: outcome unknown after {attempts} attempt(s); "
            f"an attempt may have reached {self.slug}: {why}",
            marketplace=self.slug,
            status=status,
            response_text=body,
        )

    def get_json(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        response = self.request("GET", path, params=params)
        return decode_json(response, marketplace=self.slug)

    def _error_for(self, method: str, path: str, response: httpx.Response) -> MarketplaceError:
        status = response.status_code
        body = response.text
        message = f"{method} {path} -> {status}: {body[:200]}"
        if status == 429:
            return RateLimited(
                message,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                marketplace=self.slug,
                status=status,
                response_text=body,
            )
        if status == 404:
            return NotFound(message, marketplace=self.slug, status=status, response_text=body)
        if status in RETRYABLE_STATUSES or status >= 500:
            return Transient(message, marketplace=self.slug, status=status, response_text=body)
        return Rejected(message, marketplace=self.slug, status=status, response_text=body)


def decode_json(response: httpx.Response, *, marketplace: str) -> Any:
    """The JSON body, or BadPayload when the marketplace sent something else."""
    try:
        return response.json()
    except ValueError as exc:
        raise BadPayload(
            "invalid_json", detail=f"{response.request.url}: {exc}", marketplace=marketplace
        ) from exc


def unsupported(adapter: MarketplaceAdapter, what: Capability) -> Unsupported:
    """The error for a capability the marketplace does not have."""
    return Unsupported(f"{adapter.slug} does not support {what.value}", marketplace=adapter.slug)

"""What every HTTP marketplace adapter shares: its configuration, one MarketplaceHttp client,
honest "unsupported" answers for what the format cannot do, and error translation for writes."""

from __future__ import annotations

import base64
import codecs
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx

from adapters.base import (
    BadPayload,
    Capability,
    MarketplaceConfig,
    NotFound,
    NotModified,
    Offer,
    OrderRequest,
    OrderState,
    OutcomeUnknown,
    PageValidator,
    PlacedOrder,
    Rejected,
    ShippingTaxAllowance,
    Transient,
    unsupported,
)
from adapters.fields import decode_json_body, marketplace_message
from adapters.marketplace_http import MarketplaceHttp
from adapters.registry import MarketplaceConfigError
from commerce.sweep_claim import read_timeout_problem, request_deadline_problem


def read_timeout_option(config: MarketplaceConfig) -> float:
    """Seconds to wait for an answer: the marketplace's `read_timeout_s` option, else
    ONECART_MARKETPLACE_READ_TIMEOUT_S; bounded, so a typo fails when the adapter is built."""
    raw = config.options.get("read_timeout_s")
    if raw is None:
        from onecart.settings import get_settings

        return get_settings().marketplace_read_timeout_s
    problem = read_timeout_problem(raw)
    if problem:
        raise MarketplaceConfigError(f"marketplace {config.slug}: options.read_timeout_s {problem}")
    return float(raw)


def deadline_option(config: MarketplaceConfig) -> float:
    """Seconds one try of a request may take in all (adapters.request_deadline): the
    marketplace's `deadline_s` option, else ONECART_MARKETPLACE_DEADLINE_S; bounded, so a typo
    fails when the adapter is built."""
    raw = config.options.get("deadline_s")
    if raw is None:
        from onecart.settings import get_settings

        return get_settings().marketplace_deadline_s
    problem = request_deadline_problem(raw)
    if problem:
        raise MarketplaceConfigError(f"marketplace {config.slug}: options.deadline_s {problem}")
    return float(raw)


def stream_deadline_setting() -> float:
    """ONECART_MARKETPLACE_STREAM_DEADLINE_S: a large body read in chunks, request to last byte."""
    from onecart.settings import get_settings

    return get_settings().marketplace_stream_deadline_s


def retry_unknown_writes_option(config: MarketplaceConfig) -> bool:
    """`retry_unknown_writes` (default true): resend a write whose outcome is unknown with the
    same idempotency key. Set it false for a marketplace that ignores Idempotency-Key (real
    WooCommerce and DummyJSON do): the write then raises OutcomeUnknown at once and the caller
    asks the marketplace (find_order) before anything else."""
    raw = config.options.get("retry_unknown_writes", True)
    if not isinstance(raw, bool):
        raise MarketplaceConfigError(
            f"marketplace {config.slug}: options.retry_unknown_writes must be true or false"
        )
    return raw


# Bounds of the shipping-and-tax allowance options, so a typo fails when the adapter is built.
MAX_ALLOWANCE_BPS = 5_000


def shipping_tax_allowance_option(config: MarketplaceConfig) -> ShippingTaxAllowance:
    """`shipping_tax_allowance_minor` (a fixed amount in the marketplace's minor units, default
    0) plus `shipping_tax_allowance_bps` (of the items' asked amount, 0–5000, default 0): the
    shipping and tax this marketplace may add to a sub-order that OneCart pays itself."""
    values: dict[str, int] = {}
    for name, maximum in (
        ("shipping_tax_allowance_minor", 10**12),
        ("shipping_tax_allowance_bps", MAX_ALLOWANCE_BPS),
    ):
        raw = config.options.get(name, 0)
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= maximum:
            raise MarketplaceConfigError(
                f"marketplace {config.slug}: options.{name} must be a whole number "
                f"between 0 and {maximum}, got {raw!r}"
            )
        values[name] = raw
    return ShippingTaxAllowance(
        values["shipping_tax_allowance_minor"], values["shipping_tax_allowance_bps"]
    )


# Idempotency keys are commonly kept 24 hours (Stripe prunes them after at least 24 hours;
# checkout.com and most APIs that honour an Idempotency-Key header keep them 24 hours): the
# default for a marketplace that does not document its own window.
DEFAULT_IDEMPOTENCY_KEY_RETENTION_HOURS = 24


def idempotency_key_retention_option(config: MarketplaceConfig) -> timedelta:
    """`idempotency_key_retention_hours` (default 24, 0.1–8760): how long the marketplace
    remembers an idempotency key, so a placement in doubt is resent with it only meanwhile."""
    raw = config.options.get(
        "idempotency_key_retention_hours", DEFAULT_IDEMPOTENCY_KEY_RETENTION_HOURS
    )
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 0.1 <= raw <= 8760:
        raise MarketplaceConfigError(
            f"marketplace {config.slug}: options.idempotency_key_retention_hours must be "
            f"between 0.1 and 8760 hours, got {raw!r}"
        )
    return timedelta(hours=raw)


class HttpMarketplaceAdapter:
    """Base of the format adapters: construction, credentials, lenient JSON, typed refusals.

    Subclasses set `capabilities` and override what their format supports; everything else
    raises Unsupported, which callers treat as "hand the shopper off to the marketplace".
    """

    capabilities: frozenset[Capability] = frozenset({Capability.CATALOG})
    # Whether an order placed through the API takes the marketplace's stock, so that it refuses
    # units it does not have (Shopify claims inventory, WooCommerce reduces it). False by default:
    # OneCart then counts its own orders' units against the published stock
    # (commerce.offer_stock), the safe side for a format nobody checked.
    order_takes_stock: bool = False
    # Product-list pages answered, counted by the adapters whose changed-since fetch reads several
    # listings (Shopify, WooCommerce): how far a fetch failing half-way got.
    pages_answered: int = 0

    def __init__(
        self,
        config: MarketplaceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.slug = config.slug
        self._sleep = sleep
        self.http = MarketplaceHttp(
            config.slug,
            config.base_url,
            headers=headers,
            transport=transport,
            sleep=sleep,
            read_timeout_s=read_timeout_option(config),
            deadline_s=deadline_option(config),
            stream_deadline_s=stream_deadline_setting(),
            retry_unknown_writes=retry_unknown_writes_option(config),
            # A redirect to another host never carries the key (marketplace_http).
            secrets=lambda: (config.api_key,) if config.api_key else (),
        )
        # Read by placement's verification (commerce.acceptance), not by the adapter itself.
        self.shipping_tax_allowance = shipping_tax_allowance_option(config)
        self.idempotency_key_retention = idempotency_key_retention_option(config)
        # Conditional catalog requests: the validators (etag, last_modified) of the catalog we
        # hold, set by the pipeline, and those the marketplace sent with this fetch.
        self.catalog_validators: Mapping[str, str] = {}
        self.received_validators: dict[str, str] = {}
        # The same, page by page, for paged catalogs (see get_catalog_page): the validators of
        # the pages the warehouse holds, by page number, and those received with this fetch.
        self.page_validators: Mapping[int, PageValidator] = {}
        self.received_page_validators: dict[int, PageValidator] = {}
        self._unconfirmed_pages: dict[int, tuple[str, str | None, str | None]] = {}

    # No `honours_idempotency_keys` here: each format states its own (the protocol requires
    # it), so a new format cannot inherit a claim about keys it never checked.

    @property
    def keys_honoured_as_configured(self) -> bool:
        """What the marketplace's configuration says about Idempotency-Key: False when it is
        configured with `retry_unknown_writes = false` (it ignores the key, so a write sent again
        there is a second write), True otherwise (the default, as the sandbox honours keys)."""
        return self.http.retry_unknown_writes

    def close(self) -> None:
        """Release the HTTP connections."""
        self.http.close()

    def __enter__(self) -> HttpMarketplaceAdapter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- Defaults: the capability is missing --------------------------------------------

    def lookup_offer(self, external_id: str) -> Offer:
        """Formats without a per-product endpoint cannot re-check a price live."""
        raise unsupported(self, Capability.LIVE_OFFER)

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        """Formats without an order API: the shopper completes the purchase on the marketplace."""
        raise unsupported(self, Capability.ORDER)

    def find_order(
        self, reference: str, *, sent_since: datetime | None = None
    ) -> PlacedOrder | None:
        """Formats without an order API have no orders to find."""
        raise unsupported(self, Capability.ORDER)

    def order_status(self, marketplace_order_id: str) -> OrderState:
        """Formats without order tracking."""
        raise unsupported(self, Capability.TRACK)

    def check_orders_api(self) -> None:
        """Formats with no question about their order API as a whole: tracking cannot tell one
        order's failure from an outage by it (commerce.tracking_health)."""
        raise unsupported(self, Capability.TRACK)

    def cancel_order(self, marketplace_order_id: str) -> OrderState:
        """Formats without order cancellation."""
        raise unsupported(self, Capability.CANCEL)

    # --- Helpers for subclasses ---------------------------------------------------------

    def require_api_key(self) -> str:
        """The configured API key, or Rejected naming the environment variable to set."""
        if not self.config.api_key:
            where = self.config.api_key_env or "api_key_env in marketplaces.toml"
            raise Rejected(
                f"{self.slug}: no API key configured (set {where})", marketplace=self.slug
            )
        return self.config.api_key

    def basic_auth_header(self) -> dict[str, str]:
        """HTTP Basic credentials from an api key written "user:secret" (WooCommerce keys)."""
        key = self.require_api_key()
        if ":" not in key:
            raise Rejected(
                f"{self.slug}: the API key must be 'consumer_key:consumer_secret'",
                marketplace=self.slug,
            )
        token = base64.b64encode(key.encode("utf-8")).decode("ascii")
        return {"Authorization": f"Basic {token}"}

    def get_json(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[Any, httpx.Response]:
        """GET with retries; the body decoded leniently, and the response for its headers."""
        response = self.http.request("GET", path, params=params, headers=headers)
        return decode_json_body(response, marketplace=self.slug), response

    def get_catalog_page(
        self,
        page: int,
        path: str,
        params: Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        secret_params: Mapping[str, Any] | None = None,
    ) -> tuple[Any, httpx.Response] | None:
        """GET catalog page `page` conditionally: with the validators held for it when they came
        with this very request (If-None-Match / If-Modified-Since), None on 304 Not Modified
        (the page's records are the ones held; `held_page_follow` says how paging goes on).

        A 200's ETag and Last-Modified are kept once the caller has read the page and passes
        what its body says about the pages after it to :meth:`keep_page_validator`.
        `secret_params` (an API key in the query) are sent but are no part of the request
        stored with the validator.
        """
        request = f"{path}?{urlencode(sorted((str(k), str(v)) for k, v in params.items()))}"
        if secret_params:
            params = {**params, **secret_params}
        held = self.page_validators.get(page)
        if held is not None and held.request != request:
            held = None
        send = dict(headers or {})
        if held is not None:
            if held.etag:
                send["If-None-Match"] = held.etag
            if held.last_modified:
                send["If-Modified-Since"] = held.last_modified
        try:
            body, response = self.get_json(path, params=params, headers=send)
        except NotModified:
            if held is None:
                raise BadPayload(
                    "unexpected_not_modified",
                    detail=f"page {page}: 304 to an unconditional request",
                    marketplace=self.slug,
                ) from None
            self.received_page_validators[page] = held
            return None
        etag = response.headers.get("ETag")
        last_modified = response.headers.get("Last-Modified")
        if etag or last_modified:
            self._unconfirmed_pages[page] = (request, etag, last_modified)
        return body, response

    def keep_page_validator(self, page: int, follow: Mapping[str, Any]) -> None:
        """The page just read was valid: keep its validators with `follow` (see PageValidator)."""
        received = self._unconfirmed_pages.pop(page, None)
        if received is not None:
            request, etag, last_modified = received
            self.received_page_validators[page] = PageValidator(
                request, etag, last_modified, dict(follow)
            )

    def held_page_follow(self, page: int) -> Mapping[str, Any]:
        """After a 304 for `page`: what its held body said about the pages after it."""
        return self.page_validators[page].follow

    def stream_text(
        self, path: str, *, headers: Mapping[str, str] | None = None, conditional: bool = False
    ) -> Iterator[str]:
        """GET a large body as text chunks, decoded leniently (U+FFFD for broken bytes), without
        holding the whole body in memory: Fake Store's single product list and merchant feeds
        have no paging and reach hundreds of megabytes at a million offers.

        Failures before the first byte are retried like every request (same statuses, backoff,
        Retry-After); a connection lost halfway cannot be resumed and raises Transient.

        `conditional` (a whole catalog in one document: feeds, unpaged lists) sends the held
        catalog's validators as If-None-Match / If-Modified-Since, raises NotModified on 304,
        and keeps the response's ETag and Last-Modified in `received_validators`.
        """
        send = dict(headers or {})
        if conditional:
            if self.catalog_validators.get("etag"):
                send["If-None-Match"] = self.catalog_validators["etag"]
            if self.catalog_validators.get("last_modified"):
                send["If-Modified-Since"] = self.catalog_validators["last_modified"]
        response = self.http.open_stream("GET", path, headers=send)
        if conditional:
            self.received_validators = {
                name: response.headers[header]
                for name, header in (("etag", "ETag"), ("last_modified", "Last-Modified"))
                if response.headers.get(header)
            }
        encoding = response.charset_encoding or "utf-8"
        try:
            codecs.lookup(encoding)
        except LookupError:
            encoding = "utf-8"
        decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        try:
            for chunk in response.iter_bytes():
                text = decoder.decode(chunk)
                if text:
                    yield text
            tail = decoder.decode(b"", final=True)
            if tail:
                yield tail
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise Transient(
                f"GET {path}: body interrupted: {type(exc).__name__}: {exc}", marketplace=self.slug
            ) from exc
        finally:
            response.close()

    def send_write(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        idempotency_key: str,
        headers: Mapping[str, str] | None = None,
        not_found_is_refusal: bool = False,
    ) -> tuple[Any, httpx.Response]:
        """A write with its idempotency key (the same on every retry); a refusal becomes
        Rejected carrying the marketplace's own message.

        `not_found_is_refusal`: for placements, a 404 names a product that does not exist, which
        is a refusal of the order (retrying cannot help), not a missing order.
        """
        try:
            response = self.http.request(
                method, path, json=json, headers=headers, idempotency_key=idempotency_key
            )
        except NotFound as exc:
            if not not_found_is_refusal:
                raise
            raise Rejected(
                f"{self.slug} refused {method} {path}: "
                f"{marketplace_message(exc.response_text) or exc}",
                marketplace=self.slug,
                status=exc.status,
                response_text=exc.response_text,
            ) from exc
        except Rejected as exc:
            message = marketplace_message(exc.response_text) or str(exc)
            raise Rejected(
                f"{self.slug} refused {method} {path}: {message}",
                marketplace=self.slug,
                status=exc.status,
                response_text=exc.response_text,
            ) from exc
        try:
            body = decode_json_body(response, marketplace=self.slug)
        except BadPayload as exc:
            raise self.unreadable_write(f"{method} {path}", exc.detail or str(exc)) from exc
        return body, response

    def unreadable_write(self, what: str, detail: str) -> OutcomeUnknown:
        """A write answered 2xx whose reply cannot be read (not JSON, no order id): the
        marketplace may hold the result, so the outcome is unknown (ask it), never a failure."""
        return self.outcome_unknown(what, f"answered 2xx, but the reply cannot be read: {detail}")

    def outcome_unknown(self, what: str, why: str) -> OutcomeUnknown:
        """The error for a write that may or may not have taken effect."""
        return OutcomeUnknown(
            f"{self.slug}: outcome of {what} unknown: {why}", marketplace=self.slug
        )

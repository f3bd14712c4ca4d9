"""The HTTP client every marketplace adapter uses: explicit timeouts and a deadline for each
request, bounded retries with backoff, idempotency keys, and the three outcomes of a write
(succeeded, refused, unknown). Where it may connect: adapters.public_addresses.

Every number of the policy is here, in one place; the errors it raises are adapters.base's.
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from adapters.base import (
    BadPayload,
    MarketplaceError,
    NotFound,
    NotModified,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Transient,
    loggable_url,
)
from adapters.public_addresses import (
    PublicAddressTransport,
    private_network_allowed_by_settings,
    refuse_redirects_into_the_private_network,
    refused_by_a_guard,
    shared_ssl_context,
)
from adapters.redirect_secrets import RedirectRefused, keep_secrets_on_their_host
from adapters.request_deadline import DeadlineBody, deadline_at, past

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
# Each try's whole request (connect, send, the whole answer) ends by its deadline
# (adapters.request_deadline): ONECART_MARKETPLACE_DEADLINE_S, bounded by what must fit in it
# (commerce.sweep_claim). A body read in chunks by the caller (open_stream: feeds, unpaged
# lists of hundreds of megabytes) has its own, longer one: ONECART_MARKETPLACE_STREAM_DEADLINE_S.
REQUEST_DEADLINE_S = 60.0
STREAM_DEADLINE_S = 1800.0
MIN_DEADLINE_S = 0.05
MAX_STREAM_DEADLINE_S = 6 * 3600.0


# --- The client -----------------------------------------------------------------------------------


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
# The shortest configurable read timeout (marketplaces.toml option `read_timeout_s`). The
# longest is set by what must fit in it (commerce.sweep_claim), from longest_read_timeout_s.
MIN_READ_TIMEOUT_S = 0.05


def longest_request_s(
    read_timeout_s: float, *, deadline_s: float | None = None, max_retries: int = MAX_RETRIES
) -> float:
    """The longest one `MarketplaceHttp.request` can take with `read_timeout_s`: every try may
    wait for a pooled connection, the connection, the upload and the answer, each up to its
    timeout, and no longer than its deadline (`deadline_s`, when given); between tries the
    client pauses at most a capped Retry-After (or back-off). Resolving the marketplace's name
    is not counted (adapters.request_deadline)."""
    tries = max_retries + 1
    per_try = POOL_TIMEOUT_S + CONNECT_TIMEOUT_S + WRITE_TIMEOUT_S + read_timeout_s
    if deadline_s is not None:
        per_try = min(per_try, deadline_s)
    return tries * per_try + max_retries * max(RETRY_AFTER_CAP_S, BACKOFF_CAP_S)


def longest_deadline_s(
    within: timedelta, *, requests: int, max_retries: int = MAX_RETRIES
) -> float:
    """The longest request deadline with which `requests` requests in a row, each with every
    retry and pause (longest_request_s), end `within` the given time."""
    pauses = max_retries * max(RETRY_AFTER_CAP_S, BACKOFF_CAP_S)
    return (within.total_seconds() / requests - pauses) / (max_retries + 1)


def deadline_problem(deadline_s: object, *, longest: float) -> str | None:
    """Why a configured deadline cannot be used (not a number of seconds, shorter than
    MIN_DEADLINE_S or longer than `longest`); None when it fits."""
    if isinstance(deadline_s, bool) or not isinstance(deadline_s, int | float):
        return f"must be a number of seconds, got {deadline_s!r}"
    if not MIN_DEADLINE_S <= deadline_s <= longest:  # NaN too
        return f"must be from {MIN_DEADLINE_S} to {longest} seconds, got {deadline_s!r}"
    return None


def longest_read_timeout_s(
    within: timedelta, *, requests: int, max_retries: int = MAX_RETRIES
) -> float:
    """The longest read timeout with which `requests` requests in a row, each with every retry
    (longest_request_s), end `within` the given time; below zero when even instant answers do
    not fit."""
    per_request = within.total_seconds() / requests
    tries = max_retries + 1
    pauses = max_retries * max(RETRY_AFTER_CAP_S, BACKOFF_CAP_S)
    return (per_request - pauses) / tries - (POOL_TIMEOUT_S + CONNECT_TIMEOUT_S + WRITE_TIMEOUT_S)


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


class MarketplaceHttp:
    """One httpx client per marketplace: explicit timeouts, bounded retries with backoff.

    Reads retry 408/409/429/5xx and transport errors. A write passes `idempotency_key`, which is
    sent unchanged on every retry so the marketplace can recognise the repeat, and has three
    outcomes: a 2xx; a refusal (Rejected, NotFound, RateLimited after retries) when no attempt
    can have taken effect; or OutcomeUnknown when any attempt may have reached the marketplace
    (a timeout or reset after sending, a 5xx) and none succeeded. With `retry_unknown_writes`
    False, a write is not resent after such an attempt (for marketplaces that ignore
    idempotency keys): the caller must ask the marketplace first. Every try ends by its
    whole-request deadline (adapters.request_deadline): past it, a write sent is in doubt
    (unknown, like a timeout) and a read is transient.
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
        deadline_s: float = REQUEST_DEADLINE_S,
        stream_deadline_s: float = STREAM_DEADLINE_S,
        retry_unknown_writes: bool = True,
        private_network_allowed: bool | None = None,
        secrets: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        # The upper bound is configuration's (commerce.sweep_claim): every configured value is
        # checked where it is read, before a client is built.
        if not read_timeout_s >= MIN_READ_TIMEOUT_S or math.isinf(read_timeout_s):
            raise ValueError(
                f"{slug}: read timeout must be a number of seconds from {MIN_READ_TIMEOUT_S}, "
                f"got {read_timeout_s!r}"
            )
        for name, value in (("deadline", deadline_s), ("stream deadline", stream_deadline_s)):
            if not value >= MIN_DEADLINE_S or math.isinf(value):
                raise ValueError(
                    f"{slug}: {name} must be a number of seconds from {MIN_DEADLINE_S}, "
                    f"got {value!r}"
                )
        self.slug = slug
        self.deadline_s = deadline_s
        self.stream_deadline_s = stream_deadline_s
        self.max_retries = max_retries
        self.retry_unknown_writes = retry_unknown_writes
        self._sleep = sleep
        if private_network_allowed is None:
            private_network_allowed = private_network_allowed_by_settings()
        if transport is None:
            # Sandbox mode too: its marketplaces are on loopback or the private network, and
            # nothing of ours may be sent to the cloud's metadata service.
            transport = PublicAddressTransport(private_allowed=private_network_allowed)
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
            event_hooks={
                "response": [
                    refuse_redirects_into_the_private_network,
                    # `secrets`: the marketplace's key (adapters.http_adapter), asked when needed.
                    functools.partial(keep_secrets_on_their_host, secrets=secrets),
                ]
            },
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
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """Send with retries; return a 2xx response or raise the typed error for the failure.
        `data`: a form body (Cognito's token endpoint), instead of `json`."""
        return self._send_with_retries(
            method,
            path,
            params=params,
            json=json,
            data=data,
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
        wait for the first byte is retried; a body interrupted halfway is the caller's to report
        (an httpx.TimeoutException when the stream deadline passes while it reads it).
        """
        return self._send_with_retries(
            method,
            path,
            params=params,
            json=None,
            data=None,
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
        data: Mapping[str, str] | None,
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
        deadline_s = self.deadline_s
        # A body the caller reads in chunks (open_stream) may take longer than the head.
        body_deadline_s = self.stream_deadline_s if stream else deadline_s
        while True:
            attempt += 1
            started = time.monotonic()
            at = started + deadline_s
            request = self.client.build_request(
                method,
                path.lstrip("/"),
                params=params,
                json=json,
                data=data,
                headers=send_headers,
                timeout=self._timeout_within(deadline_s),
            )
            try:
                with deadline_at(at):
                    response = self.client.send(request, stream=True)
                # The whole answer by its deadline, whoever reads it (open_stream's callers).
                if response.is_success:
                    at = started + body_deadline_s
                response.stream = DeadlineBody(response.stream, at, request)
                if not (stream and response.is_success):
                    read_whole(response)
            except httpx.HTTPError as exc:
                if refused_by_a_guard(exc):
                    # Retrying would go the same way. After a redirect, a write's first hop
                    # reached the marketplace, which answered with it: not a provable refusal.
                    if is_write and (maybe_arrived or isinstance(exc, RedirectRefused)):
                        why = maybe_arrived or str(exc)
                        raise self._unknown(method, path, why, attempt) from exc
                    raise Transient(f"{method} {path}: {exc}", marketplace=self.slug) from exc
                # Transport failures, and also a reply whose body cannot be decoded
                # (DecodingError) or that redirects without end: the request went out.
                failure = f"{type(exc).__name__}: {exc}"
                if past(at):
                    # Not a refusal: a write sent may have been made (unknown); a read is
                    # transient. Each try has its own deadline, so the retries go on.
                    failure = f"no whole answer by the request's {deadline_s} s deadline: {failure}"
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
                response.close()  # its body was read above
            status = response.status_code
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            if is_write and (status >= 500 or status == 409):
                # 5xx: it may have been done before failing. 409 to a keyed write: a request
                # with this key is still being processed, so the order may yet be made.
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

    def _timeout_within(self, deadline_s: float) -> httpx.Timeout:
        """The client's timeouts, none longer than the request's deadline."""
        timeout = self.client.timeout
        return httpx.Timeout(
            connect=_at_most(timeout.connect, deadline_s),
            read=_at_most(timeout.read, deadline_s),
            write=_at_most(timeout.write, deadline_s),
            pool=_at_most(timeout.pool, deadline_s),
        )

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


def _at_most(timeout: float | None, limit: float) -> float:
    return limit if timeout is None else min(timeout, limit)


def read_whole(response: httpx.Response) -> None:
    """Read the body (by its deadline: DeadlineBody); closed whatever happens."""
    try:
        response.read()
    finally:
        response.close()


def decode_json(response: httpx.Response, *, marketplace: str) -> Any:
    """The JSON body, or BadPayload when the marketplace sent something else."""
    try:
        return response.json()
    except ValueError as exc:
        raise BadPayload(
            "invalid_json",
            detail=f"{loggable_url(response.request.url)}: {exc}",
            marketplace=marketplace,
        ) from exc

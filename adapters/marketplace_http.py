"""The HTTP client every marketplace adapter uses: explicit timeouts, bounded retries with
backoff, idempotency keys, and the three outcomes of a write (succeeded, refused, unknown).

Every number of the policy is here, in one place; the errors it raises are adapters.base's.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import random
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

import httpcore
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
from adapters.redirect_secrets import RedirectRefused, keep_secrets_on_their_host

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


def longest_request_s(read_timeout_s: float, *, max_retries: int = MAX_RETRIES) -> float:
    """The longest one `MarketplaceHttp.request` can take with `read_timeout_s`: every try may
    wait for a pooled connection, the connection, the upload and the answer, each up to its
    timeout, and between tries the client pauses at most a capped Retry-After (or back-off)."""
    tries = max_retries + 1
    per_try = POOL_TIMEOUT_S + CONNECT_TIMEOUT_S + WRITE_TIMEOUT_S + read_timeout_s
    return tries * per_try + max_retries * max(RETRY_AFTER_CAP_S, BACKOFF_CAP_S)


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


# --- Redirects stay out of the private network ----------------------------------------------

LOCAL_HOST_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
Resolver = Callable[[str, int], Sequence[str]]


def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)]


class AddressProblem(StrEnum):
    """Why a host is not a public internet address."""

    LOCAL_NAME = "is a local name"
    UNRESOLVED = "does not resolve"
    NOT_PUBLIC = "is not at a public address"
    METADATA = "is at a link-local address (the cloud's metadata service)"


def checked_addresses(
    host: str, port: int, *, resolve: Resolver = resolve_addresses, private_allowed: bool = False
) -> tuple[list[str], AddressProblem | None]:
    """Every address `host` resolves to (each once, in the resolver's order), and why it is not
    a public internet address (None when it is): a local name, nothing it resolves to, or any
    address that is loopback, private, link-local (cloud metadata), shared or reserved.

    `private_allowed` (sandbox mode, whose marketplaces run on loopback or the private network):
    only nothing it resolves to, or a link-local or metadata address, is a problem."""
    name = host.rstrip(".").lower()
    if not private_allowed and (
        not name or name in LOCAL_HOST_NAMES or name.endswith(".localhost")
    ):
        return [], AddressProblem.LOCAL_NAME
    try:
        addresses = list(dict.fromkeys(resolve(name, port)))
    except (OSError, ValueError, UnicodeError):
        return [], AddressProblem.UNRESOLVED
    if not addresses:
        return [], AddressProblem.UNRESOLVED
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if is_metadata_address(ip):
            return addresses, AddressProblem.METADATA
        if not private_allowed and not is_public_address(ip):
            return addresses, AddressProblem.NOT_PUBLIC
    return addresses, None


# IPv6 ranges whose addresses carry an IPv4 address in their last 32 bits, which a gateway on
# the way connects to: NAT64's well-known prefix (RFC 6052; DNS64 hosts on IPv6-only networks
# reach IPv4 through it), IPv4-compatible (deprecated) and IPv4-translated (SIIT) addresses.
# Python counts them as global whatever they carry (64:ff9b::a9fe:a9fe is 169.254.169.254).
_IPV4_IN_LAST_32_BITS = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
)
# NAT64's local-use prefix (RFC 8215): a network's own translator, with its own embedding.
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")


def _carried_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, NAT64, IPv4-compatible, translated
    or 6to4), else None."""
    embedded: ipaddress.IPv4Address | None = ip.ipv4_mapped or ip.sixtofour
    if embedded is None and any(ip in network for network in _IPV4_IN_LAST_32_BITS):
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return embedded


def is_public_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `ip` is a public internet address, and so is any IPv4 address it carries (an
    IPv4-mapped, NAT64, IPv4-compatible, translated or 6to4 one)."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip.is_global
    if ip in _LOCAL_NAT64:
        return False
    embedded = _carried_ipv4(ip)
    if embedded is not None:
        return embedded.is_global
    return ip.is_global


# Where clouds serve an instance's metadata (and its credentials): IPv4 and IPv6 link-local
# (169.254.169.254 on AWS, GCP, Azure, Oracle), and AWS's IPv6 address for it.
METADATA_ADDRESSES = frozenset({ipaddress.IPv6Address("fd00:ec2::254")})


def is_metadata_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `ip` (or an IPv4 address it carries) is link-local or a cloud's metadata
    address: refused even in sandbox mode, whose marketplaces never live there."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in METADATA_ADDRESSES or ip.is_link_local:
            return True
        embedded = _carried_ipv4(ip)
        return embedded is not None and embedded.is_link_local
    return ip.is_link_local


def address_problem(
    host: str, port: int, *, resolve: Resolver = resolve_addresses, private_allowed: bool = False
) -> AddressProblem | None:
    """Why `host` is not a public internet address (None when it is): see checked_addresses."""
    return checked_addresses(host, port, resolve=resolve, private_allowed=private_allowed)[1]


def non_public_address(
    host: str, port: int, *, resolve: Resolver = resolve_addresses
) -> str | None:
    """:func:`address_problem` as a sentence naming the host (None when it is public)."""
    problem = address_problem(host, port, resolve=resolve)
    return None if problem is None else f"{host or '(no host)'} {problem.value}"


def refuse_redirects_into_the_private_network(response: httpx.Response) -> None:
    """httpx's response hook: a redirect to another host is followed only to a public address.

    The marketplace's own host was chosen by an admin or the operator (the admin form refuses
    private ones outside sandbox mode) and the adapters' own requests go where they were
    written to; a redirect is the marketplace's say, and must not reach Meilisearch, Redis, the
    Dagster UI or the cloud's metadata address on our side (a 307 would even re-send a POST's
    body there). A redirect on the same host is followed as before."""
    if not response.has_redirect_location:
        return
    try:
        target = response.request.url.join(response.headers["Location"])
    except httpx.InvalidURL:
        return  # httpx refuses to follow it anyway
    if target.host == response.request.url.host or target.scheme not in ("http", "https"):
        return
    port = target.port or (443 if target.scheme == "https" else 80)
    why = non_public_address(target.host, port)
    if why is not None:
        raise RedirectRefused(
            f"redirect to {target.scheme}://{target.host} refused: {why} "
            "(a marketplace may not send OneCart into the private network)",
            request=response.request,
        )


# --- Every connection stays out of the private network (outside sandbox mode) ------------


class PrivateAddressRefused(httpcore.ConnectError):
    """A connection not opened: the host resolved to an address that is not public."""


class PublicAddressesOnly(httpcore.SyncBackend):
    """httpcore's network backend, opening a TCP connection only to a public address.

    The admin form and the redirect guard check a host when it is saved or redirected to, but a
    name is resolved again for each new connection and its owner (DNS rebinding) or whoever
    takes the domain over can make it answer 127.0.0.1, a private address or the cloud's
    metadata address by then. Here the name is resolved once per connection, every answer is
    checked, and the socket is opened to one of exactly those addresses, so no second lookup can
    change where it goes. TLS still verifies the certificate for the name (httpcore passes the
    URL's host as the server name)."""

    def __init__(
        self, *, resolve: Resolver = resolve_addresses, private_allowed: bool = False
    ) -> None:
        self._resolve = resolve
        # Sandbox mode: loopback and the private network are reached, link-local never.
        self._private_allowed = private_allowed

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses, problem = checked_addresses(
            host, port, resolve=self._resolve, private_allowed=self._private_allowed
        )
        if problem is AddressProblem.UNRESOLVED:
            raise httpcore.ConnectError(f"{host} {problem.value}")  # retried like any DNS failure
        if problem is not None:
            raise PrivateAddressRefused(
                f"connection to {host} refused: {host} {problem.value} "
                "(a marketplace may not send OneCart into the private network)"
            )
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return super().connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # checked_addresses returns addresses when it finds no problem
        raise failure


# httpx's default connection limits (httpx.Client's), for the guarded transport's own pool.
POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)


class PublicAddressTransport(httpx.HTTPTransport):
    """httpx's transport whose connections are opened by :class:`PublicAddressesOnly`.

    httpx 0.28 takes no network backend, so the pool is built here as HTTPTransport builds its
    own, with the backend added (httpcore.ConnectionPool's `network_backend`). Proxies from the
    environment are not used by it: a proxy would resolve the name itself, unchecked."""

    def __init__(
        self, *, resolve: Resolver = resolve_addresses, private_allowed: bool = False
    ) -> None:
        super().__init__(verify=shared_ssl_context(), limits=POOL_LIMITS)
        self._pool = httpcore.ConnectionPool(
            ssl_context=shared_ssl_context(),
            max_connections=POOL_LIMITS.max_connections,
            max_keepalive_connections=POOL_LIMITS.max_keepalive_connections,
            keepalive_expiry=POOL_LIMITS.keepalive_expiry,
            network_backend=PublicAddressesOnly(resolve=resolve, private_allowed=private_allowed),
        )


def refused_by_a_guard(exc: httpx.HTTPError) -> bool:
    """True when a guard refused the request before it was sent to where it would have gone:
    a redirect into the private network, or a connection to a non-public address."""
    return isinstance(exc, RedirectRefused) or isinstance(exc.__cause__, PrivateAddressRefused)


def private_network_allowed_by_settings() -> bool:
    """Sandbox mode talks to the sandbox on loopback; outside it, marketplaces are public."""
    from onecart.settings import get_settings

    return get_settings().sandbox_enabled


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
        self.slug = slug
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
            "invalid_json",
            detail=f"{loggable_url(response.request.url)}: {exc}",
            marketplace=marketplace,
        ) from exc

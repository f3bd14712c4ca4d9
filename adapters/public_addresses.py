"""Where a marketplace client may connect: public internet addresses only (outside sandbox
mode, and never the cloud's metadata address), checked for every connection and every redirect to
another host; and the one SSL context every marketplace client of this process shares.

Split from adapters.marketplace_http (the client's retry and outcome policy), which uses it.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum

import httpcore
import httpx

from adapters.redirect_secrets import RedirectRefused
from adapters.request_deadline import DeadlineStream, clipped_timeout
from onecart.helper_threads import leave_stop_signals_to_the_main_thread

# --- Redirects stay out of the private network ----------------------------------------------

LOCAL_HOST_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
Resolver = Callable[[str, int], Sequence[str]]


def resolve_addresses(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (IPv4 and IPv6)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)]


def resolve_within(resolve: Resolver, host: str, port: int, timeout: float | None) -> list[str]:
    """`resolve(host, port)`, given up after `timeout` seconds (httpcore.ConnectTimeout).

    getaddrinfo blocks and cannot be interrupted, and a resolver that does not answer held the
    worker past the request's whole deadline (the resolver's own retries: tens of seconds). It
    runs on a daemon thread of its own, which finishes or fails in its own time without holding
    the request or the process's exit; nothing has been sent yet, so giving up is safe."""
    if timeout is None:
        return list(resolve(host, port))
    answer: list[list[str]] = []
    failure: list[BaseException] = []

    def run() -> None:
        # A stuck lookup outlives its request, and the worker goes back to its Redis read.
        leave_stop_signals_to_the_main_thread()
        try:
            answer.append(list(resolve(host, port)))
        except BaseException as exc:  # handed to the waiting request below
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"resolve {host}"[:60], daemon=True)
    thread.start()
    thread.join(timeout)
    if failure:
        raise failure[0]
    if not answer:
        raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout:.2f} s")
    return answer[0]


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
        # The name's lookup, too, within the connect timeout and the request's deadline.
        resolve_timeout = clipped_timeout(timeout, httpcore.ConnectTimeout)
        addresses, problem = checked_addresses(
            host,
            port,
            resolve=lambda name, at_port: resolve_within(
                self._resolve, name, at_port, resolve_timeout
            ),
            private_allowed=self._private_allowed,
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
                # Each address within the time left before the request's deadline, and the
                # connection's reads and writes too (adapters.request_deadline).
                return DeadlineStream(
                    super().connect_tcp(
                        address,
                        port,
                        timeout=clipped_timeout(timeout, httpcore.ConnectTimeout),
                        local_address=local_address,
                        socket_options=socket_options,
                    )
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

"""The storefront's HTTP client for Meilisearch's multi-search: one POST, typed failures.

Every question the site asks the index goes through :func:`run_multi_search`, so every way the
search service can fail becomes one :class:`SearchUnavailable` with a reason the site can show.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import httptools
import meilisearch
import orjson

from search_index.cache import ResultCache

SEARCH_TIMEOUT_S: Final = 5


class SearchUnavailable(RuntimeError):
    """The index cannot answer (server down, timed out, index not built yet).

    The site turns this into a friendly 503 while the pages that don't need search keep working.
    `reason` is one of "unreachable", "timeout", "index_missing", "error".
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def make_client(
    url: str, api_key: str | None, *, timeout: int = SEARCH_TIMEOUT_S
) -> meilisearch.Client:
    """A Meilisearch client with a timeout, so a hung server cannot hold a web worker forever."""
    return meilisearch.Client(url, api_key, timeout=timeout)


# One kept-alive connection per thread and Meilisearch address (see _post_multi_search).
_local = threading.local()
_Address = tuple[str, str, int | None, float]
_RECEIVE_BYTES: Final = 65536


class ProtocolError(http.client.HTTPException):
    """Meilisearch's bytes are not an HTTP/1.1 response, or it closed the connection mid-way."""


class _Answer:
    """What httptools' parser reports of one response: its status, body, whether it has ended
    and whether the server keeps the connection open (read when the head ends: the parser
    forgets it once the message is complete)."""

    __slots__ = ("chunks", "complete", "keep_alive", "parser", "status")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.complete = False
        self.keep_alive = False
        self.status = 0
        self.parser: Any = httptools.HttpResponseParser(self)  # None once the answer is read

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, data: bytes) -> None:
        self.chunks.append(data)

    def on_message_complete(self) -> None:
        self.complete = True


class KeptConnection:
    """One HTTP/1.1 connection to Meilisearch, kept open from one search to the next.

    Why not http.client: its response reading (a buffered file over the socket, the headers
    parsed by the e-mail package) cost ~0.2 ms of Python per search, more than the socket's own
    work, on the critical path of every listing. The request is written in one send, and the
    answer is framed by httptools (llhttp, the C parser Node.js uses): Content-Length or
    chunked, keep-alive or not.
    """

    def __init__(self, scheme: str, host: str, port: int | None, timeout: float) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port or (443 if scheme == "https" else 80)
        self.timeout = timeout
        self.sock: socket.socket | None = None

    def _open(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        self.sock = sock
        return sock

    def send(self, request: bytes) -> None:
        """Write one whole request (head and body) on the connection, opening it if needed."""
        (self.sock or self._open()).sendall(request)

    def receive(self) -> tuple[int, bytes, bool]:
        """Read one response: (status, body, whether the connection stays open)."""
        sock = self.sock
        if sock is None:
            raise ProtocolError("nothing was sent on this connection")
        answer = _Answer()
        while not answer.complete:
            data = sock.recv(_RECEIVE_BYTES)
            if not data:
                raise ProtocolError("Meilisearch closed the connection before it answered")
            try:
                answer.parser.feed_data(data)
            except httptools.HttpParserError as exc:
                raise ProtocolError(f"Meilisearch's answer is not HTTP: {exc}") from exc
        answer.parser = None  # no reference cycle left for the garbage collector
        return answer.status, b"".join(answer.chunks), answer.keep_alive

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _connection(address: _Address) -> tuple[KeptConnection, bool]:
    """This thread's connection to `address` and whether it was used before (a new one is made
    when there is none, or when it was inherited from a parent process across a fork)."""
    connections: dict[_Address, KeptConnection] | None = getattr(_local, "open", None)
    if connections is None or getattr(_local, "pid", None) != os.getpid():
        connections = _local.open = {}
        _local.pid = os.getpid()
    connection = connections.get(address)
    if connection is not None:
        return connection, True
    connection = connections[address] = KeptConnection(*address)
    return connection, False


def _forget(address: _Address) -> None:
    connection = getattr(_local, "open", {}).pop(address, None)
    if connection is not None:
        connection.close()


def request_head(address: _Address, path: str, headers: Mapping[str, str], length: int) -> bytes:
    """The head of a POST of `length` bytes to `path` (Host and Content-Length added).

    A header value with a line break would smuggle a header (or a request) in: ValueError, as
    http.client raises."""
    _scheme, host, port, _timeout = address
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}" if port else f"Host: {host}"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"invalid header {name!r} for the search service")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _exchange(
    address: _Address,
    path: str,
    body: bytes,
    headers: dict[str, str],
    while_waiting: Callable[[], object] | None = None,
) -> tuple[int, bytes]:
    """One POST on this thread's kept-alive connection: (status, body); `while_waiting` runs
    once the request is sent, before the answer is read.

    A connection the server closed while it sat idle fails before any answer arrives; the
    request is then sent once more on a fresh connection (a multi-search only reads).
    """
    request = request_head(address, path, headers, len(body)) + body
    while True:
        connection, reused = _connection(address)
        try:
            connection.send(request)
            if while_waiting is not None:
                pending, while_waiting = while_waiting, None
                try:
                    pending()
                except BaseException:
                    _forget(address)  # its answer is never read
                    raise
            status, data, keep_open = connection.receive()
        except TimeoutError:
            _forget(address)
            raise
        except (OSError, http.client.HTTPException):
            _forget(address)
            if reused:
                continue
            raise
        if not keep_open:
            _forget(address)
        return status, data


def _post_multi_search(
    client: meilisearch.Client, body: bytes, while_waiting: Callable[[], object] | None = None
) -> dict[str, Any]:
    """POST /multi-search with the client's URL, key and timeout, on a kept-alive connection.

    Why not `client.multi_search`: the Python client builds a `requests` session per call (about
    2 ms of Python per search). Why one connection per thread kept open: connecting, accepting
    and closing a socket per search cost both processes CPU on every listing, and measured on
    Meilisearch 1.21 a kept-alive connection answers as fast as a fresh one (no delayed-ACK
    stall). The connection is this module's KeptConnection (why not http.client: there).
    Answers are parsed with orjson, a few times faster than the json module.
    """
    config = client.config
    parts = urlsplit(config.url)
    address = (
        parts.scheme,
        parts.hostname or "127.0.0.1",
        parts.port,
        float(config.timeout or SEARCH_TIMEOUT_S),
    )
    headers = {"Content-Type": "application/json", "User-Agent": "OneCart storefront"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    try:
        status, data = _exchange(
            address, parts.path.rstrip("/") + "/multi-search", body, headers, while_waiting
        )
    except ValueError as exc:  # request_head: a key with a line break
        raise SearchUnavailable(
            "the search service's API key cannot be sent (it has a line break)", reason="error"
        ) from exc
    except TimeoutError as exc:
        raise SearchUnavailable("the search service timed out", reason="timeout") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise SearchUnavailable("the search service is unreachable", reason="unreachable") from exc
    try:
        answer = orjson.loads(data) if data else {}
    except orjson.JSONDecodeError as exc:
        raise SearchUnavailable("the search service answered garbage", reason="error") from exc
    if status >= 400:
        code = answer.get("code") if isinstance(answer, dict) else None
        if code == "index_not_found":
            raise SearchUnavailable("the product index is not built yet", reason="index_missing")
        message = answer.get("message") if isinstance(answer, dict) else None
        raise SearchUnavailable(
            f"the search service refused the query ({status}): {message or data[:200]!r}",
            reason="error",
        )
    if not isinstance(answer, dict):
        raise SearchUnavailable("the search service answered garbage", reason="error")
    return answer


def request_body(queries: Sequence[Mapping[str, Any]]) -> bytes:
    """The multi-search request body for `queries` (also the result cache's key)."""
    return orjson.dumps({"queries": list(queries)})


def run_multi_search(
    client: meilisearch.Client,
    queries: Sequence[Mapping[str, Any]],
    cache: ResultCache | None = None,
    *,
    while_waiting: Callable[[], object] | None = None,
) -> list[dict[str, Any]]:
    """Send `queries` as one multi-search and return Meilisearch's results in order.

    Raises SearchUnavailable (with a reason) for every way it can fail; with a `cache`, an
    identical request within its time-to-live is answered without Meilisearch.
    `while_waiting` is called once while Meilisearch works on the request (or first thing, when
    the answer is cached), so a caller can do its own work meanwhile.
    """
    body = request_body(queries)
    if cache is not None:
        cached = cache.get(body)
        if cached is not None:
            if while_waiting is not None:
                while_waiting()
            return cached
    results = list(_post_multi_search(client, body, while_waiting).get("results", []))
    if cache is not None:
        cache.put(body, results)
    return results

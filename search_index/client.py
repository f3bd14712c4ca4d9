"""The storefront's HTTP client for Meilisearch's multi-search: one POST, typed failures.

Every question the site asks the index goes through :func:`run_multi_search`, so every way the
search service can fail becomes one :class:`SearchUnavailable` with a reason the site can show.
"""

from __future__ import annotations

import http.client
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

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


def _connection(address: _Address) -> tuple[http.client.HTTPConnection, bool]:
    """This thread's connection to `address` and whether it was used before (a new one is made
    when there is none, or when it was inherited from a parent process across a fork)."""
    connections: dict[_Address, http.client.HTTPConnection] | None = getattr(_local, "open", None)
    if connections is None or getattr(_local, "pid", None) != os.getpid():
        connections = _local.open = {}
        _local.pid = os.getpid()
    connection = connections.get(address)
    if connection is not None:
        return connection, True
    scheme, host, port, timeout = address
    connection_class = (
        http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(host, port, timeout=timeout)
    connections[address] = connection
    return connection, False


def _forget(address: _Address) -> None:
    connection = getattr(_local, "open", {}).pop(address, None)
    if connection is not None:
        connection.close()


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
    while True:
        connection, reused = _connection(address)
        try:
            connection.request("POST", path, body, headers)
            if while_waiting is not None:
                pending, while_waiting = while_waiting, None
                try:
                    pending()
                except BaseException:
                    _forget(address)  # its answer is never read
                    raise
            response = connection.getresponse()
            data = response.read()
        except TimeoutError:
            _forget(address)
            raise
        except (OSError, http.client.HTTPException):
            _forget(address)
            if reused:
                continue
            raise
        if response.will_close:
            _forget(address)
        return response.status, data


def _post_multi_search(
    client: meilisearch.Client, body: bytes, while_waiting: Callable[[], object] | None = None
) -> dict[str, Any]:
    """POST /multi-search with the client's URL, key and timeout, on a kept-alive connection.

    Why not `client.multi_search`: the Python client builds a `requests` session per call (about
    2 ms of Python per search). Why one connection per thread kept open: connecting, accepting
    and closing a socket per search cost both processes CPU on every listing, and measured on
    Meilisearch 1.21 a kept-alive connection answers as fast as a fresh one (no delayed-ACK
    stall). Answers are parsed with orjson, a few times faster than the json module.
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

"""The storefront's HTTP client for Meilisearch's multi-search: one POST, typed failures.

Every question the site asks the index goes through :func:`run_multi_search`, so every way the
search service can fail becomes one :class:`SearchUnavailable` with a reason the site can show.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlsplit

import meilisearch

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


def _post_multi_search(client: meilisearch.Client, body: bytes) -> dict[str, Any]:
    """POST /multi-search on a fresh connection, with the client's URL, key and timeout.

    Why not `client.multi_search`: the Python client builds a `requests` session per call (about
    2 ms of Python per search), and a kept-alive connection would be worse: Meilisearch writes
    its answer in two segments, and the delayed ACK then adds ~40 ms. A fresh loopback
    connection costs a fraction of a millisecond.
    """
    config = client.config
    parts = urlsplit(config.url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(
        parts.hostname or "127.0.0.1", parts.port, timeout=config.timeout or SEARCH_TIMEOUT_S
    )
    headers = {"Content-Type": "application/json", "User-Agent": "OneCart storefront"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    try:
        connection.request("POST", parts.path.rstrip("/") + "/multi-search", body, headers)
        response = connection.getresponse()
        data = response.read()
    except TimeoutError as exc:
        raise SearchUnavailable("the search service timed out", reason="timeout") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise SearchUnavailable("the search service is unreachable", reason="unreachable") from exc
    finally:
        connection.close()
    try:
        answer = json.loads(data) if data else {}
    except ValueError as exc:
        raise SearchUnavailable("the search service answered garbage", reason="error") from exc
    if response.status >= 400:
        code = answer.get("code") if isinstance(answer, dict) else None
        if code == "index_not_found":
            raise SearchUnavailable("the product index is not built yet", reason="index_missing")
        message = answer.get("message") if isinstance(answer, dict) else None
        raise SearchUnavailable(
            f"the search service refused the query ({response.status}): {message or data[:200]!r}",
            reason="error",
        )
    if not isinstance(answer, dict):
        raise SearchUnavailable("the search service answered garbage", reason="error")
    return answer


def run_multi_search(
    client: meilisearch.Client,
    queries: Sequence[Mapping[str, Any]],
    cache: ResultCache | None = None,
) -> list[dict[str, Any]]:
    """Send `queries` as one multi-search and return Meilisearch's results in order.

    Raises SearchUnavailable (with a reason) for every way it can fail; with a `cache`, an
    identical request within its time-to-live is answered without Meilisearch.
    """
    body = json.dumps({"queries": list(queries)}, separators=(",", ":")).encode()
    if cache is not None:
        cached = cache.get(body)
        if cached is not None:
            return cached
    results = list(_post_multi_search(client, body).get("results", []))
    if cache is not None:
        cache.put(body, results)
    return results

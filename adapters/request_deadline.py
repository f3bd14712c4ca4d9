"""A whole-request deadline for marketplace requests: connect, send and the whole answer.

httpx's timeouts are per socket operation, not per request: a marketplace trickling its answer
one byte at a time, each just inside the read timeout, held the worker that asked for as long as
it liked (placement, tracking, cancellation and the sweep waited; an rq worker-pool slot was
lost). Here a request's deadline (a `time.monotonic()` instant) is enforced twice:

- on the wire: every socket operation of a connection opened by adapters.public_addresses gets
  at most the time left (`DeadlineStream`), and one past it fails at once (httpcore's timeout
  errors, which httpx maps to its own). The instant is in a context variable set around the
  send and around each chunk of the body, so a pooled connection serves each request with its
  own deadline, and a thread not sending a marketplace request is not touched by it.
- on the body: `DeadlineBody` checks the deadline between chunks of the answer, whoever reads
  it (MarketplaceHttp itself, or a caller reading an `open_stream` body later), also through a
  transport of the tests' own.

- on the name's lookup: `getaddrinfo` blocks and cannot be interrupted, so
  adapters.public_addresses runs it on a thread of its own and gives up on it at the time left;
  each address is then tried only within the time left.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import httpcore
import httpx

# The deadline of the marketplace request this thread is sending or reading, if any.
_DEADLINE: ContextVar[float | None] = ContextVar("onecart_marketplace_deadline", default=None)


@contextmanager
def deadline_at(at: float) -> Iterator[None]:
    """Socket operations in this block end by `at` (time.monotonic()), or fail."""
    token = _DEADLINE.set(at)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def clipped_timeout(timeout: float | None, error: type[httpcore.TimeoutException]) -> float | None:
    """`timeout`, or the time left before this request's deadline when that is shorter; raises
    `error` when the deadline has passed (a zero timeout would make the socket non-blocking)."""
    at = _DEADLINE.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the current request's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, clipped_timeout(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, clipped_timeout(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return DeadlineStream(
            self._stream.start_tls(
                ssl_context,
                server_hostname=server_hostname,
                timeout=clipped_timeout(timeout, httpcore.ConnectTimeout),
            )
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class DeadlinePassed(httpx.ReadTimeout):
    """A marketplace's answer not complete by the request's deadline."""


class DeadlineBody(httpx.SyncByteStream):
    """A response body read chunk by chunk, each chunk by the request's deadline."""

    def __init__(self, stream: httpx.SyncByteStream, at: float, request: httpx.Request) -> None:
        self._stream = stream
        self._at = at
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._stream)
        while True:
            if time.monotonic() >= self._at:
                raise DeadlinePassed(
                    "the answer did not arrive whole by the request's deadline",
                    request=self._request,
                )
            with deadline_at(self._at):
                chunk = next(chunks, None)
            if chunk is None:
                return
            yield chunk

    def close(self) -> None:
        self._stream.close()


def past(at: float) -> bool:
    """Whether the deadline `at` has passed."""
    return time.monotonic() >= at

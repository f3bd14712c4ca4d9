"""A marketplace's name lookup ends within the connect timeout and the request's deadline.

getaddrinfo blocks and cannot be interrupted: a resolver that did not answer held the worker past
the whole-request deadline (adapters.request_deadline) for as long as the resolver retried. The
resolver here blocks until the test releases it; nothing asserts on the wall clock: the connect
gave up while the lookup was still blocked, and nothing was connected."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpcore
import httpx
import pytest

from adapters.public_addresses import PublicAddressesOnly, PublicAddressTransport
from adapters.request_deadline import deadline_at


class StuckResolver:
    """A resolver that answers only once released (as a DNS server that does not answer)."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append(host)
        self.released.wait(60)
        return ["127.0.0.1"]


@pytest.fixture
def stuck() -> Iterator[StuckResolver]:
    resolver = StuckResolver()
    yield resolver
    resolver.released.set()


def test_a_lookup_that_does_not_answer_ends_at_the_requests_deadline(
    stuck: StuckResolver,
) -> None:
    backend = PublicAddressesOnly(resolve=stuck, private_allowed=True)
    with (
        deadline_at(time.monotonic() + 0.2),
        pytest.raises(httpcore.ConnectTimeout, match="resolv"),
    ):
        backend.connect_tcp("stuck.example", 80, timeout=30)
    assert stuck.asked == ["stuck.example"] and not stuck.released.is_set()


def test_a_lookup_that_does_not_answer_ends_at_the_connect_timeout(stuck: StuckResolver) -> None:
    """No request deadline set (a caller outside MarketplaceHttp): the connect timeout bounds it,
    and httpx reports it as its own ConnectTimeout (nothing sent: safe to retry)."""
    transport = PublicAddressTransport(resolve=stuck, private_allowed=True)
    client = httpx.Client(transport=transport, timeout=httpx.Timeout(5, connect=0.2))
    with client, pytest.raises(httpx.ConnectTimeout):
        client.get("http://stuck.example/orders/1")
    assert not stuck.released.is_set()


def test_a_lookup_failure_is_still_an_unresolved_host() -> None:
    def no_such_host(host: str, port: int) -> Sequence[str]:
        raise OSError(-2, "Name or service not known")

    backend = PublicAddressesOnly(resolve=no_such_host, private_allowed=True)
    with pytest.raises(httpcore.ConnectError, match="does not resolve"):
        backend.connect_tcp("nowhere.example", 80, timeout=5)


def test_a_stuck_lookup_thread_leaves_stop_signals_to_the_main_thread(
    stuck: StuckResolver,
) -> None:
    backend = PublicAddressesOnly(resolve=stuck, private_allowed=True)
    with pytest.raises(httpcore.ConnectTimeout):
        backend.connect_tcp("stuck.example", 80, timeout=0.1)
    lookups = [thread for thread in threading.enumerate() if thread.name.startswith("resolve")]
    assert lookups, "the lookup still runs on a thread of its own"
    for lookup in lookups:
        status = Path(f"/proc/self/task/{lookup.native_id}/status").read_text()
        [mask] = [line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")]
        for stop in (signal.SIGINT, signal.SIGTERM):
            assert int(mask, 16) & (1 << (stop - 1)), f"the lookup thread takes {stop.name}"

"""Every marketplace request has a whole-request deadline, not only per-read timeouts.

httpx's timeouts are per socket operation: a marketplace that trickles its answer one byte at a
time, each just inside the read timeout, held the worker that asked for as long as it liked
(placement, tracking, cancellation and the sweep waited; an rq worker-pool slot was lost).

A real loopback server answers every request one byte at a time (head and body), each byte well
inside the read timeout, for many times the configured deadline. Nothing asserts on the wall
clock: the outcome says whether the client gave up (a typed error, the server saw the client
hang up before its last byte) or waited for the whole answer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapters.base import Transient
from adapters.woocommerce import WooCommerceAdapter
from tests.adapters.configs import marketplace_config

# Small configured values: the deadline of one request, and each read's timeout.
DEADLINE_S = 0.3
READ_TIMEOUT_S = 0.2
# The pause between two bytes: each read gets its byte well inside the read timeout.
BYTE_PAUSE_S = 0.01
# The trickled answer lasts at least this many deadlines.
DEADLINES_OUTLASTED = 6


class TricklingMarketplace(ThreadingHTTPServer):
    """Answers every request with `body` (JSON) one byte every BYTE_PAUSE_S, padded so the
    answer outlasts the deadline DEADLINES_OUTLASTED times; notes whether the client hung up
    before the last byte."""

    daemon_threads = True

    def __init__(self, body: object) -> None:
        super().__init__(("127.0.0.1", 0), _Trickle)
        self.body = body
        self.requests: list[str] = []
        self.hung_up_early = 0
        self.answered_in_full = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Trickle(BaseHTTPRequestHandler):
    server: TricklingMarketplace
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads `requests`."""

    def _trickle(self) -> None:
        self.server.requests.append(f"{self.command} {self.path.split('?')[0]}")
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(self.server.body).encode()
        padding = int(DEADLINES_OUTLASTED * DEADLINE_S / BYTE_PAUSE_S) + 1
        body += b" " * max(padding - len(body), 0)
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        answer = head + body
        self.close_connection = True
        try:
            for index in range(len(answer)):
                self.wfile.write(answer[index : index + 1])
                self.wfile.flush()
                time.sleep(BYTE_PAUSE_S)
        except (BrokenPipeError, ConnectionResetError):
            self.server.hung_up_early += 1
            return
        self.server.answered_in_full += 1

    do_GET = _trickle
    do_POST = _trickle
    do_PUT = _trickle


def trickling(body: object) -> Iterator[TricklingMarketplace]:
    server = TricklingMarketplace(body)
    thread = threading.Thread(target=server.serve_forever, name="trickling", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def trickled_order() -> Iterator[TricklingMarketplace]:
    yield from trickling({"id": 4242, "status": "processing", "meta_data": []})


@pytest.fixture
def trickled_products() -> Iterator[TricklingMarketplace]:
    yield from trickling([])


def woocommerce_at(server: TricklingMarketplace, *, retries: bool = True) -> WooCommerceAdapter:
    config = marketplace_config(
        "woocommerce",
        slug="kiondo",
        currency="KES",
        base_url=server.base_url,
        api_key="ck_test:cs_test",
        options={"read_timeout_s": READ_TIMEOUT_S, "deadline_s": DEADLINE_S},
    )
    adapter = WooCommerceAdapter(config, sleep=lambda _seconds: None)
    if not retries:
        adapter.http.max_retries = 0
    return adapter


def test_a_tracking_read_trickled_past_its_deadline_is_a_transient_failure(
    trickled_order: TricklingMarketplace,
) -> None:
    """The order's status read gives up at its deadline: Transient (tracking asks again later),
    the connection closed before the marketplace's last byte; every retry gives up the same."""
    adapter = woocommerce_at(trickled_order)
    try:
        with pytest.raises(Transient, match="deadline"):
            adapter.order_status("4242")
    finally:
        adapter.close()
    assert trickled_order.answered_in_full == 0
    assert len(trickled_order.requests) == adapter.http.max_retries + 1


def test_a_catalog_page_trickled_past_its_deadline_is_a_transient_failure(
    trickled_products: TricklingMarketplace,
) -> None:
    """A catalog page read gives up at its deadline (one try here): Transient, not an empty
    page taken for the end of the catalog."""
    adapter = woocommerce_at(trickled_products, retries=False)
    try:
        with pytest.raises(Transient, match="deadline"):
            next(iter(adapter.fetch_catalog_pages()))
    finally:
        adapter.close()
    assert trickled_products.answered_in_full == 0
    assert trickled_products.requests == ["GET /wp-json/wc/store/v1/products"]

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
from pydantic import ValidationError

from adapters.amazon import AmazonCreatorsAdapter
from adapters.base import OutcomeUnknown, Transient
from adapters.fakestore import FakeStoreAdapter
from adapters.marketplace_http import longest_request_s
from adapters.registry import MarketplaceConfigError, build_adapter, parse_marketplaces
from adapters.woocommerce import WooCommerceAdapter
from commerce.sweep_claim import (
    HTTP_REQUESTS_PER_CLAIM,
    MAX_MARKETPLACE_DEADLINE_S,
    SWEEP_CLAIM_DEAD_AFTER,
)
from onecart.settings import Settings
from tests.adapters.configs import marketplace_config, offline_transport

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
    before the last byte. `head_at_once`: the status line and headers are sent at once, only
    the body trickled (a body the caller reads after the call returned)."""

    daemon_threads = True

    def __init__(self, body: object) -> None:
        super().__init__(("127.0.0.1", 0), _Trickle)
        self.body = body
        self.head_at_once = False
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
            if self.server.head_at_once:
                self.wfile.write(head)
                self.wfile.flush()
                answer = body
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


@pytest.fixture
def trickled_feed() -> Iterator[TricklingMarketplace]:
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


def test_a_cancel_trickled_past_its_deadline_is_an_unknown_outcome(
    trickled_order: TricklingMarketplace,
) -> None:
    """A cancel whose answer is trickled past the deadline may have been made: OutcomeUnknown
    (the caller asks the marketplace), never a refusal; not resent to a store ignoring keys."""
    adapter = woocommerce_at(trickled_order)
    adapter.http.retry_unknown_writes = False
    try:
        with pytest.raises(OutcomeUnknown, match="deadline"):
            adapter.cancel_order("4242")
    finally:
        adapter.close()
    assert trickled_order.requests == ["PUT /wp-json/wc/v3/orders/4242"]
    assert trickled_order.answered_in_full == 0


def test_a_streamed_catalog_body_trickled_past_its_deadline_is_a_transient_failure(
    trickled_feed: TricklingMarketplace,
) -> None:
    """Fake Store's unpaged product list is read by the adapter after the call returned
    (open_stream): its body, trickled after headers sent at once, ends at the stream's
    deadline (Transient), not whenever the marketplace finishes."""
    trickled_feed.head_at_once = True
    config = marketplace_config("fakestore", slug="fakestore", base_url=trickled_feed.base_url)
    adapter = FakeStoreAdapter(config, sleep=lambda _seconds: None)
    adapter.http.stream_deadline_s = DEADLINE_S
    try:
        with pytest.raises(Transient, match="body interrupted"):
            list(adapter.fetch_catalog_pages())
    finally:
        adapter.close()
    assert trickled_feed.requests == ["GET /products"]
    assert trickled_feed.answered_in_full == 0


def test_the_calls_one_claim_covers_fit_in_it_at_the_deadline_bound_and_not_above() -> None:
    """Whatever the read timeout, the calls a sweep makes under one claim end inside it when
    each try ends by its deadline (resolving names aside): at the bound, not 0.01 s above."""
    claim_s = SWEEP_CLAIM_DEAD_AFTER.total_seconds()
    for read_timeout_s in (15.0, 10_000.0):
        longest = longest_request_s(read_timeout_s, deadline_s=MAX_MARKETPLACE_DEADLINE_S)
        assert HTTP_REQUESTS_PER_CLAIM * longest <= claim_s
    above = longest_request_s(10_000.0, deadline_s=MAX_MARKETPLACE_DEADLINE_S + 0.01)
    assert HTTP_REQUESTS_PER_CLAIM * above > claim_s


def test_a_deadline_above_the_bound_is_refused_in_the_environment_the_file_and_the_adapter() -> (
    None
):
    above = MAX_MARKETPLACE_DEADLINE_S + 1
    with pytest.raises(ValidationError, match="abandoned-cancellation sweep"):
        Settings(ONECART_MARKETPLACE_DEADLINE_S=above)
    with pytest.raises(ValidationError, match="must be from"):
        Settings(ONECART_MARKETPLACE_STREAM_DEADLINE_S=0)
    assert (
        Settings(ONECART_MARKETPLACE_DEADLINE_S=MAX_MARKETPLACE_DEADLINE_S).marketplace_deadline_s
        == MAX_MARKETPLACE_DEADLINE_S
    )
    entry = {
        "slug": "slowmart",
        "name": "Slow Mart",
        "kind": "woocommerce",
        "base_url": "https://slow.example.com",
        "currency": "USD",
        "country": "US",
        "options": {"deadline_s": above},
    }
    with pytest.raises(MarketplaceConfigError, match=r"slowmart.*deadline_s.*sweep"):
        parse_marketplaces({"marketplace": [entry]}, {})
    config = marketplace_config("woocommerce", options={"deadline_s": above})
    with pytest.raises(MarketplaceConfigError, match="deadline_s"):
        build_adapter(config, transport=offline_transport())
    config = marketplace_config("woocommerce", options={"deadline_s": "soon"})
    with pytest.raises(MarketplaceConfigError, match="number of seconds"):
        build_adapter(config, transport=offline_transport())


@pytest.fixture
def trickled_token() -> Iterator[TricklingMarketplace]:
    yield from trickling({"access_token": "cognito-token", "expires_in": 3600})


def test_a_cognito_token_trickled_past_its_deadline_is_a_transient_failure(
    trickled_token: TricklingMarketplace,
) -> None:
    """Amazon's Cognito token (a form body, once sent through the raw httpx client outside
    every deadline and retry) ends at its deadline too: Transient, the lookup never sent."""
    config = marketplace_config(
        "amazon",
        slug="amazon",
        base_url=trickled_token.base_url,
        api_key="amzn1.id:amzn1.secret",
        api_key_env="ONECART_MARKETPLACE_KEY_AMAZON",
        options={
            "marketplace": "www.amazon.com",
            "partner_tag": "onecart-20",
            "browse_nodes": ["172282"],
            "keywords": ["thermos flask"],
            "min_request_interval_s": 0,
            "credential_version": "2.2",
            "auth_url": "oauth2/token",
            "read_timeout_s": READ_TIMEOUT_S,
            "deadline_s": DEADLINE_S,
        },
    )
    adapter = AmazonCreatorsAdapter(config, sleep=lambda _seconds: None)
    adapter.http.max_retries = 0
    try:
        with pytest.raises(Transient, match="deadline"):
            adapter.lookup_offer("B0BXYCS74H")
    finally:
        adapter.close()
    assert trickled_token.requests == ["POST /oauth2/token"]
    assert trickled_token.answered_in_full == 0


def test_a_streamed_catalogs_head_trickled_past_the_request_deadline_is_a_transient_failure(
    trickled_feed: TricklingMarketplace,
) -> None:
    """The long stream deadline is the body's: the status line and headers of a streamed
    catalog still come by the request's deadline (Transient, one try here)."""
    config = marketplace_config(
        "fakestore",
        slug="fakestore",
        base_url=trickled_feed.base_url,
        options={"read_timeout_s": READ_TIMEOUT_S, "deadline_s": DEADLINE_S},
    )
    adapter = FakeStoreAdapter(config, sleep=lambda _seconds: None)
    adapter.http.max_retries = 0
    try:
        with pytest.raises(Transient, match="deadline"):
            list(adapter.fetch_catalog_pages())
    finally:
        adapter.close()
    assert trickled_feed.requests == ["GET /products"]
    assert trickled_feed.answered_in_full == 0

"""The abandoned-cancellation sweep keeps its claim on a part however long one marketplace call
takes.

httpx's read timeout is per socket read, not per answer: a marketplace that trickles its answer
one byte at a time, each within the read timeout, makes one call last as long as it likes, so
no bound on the timeouts (commerce.sweep_claim) keeps a call inside the claim. A claim renewed
only before each call then ran out during the cancel, the next sweep took the part over and
sent the cancel again. The sweep now renews its claim while it holds it (commerce.lease_renewal).

A real loopback server speaks WooCommerce's REST v3 to the real adapter and its HTTP client,
with small configured values (the claim, the read timeout, the pause between bytes): its
answer to the cancel is trickled until the claim has run out several times over, and before
its last byte a second sweep tries the part. Nothing waits on a wall-clock limit: the order of
events is fixed by the server.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from adapters.base import OrderStatus
from adapters.woocommerce import WooCommerceAdapter
from commerce.abandoned_cancellations import resolve_abandoned_cancellation
from commerce.cancellation import CancelOutcome
from commerce.models import Marketplace
from commerce.order_models import SubOrderStatus
from commerce.payments.providers import gateway_for_payment
from tests.adapters.configs import marketplace_config
from tests.checkout.shop import Shop
from tests.checkout.test_abandoned_cancellations import Kiondo, _cancellation_job_ended, _state
from tests.checkout.tracking_fakes import set_columns

# The sweep's claim, and the marketplace's read timeout: small, so the test is quick.
CLAIM = timedelta(seconds=0.3)
READ_TIMEOUT_S = 0.2
# The pause between two bytes of a trickled answer: each read gets a byte well inside the
# read timeout, so httpx never times out.
BYTE_PAUSE_S = 0.01
# The trickled answer lasts at least this many claims before its last byte.
CLAIMS_OUTLASTED = 3


class TrickledWooCommerce(ThreadingHTTPServer):
    """WooCommerce's order API on loopback: a status read answered at once ("processing"); a
    cancel (PUT status=cancelled) answered "cancelled" one byte every BYTE_PAUSE_S, running
    `before_last_byte` before the last one. Every request's method is written down."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[str] = []
        self.trickled_bytes = 0
        self.before_last_byte: Callable[[], None] = lambda: None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: TrickledWooCommerce
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads `requests`."""

    def _order(self, status: str) -> bytes:
        match = re.search(r"/orders/([^/?]+)", self.path)
        assert match is not None
        return json.dumps({"id": int(match.group(1)), "status": status, "meta_data": []}).encode()

    def do_GET(self) -> None:
        self.server.requests.append("GET")
        body = self._order("processing")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        self.server.requests.append("PUT")
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = self._order("cancelled")
        # Padded so the trickle outlasts the claim CLAIMS_OUTLASTED times.
        padding = int(CLAIMS_OUTLASTED * CLAIM.total_seconds() / BYTE_PAUSE_S) + 1
        body += b" " * max(padding - len(body), 0)
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        answer = head + body
        for index in range(len(answer)):
            if index == len(answer) - 1:
                self.server.before_last_byte()
            self.wfile.write(answer[index : index + 1])
            self.wfile.flush()
            self.server.trickled_bytes += 1
            time.sleep(BYTE_PAUSE_S)
        self.close_connection = True


@pytest.fixture
def trickling_kiondo() -> Iterator[TrickledWooCommerce]:
    server = TrickledWooCommerce()
    thread = threading.Thread(target=server.serve_forever, name="trickling kiondo", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_cancel_trickled_past_the_claim_keeps_the_part_with_its_sweep(
    shop: Shop, trickling_kiondo: TrickledWooCommerce
) -> None:
    """The cancel's answer takes several claims to arrive; a second sweep tries the part before
    its last byte and finds it still held: it asks nothing and sends no cancel. The first sweep
    records the cancellation, refunded once; the cancel was sent once."""
    kiondo = _cancellation_job_ended(shop)
    set_columns(shop, kiondo.id, marketplace_order_id="4242")  # WooCommerce's ids are numbers
    adapters: list[WooCommerceAdapter] = []

    def adapter_for(marketplace: Marketplace) -> WooCommerceAdapter:
        config = marketplace_config(
            "woocommerce",
            slug=marketplace.slug,
            currency="KES",
            base_url=trickling_kiondo.base_url,
            api_key="ck_test:cs_test",
            options={"read_timeout_s": READ_TIMEOUT_S},
        )
        adapters.append(WooCommerceAdapter(config))
        return adapters[-1]

    rival = Kiondo(status=OrderStatus.PROCESSING, cancel=OrderStatus.CANCELLED)
    rival_outcomes: list[CancelOutcome | None] = []

    def second_sweep() -> None:
        rival_outcomes.append(
            resolve_abandoned_cancellation(
                shop.session_factory,
                kiondo.id,
                adapter_for=rival.adapter_for,  # type: ignore[arg-type]
                gateway_for=gateway_for_payment,
                claim_dead_after=CLAIM,
            )
        )

    trickling_kiondo.before_last_byte = second_sweep
    try:
        outcome = resolve_abandoned_cancellation(
            shop.session_factory,
            kiondo.id,
            adapter_for=adapter_for,
            gateway_for=gateway_for_payment,
            claim_dead_after=CLAIM,
        )
    finally:
        for adapter in adapters:
            adapter.close()

    # The call really outlasted the claim: the bytes before the last one alone took longer.
    assert (trickling_kiondo.trickled_bytes - 1) * BYTE_PAUSE_S >= CLAIMS_OUTLASTED * (
        CLAIM.total_seconds()
    )
    assert rival_outcomes == [None] and rival.calls == []  # the claim held
    assert trickling_kiondo.requests == ["GET", "PUT"]  # the cancel sent once
    assert outcome == CancelOutcome.CANCELLED
    assert _state(shop, kiondo) == (SubOrderStatus.CANCELLED, "cancelled", [kiondo.charge_minor])

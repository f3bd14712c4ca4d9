"""A placement attempt keeps its claim on the sub-order for as long as it runs.

The claim is a lease (commerce.placement_claims) so that a dead worker's sub-order is placed
again by the sweeper. It was fixed at `stuck_after` (5 minutes), while one attempt can wait on
its marketplace far longer: five tries of a write (with the marketplace's `read_timeout_s`, up
to 300 s each) plus Retry-After pauses, and the first attempts of an order run in threads of one
job that RQ's job timeout does not stop. Once the lease ran out under a live attempt, the
sweeper re-queued the sub-order and a second attempt took it over: it asked the marketplace by
reference before the first attempt's order was there (a slow write, a lagging search) and sent
the order again, which a marketplace ignoring idempotency keys (real WooCommerce) makes a second
order; the first attempt's order was then recorded nowhere. The attempt now renews its lease
while it runs. Real sandbox over HTTP (WooCommerce format), the reply held back by the
`order_reply_delay_ms` knob; the lease shortened to a second.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from commerce.marketplace_access import adapter_for_marketplace
from commerce.models import utc_now
from commerce.order_models import (
    PLACED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    PaymentStatus,
    SubOrderStatus,
)
from commerce.placement import PlacementResult, place_sub_order
from commerce.placement_claims import claim_sub_order
from commerce.sweeper import find_stuck_placements, sweep
from tests.checkout.shop import Shop
from tests.faults.conftest import check_invariants, held_orders

pytestmark = pytest.mark.slow

LEASE = timedelta(seconds=1)


def test_a_placement_slower_than_its_lease_keeps_its_claim_and_places_once(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 4, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    [sub] = order.charged_sub_orders
    # The order is made at once; its reply comes 3.5 s later, well inside the read timeout.
    shop.knobs("kiondo", order_reply_delay_ms=3500)
    results: list[PlacementResult] = []
    first = threading.Thread(
        target=lambda: results.append(
            place_sub_order(
                shop.session_factory,
                sub.id,
                adapter_for=adapter_for_marketplace,
                final_attempt=True,
                stuck_after=LEASE,
            )
        )
    )
    first.start()
    time.sleep(2 * LEASE.total_seconds())
    with shop.session() as session:
        stuck = find_stuck_placements(session, stuck_after=timedelta(0))
    # What a re-queued attempt does first: claim the sub-order (asking the marketplace after).
    taken_over = claim_sub_order(shop.session_factory, sub.id, lease=timedelta(minutes=5))
    first.join()

    assert sub.id not in stuck
    assert taken_over is None
    assert results == [PlacementResult.PLACED]
    placed = shop.sub_order(order, "kiondo")
    assert placed.status in PLACED_SUB_ORDER_STATUSES and placed.marketplace_order_id
    assert placed.claim_token is None
    assert len(shop.sandbox_orders_with_reference("kiondo", order.relation_token)) == 1
    check_invariants(shop)


class WorkerKilled(BaseException):
    """The worker process dying (SIGKILL, a restart) at this point: nothing after it runs."""


class DiesBeforeCancelling:
    """The marketplace's real adapter; the worker dies as it is about to cancel an order."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def cancel_order(self, marketplace_order_id: str) -> object:
        raise WorkerKilled(f"killed before cancelling {marketplace_order_id}")

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_a_placement_billed_beyond_the_tolerance_whose_worker_died_before_cancelling_is_cancelled(
    shop: Shop,
) -> None:
    """The marketplace billed 40% more than paid: the placement records the order (keeping its
    claim, so the capture waits) and then cancels it there. The worker dies between the two.
    The kept claim's lease runs out and nothing looked at a placed sub-order under an expired
    claim: the sweeper captured the shopper's share, and the order the marketplace billed
    beyond the tolerance went ahead, cancelled by nobody and shown to nobody. The sweeper now
    takes the abandoned claim over and carries the cancellation out."""
    user = shop.make_user()
    shop.fill_cart(user, [("kiondo", 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    [sub] = order.charged_sub_orders
    shop.knobs("kiondo", order_price_change_pct=40)

    with pytest.raises(WorkerKilled):
        place_sub_order(
            shop.session_factory,
            sub.id,
            adapter_for=lambda marketplace: DiesBeforeCancelling(  # type: ignore[arg-type,return-value]
                adapter_for_marketplace(marketplace)
            ),
            final_attempt=True,
            stuck_after=LEASE,
            overcharge_tolerance_bps=500,
        )
    recorded = shop.sub_order(order, "kiondo")
    assert recorded.status in PLACED_SUB_ORDER_STATUSES and recorded.claim_token is not None

    def lease_runs_out() -> None:
        """Nobody renews the claim any more: its lease runs out."""
        with shop.session_factory() as session, session.begin():
            session.execute(
                sa.update(MarketplaceOrder)
                .where(MarketplaceOrder.id == sub.id)
                .values(claim_expires_at=utc_now() - timedelta(seconds=1))
            )

    def no_queue(message: object) -> str:
        raise ConnectionError("no queue in this test")

    def no_adapter(marketplace: object) -> object:
        raise RuntimeError("the marketplace's adapter cannot be built")

    # A sweep that cannot carry the cancel out captures nothing and tells the operator.
    lease_runs_out()
    report = sweep(shop.session_factory, no_queue, adapter_for=no_adapter)  # type: ignore[arg-type]
    assert report.cancels_finished == 0
    waiting = shop.order(order.number)
    assert waiting.payment is not None and waiting.payment.status == PaymentStatus.AUTHORIZED
    assert "could not be carried out (RuntimeError)" in str(waiting.attention_reason)

    lease_runs_out()
    report = sweep(shop.session_factory, no_queue)

    assert report.cancels_finished == 1

    cancelled = shop.sub_order(order, "kiondo")
    assert cancelled.status == SubOrderStatus.CANCELLED
    assert cancelled.claim_token is None
    [held] = held_orders(shop, "kiondo", cancelled, order)
    assert held["status"] == "cancelled"
    payment = shop.order(order.number).payment
    assert payment is not None
    assert (payment.status, payment.captured_minor) == (PaymentStatus.VOIDED, 0)
    check_invariants(shop)

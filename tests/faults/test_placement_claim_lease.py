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

from commerce.marketplace_access import adapter_for_marketplace
from commerce.order_models import PLACED_SUB_ORDER_STATUSES
from commerce.placement import PlacementResult, place_sub_order
from commerce.placement_claims import claim_sub_order
from commerce.sweeper import find_stuck_placements
from tests.checkout.conftest import Shop
from tests.faults.conftest import check_invariants

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

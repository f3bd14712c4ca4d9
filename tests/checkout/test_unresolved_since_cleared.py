"""A part's `unresolved_since` (when its placement's outcome first became unknown, migration
0024) is cleared once the part leaves `placing`/`reconciling` for good: placed, refused, cancelled
before placing, or before an operator. It was kept, so an operator view or the long-unresolved
flag reading it would have counted an ended part as still unknown. And nothing flags an ended
part. Real sandbox over HTTP, the real test database.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from commerce.cancellation import request_cancellation
from commerce.marketplace_access import adapter_for_marketplace
from commerce.order_models import (
    PLACED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    SubOrderStatus,
)
from commerce.placement import PlacementResult, place_sub_order
from commerce.placement_claims import claim_sub_order, release_claim
from commerce.sweep_steps import _flag_reconciling, flag_long_reconciling
from tests.checkout.shop import Shop

pytestmark = pytest.mark.slow


def _order(shop: Shop, slug: str) -> tuple[Order, MarketplaceOrder]:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [(slug, 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    [sub] = order.charged_sub_orders
    return order, sub


def _attempt(shop: Shop, sub: MarketplaceOrder, *, final_attempt: bool) -> PlacementResult:
    return place_sub_order(
        shop.session_factory,
        sub.id,
        adapter_for=adapter_for_marketplace,
        final_attempt=final_attempt,
    )


def _unknown_without_an_order(shop: Shop, sub: MarketplaceOrder) -> None:
    """An attempt whose outcome stayed unknown, though the marketplace made nothing (its
    request timed out before it arrived)."""
    claim = claim_sub_order(shop.session_factory, sub.id, lease=timedelta(minutes=5))
    assert claim is not None
    release_claim(shop.session_factory, sub.id, claim, SubOrderStatus.RECONCILING, "timed out")


def _rows_the_flag_reads(shop: Shop) -> list[tuple[int, int, str]]:
    """What flag_long_reconciling reads before it takes each order's lock: the parts still
    placing or reconciling (no threshold here), with their order and marketplace."""
    with shop.session() as session:
        return [
            (sub.id, sub.order_id, sub.marketplace.name)
            for sub in session.scalars(
                sa.select(MarketplaceOrder).where(
                    MarketplaceOrder.status.in_(
                        (SubOrderStatus.PLACING, SubOrderStatus.RECONCILING)
                    )
                )
            )
        ]


def _assert_ended_and_unflagged(
    shop: Shop, order: Order, slug: str, statuses: Collection[SubOrderStatus]
) -> None:
    ended = shop.sub_order(order, slug)
    assert ended.status in statuses
    assert ended.unresolved_since is None
    assert flag_long_reconciling(shop.session_factory, older_than=timedelta(0)) == 0
    assert "no answer" not in str(shop.order(order.number).attention_reason)


def test_a_part_found_placed_after_an_unknown_outcome_is_no_longer_unresolved(
    shop: Shop,
) -> None:
    order, sub = _order(shop, "kiondo")
    shop.knobs("kiondo", fail_after_next_orders=1000)
    assert _attempt(shop, sub, final_attempt=False) == PlacementResult.RETRY
    assert shop.sub_order(order, "kiondo").unresolved_since is not None
    shop.knobs("kiondo", fail_after_next_orders=0)

    assert _attempt(shop, sub, final_attempt=False) == PlacementResult.RECONCILED

    _assert_ended_and_unflagged(shop, order, "kiondo", PLACED_SUB_ORDER_STATUSES)


def test_a_part_refused_after_an_unknown_outcome_is_no_longer_unresolved(shop: Shop) -> None:
    order, sub = _order(shop, "kiondo")
    _unknown_without_an_order(shop, sub)
    shop.knobs("kiondo", refuse_next_orders=1)

    assert _attempt(shop, sub, final_attempt=False) == PlacementResult.FAILED

    _assert_ended_and_unflagged(shop, order, "kiondo", {SubOrderStatus.FAILED})


def test_a_part_cancelled_before_placing_after_an_unknown_outcome_is_no_longer_unresolved(
    shop: Shop,
) -> None:
    order, sub = _order(shop, "kiondo")
    _unknown_without_an_order(shop, sub)
    with shop.session_factory() as session, session.begin():
        request_cancellation(session, order.user_id, order.number)

    assert _attempt(shop, sub, final_attempt=False) == PlacementResult.CANCELLED

    _assert_ended_and_unflagged(shop, order, "kiondo", {SubOrderStatus.CANCELLED})


def test_a_part_put_before_an_operator_is_no_longer_unresolved(shop: Shop) -> None:
    """Fake Store cannot be asked for an order: an unknown outcome on the last attempt goes to
    an operator (`needs_attention`, which counts from its own `attention_since`)."""
    order, sub = _order(shop, "fakestore")
    shop.knobs("fakestore", fail_after_next_orders=1000)

    assert _attempt(shop, sub, final_attempt=True) == PlacementResult.NEEDS_ATTENTION

    ended = shop.sub_order(order, "fakestore")
    assert ended.attention_since is not None
    _assert_ended_and_unflagged(shop, order, "fakestore", {SubOrderStatus.NEEDS_ATTENTION})


def test_a_part_that_ends_between_the_flags_read_and_its_lock_is_not_flagged(
    shop: Shop,
) -> None:
    """The flag reads the long-unresolved parts, then flags each under its order's lock; a part
    placed in between (the re-ask found the order) was flagged all the same: the operator was
    sent to ask a marketplace about an order already recorded."""
    order, sub = _order(shop, "kiondo")
    shop.knobs("kiondo", fail_after_next_orders=1000)
    assert _attempt(shop, sub, final_attempt=False) == PlacementResult.RETRY
    shop.knobs("kiondo", fail_after_next_orders=0)
    read = _rows_the_flag_reads(shop)
    assert [sub_order_id for sub_order_id, *_ in read] == [sub.id]

    assert _attempt(shop, sub, final_attempt=False) == PlacementResult.RECONCILED
    flagged = sum(_flag_reconciling(shop.session_factory, *row, timedelta(0)) for row in read)

    assert flagged == 0
    assert shop.order(order.number).attention_reason is None

"""A re-queued placement job and the previous job's retries never both work a sub-order.

A placement whose outcome is unknown leaves the sub-order `reconciling` and its RQ job retries
later. The sweeper re-queues a `reconciling` sub-order no job touched for a while (a new outbox
row, a new job), which can happen while the previous job still has retries due (its intervals
grow to minutes). Both chains then took turns: each retry claimed the part, asked the marketplace
and gave it back, so the marketplace was asked twice as often, and a "no such order" answered to
one while the other's order was on its way would have had the part placed again. A job now
claims under its outbox row: only the newest row's job takes the part, and an older job's retry
ends quietly (a log line) without calling the marketplace. Real sandbox over HTTP (WooCommerce
format), the order made and its reply lost by the `fail_after_next_orders` knob.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from rq.job import Job

from commerce.exactly_once_models import OutboxMessage, OutboxTopic
from commerce.marketplace_access import adapter_for_marketplace
from commerce.order_models import PLACED_SUB_ORDER_STATUSES, MarketplaceOrder, SubOrderStatus
from commerce.placement import PlacementResult, place_sub_order
from commerce.sweeper import SweepPolicy, sweep
from tests.checkout.shop import Shop
from tests.faults.conftest import check_invariants, held_orders

pytestmark = pytest.mark.slow


class CountingAdapter:
    """The marketplace's real adapter, counting the calls a placement attempt makes to it; an
    optional gate holds `find_order` until the test opens it."""

    def __init__(self, inner: Any, gate: threading.Event | None = None) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.gate = gate
        self.asking = threading.Event()

    def find_order(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("find_order")
        self.asking.set()
        if self.gate is not None:
            assert self.gate.wait(timeout=60)
        return self.inner.find_order(*args, **kwargs)

    def place_order(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append("place_order")
        return self.inner.place_order(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _placement_rows(shop: Shop, sub_order_id: int) -> list[int]:
    with shop.session() as session:
        return list(
            session.scalars(
                sa.select(OutboxMessage.id)
                .where(
                    OutboxMessage.sub_order_id == sub_order_id,
                    OutboxMessage.topic == OutboxTopic.PLACE_SUB_ORDER,
                )
                .order_by(OutboxMessage.id)
            )
        )


def _attempt(shop: Shop, sub_order_id: int, adapter: CountingAdapter, **kwargs: Any) -> Any:
    return place_sub_order(
        shop.session_factory,
        sub_order_id,
        adapter_for=lambda marketplace: adapter,  # type: ignore[arg-type,return-value]
        stuck_after=timedelta(minutes=5),
        **kwargs,
    )


def _unknown_first_attempt(shop: Shop) -> tuple[Any, MarketplaceOrder, int]:
    """A wallet order at Kiondo whose first attempt made the order there and lost the reply."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 4, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    [sub] = order.charged_sub_orders
    [first_job] = _placement_rows(shop, sub.id)
    shop.knobs("kiondo", fail_after_next_orders=1000)
    first = CountingAdapter(adapter_for_marketplace(sub.marketplace))
    assert (
        _attempt(shop, sub.id, first, final_attempt=False, outbox_id=first_job)
        == PlacementResult.RETRY
    )
    assert shop.sub_order(order, "kiondo").status == SubOrderStatus.RECONCILING
    shop.knobs("kiondo", fail_after_next_orders=0)
    return order, sub, first_job


def _sweeper_requeues(shop: Shop, sub_order_id: int) -> int:
    """The sweeper's pass that re-queues the reconciling sub-order; returns the new row's id."""
    dispatched: list[OutboxMessage] = []

    def record(message: OutboxMessage) -> str:
        dispatched.append(message)
        return f"job-{message.id}"

    sweep(shop.session_factory, record, policy=SweepPolicy(reconcile_after=timedelta(0)))
    [requeued] = [m.id for m in dispatched if m.sub_order_id == sub_order_id]
    return requeued


def test_an_older_jobs_retry_after_a_requeue_ends_without_asking_and_the_order_is_placed_once(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    order, sub, first_job = _unknown_first_attempt(shop)
    second_job = _sweeper_requeues(shop, sub.id)
    assert second_job > first_job

    # The first job's RQ retry comes due before the re-queued job runs.
    stale = CountingAdapter(adapter_for_marketplace(sub.marketplace))
    with caplog.at_level(logging.INFO, logger="commerce.placement"):
        result = _attempt(shop, sub.id, stale, final_attempt=False, outbox_id=first_job)
    assert result == PlacementResult.SUPERSEDED
    assert stale.calls == []
    assert shop.sub_order(order, "kiondo").status == SubOrderStatus.RECONCILING
    assert f"outbox row {first_job} was superseded" in caplog.text

    current = CountingAdapter(adapter_for_marketplace(sub.marketplace))
    result = _attempt(shop, sub.id, current, final_attempt=False, outbox_id=second_job)
    assert result == PlacementResult.RECONCILED
    assert current.calls == ["find_order"]

    # The first job's last retry: still not its part to work.
    last = CountingAdapter(adapter_for_marketplace(sub.marketplace))
    result = _attempt(shop, sub.id, last, final_attempt=True, outbox_id=first_job)
    assert result == PlacementResult.SUPERSEDED
    assert last.calls == []

    placed = shop.sub_order(order, "kiondo")
    assert placed.status in PLACED_SUB_ORDER_STATUSES and placed.marketplace_order_id
    assert len(held_orders(shop, "kiondo", placed, order)) == 1
    check_invariants(shop)


def test_an_older_jobs_retry_while_the_requeued_job_asks_leaves_the_part_to_it(
    shop: Shop,
) -> None:
    """The overlap itself: the re-queued job is asking the marketplace when the older job's
    retry comes due (the part is `placing` under the new job's claim; once it is given back
    `reconciling`, the old retry would have claimed it and asked again)."""
    order, sub, first_job = _unknown_first_attempt(shop)
    second_job = _sweeper_requeues(shop, sub.id)
    gate = threading.Event()
    current = CountingAdapter(adapter_for_marketplace(sub.marketplace), gate=gate)
    results: list[PlacementResult] = []
    asking = threading.Thread(
        target=lambda: results.append(
            _attempt(shop, sub.id, current, final_attempt=False, outbox_id=second_job)
        )
    )
    asking.start()
    try:
        assert current.asking.wait(timeout=60)
        stale = CountingAdapter(adapter_for_marketplace(sub.marketplace))
        during = _attempt(shop, sub.id, stale, final_attempt=False, outbox_id=first_job)
    finally:
        gate.set()
        asking.join()
    after = _attempt(shop, sub.id, stale, final_attempt=True, outbox_id=first_job)

    assert (during, after) == (PlacementResult.SUPERSEDED, PlacementResult.SUPERSEDED)
    assert stale.calls == []
    assert results == [PlacementResult.RECONCILED]
    placed = shop.sub_order(order, "kiondo")
    assert placed.status in PLACED_SUB_ORDER_STATUSES
    assert len(held_orders(shop, "kiondo", placed, order)) == 1
    check_invariants(shop)


def test_placement_jobs_carry_their_outbox_row(shop: Shop) -> None:
    """What the claim compares: the sub-order's own job, and the later attempts a first
    attempt made in the order's side-by-side job hands on, carry their outbox row."""
    from storefront.jobs import _enqueue_later_attempts, enqueue_outbox_message

    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 4, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    [sub] = order.charged_sub_orders
    [row_id] = _placement_rows(shop, sub.id)
    with shop.session() as session:
        message = session.get(OutboxMessage, row_id)
        assert message is not None
        session.expunge(message)
    connection = shop.redis()
    try:
        job_id = enqueue_outbox_message(connection, shop.policy, message)
        later_id = _enqueue_later_attempts(connection, shop.policy, sub.id, "group", row_id)
        for enqueued in (job_id, later_id):
            job = Job.fetch(enqueued, connection=connection)
            assert job.kwargs["outbox_id"] == row_id
            job.cancel()
            job.delete()
    finally:
        connection.close()


def test_a_requeued_job_that_finds_an_older_attempt_at_work_comes_back_for_the_part(
    shop: Shop,
) -> None:
    """The sweeper read the part `reconciling` and, before it wrote the new outbox row, the
    older job's retry claimed it. The re-queued job then found the part held and ended, and the
    older job's next retry, superseded, ended too: nobody worked the part until the sweeper's
    next re-queue. The re-queued job now tries again later, and places it (once)."""
    order, sub, first_job = _unknown_first_attempt(shop)
    gate = threading.Event()
    older = CountingAdapter(adapter_for_marketplace(sub.marketplace), gate=gate)
    shop.knobs("kiondo", down=True)
    results: list[PlacementResult] = []
    asking = threading.Thread(
        target=lambda: results.append(
            _attempt(shop, sub.id, older, final_attempt=False, outbox_id=first_job)
        )
    )
    asking.start()
    try:
        assert older.asking.wait(timeout=60)
        assert shop.sub_order(order, "kiondo").status == SubOrderStatus.PLACING
        second_job = _sweeper_requeues_now(shop, sub.id)
        requeued = CountingAdapter(adapter_for_marketplace(sub.marketplace))
        while_held = _attempt(shop, sub.id, requeued, final_attempt=False, outbox_id=second_job)
    finally:
        gate.set()
        asking.join()
    assert (results, while_held, requeued.calls) == (
        [PlacementResult.RETRY],
        PlacementResult.RETRY,
        [],
    )
    shop.knobs("kiondo", down=False)

    older_retry = _attempt(shop, sub.id, older, final_attempt=False, outbox_id=first_job)
    requeued_retry = _attempt(shop, sub.id, requeued, final_attempt=False, outbox_id=second_job)

    assert (older_retry, requeued_retry) == (
        PlacementResult.SUPERSEDED,
        PlacementResult.RECONCILED,
    )
    placed = shop.sub_order(order, "kiondo")
    assert placed.status in PLACED_SUB_ORDER_STATUSES
    assert len(held_orders(shop, "kiondo", placed, order)) == 1
    check_invariants(shop)


def _sweeper_requeues_now(shop: Shop, sub_order_id: int) -> int:
    """The new outbox row the sweeper writes for a part it read `reconciling` a moment ago."""
    with shop.session_factory() as session, session.begin():
        order_id = session.scalar(
            sa.select(MarketplaceOrder.order_id).where(MarketplaceOrder.id == sub_order_id)
        )
        message = OutboxMessage(
            topic=OutboxTopic.PLACE_SUB_ORDER, order_id=order_id, sub_order_id=sub_order_id
        )
        session.add(message)
        session.flush()
        return message.id

"""Infrastructure faults: Redis restarted empty while orders are being taken, a shopper cancelling
while a worker claims the sub-order, fifty submits of one checkout form at once. Every test ends
with the invariants (tests/faults/conftest.py)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.base import MarketplaceAdapter
from commerce.cancellation import carry_out_cancellation, request_cancellation
from commerce.exactly_once_models import OutboxMessage, OutboxTopic
from commerce.marketplace_access import adapter_for_marketplace
from commerce.models import Marketplace
from commerce.order_models import (
    PLACED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    Payment,
    PaymentStatus,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.placement import PlacementResult, place_sub_order
from tests.checkout.shop import Shop, stripe_client, wait_for
from tests.faults.conftest import RedisServer, check_invariants, sweep_now
from tests.loopback_http import loopback_http

pytestmark = pytest.mark.slow


def test_redis_restarted_empty_during_checkout_the_cron_resumes_and_the_order_is_placed(
    own_redis: RedisServer, faults: Shop
) -> None:
    faults.use_redis(own_redis.url)
    faults.start_workers(1)  # and `rq cron storefront.cron` on the same Redis
    user = faults.make_user(wallet=Decimal("5000"))
    faults.fill_cart(user, [("shopwave", 6, 1), ("dummymart", 6, 1)])
    client = faults.client_for(user)

    own_redis.stop()
    order = faults.checkout(client, payment_method="wallet")
    with faults.session() as session:
        outbox = list(
            session.scalars(sa.select(OutboxMessage).where(OutboxMessage.order_id == order.id))
        )
    assert outbox and all(message.dispatched_at is None for message in outbox)
    own_redis.start()  # empty: no queue, no scheduled jobs, no cron registry

    # Nobody re-creates anything by hand: the cron scheduler enqueues the sweeper within its
    # interval, the sweeper dispatches the outbox, the worker places the order.
    faults.wait_until_settled(timeout=120)
    order = faults.order(order.number)
    assert all(sub.status == SubOrderStatus.PLACED for sub in order.charged_sub_orders)
    check_invariants(faults)


def test_shopper_cancelling_while_a_worker_claims_never_refunds_a_placed_order(
    faults: Shop,
) -> None:
    rounds = 4
    user = faults.make_user(wallet=Decimal("9000"))
    orders: list[Order] = []
    client = faults.client_for(user)
    for index in range(rounds):
        faults.fill_cart(user, [("kiondo", index, 1)])
        orders.append(faults.checkout(client, payment_method="wallet"))

    for order in orders:
        sub = faults.sub_order(order, "kiondo")
        barrier = threading.Barrier(2)

        def place(
            sub_order_id: int = sub.id, barrier: threading.Barrier = barrier
        ) -> PlacementResult:
            barrier.wait()
            return place_sub_order(
                faults.session_factory,
                sub_order_id,
                adapter_for=adapter_for_marketplace,
                final_attempt=True,
            )

        def cancel(number: str = order.number, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            with faults.session() as session:
                request_cancellation(session, user.id, number)
                session.commit()

        with ThreadPoolExecutor(max_workers=2) as executor:
            placing = executor.submit(place)
            cancelling = executor.submit(cancel)
            placing.result()
            cancelling.result()

        # The cancellation job: cancels on the marketplace what got placed first.
        def cancellation_done(order_id: int = order.id) -> bool:
            report = carry_out_cancellation(
                faults.session_factory, order_id, adapter_for=adapter_for_marketplace
            )
            return not report.in_flight

        wait_for(cancellation_done, timeout=60, what="the cancellation to complete")
        assert faults.sub_order(order, "kiondo").status == SubOrderStatus.CANCELLED

    sweep_now(faults)
    check_invariants(faults)


class HeldPlacement:
    """The marketplace adapter with its order write held until the test lets it go: the
    placement is in flight for as long as the test needs, however loaded the machine (a fixed
    marketplace latency raced the cancellation job's read of the sub-order)."""

    def __init__(self, inner: MarketplaceAdapter) -> None:
        self.inner = inner
        self.sending = threading.Event()
        self.release = threading.Event()

    def place_order(self, request: Any) -> Any:
        self.sending.set()
        self.release.wait()
        return self.inner.place_order(request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_part_placed_after_the_cancellation_job_gave_up_is_cancelled_all_the_same(
    faults: Shop,
) -> None:
    """The shopper cancels while a slow marketplace is placing their part; the cancellation job
    reports it in flight until its last attempt and gives up. When the placement lands, the
    cancellation is asked for again, and the part is cancelled and refunded."""
    user = faults.make_user(wallet=Decimal("3000"))
    faults.fill_cart(user, [("kiondo", 5, 1)])
    order = faults.checkout(faults.client_for(user), payment_method="wallet")
    sub = faults.sub_order(order, "kiondo")
    held: list[HeldPlacement] = []

    def held_adapter(marketplace: Marketplace) -> HeldPlacement:
        held.append(HeldPlacement(adapter_for_marketplace(marketplace)))
        return held[-1]

    with ThreadPoolExecutor(max_workers=1) as executor:
        placing = executor.submit(
            place_sub_order,
            faults.session_factory,
            sub.id,
            adapter_for=held_adapter,
            final_attempt=True,
        )
        try:
            wait_for(lambda: held and held[0].sending.is_set(), what="the order write")
            assert faults.sub_order(order, "kiondo").status == SubOrderStatus.PLACING
            with faults.session() as session:
                request_cancellation(session, user.id, order.number)
                session.commit()
            report = carry_out_cancellation(
                faults.session_factory,
                order.id,
                adapter_for=adapter_for_marketplace,
                final_attempt=True,
            )
            assert report.in_flight == (sub.marketplace.name,)
        finally:
            for adapter in held:
                adapter.release.set()
        assert placing.result() == PlacementResult.PLACED
    placed = faults.sub_order(order, "kiondo")
    assert placed.status in PLACED_SUB_ORDER_STATUSES and placed.placed_at is not None

    # The placement itself asked for the cancellation again; the sweeper dispatches it and the
    # worker carries it out.
    with faults.session() as session:
        asked_again = session.scalars(
            sa.select(OutboxMessage).where(
                OutboxMessage.order_id == order.id,
                OutboxMessage.topic == OutboxTopic.CANCEL_ORDER,
                OutboxMessage.created_at >= placed.placed_at,
            )
        ).all()
    assert len(asked_again) == 1
    faults.start_workers(1)
    sweep_now(faults)
    wait_for(
        lambda: faults.sub_order(order, "kiondo").status == SubOrderStatus.CANCELLED,
        timeout=60,
        what="the part placed after the cancellation to be cancelled",
    )
    faults.wait_until_settled()
    assert faults.sub_order(order, "kiondo").cancel_outcome == "cancelled"
    check_invariants(faults)


def _card_part_placed_after_a_cancel(faults: Shop) -> tuple[Order, MarketplaceOrder]:
    """A card order of one Kiondo part the shopper cancels while Kiondo is placing it: the
    cancellation job reports it in flight, then the placement lands (the order write is held
    until the job has answered, so nothing races)."""
    user = faults.make_user()
    faults.fill_cart(user, [("kiondo", 4, 1)])
    order = faults.checkout(
        faults.client_for(user), payment_method="stripe", test_card="pm_card_visa"
    )
    sub = faults.sub_order(order, "kiondo")
    held: list[HeldPlacement] = []

    def held_adapter(marketplace: Marketplace) -> HeldPlacement:
        held.append(HeldPlacement(adapter_for_marketplace(marketplace)))
        return held[-1]

    with ThreadPoolExecutor(max_workers=1) as executor:
        placing = executor.submit(
            place_sub_order,
            faults.session_factory,
            sub.id,
            adapter_for=held_adapter,
            final_attempt=True,
        )
        try:
            wait_for(lambda: held and held[0].sending.is_set(), what="the order write")
            with faults.session() as session:
                request_cancellation(session, user.id, order.number)
                session.commit()
            report = carry_out_cancellation(
                faults.session_factory, order.id, adapter_for=adapter_for_marketplace
            )
            assert report.in_flight == (sub.marketplace.name,)
        finally:
            for adapter in held:
                adapter.release.set()
        assert placing.result() == PlacementResult.PLACED
    return order, faults.sub_order(order, "kiondo")


def test_a_card_part_placed_after_the_shopper_cancelled_is_released_not_captured(
    faults: Shop,
) -> None:
    """Until Kiondo answers the cancellation of the part that landed, nothing of its share is
    captured: the confirmed cancel releases the hold. Before, the placement captured the share at
    once and the cancel then refunded it: a charge and a refund on the shopper's statement (the
    refund days later) instead of a hold that goes away, and Stripe's fee on the capture kept."""
    order, kiondo = _card_part_placed_after_a_cancel(faults)
    payment = faults.order(order.number).payment
    assert payment is not None
    assert payment.status == PaymentStatus.AUTHORIZED, "captured before the cancel was answered"

    report = carry_out_cancellation(
        faults.session_factory, order.id, adapter_for=adapter_for_marketplace
    )

    assert report.cancelled == (kiondo.marketplace.name,)
    payment = faults.order(order.number).payment
    assert payment is not None
    assert (payment.status, payment.captured_minor) == (PaymentStatus.VOIDED, 0)
    [refund] = payment.refunds
    assert (refund.kind, refund.status) == (RefundKind.RELEASE, RefundStatus.SUCCEEDED)
    intent = stripe_client().v1.payment_intents.retrieve(payment.provider_reference)
    assert intent.status == "canceled"
    check_invariants(faults)


def test_a_card_part_the_marketplace_will_not_cancel_is_captured_once_it_says_so(
    faults: Shop,
) -> None:
    """The wait ends with the marketplace's answer: Kiondo has shipped the part and refuses the
    cancel, so the part goes ahead and its share is captured; nothing is refunded."""
    order, kiondo = _card_part_placed_after_a_cancel(faults)
    number = str(kiondo.marketplace_order_id).rsplit("/", 1)[-1]
    advanced = loopback_http().post(
        f"{faults.sandbox_url}/_sandbox/orders/kiondo/{number}/advance",
        json={"steps": 2},
        timeout=10,
    )
    assert advanced.status_code == 200, advanced.text

    report = carry_out_cancellation(
        faults.session_factory, order.id, adapter_for=adapter_for_marketplace
    )

    assert report.refused == (kiondo.marketplace.name,)
    payment = faults.order(order.number).payment
    assert payment is not None
    assert payment.status == PaymentStatus.CAPTURED
    assert payment.captured_minor == faults.sub_order(order, "kiondo").kept_charge_minor > 0
    assert payment.refunds == []
    check_invariants(faults)


def test_fifty_concurrent_submits_of_one_token_make_one_order_and_one_payment(
    faults: Shop,
) -> None:
    user = faults.make_user()
    faults.fill_cart(user, [("shopwave", 7, 1), ("kiondo", 7, 1)])
    clients = [faults.client_for(user) for _ in range(4)]
    form = faults.checkout_form(clients[0])
    form.update(payment_method="stripe", test_card="pm_card_visa")
    barrier = threading.Barrier(50)

    def post(index: int) -> int:
        barrier.wait()
        return clients[index % len(clients)].post("/checkout", data=form).status_code

    with ThreadPoolExecutor(max_workers=50) as executor:
        statuses = list(executor.map(post, range(50)))

    assert all(status in (303, 409) for status in statuses), statuses
    assert statuses.count(303) >= 1
    with faults.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Order)) == 1
        assert session.scalar(sa.select(sa.func.count()).select_from(Payment)) == 1
    faults.start_workers(1)
    faults.wait_until_settled()
    check_invariants(faults)

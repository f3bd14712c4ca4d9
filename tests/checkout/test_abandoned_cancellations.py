"""A shopper's cancellation whose job ended with no answer for a placed part is resolved by the
sweeper, by asking the marketplace; nothing is refunded on a guess.

The job (RQ, retried) records an answer on every part it asks to cancel. Killed on its last
attempt after the marketplace cancelled, it left the part placed with no answer and nothing ran
it again: on a marketplace tracking cannot ask, that part was never refunded. Real database
and settlement (wallet payments); the marketplaces' answers come from fake adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from adapters.base import (
    Capability,
    MarketplaceError,
    OrderState,
    OrderStatus,
    Rejected,
    Unsupported,
)
from commerce.abandoned_cancellations import resolve_abandoned_cancellation
from commerce.cancellation import request_cancellation
from commerce.exactly_once_models import OutboxMessage, OutboxTopic
from commerce.marketplace_access import adapter_for_marketplace, marketplace_can
from commerce.models import Marketplace, utc_now
from commerce.notification_models import Notification
from commerce.order_models import MarketplaceOrder, Order, Refund, SubOrderStatus
from commerce.payments.providers import gateway_for_payment
from commerce.placement import PlacementResult, place_sub_order
from commerce.sweeper import SweepPolicy, sweep
from tests.checkout.shop import Shop
from tests.checkout.tracking_fakes import placed_orders


@dataclass
class Kiondo:
    """Kiondo's answers: `status` to a status poll (an exception is raised), `cancel` to a
    cancel call; every call written down."""

    status: OrderStatus | MarketplaceError
    cancel: OrderStatus | MarketplaceError
    calls: list[str] = field(default_factory=list)

    def adapter_for(self, marketplace: Marketplace) -> object:
        fake = self

        class Answering:
            slug = marketplace.slug
            capabilities = frozenset({Capability.CANCEL})

            def order_status(self, marketplace_order_id: str) -> OrderState:
                return fake._answer("status", fake.status, marketplace_order_id)

            def cancel_order(self, marketplace_order_id: str) -> OrderState:
                return fake._answer("cancel", fake.cancel, marketplace_order_id)

        return Answering()

    def _answer(
        self, call: str, answer: OrderStatus | MarketplaceError, order_id: str
    ) -> OrderState:
        self.calls.append(call)
        if isinstance(answer, MarketplaceError):
            raise answer
        return OrderState(order_id, answer, answer.value)


def _already_cancelled() -> Rejected:
    return Rejected("order already cancelled", marketplace="kiondo", status=400)


def _cancellation_job_ended(shop: Shop, *, ago: timedelta = timedelta(hours=2)) -> MarketplaceOrder:
    """One order of a ShopWave and a Kiondo part, placed; the shopper cancelled it `ago` and its
    cancellation job was enqueued then (and, for this test, ended without a word for Kiondo's
    part: the cancellation on ShopWave is not part of it)."""
    [subs] = placed_orders(shop, 1)
    kiondo = subs["kiondo"]
    when = utc_now() - ago
    with shop.session() as session, session.begin():
        market = session.get(Marketplace, kiondo.marketplace_id)
        assert market is not None and marketplace_can(market, Capability.CANCEL)
        order = session.get(Order, kiondo.order_id)
        assert order is not None
        order.cancel_requested_at = when
        # ShopWave's part was answered (refused) by the job, and the shopper told; Kiondo's
        # got no answer.
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == subs["shopwave"].id)
            .values(cancel_outcome="refused")
        )
        session.add(
            Notification(
                user_id=order.user_id,
                order_id=order.id,
                kind="cancellation_refused",
                message="These marketplaces could not cancel their part of your order, so it "
                "goes ahead: ShopWave.",
            )
        )
        session.add(
            OutboxMessage(
                topic=OutboxTopic.CANCEL_ORDER,
                order_id=order.id,
                created_at=when,
                available_at=when,
                dispatched_at=when,
                job_id="onecart-cancel-gone",
            )
        )
    return kiondo


def _sweep(shop: Shop, fake: Kiondo) -> None:
    sweep(
        shop.session_factory,
        lambda message: f"job-{message.id}",  # the placements' own rows: not this test's
        policy=SweepPolicy(cancel_job_ended_after=timedelta(hours=1)),
        adapter_for=fake.adapter_for,  # type: ignore[arg-type]
    )


def _state(shop: Shop, sub: MarketplaceOrder) -> tuple[SubOrderStatus, str | None, list[int]]:
    with shop.session() as session:
        row = session.get(MarketplaceOrder, sub.id)
        assert row is not None
        refunds = list(
            session.scalars(sa.select(Refund.amount_minor).where(Refund.sub_order_id == sub.id))
        )
        return row.status, row.cancel_outcome, refunds


def _flag(shop: Shop, sub: MarketplaceOrder) -> str:
    with shop.session() as session:
        order = session.get(Order, sub.order_id)
        assert order is not None
        return order.attention_reason or ""


def test_a_part_the_marketplace_cancelled_before_the_job_died_is_refunded(shop: Shop) -> None:
    kiondo = _cancellation_job_ended(shop)
    fake = Kiondo(status=OrderStatus.CANCELLED, cancel=_already_cancelled())

    _sweep(shop, fake)

    status, outcome, refunds = _state(shop, kiondo)
    assert (status, outcome) == (SubOrderStatus.CANCELLED, "cancelled")
    assert refunds == [kiondo.charge_minor]
    assert fake.calls[0] == "status"  # asked before anything else
    _sweep(shop, fake)  # resolved: not taken up again, refunded once
    assert _state(shop, kiondo)[2] == [kiondo.charge_minor]


def test_a_part_the_job_never_cancelled_is_cancelled_now(shop: Shop) -> None:
    kiondo = _cancellation_job_ended(shop)
    fake = Kiondo(status=OrderStatus.PROCESSING, cancel=OrderStatus.CANCELLED)

    _sweep(shop, fake)

    assert _state(shop, kiondo) == (SubOrderStatus.CANCELLED, "cancelled", [kiondo.charge_minor])
    assert fake.calls == ["status", "cancel"]


def _notices(shop: Shop, sub: MarketplaceOrder) -> list[tuple[str, str]]:
    with shop.session() as session:
        return [
            (kind, message)
            for kind, message in session.execute(
                sa.select(Notification.kind, Notification.message)
                .where(Notification.order_id == sub.order_id)
                .order_by(Notification.id)
            )
        ]


def test_a_part_the_marketplace_will_not_cancel_is_told_to_the_shopper_once(shop: Shop) -> None:
    """The job would have said "could not cancel, so it goes ahead"; the sweep that answers for
    the dead job says it too, once however many sweeps run, and refunds nothing."""
    kiondo = _cancellation_job_ended(shop)
    fake = Kiondo(
        status=OrderStatus.PROCESSING, cancel=Rejected("not cancellable", marketplace="kiondo")
    )

    _sweep(shop, fake)
    _sweep(shop, fake)

    assert _state(shop, kiondo)[1:] == ("refused", [])  # nothing refunded
    told = [
        message
        for kind, message in _notices(shop, kiondo)
        if kind == "cancellation_refused" and "Kiondo" in message
    ]
    assert len(told) == 1 and "goes ahead" in told[0]


def test_a_part_shipped_before_the_sweep_is_told_to_the_shopper(shop: Shop) -> None:
    kiondo = _cancellation_job_ended(shop)
    fake = Kiondo(status=OrderStatus.SHIPPED, cancel=OrderStatus.CANCELLED)

    _sweep(shop, fake)

    assert _state(shop, kiondo)[1:] == ("refused", [])
    assert fake.calls == ["status"]  # never asked to cancel a shipped order
    assert any(kind == "cancellation_refused" for kind, _ in _notices(shop, kiondo))


def test_without_a_status_api_a_cancel_answered_cancelled_refunds(shop: Shop) -> None:
    kiondo = _cancellation_job_ended(shop)
    no_status = Unsupported("no order status API", marketplace="kiondo")
    fake = Kiondo(status=no_status, cancel=OrderStatus.CANCELLED)

    _sweep(shop, fake)

    assert _state(shop, kiondo) == (SubOrderStatus.CANCELLED, "cancelled", [kiondo.charge_minor])


def test_without_a_status_api_a_refused_cancel_goes_to_an_operator_not_a_refund(
    shop: Shop,
) -> None:
    """'Already cancelled' and 'will not cancel' read alike when the order cannot be asked
    about: unknown, so an operator asks; the shopper is not told it goes ahead either."""
    kiondo = _cancellation_job_ended(shop)
    fake = Kiondo(
        status=Unsupported("no order status API", marketplace="kiondo"), cancel=_already_cancelled()
    )

    _sweep(shop, fake)

    assert _state(shop, kiondo) == (SubOrderStatus.PLACED, "unknown", [])
    assert f"sub-order {kiondo.id}: the shopper's cancellation job ended" in _flag(shop, kiondo)
    calls = len(fake.calls)
    _sweep(shop, fake)  # before an operator now: not asked again
    assert len(fake.calls) == calls


def test_an_unreachable_marketplace_is_flagged_and_asked_again_next_sweep(shop: Shop) -> None:
    kiondo = _cancellation_job_ended(shop)
    fake = Kiondo(
        status=MarketplaceError("connection refused", marketplace="kiondo"),
        cancel=_already_cancelled(),
    )

    _sweep(shop, fake)

    assert _state(shop, kiondo) == (SubOrderStatus.PLACED, None, [])
    assert "cannot be asked now; nothing was refunded" in _flag(shop, kiondo)
    fake.status = OrderStatus.CANCELLED
    _sweep(shop, fake)
    assert _state(shop, kiondo) == (SubOrderStatus.CANCELLED, "cancelled", [kiondo.charge_minor])


def test_a_cancellation_job_that_may_still_run_is_left_to_it(shop: Shop) -> None:
    kiondo = _cancellation_job_ended(shop, ago=timedelta(minutes=5))
    fake = Kiondo(status=OrderStatus.CANCELLED, cancel=_already_cancelled())

    _sweep(shop, fake)

    assert fake.calls == []
    assert _state(shop, kiondo) == (SubOrderStatus.PLACED, None, [])


def test_a_part_another_sweep_took_over_is_left_to_it(shop: Shop) -> None:
    kiondo = _cancellation_job_ended(shop)
    fake = Kiondo(status=OrderStatus.CANCELLED, cancel=_already_cancelled())
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == kiondo.id)
            .values(cancel_outcome="unknown")
        )

    outcome = resolve_abandoned_cancellation(
        shop.session_factory,
        kiondo.id,
        adapter_for=fake.adapter_for,  # type: ignore[arg-type]
        gateway_for=gateway_for_payment,
    )

    assert outcome is None and fake.calls == []


def test_over_http_a_part_kiondo_cancelled_before_the_job_died_is_refunded(shop: Shop) -> None:
    """The sandbox's Kiondo (WooCommerce REST) over HTTP: the job's cancel reached it, the job
    was killed before recording anything, and no job runs again."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 1, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    [sub] = order.charged_sub_orders
    placed = place_sub_order(
        shop.session_factory, sub.id, adapter_for=adapter_for_marketplace, final_attempt=True
    )
    assert placed == PlacementResult.PLACED
    with shop.session() as session, session.begin():
        request_cancellation(session, user.id, order.number)
    kiondo = shop.sub_order(order, "kiondo")
    assert kiondo.marketplace_order_id is not None
    adapter = adapter_for_marketplace(kiondo.marketplace)
    adapter.cancel_order(kiondo.marketplace_order_id)  # the killed job's call, never recorded
    long_ago = utc_now() - timedelta(hours=2)
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(OutboxMessage)
            .where(
                OutboxMessage.order_id == kiondo.order_id,
                OutboxMessage.topic == OutboxTopic.CANCEL_ORDER,
            )
            .values(created_at=long_ago, dispatched_at=long_ago, job_id="onecart-cancel-gone")
        )

    sweep(
        shop.session_factory,
        lambda message: f"job-{message.id}",
        policy=SweepPolicy(cancel_job_ended_after=timedelta(hours=1)),
        adapter_for=adapter_for_marketplace,
    )

    assert _state(shop, kiondo) == (SubOrderStatus.CANCELLED, "cancelled", [kiondo.charge_minor])


def _fake_store_cancellation_job_ended(shop: Shop) -> tuple[MarketplaceOrder, MarketplaceOrder]:
    """An order of a Kiondo and a Fake Store part, both placed on the sandbox; the shopper
    cancelled it two hours ago and its cancellation job was killed before recording any answer
    (kill -9 of the rq worker on its last attempt): nothing runs it again."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 2, 1), ("fakestore", 0, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    for sub in order.charged_sub_orders:
        placed = place_sub_order(
            shop.session_factory, sub.id, adapter_for=adapter_for_marketplace, final_attempt=True
        )
        assert placed == PlacementResult.PLACED
    with shop.session() as session, session.begin():
        request_cancellation(session, user.id, order.number)
    long_ago = utc_now() - timedelta(hours=2)
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(OutboxMessage)
            .where(
                OutboxMessage.order_id == order.id,
                OutboxMessage.topic == OutboxTopic.CANCEL_ORDER,
            )
            .values(created_at=long_ago, dispatched_at=long_ago, job_id="onecart-cancel-gone")
        )
    return shop.sub_order(order, "kiondo"), shop.sub_order(order, "fakestore")


def _sweep_over_http(shop: Shop) -> None:
    sweep(
        shop.session_factory,
        lambda message: f"job-{message.id}",
        policy=SweepPolicy(cancel_job_ended_after=timedelta(hours=1)),
        adapter_for=adapter_for_marketplace,
    )


def test_a_fake_store_part_a_killed_job_left_unanswered_goes_ahead_and_is_told_once(
    shop: Shop,
) -> None:
    """Fake Store takes no cancellations: the sweep answers for the dead job as the job would
    have (refused, so it goes ahead) and tells the shopper once, whatever the number of sweeps;
    Kiondo's part is cancelled and refunded; nothing of Fake Store's part is refunded."""
    kiondo, fakestore = _fake_store_cancellation_job_ended(shop)
    with shop.session() as session:
        market = session.get(Marketplace, fakestore.marketplace_id)
        assert market is not None and not marketplace_can(market, Capability.CANCEL)

    _sweep_over_http(shop)
    _sweep_over_http(shop)

    assert _state(shop, fakestore) == (SubOrderStatus.PLACED, "refused", [])
    assert _state(shop, kiondo) == (SubOrderStatus.CANCELLED, "cancelled", [kiondo.charge_minor])
    told = [m for kind, m in _notices(shop, fakestore) if kind == "cancellation_refused"]
    assert len(told) == 1 and "Fake Store" in told[0] and "goes ahead" in told[0]
    assert _flag(shop, fakestore) == ""  # an answer, not a question for an operator


def test_a_refusal_the_job_recorded_but_never_told_is_told_once(shop: Shop) -> None:
    """The job recorded Fake Store's refusal and was killed before telling the shopper: the
    sweep tells them once (the answer is on the part, the mail is not)."""
    _kiondo, fakestore = _fake_store_cancellation_job_ended(shop)
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == fakestore.id)
            .values(cancel_outcome="refused")
        )

    _sweep_over_http(shop)
    _sweep_over_http(shop)

    told = [m for kind, m in _notices(shop, fakestore) if kind == "cancellation_refused"]
    assert len(told) == 1 and "Fake Store" in told[0] and "goes ahead" in told[0]
    assert _state(shop, fakestore) == (SubOrderStatus.PLACED, "refused", [])


def test_a_fake_store_part_whose_store_cannot_be_reached_goes_ahead_not_to_an_operator(
    shop: Shop,
) -> None:
    """The store takes no cancellations, so the job answers its part "refused" without calling
    it; the sweep asked for its status first and, the store being down, put the order before an
    operator ("ask them whether it is cancelled") and told the shopper nothing. It answers as
    the job would: refused, told once, nothing refunded, no flag."""
    kiondo, fakestore = _fake_store_cancellation_job_ended(shop)
    calls: list[str] = []

    def store_down(market: Marketplace) -> object:
        adapter = adapter_for_marketplace(market)
        if market.id != fakestore.marketplace_id:
            return adapter

        class Down:
            slug = adapter.slug
            capabilities = adapter.capabilities

            def order_status(self, marketplace_order_id: str) -> OrderState:
                calls.append(marketplace_order_id)
                raise MarketplaceError("connection refused", marketplace=market.slug)

        return Down()

    for _ in range(2):
        sweep(
            shop.session_factory,
            lambda message: f"job-{message.id}",
            policy=SweepPolicy(cancel_job_ended_after=timedelta(hours=1)),
            adapter_for=store_down,  # type: ignore[arg-type]
        )

    assert _state(shop, fakestore) == (SubOrderStatus.PLACED, "refused", [])
    assert _state(shop, kiondo) == (SubOrderStatus.CANCELLED, "cancelled", [kiondo.charge_minor])
    told = [m for kind, m in _notices(shop, fakestore) if kind == "cancellation_refused"]
    assert len(told) == 1 and "Fake Store" in told[0] and "goes ahead" in told[0]
    assert _flag(shop, fakestore) == ""


class _Killed(BaseException):
    """The sweeping process killed mid-call (kill -9, the machine gone): nothing after it runs."""


def test_a_sweep_killed_after_taking_a_part_does_not_leave_it_unknown_for_ever(
    shop: Shop,
) -> None:
    """The sweep takes a part by setting its answer to "unknown" and then asks the marketplace.
    Killed in between, it left "unknown" behind: no later sweep took the part again (they take
    NULL only), no operator was told, and the page said "we keep asking" while nobody did;
    Kiondo's cancellation was never refunded. A claim older than the bound is taken over; a
    live one is not."""
    kiondo = _cancellation_job_ended(shop)
    fake = Kiondo(status=_Killed(), cancel=_already_cancelled())  # type: ignore[arg-type]
    original = fake._answer

    def answer(call: str, reply: object, order_id: str) -> OrderState:
        if isinstance(reply, _Killed):
            raise reply
        return original(call, reply, order_id)  # type: ignore[arg-type]

    fake._answer = answer  # type: ignore[method-assign]
    with pytest.raises(_Killed):
        _sweep(shop, fake)
    assert _state(shop, kiondo) == (SubOrderStatus.PLACED, "unknown", [])
    fake.status = OrderStatus.CANCELLED

    _sweep(shop, fake)  # the claim is fresh: maybe a sweep still at work
    assert _state(shop, kiondo) == (SubOrderStatus.PLACED, "unknown", [])

    sweep(
        shop.session_factory,
        lambda message: f"job-{message.id}",
        policy=SweepPolicy(
            cancel_job_ended_after=timedelta(hours=1), cancel_sweep_dead_after=timedelta(0)
        ),
        adapter_for=fake.adapter_for,  # type: ignore[arg-type]
    )

    assert _state(shop, kiondo) == (SubOrderStatus.CANCELLED, "cancelled", [kiondo.charge_minor])

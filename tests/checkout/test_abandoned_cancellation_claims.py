"""The abandoned-cancellation sweep's claim on a part is kept while the sweep works on it.

A sweep takes a part by setting its answer to "unknown" with the claim's time; a claim older
than SWEEP_CLAIM_DEAD_AFTER was left by a killed sweep and is taken over. The claim was never
renewed: a live sweep whose marketplace calls on one part added up to more than that bound was
taken over by the next sweep, and the same cancel was sent twice. Now the claim is renewed at
each marketplace call, with a compare-and-set on the claim's value, so a live sweep keeps it,
and a sweep that lost it anyway (its renewals failed) stops touching the part.

Time is the sweep module's clock, moved by hand inside the marketplace's calls: the order of
events is fixed, nothing waits on the wall clock. Real database and settlement (wallet
payments); the marketplace's answers come from fake adapters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

import commerce.abandoned_cancellations as abandoned_cancellations
from adapters.base import MarketplaceError, OrderState, OrderStatus
from commerce.abandoned_cancellations import SWEEP_CLAIM_DEAD_AFTER, resolve_abandoned_cancellation
from commerce.cancellation import CancelOutcome
from commerce.exactly_once_models import OutboxMessage, OutboxTopic
from commerce.models import utc_now
from commerce.order_models import (
    MarketplaceOrder,
    Order,
    PaymentStatus,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.payments.providers import gateway_for_payment
from commerce.settlement import settle_payment
from tests.checkout.shop import Shop
from tests.checkout.test_abandoned_cancellations import (
    Kiondo,
    _already_cancelled,
    _cancellation_job_ended,
    _flag,
    _notices,
    _state,
)
from tests.checkout.tracking_fakes import set_columns


class _Clock:
    """The sweep module's `utc_now`, moved forward by hand."""

    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(abandoned_cancellations, "utc_now", clock)
    return clock


@dataclass
class SlowKiondo(Kiondo):
    """Kiondo whose first call of a kind first runs `before[call]` (time passing, another
    sweep running meanwhile)."""

    before: dict[str, Callable[[], None]] = field(default_factory=dict)

    def _answer(
        self, call: str, answer: OrderStatus | MarketplaceError, order_id: str
    ) -> OrderState:
        meanwhile = self.before.pop(call, None)
        if meanwhile is not None:
            meanwhile()
        return super()._answer(call, answer, order_id)


def _resolve(shop: Shop, sub: MarketplaceOrder, fake: Kiondo) -> CancelOutcome | None:
    return resolve_abandoned_cancellation(
        shop.session_factory,
        sub.id,
        adapter_for=fake.adapter_for,  # type: ignore[arg-type]
        gateway_for=gateway_for_payment,
    )


def test_a_sweep_slower_than_the_claim_bound_keeps_its_part(shop: Shop, clock: _Clock) -> None:
    """Each call takes two thirds of the bound; a second sweep comes during the cancel call.
    The claim taken before the status call is older than the bound by then, but it was renewed
    after it: the second sweep leaves the part alone, and Kiondo is asked to cancel once."""
    kiondo = _cancellation_job_ended(shop)
    slow_call = SWEEP_CLAIM_DEAD_AFTER * 2 / 3
    first = SlowKiondo(status=OrderStatus.PROCESSING, cancel=OrderStatus.CANCELLED)
    second = Kiondo(status=OrderStatus.PROCESSING, cancel=OrderStatus.CANCELLED)
    second_outcomes: list[CancelOutcome | None] = []

    def second_sweep_during_the_cancel() -> None:
        clock.advance(slow_call)
        second_outcomes.append(_resolve(shop, kiondo, second))

    first.before = {
        "status": lambda: clock.advance(slow_call),
        "cancel": second_sweep_during_the_cancel,
    }

    outcome = _resolve(shop, kiondo, first)

    assert second_outcomes == [None] and second.calls == []
    assert outcome == CancelOutcome.CANCELLED
    assert first.calls == ["status", "cancel"]
    assert _state(shop, kiondo) == (SubOrderStatus.CANCELLED, "cancelled", [kiondo.charge_minor])


def test_a_sweep_that_lost_its_claim_stops_touching_the_part(shop: Shop, clock: _Clock) -> None:
    """The first sweep's status call outlasted the bound with no renewal (the database away
    meanwhile): a second sweep took the part over, found it shipped, and told the shopper it
    goes ahead. The first sweep's stale answer ("processing") sends no cancel and records
    nothing: the part stays refused, told once, nothing refunded."""
    kiondo = _cancellation_job_ended(shop)
    first = SlowKiondo(status=OrderStatus.PROCESSING, cancel=OrderStatus.CANCELLED)
    second = Kiondo(status=OrderStatus.SHIPPED, cancel=OrderStatus.CANCELLED)
    second_outcomes: list[CancelOutcome | None] = []

    def taken_over_during_the_status_call() -> None:
        clock.advance(SWEEP_CLAIM_DEAD_AFTER + timedelta(minutes=1))
        second_outcomes.append(_resolve(shop, kiondo, second))

    first.before = {"status": taken_over_during_the_status_call}

    outcome = _resolve(shop, kiondo, first)

    assert second_outcomes == [CancelOutcome.REFUSED] and second.calls == ["status"]
    assert outcome is None
    assert first.calls == ["status"]  # no cancel sent on a claim it no longer holds
    assert _state(shop, kiondo) == (SubOrderStatus.PLACED, "refused", [])
    told = [m for kind, m in _notices(shop, kiondo) if kind == "cancellation_refused"]
    assert len([m for m in told if "Kiondo" in m]) == 1


def test_a_sweep_that_lost_its_claim_does_not_give_back_the_new_owners(
    shop: Shop, clock: _Clock
) -> None:
    """Kiondo did not answer the first sweep's status call, and its claim was taken over by a
    second sweep meanwhile, still at work: the first does not give the part back (NULL, for
    the next sweep to take beside the second) nor flag it; the second sweep's claim stands."""
    kiondo = _cancellation_job_ended(shop)
    first = SlowKiondo(
        status=MarketplaceError("connection reset", marketplace="kiondo"),
        cancel=OrderStatus.CANCELLED,
    )
    taken: list[object] = []

    def taken_over_during_the_status_call() -> None:
        clock.advance(SWEEP_CLAIM_DEAD_AFTER + timedelta(minutes=1))
        taken.append(abandoned_cancellations._claim(shop.session_factory, kiondo.id, to="unknown"))

    first.before = {"status": taken_over_during_the_status_call}

    outcome = _resolve(shop, kiondo, first)

    assert taken and taken[0]
    assert outcome is None
    assert _state(shop, kiondo) == (SubOrderStatus.PLACED, "unknown", [])
    with shop.session() as session:
        row = session.get(MarketplaceOrder, kiondo.id)
        assert row is not None and row.cancel_claimed_at == clock.now  # the second's claim
    assert _flag(shop, kiondo) == ""


def _card_cancellation_job_ended(shop: Shop) -> MarketplaceOrder:
    """A card order of a ShopWave and a Kiondo part, both placed, its hold not captured yet:
    the shopper cancelled two hours ago, the job refused ShopWave's part (told) and ended
    without a word for Kiondo's, so the capture waits for Kiondo's answer."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 1, 1), ("kiondo", 1, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    when = utc_now() - timedelta(hours=2)
    for sub in shop.order(order.number).charged_sub_orders:
        set_columns(
            shop,
            sub.id,
            status=SubOrderStatus.PLACED,
            placed_at=when,
            marketplace_order_id=f"{sub.marketplace.slug}-{sub.id}",
            cancel_outcome="refused" if sub.marketplace.slug == "shopwave" else None,
            cancel_refusal_told_at=when if sub.marketplace.slug == "shopwave" else None,
        )
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(Order).where(Order.id == order.id).values(cancel_requested_at=when)
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
    assert not settle_payment(shop.session_factory, order.id)  # waits for Kiondo's answer
    return shop.sub_order(order, "kiondo")


def test_the_card_capture_waits_while_a_sweep_asks_about_a_part(shop: Shop) -> None:
    """A sweep holds Kiondo's part (its answer "unknown" only as the claim's mark) and asks
    Kiondo; a worker settles the order meanwhile (tracking another part, say). The part has no
    answer yet, so the capture still waits: Kiondo then confirms the cancel and its share is
    released from the hold, not captured and refunded to the card."""
    kiondo = _card_cancellation_job_ended(shop)
    settled_meanwhile: list[bool] = []
    fake = SlowKiondo(status=OrderStatus.PROCESSING, cancel=OrderStatus.CANCELLED)
    fake.before = {
        "status": lambda: settled_meanwhile.append(
            settle_payment(shop.session_factory, kiondo.order_id)
        )
    }

    outcome = _resolve(shop, kiondo, fake)

    assert outcome == CancelOutcome.CANCELLED
    assert settled_meanwhile == [False]
    order = shop.order(shop_order_number(shop, kiondo))
    payment = order.payment
    assert payment is not None and payment.status == PaymentStatus.CAPTURED
    assert payment.captured_minor == shop.sub_order(order, "shopwave").charge_minor
    [refund] = payment.refunds
    assert (refund.kind, refund.status, refund.amount_minor) == (
        RefundKind.RELEASE,
        RefundStatus.SUCCEEDED,
        kiondo.charge_minor,
    )


def shop_order_number(shop: Shop, sub: MarketplaceOrder) -> str:
    with shop.session() as session:
        order = session.get(Order, sub.order_id)
        assert order is not None
        return order.number


@dataclass
class KiondoSlowAtCalls(Kiondo):
    """Kiondo whose n-th call (0-based, any kind) first runs `before[n]`; answers to "status"
    taken in turn from `statuses` (the read-back after the cancel is the second status call)."""

    before: dict[int, Callable[[], None]] = field(default_factory=dict)
    statuses: list[OrderStatus] = field(default_factory=list)

    def _answer(
        self, call: str, answer: OrderStatus | MarketplaceError, order_id: str
    ) -> OrderState:
        meanwhile = self.before.pop(len(self.calls), None)
        if meanwhile is not None:
            meanwhile()
        if call == "status" and self.statuses:
            answer = self.statuses.pop(0)
        return super()._answer(call, answer, order_id)


def test_a_sweep_whose_cancel_and_read_back_outlast_the_bound_keeps_its_part(
    shop: Shop, clock: _Clock
) -> None:
    """The cancel call's reply is lost after two thirds of the bound, and the read-back of the
    order (is it cancelled?) takes as long: 4/3 of the bound since the claim's renewal before
    the cancel. A marketplace's read timeout may be set to 300 s (5 tries: over 28 minutes a
    call, 48 s already puts two calls past 15 minutes). A second sweep during the read-back
    took the part over and sent its own cancel: the same cancel twice, one sweep's
    "cancelled" beside the other's. Now the claim is renewed before the read-back too."""
    kiondo = _cancellation_job_ended(shop)
    slow_call = SWEEP_CLAIM_DEAD_AFTER * 2 / 3
    first = KiondoSlowAtCalls(
        status=OrderStatus.PROCESSING,
        cancel=MarketplaceError("read timed out", marketplace="kiondo"),
        statuses=[OrderStatus.PROCESSING, OrderStatus.CANCELLED],
    )
    second = Kiondo(status=OrderStatus.CANCELLED, cancel=_already_cancelled())
    second_outcomes: list[CancelOutcome | None] = []

    def second_sweep_during_the_read_back() -> None:
        clock.advance(slow_call)
        second_outcomes.append(_resolve(shop, kiondo, second))

    first.before = {1: lambda: clock.advance(slow_call), 2: second_sweep_during_the_read_back}

    outcome = _resolve(shop, kiondo, first)

    assert second_outcomes == [None] and second.calls == []
    assert outcome == CancelOutcome.CANCELLED
    assert first.calls == ["status", "cancel", "status"]
    assert _state(shop, kiondo) == (SubOrderStatus.CANCELLED, "cancelled", [kiondo.charge_minor])

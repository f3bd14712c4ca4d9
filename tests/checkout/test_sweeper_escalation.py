"""The sweeper sends what it cannot resolve to an operator: a placement whose outcome stays unknown
(the marketplace keeps failing when asked) is re-asked forever, and after a day the order is
flagged once, never refunded (real database, the checkout shop; placement is not run)."""

from __future__ import annotations

import sys
from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from commerce.exactly_once_models import OutboxMessage
from commerce.flag_resolution import resolve_flag
from commerce.models import utc_now
from commerce.order_models import MarketplaceOrder, Order, Refund, SubOrderStatus
from commerce.placement_claims import claim_sub_order, release_claim
from commerce.sweeper import SweepPolicy, flag_long_reconciling, sweep
from tests.checkout.shop import Shop


def _reconciling_since(shop: Shop, sub_order_id: int, age: timedelta) -> None:
    """The sub-order as placement leaves it after attempts whose outcome stayed unknown."""
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == sub_order_id)
            .values(
                status=SubOrderStatus.RECONCILING,
                attempts=40,
                last_error="kiondo may have accepted the order: 503",
                created_at=utc_now() - age,
                placing_started_at=utc_now() - age,
                updated_at=utc_now() - timedelta(minutes=10),
            )
        )
        # Every earlier outbox row went out: only the sweeper's re-queue is new.
        session.execute(sa.update(OutboxMessage).values(dispatched_at=utc_now()))


def test_a_sub_order_reconciling_for_a_day_is_flagged_once_and_never_refunded(
    shop: Shop,
) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 0, 1), ("shopwave", 0, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    kiondo = shop.sub_order(order, "kiondo")
    _reconciling_since(shop, kiondo.id, timedelta(hours=25))
    dispatched: list[int | None] = []

    def run_sweep() -> None:
        sweep(
            shop.session_factory,
            lambda message: dispatched.append(message.sub_order_id) or f"job-{message.id}",
            policy=SweepPolicy(reconcile_after=timedelta(0)),
        )

    run_sweep()

    reason = shop.order(order.number).attention_reason
    assert reason is not None and f"sub-order {kiondo.id}" in reason and "Kiondo" in reason
    assert kiondo.id in dispatched  # still asked: the flag does not stop the reconciling
    assert shop.sub_order(order, "kiondo").status == SubOrderStatus.RECONCILING
    with shop.session() as session:
        assert session.scalars(sa.select(Refund)).all() == []

    run_sweep()  # not repeated
    assert shop.order(order.number).attention_reason == reason

    resolved = resolve_flag(shop.session_factory, order.id, reason, "ops", "asked Kiondo")
    assert resolved.resolved
    run_sweep()  # an operator took it: not flagged again for the same sub-order
    assert shop.order(order.number).attention_reason is None


def test_a_sub_order_reconciling_for_hours_is_not_flagged_yet(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 0, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    _reconciling_since(shop, shop.sub_order(order, "kiondo").id, timedelta(hours=2))

    sweep(
        shop.session_factory,
        lambda message: f"job-{message.id}",
        policy=SweepPolicy(reconcile_after=timedelta(0)),
    )

    assert shop.order(order.number).attention_reason is None


def test_one_order_whose_flag_cannot_be_written_does_not_stop_the_others(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flagging one long-reconciling order raises (a write the database refuses): that order is
    its own failure (logged, flagged at a later sweep); the next order is still flagged, and the
    rest of the sweep still runs."""
    orders = []
    for _ in range(2):
        user = shop.make_user(wallet=Decimal("5000"))
        shop.fill_cart(user, [("kiondo", 0, 1)])
        order = shop.checkout(shop.client_for(user), payment_method="wallet")
        _reconciling_since(shop, shop.sub_order(order, "kiondo").id, timedelta(hours=25))
        orders.append(order)
    first, second = orders
    module = sys.modules[flag_long_reconciling.__module__]
    real_flag = module.flag_order

    def refused_for_first(order: Order, reason: str) -> None:
        if order.id == first.id:
            raise RuntimeError("the write was refused")
        real_flag(order, reason)

    monkeypatch.setattr(module, "flag_order", refused_for_first)

    def run_sweep() -> None:
        sweep(
            shop.session_factory,
            lambda message: f"job-{message.id}",
            policy=SweepPolicy(reconcile_after=timedelta(0)),
        )

    run_sweep()

    assert shop.order(first.number).attention_reason is None
    second_reason = shop.order(second.number).attention_reason
    assert second_reason is not None and "Kiondo" in second_reason

    monkeypatch.setattr(module, "flag_order", real_flag)
    run_sweep()
    assert "Kiondo" in (shop.order(first.number).attention_reason or "")


def _unresolved(
    shop: Shop,
    sub_order_id: int,
    status: SubOrderStatus,
    *,
    since: timedelta,
    created: timedelta | None = None,
) -> None:
    """The sub-order as the re-ask loop leaves it: `placing` (an attempt holds its claim and is
    asking the marketplace again) or `reconciling`, unresolved for `since`."""
    now = utc_now()
    held = status == SubOrderStatus.PLACING
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == sub_order_id)
            .values(
                status=status,
                attempts=40,
                claim_token="a-live-attempt" if held else None,
                claim_expires_at=now + timedelta(minutes=5) if held else None,
                placing_started_at=now - timedelta(seconds=2),
                unresolved_since=now - since,
                created_at=now - (created or since),
                updated_at=now,
            )
        )
        session.execute(sa.update(OutboxMessage).values(dispatched_at=now))


def test_a_part_flipping_between_placing_and_reconciling_is_flagged_once(shop: Shop) -> None:
    """The sweeper re-asks an unresolved part by claiming it (`placing`) and the attempt gives
    it back (`reconciling`): a sweep that looks while it is `placing` flags it all the same, and
    the next sweep, finding it `reconciling`, does not flag it again."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 0, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    kiondo = shop.sub_order(order, "kiondo")
    _unresolved(shop, kiondo.id, SubOrderStatus.PLACING, since=timedelta(hours=25))

    assert flag_long_reconciling(shop.session_factory, older_than=timedelta(hours=24)) == 1
    reason = shop.order(order.number).attention_reason
    assert reason is not None and f"sub-order {kiondo.id}" in reason
    assert "for over 24 h" in reason

    _unresolved(shop, kiondo.id, SubOrderStatus.RECONCILING, since=timedelta(hours=25))
    assert flag_long_reconciling(shop.session_factory, older_than=timedelta(hours=24)) == 0
    assert shop.order(order.number).attention_reason == reason
    with shop.session() as session:
        assert session.scalars(sa.select(Refund)).all() == []


def test_unresolved_time_counts_from_the_first_claim_not_the_checkout(shop: Shop) -> None:
    """An order that waited a day `pending` (its job lost with Redis) and has been unresolved
    for two hours is not flagged yet: the day it waited says nothing about the marketplace."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 0, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    kiondo = shop.sub_order(order, "kiondo")
    _unresolved(
        shop,
        kiondo.id,
        SubOrderStatus.RECONCILING,
        since=timedelta(hours=2),
        created=timedelta(hours=26),
    )

    assert flag_long_reconciling(shop.session_factory, older_than=timedelta(hours=24)) == 0
    assert shop.order(order.number).attention_reason is None


def test_each_claim_keeps_when_the_part_first_became_unresolved(shop: Shop) -> None:
    """The first claim sets it; re-asking (claim, give back `reconciling`, claim again) keeps
    it; an attempt that gives the part back `pending` (nothing was sent) clears it."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 0, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    sub_id = shop.sub_order(order, "kiondo").id
    with shop.session() as session, session.begin():  # as checkout left it, before its job
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == sub_id)
            .values(
                status=SubOrderStatus.PENDING,
                unresolved_since=None,
                claim_token=None,
                claim_expires_at=None,
            )
        )

    def since() -> object:
        with shop.session() as session:
            return session.scalar(
                sa.select(MarketplaceOrder.unresolved_since).where(MarketplaceOrder.id == sub_id)
            )

    first = claim_sub_order(shop.session_factory, sub_id, lease=timedelta(minutes=5))
    assert first is not None
    first_since = since()
    assert first_since is not None
    assert release_claim(
        shop.session_factory, sub_id, first, SubOrderStatus.RECONCILING, "no answer"
    )
    again = claim_sub_order(shop.session_factory, sub_id, lease=timedelta(minutes=5))
    assert again is not None and again.in_doubt
    assert since() == first_since
    assert release_claim(shop.session_factory, sub_id, again, SubOrderStatus.PENDING, "429")
    assert since() is None


@pytest.mark.parametrize(
    ("threshold", "words"),
    [
        (timedelta(minutes=30), "for over 30 min"),
        (timedelta(minutes=90), "for over 1 h 30 min"),
        (timedelta(hours=24), "for over 24 h"),
        (timedelta(0), "no answer yet on whether"),
    ],
)
def test_the_flag_says_minutes_under_an_hour(shop: Shop, threshold: timedelta, words: str) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 0, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    kiondo = shop.sub_order(order, "kiondo")
    _unresolved(
        shop, kiondo.id, SubOrderStatus.RECONCILING, since=threshold * 2 + timedelta(seconds=1)
    )

    assert flag_long_reconciling(shop.session_factory, older_than=threshold) == 1
    reason = shop.order(order.number).attention_reason or ""
    assert words in reason and " 0 h" not in reason and " 0 min" not in reason


def test_parts_flagged_already_do_not_keep_the_next_ones_from_being_flagged(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each pass takes a bounded batch, lowest id first. Flagged parts stay unresolved (and so
    in the query), so once a whole batch of them was flagged (a marketplace down for a day under
    many orders) every later pass took the same batch and a part past it was never flagged."""
    module = sys.modules[flag_long_reconciling.__module__]
    monkeypatch.setattr(module, "FLAG_BATCH_SIZE", 2)
    parts = []
    for _ in range(3):
        user = shop.make_user(wallet=Decimal("5000"))
        shop.fill_cart(user, [("kiondo", 0, 1)])
        order = shop.checkout(shop.client_for(user), payment_method="wallet")
        sub = shop.sub_order(order, "kiondo")
        _unresolved(shop, sub.id, SubOrderStatus.RECONCILING, since=timedelta(hours=25))
        parts.append((order, sub))

    flagged = [flag_long_reconciling(shop.session_factory, older_than=timedelta(hours=24))]
    flagged.append(flag_long_reconciling(shop.session_factory, older_than=timedelta(hours=24)))

    assert sum(flagged) == 3
    for order, sub in parts:
        assert f"sub-order {sub.id}: no answer" in (shop.order(order.number).attention_reason or "")

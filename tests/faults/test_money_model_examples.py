"""Defects the model-based exploration (test_money_model.py) found, each spelled out as the short
sequence of steps that shows it, on the same world (money_world.py: the plain services on the
test database, fakes keeping Stripe's and the marketplaces' truth)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from commerce.notification_models import Notification
from commerce.order_models import Order, PaymentMethod, RefundKind, RefundStatus
from tests.faults.money_world import MoneyWorld, empty_database
from tests.storefront.conftest import storefront_db_url

__all__ = ["storefront_db_url"]


@pytest.fixture
def world(storefront_db_url: str) -> Iterator[MoneyWorld]:
    """The model's world on the shared test database, emptied afterwards (the checkout suite's
    teardown checks every order it finds against localstripe, which knows no fake intent)."""
    try:
        yield MoneyWorld(storefront_db_url)
    finally:
        empty_database(storefront_db_url)


def _notifications(world: MoneyWorld, order_id: int) -> list[tuple[str, str]]:
    with world.session_factory() as session:
        return [
            (note.kind, note.message)
            for note in session.scalars(
                sa.select(Notification)
                .where(Notification.order_id == order_id)
                .order_by(Notification.id)
            )
        ]


def test_a_card_refund_stripe_refuses_for_good_is_told_to_the_shopper(world: MoneyWorld) -> None:
    """The marketplace cancels a part of a captured card order; the shopper is told "we are
    refunding you in full to your card" and Stripe refuses the refund for good. The refund is
    failed and the order goes on the operator's list, as designed, but the shopper's last word
    was still the promise of a refund: a refund failing at the bank later is told
    (notify_refund_failed), one Stripe refused at once was not."""
    made = world.checkout(PaymentMethod.STRIPE, [("alpha", 0, 2)])
    order_id = made.outcome.order_id
    assert order_id is not None
    [sub_order_id] = world.sub_order_ids(order_id)
    assert world.place(sub_order_id, final_attempt=False) == "placed"
    [held] = world.markets.orders.values()
    assert world.markets.move(held, "cancel")

    world.faults.arm("stripe.refund", "refuse")
    world.track()

    [refund] = world.refunds_of(order_id)
    assert refund.kind == RefundKind.CARD_REFUND and refund.status == RefundStatus.FAILED
    with world.session_factory() as session:
        reason = session.scalar(sa.select(Order.attention_reason).where(Order.id == order_id))
    assert reason and "refused by the provider" in reason
    kinds = [kind for kind, _ in _notifications(world, order_id)]
    assert kinds[-2:] == ["order_refunded", "refund_failed"], kinds
    told = _notifications(world, order_id)[-1][1]
    assert "$25.00" in told and "Our team will contact you" in told
    assert world.problems_now() == []

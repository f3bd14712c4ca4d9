"""A Stripe event whose first delivery never finished is applied when Stripe delivers it again.

The webhook records the event's id before applying it, and a delivery whose handling raises
forgets the id so that Stripe's retry applies it. A delivery that dies outright (the process
killed, a restart mid-request) runs no handler: the id stays recorded with no outcome, Stripe
got no answer and retries, and the retry used to be answered "replayed" without anything being
applied. A refund Stripe reports failed after accepting it was then never undone: the books said
refunded, the shopper had nothing, and nobody was told. Real localstripe and the real database;
the failure is Stripe's Refund object, signed and posted, as in test_payments_and_webhooks.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from commerce import settlement
from commerce.exactly_once_models import ProcessedWebhookEvent
from commerce.models import utc_now
from commerce.notification_models import Notification
from commerce.order_locks import lock_order
from commerce.order_models import MarketplaceOrder, RefundStatus, SubOrderStatus
from commerce.sub_order_compensation import compensate_sub_order
from tests.checkout.shop import Shop
from tests.checkout.test_payments_and_webhooks import (
    _captured_card_order,
    _event,
    _post,
    stripe_refund_failed,
)


def _refund_reported_failed(shop: Shop) -> tuple[str, dict[str, object]]:
    """A captured card order with one part cancelled and its card refund made (recorded done),
    and the `charge.refund.updated` event in which Stripe later reports that refund failed."""
    order = _captured_card_order(shop, [("shopwave", 7, 1), ("kiondo", 7, 1)])
    kiondo = shop.sub_order(order, "kiondo")
    with shop.session_factory() as session, session.begin():
        sub = session.get(MarketplaceOrder, kiondo.id)
        assert sub is not None
        lock_order(session, sub.order_id)
        compensate_sub_order(session, sub, status=SubOrderStatus.CANCELLED, reason="test")
    settlement.process_refunds(shop.session_factory, order.id)
    [refund] = shop.order(order.number).payment.refunds  # type: ignore[union-attr]
    assert refund.status == RefundStatus.SUCCEEDED and refund.provider_reference
    failed = stripe_refund_failed(refund.provider_reference)
    shop.unbalanced_orders.add(order.number)  # the shopper is owed the share: the operator's
    return order.number, _event("charge.refund.updated", failed)


def _first_delivery_died(shop: Shop, event: dict[str, object], *, ago: timedelta) -> None:
    """What a delivery killed while applying the event leaves: its id recorded, no outcome."""
    with shop.session_factory() as session, session.begin():
        session.add(
            ProcessedWebhookEvent(
                event_id=event["id"], event_type=event["type"], received_at=utc_now() - ago
            )
        )


def test_an_event_whose_first_delivery_died_is_applied_when_stripe_delivers_it_again(
    shop: Shop,
) -> None:
    number, event = _refund_reported_failed(shop)
    _first_delivery_died(shop, event, ago=timedelta(minutes=3))

    response = _post(shop, event)

    assert response.status_code == 200
    assert response.get_json()["outcome"] == "refund failed after success: order flagged"
    order = shop.order(number)
    [refund] = order.payment.refunds  # type: ignore[union-attr]
    assert refund.status == RefundStatus.FAILED
    assert order.attention_reason and "expired_or_canceled_card" in order.attention_reason
    # Applied now, it is a replay from here on.
    assert _post(shop, event).get_json()["outcome"] == "replayed"


def test_a_delivery_arriving_while_the_first_is_still_applying_changes_nothing_twice(
    shop: Shop,
) -> None:
    """Stripe gave up waiting and delivered again while the first delivery still runs: the second
    applies the event too (every step it takes is compare-and-set), so whichever finishes, the
    refund is failed once and the shopper told once."""
    number, event = _refund_reported_failed(shop)
    _first_delivery_died(shop, event, ago=timedelta(seconds=0))

    second = _post(shop, event).get_json()["outcome"]
    third = _post(shop, event).get_json()["outcome"]

    assert second == "refund failed after success: order flagged"
    assert third == "replayed"
    order = shop.order(number)
    [refund] = order.payment.refunds  # type: ignore[union-attr]
    assert refund.status == RefundStatus.FAILED
    with shop.session() as session:
        kinds = list(
            session.scalars(sa.select(Notification.kind).where(Notification.order_id == order.id))
        )
    assert kinds.count("refund_failed") == 1

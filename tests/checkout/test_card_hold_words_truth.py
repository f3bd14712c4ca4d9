"""A money statement about a card hold is read from the money's own record (the refund's kind:
released from the hold, or refunded), not from where the card payment stands when the words
are built: the payment moves on its own (the cancellation job settles it on a worker) between
the shopper's cancellation and the page that answers it. Real database, localstripe."""

from __future__ import annotations

from commerce import settlement
from commerce.cancellation import cancellation_answer, request_cancellation
from commerce.order_models import PaymentStatus, RefundKind
from tests.checkout.shop import Shop


def test_the_cancellation_answer_says_not_charged_after_the_hold_was_voided(shop: Shop) -> None:
    """Paid by card, nothing placed yet: the shopper's cancellation stops both parts and their
    shares are released from the hold (nothing captured). The web request commits, enqueues the
    cancellation job and then builds its answer; a worker that settled first (the hold voided)
    made the answer read "stopped, and refunded in full": a refund the shopper looks for on
    the statement and never finds. Driven by hand: the settlement runs between the two."""
    alice = shop.make_user()
    shop.fill_cart(alice, [("shopwave", 0, 1), ("kiondo", 0, 1)])
    order = shop.checkout(shop.client_for(alice), payment_method="stripe", test_card="pm_card_visa")
    with shop.session() as session:
        request_cancellation(session, alice.id, order.number)
        session.commit()
        # The cancellation job's worker, before the request builds its answer.
        settlement.process_refunds(shop.session_factory, order.id)
        settlement.settle_payment(shop.session_factory, order.id)
        fresh = shop.order(order.number)
        assert fresh.payment.status == PaymentStatus.VOIDED  # type: ignore[union-attr]
        assert {r.kind for r in fresh.payment.refunds} == {RefundKind.RELEASE}  # type: ignore[union-attr]
        session.expire_all()
        answer = cancellation_answer(shop.order(order.number))

    assert "stopped, and not charged to your card." in answer, answer
    assert "refunded" not in answer

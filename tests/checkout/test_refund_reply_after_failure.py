"""A card refund's reply arriving after Stripe's later word that the refund failed.

Stripe answers a refund `pending` (as good as done until the bank refuses it), and the bank can
refuse it soon after. When the worker's call is slow, the sweeper's look-up of the refund in
doubt can read Stripe's list first and record the failure (the operator told to pay it another
way); the worker's reply, `pending`, then arrives. It is the older word: recorded over the
failure, it made the refund succeeded in our books, told the shopper "We refunded …" and took
the operator's list for a resolved matter, while the shopper got nothing.

Real shop, sandbox marketplaces and localstripe (the refund is really made there); the gateway
is wrapped only where localstripe cannot play the fault: its refunds never fail, so the
sweeper's look-up during the call is answered "failed" as Stripe would then list it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce import settlement
from commerce.marketplace_access import adapter_for_marketplace
from commerce.notification_models import Notification
from commerce.order_locks import lock_order
from commerce.order_models import (
    MarketplaceOrder,
    Payment,
    PaymentStatus,
    RefundStatus,
    SubOrderStatus,
)
from commerce.payments.gateway import FoundRefund, FoundRefundStatus, PaymentGateway
from commerce.payments.providers import gateway_for_payment
from commerce.payments.stripe_webhooks import handle_stripe_event
from commerce.placement import place_sub_order
from commerce.refunds import reconcile_refund
from commerce.sub_order_compensation import compensate_sub_order
from tests.checkout.shop import Shop
from tests.checkout.test_payments_and_webhooks import stripe_refund_failed


class StripeListsItFailed:
    """The real gateway, whose refund look-up answers what Stripe lists once the bank refused
    the refund (localstripe's refunds never fail)."""

    def __init__(self, real: PaymentGateway, reference: str) -> None:
        self.real, self.reference = real, reference

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def find_refund(self, provider_reference: str, reference: str) -> FoundRefund | None:
        return FoundRefund(self.reference, FoundRefundStatus.FAILED, "failed")


class SlowReply:
    """The real gateway; its refund call is made at localstripe, and before its reply is read
    the sweeper's look-up of the refund in doubt runs (Stripe lists it failed by then)."""

    def __init__(self, real: PaymentGateway, shop: Shop, refund_id: int) -> None:
        self.real, self.shop, self.refund_id = real, shop, refund_id
        self.looked_up: bool | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def refund(self, provider_reference: str, amount: Any, **kwargs: Any) -> str:
        made = self.real.refund(provider_reference, amount, **kwargs)

        def listed_failed(session: Session, payment: Payment) -> PaymentGateway:
            return StripeListsItFailed(gateway_for_payment(session, payment), made)  # type: ignore[return-value]

        self.looked_up = reconcile_refund(
            self.shop.session_factory, self.refund_id, gateway_for=listed_failed
        )
        return made


def test_a_refunds_reply_read_after_stripe_listed_it_failed_leaves_it_failed(shop: Shop) -> None:
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 6, 1), ("kiondo", 6, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    for sub in order.charged_sub_orders:
        place_sub_order(
            shop.session_factory, sub.id, adapter_for=adapter_for_marketplace, final_attempt=True
        )
    assert shop.order(order.number).payment.status == PaymentStatus.CAPTURED  # type: ignore[union-attr]
    kiondo = shop.sub_order(order, "kiondo")
    with shop.session_factory() as session, session.begin():
        sub = session.get(MarketplaceOrder, kiondo.id)
        assert sub is not None
        lock_order(session, sub.order_id)
        refund = compensate_sub_order(
            session, sub, status=SubOrderStatus.CANCELLED, reason="Kiondo Market cancelled it."
        )
        assert refund is not None
        refund_id = refund.id
    slow: list[SlowReply] = []

    def gateway_for(session: Session, payment: Payment) -> PaymentGateway:
        slow.append(SlowReply(gateway_for_payment(session, payment), shop, refund_id))
        return slow[-1]  # type: ignore[return-value]

    settlement.process_refunds(shop.session_factory, order.id, gateway_for=gateway_for)

    assert [gateway.looked_up for gateway in slow if gateway.looked_up is not None] == [True]
    final = shop.order(order.number)
    payment = final.payment
    assert payment is not None
    [refund] = payment.refunds
    assert refund.status == RefundStatus.FAILED  # Stripe's later word stands
    assert payment.status == PaymentStatus.CAPTURED  # nothing given back in our books either
    assert final.attention_reason and refund.idempotency_key in final.attention_reason
    with shop.session() as session:
        kinds = list(
            session.scalars(sa.select(Notification.kind).where(Notification.order_id == order.id))
        )
    assert "refund_made" not in kinds  # the shopper is not told a refund they never got
    shop.unbalanced_orders.add(order.number)  # the shopper is owed the share: the operator's


# --- Stripe's `refund.failed` event received while the refund is in doubt -----------------------


class FailureEventBeforeReply:
    """The real gateway; its refund call is made at localstripe, and before its reply is read
    Stripe's `refund.failed` event for a refund carrying our reference is received: for the
    refund just made (`earlier_reference` None), or for an earlier attempt's refund of the same
    row, which failed while this one was made."""

    def __init__(self, real: PaymentGateway, shop: Shop, earlier_reference: str | None) -> None:
        self.real, self.shop, self.earlier_reference = real, shop, earlier_reference
        self.event_outcomes: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def refund(self, provider_reference: str, amount: Any, **kwargs: Any) -> str:
        made = self.real.refund(provider_reference, amount, **kwargs)
        failed = stripe_refund_failed(made)
        if self.earlier_reference is not None:
            failed["id"] = self.earlier_reference
        self.event_outcomes.append(
            handle_stripe_event(
                self.shop.session_factory, f"evt_failed_{failed['id']}", "refund.failed", failed
            )
        )
        return made


def _card_order_with_a_refund_to_make(shop: Shop) -> tuple[Any, int]:
    """A captured card order at two marketplaces, Kiondo Market's part cancelled: its share's
    card refund is pending."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 6, 1), ("kiondo", 6, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    for sub in order.charged_sub_orders:
        place_sub_order(
            shop.session_factory, sub.id, adapter_for=adapter_for_marketplace, final_attempt=True
        )
    assert shop.order(order.number).payment.status == PaymentStatus.CAPTURED  # type: ignore[union-attr]
    kiondo = shop.sub_order(order, "kiondo")
    with shop.session_factory() as session, session.begin():
        sub = session.get(MarketplaceOrder, kiondo.id)
        assert sub is not None
        lock_order(session, sub.order_id)
        refund = compensate_sub_order(
            session, sub, status=SubOrderStatus.CANCELLED, reason="Kiondo Market cancelled it."
        )
        assert refund is not None
        return order, refund.id


def _kinds_told(shop: Shop, order_id: int) -> list[str]:
    with shop.session() as session:
        return list(
            session.scalars(sa.select(Notification.kind).where(Notification.order_id == order_id))
        )


def test_a_refunds_reply_read_after_stripes_failure_event_leaves_it_failed(shop: Shop) -> None:
    """Stripe's `refund.failed` for the refund just made arrives while its reply (`pending`) is
    on its way: the reply is the older word. The refund stays failed, nothing is given back in
    our books, the shopper is not told "We refunded" (they are told the bank did not accept
    it), and the operator is asked to pay it back another way."""
    order, refund_id = _card_order_with_a_refund_to_make(shop)
    calls: list[FailureEventBeforeReply] = []

    def gateway_for(session: Session, payment: Payment) -> PaymentGateway:
        calls.append(FailureEventBeforeReply(gateway_for_payment(session, payment), shop, None))
        return calls[-1]  # type: ignore[return-value]

    settlement.process_refunds(shop.session_factory, order.id, gateway_for=gateway_for)

    assert [outcome for call in calls for outcome in call.event_outcomes] == [
        "refund failed while in doubt: order flagged"
    ]
    final = shop.order(order.number)
    payment = final.payment
    assert payment is not None
    [refund] = payment.refunds
    assert refund.id == refund_id
    assert refund.status == RefundStatus.FAILED  # Stripe's later word stands
    assert payment.status == PaymentStatus.CAPTURED  # nothing given back in our books
    assert final.attention_reason and "did not get it" in final.attention_reason
    kinds = _kinds_told(shop, order.id)
    assert "refund_made" not in kinds  # never told a refund they did not get
    assert kinds.count("refund_failed") == 1
    shop.unbalanced_orders.add(order.number)  # the shopper is owed the share: the operator's


def test_a_later_attempts_refund_counts_after_an_earlier_ones_failure_event(shop: Shop) -> None:
    """The failure event names another refund of ours (an earlier attempt's, made under the same
    reference): the reply's refund, a different one, was made and counts."""
    order, _ = _card_order_with_a_refund_to_make(shop)
    calls: list[FailureEventBeforeReply] = []

    def gateway_for(session: Session, payment: Payment) -> PaymentGateway:
        calls.append(
            FailureEventBeforeReply(gateway_for_payment(session, payment), shop, "re_earlier")
        )
        return calls[-1]  # type: ignore[return-value]

    settlement.process_refunds(shop.session_factory, order.id, gateway_for=gateway_for)

    assert [outcome for call in calls for outcome in call.event_outcomes] == [
        "refund failed while in doubt: order flagged"
    ]
    final = shop.order(order.number)
    payment = final.payment
    assert payment is not None
    [refund] = payment.refunds
    assert refund.status == RefundStatus.SUCCEEDED and refund.provider_reference != "re_earlier"
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED
    assert "refund_made" in _kinds_told(shop, order.id)


def test_an_earlier_attempts_failure_event_does_not_undo_the_refund_that_counts(
    shop: Shop,
) -> None:
    """The refund was made and recorded done; Stripe's `refund.failed` then arrives for another
    refund of ours carrying the same reference (an earlier attempt's). It is not the refund
    that counts: that one stays done, nothing is flagged, the shopper is not told it failed."""
    order, _ = _card_order_with_a_refund_to_make(shop)
    settlement.process_refunds(shop.session_factory, order.id)
    [made] = shop.order(order.number).payment.refunds  # type: ignore[union-attr]
    assert made.status == RefundStatus.SUCCEEDED and made.provider_reference
    failed = {**stripe_refund_failed(made.provider_reference), "id": "re_earlier"}

    outcome = handle_stripe_event(shop.session_factory, "evt_earlier", "refund.failed", failed)

    final = shop.order(order.number)
    payment = final.payment
    assert payment is not None
    [refund] = payment.refunds
    assert refund.status == RefundStatus.SUCCEEDED
    assert refund.provider_reference == made.provider_reference
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED
    assert not final.attention_reason
    assert "refund_failed" not in _kinds_told(shop, order.id)
    assert "re_earlier" in outcome


class StripeListsNoneYet:
    """The real gateway, whose refund look-up runs while Stripe is still making the refund: the
    list has none of ours yet."""

    def __init__(self, real: PaymentGateway) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def find_refund(self, provider_reference: str, reference: str) -> FoundRefund | None:
        return None


class LookedUpThenFailedBeforeReply:
    """The real gateway; while its refund call runs, the sweeper's look-up finds none yet (the
    refund is pending again, to be sent by the next sweep), then Stripe makes it and reports it
    failed; only then is the reply (`pending`) read."""

    def __init__(self, real: PaymentGateway, shop: Shop, refund_id: int) -> None:
        self.real, self.shop, self.refund_id = real, shop, refund_id
        self.steps: list[object] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def refund(self, provider_reference: str, amount: Any, **kwargs: Any) -> str:
        def none_yet(session: Session, payment: Payment) -> PaymentGateway:
            return StripeListsNoneYet(gateway_for_payment(session, payment))  # type: ignore[return-value]

        self.steps.append(
            reconcile_refund(self.shop.session_factory, self.refund_id, gateway_for=none_yet)
        )
        made = self.real.refund(provider_reference, amount, **kwargs)
        self.steps.append(
            handle_stripe_event(
                self.shop.session_factory,
                f"evt_{made}",
                "refund.failed",
                stripe_refund_failed(made),
            )
        )
        return made


def test_a_reply_after_a_failure_event_received_while_pending_again_leaves_it_failed(
    shop: Shop,
) -> None:
    """The look-up found no refund yet and made the refund pending again; Stripe then reported
    the refund the call made failed; the call's reply (`pending`) comes last. The refund stays
    failed: the shopper is not told "We refunded", the operator pays it back another way."""
    order, refund_id = _card_order_with_a_refund_to_make(shop)
    calls: list[LookedUpThenFailedBeforeReply] = []

    def gateway_for(session: Session, payment: Payment) -> PaymentGateway:
        calls.append(
            LookedUpThenFailedBeforeReply(gateway_for_payment(session, payment), shop, refund_id)
        )
        return calls[-1]  # type: ignore[return-value]

    settlement.process_refunds(shop.session_factory, order.id, gateway_for=gateway_for)

    [call] = calls
    assert call.steps[0] is True  # pending again
    final = shop.order(order.number)
    payment = final.payment
    assert payment is not None
    [refund] = payment.refunds
    assert refund.status == RefundStatus.FAILED
    assert payment.status == PaymentStatus.CAPTURED
    assert final.attention_reason and refund.idempotency_key in final.attention_reason
    assert "refund_made" not in _kinds_told(shop, order.id)
    shop.unbalanced_orders.add(order.number)  # the shopper is owed the share: the operator's

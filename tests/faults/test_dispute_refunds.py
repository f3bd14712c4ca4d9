"""A part cancelled after the order's card charge was charged back (commerce.refunds, disputes).

Stripe refuses refunds of a charge under a chargeback (error `charge_disputed`), and once the
dispute is lost the bank has returned the disputed amount to the shopper: a refund on top would
pay twice. So the refund is held, not failed and not retried blind: sent once the shop keeps the
money, never sent after a lost dispute (an operator checks the bank's amount covered it).
localstripe has no disputes: the gateway in front of it answers refunds as Stripe does for a
disputed charge (Stripe's own client reading Stripe's error reply) while `disputed` is set; the
dispute events are signed and posted to the webhook."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import stripe
from sqlalchemy.orm import Session

from commerce.acknowledgements import acknowledge_dispute
from commerce.dispute_models import PaymentDispute
from commerce.marketplace_access import adapter_for_marketplace
from commerce.notification_models import Notification
from commerce.order_models import (
    Order,
    Payment,
    PaymentStatus,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.payments.gateway import PaymentDeclined, PaymentGateway
from commerce.payments.providers import gateway_for_payment
from commerce.payments.stripe_gateway import StripeGateway
from commerce.placement import place_sub_order
from commerce.sweeper import SweepPolicy, sweep
from commerce.tracking import track_open_sub_orders
from onecart.money import Money
from tests.checkout.dispute_events import charge_of, dispute_object, new_dispute_id, post_event
from tests.checkout.shop import Shop
from tests.checkout.test_stripe_replies import CannedHttp
from tests.faults.conftest import check_invariants
from tests.loopback_http import loopback_http

pytestmark = pytest.mark.slow

# What Stripe answers a refund of a charged-back charge.
DISPUTED_REPLY = json.dumps(
    {
        "error": {
            "type": "invalid_request_error",
            "code": "charge_disputed",
            "message": "Charge ch_1 has been charged back; cannot issue a refund.",
        }
    }
)


class DisputedAtStripe:
    """The real gateway, with refunds answered as Stripe answers them for a charged-back charge
    while `disputed` is set (counted: a held refund must not be sent at all)."""

    disputed = True
    refund_calls = 0

    def __init__(self, inner: PaymentGateway) -> None:
        self.inner = inner
        self.method = inner.method

    def refund(
        self, provider_reference: str, amount: Money, *, idempotency_key: str, reference: str
    ) -> str:
        DisputedAtStripe.refund_calls += 1
        if DisputedAtStripe.disputed:
            refusing = stripe.StripeClient(
                "sk_test_disputed",
                http_client=CannedHttp(400, DISPUTED_REPLY),
                max_network_retries=0,
            )
            return StripeGateway(refusing).refund(
                provider_reference, amount, idempotency_key=idempotency_key, reference=reference
            )
        return self.inner.refund(
            provider_reference, amount, idempotency_key=idempotency_key, reference=reference
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _disputed(session: Session, payment: Payment) -> PaymentGateway:
    return DisputedAtStripe(gateway_for_payment(session, payment))  # type: ignore[return-value]


@pytest.fixture(autouse=True)
def _stripe_disputes_the_charge() -> None:
    DisputedAtStripe.disputed = True
    DisputedAtStripe.refund_calls = 0


def _captured_order(shop: Shop) -> Order:
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 2, 1), ("kiondo", 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    for sub in order.charged_sub_orders:
        place_sub_order(
            shop.session_factory,
            sub.id,
            adapter_for=adapter_for_marketplace,
            final_attempt=True,
            gateway_for=_disputed,
        )
    order = shop.order(order.number)
    assert order.payment is not None and order.payment.status == PaymentStatus.CAPTURED
    return order


def _dispute(order: Order, dispute_id: str, status: str, **extra: Any) -> dict[str, Any]:
    assert order.payment is not None
    intent_id = order.payment.provider_reference
    return dispute_object(
        dispute_id,
        charge=charge_of(intent_id),
        intent=intent_id,
        amount=order.payment.captured_minor,
        status=status,
        reason="product_not_received",
        **extra,
    )


def _kiondo_cancels(shop: Shop, order: Order) -> None:
    kiondo = shop.sub_order(order, "kiondo")
    number = str(kiondo.marketplace_order_id).rsplit("/", 1)[-1]
    response = loopback_http().post(
        f"{shop.sandbox_url}/_sandbox/orders/kiondo/{number}/cancel", timeout=10
    )
    assert response.status_code == 200, response.text
    track_open_sub_orders(
        shop.session_factory, adapter_for=adapter_for_marketplace, gateway_for=_disputed
    )
    assert shop.sub_order(order, "kiondo").status == SubOrderStatus.CANCELLED


def _sweep(shop: Shop) -> None:
    def no_queue(message: object) -> str:
        raise ConnectionError("no queue in this test")

    sweep(
        shop.session_factory,
        no_queue,
        policy=SweepPolicy(stuck_after=timedelta(0), refund_processing_after=timedelta(0)),
        gateway_for=_disputed,
    )


def _kinds(shop: Shop, order: Order) -> list[str]:
    with shop.session() as session:
        return list(
            session.scalars(sa.select(Notification.kind).where(Notification.order_id == order.id))
        )


def test_a_part_cancelled_during_a_chargeback_is_refunded_only_once_the_shop_wins(
    shop: Shop,
) -> None:
    order = _captured_order(shop)
    dispute_id = new_dispute_id()
    disputed = _dispute(order, dispute_id, "needs_response", withdrawn=True)
    assert post_event(shop.app, "charge.dispute.created", disputed).status_code == 200

    _kiondo_cancels(shop, order)
    _sweep(shop)

    payment = shop.order(order.number).payment
    assert payment is not None
    [refund] = payment.refunds
    # Held: not sent to a Stripe that refuses it, and not failed (which nothing would revisit).
    assert refund.status == RefundStatus.PENDING
    assert DisputedAtStripe.refund_calls == 0
    flagged = shop.order(order.number)
    assert flagged.attention_reason and "disputed" in flagged.attention_reason
    assert f"Refund {refund.idempotency_key}" in flagged.attention_reason
    assert _kinds(shop, order).count("refund_on_hold") == 1

    # The shop wins: Stripe takes refunds again, and the held one goes out once.
    DisputedAtStripe.disputed = False
    won = {**disputed, "status": "won"}
    assert post_event(shop.app, "charge.dispute.closed", won).status_code == 200
    _sweep(shop)
    _sweep(shop)

    payment = shop.order(order.number).payment
    assert payment is not None and payment.status == PaymentStatus.PARTIALLY_REFUNDED
    [refund] = payment.refunds
    assert (refund.kind, refund.status) == (RefundKind.CARD_REFUND, RefundStatus.SUCCEEDED)
    assert refund.amount_minor == shop.sub_order(order, "kiondo").charge_minor
    assert DisputedAtStripe.refund_calls == 1
    check_invariants(shop)


def test_a_refund_stripe_refuses_for_a_chargeback_is_held_then_never_sent_after_a_lost_dispute(
    shop: Shop,
) -> None:
    order = _captured_order(shop)

    # Stripe refuses before the dispute's event has reached us.
    _kiondo_cancels(shop, order)
    payment = shop.order(order.number).payment
    assert payment is not None
    [refund] = payment.refunds
    assert refund.status == RefundStatus.PENDING  # not failed: the dispute decides it
    assert DisputedAtStripe.refund_calls == 1
    flagged = shop.order(order.number)
    assert flagged.attention_reason and "disputed" in flagged.attention_reason

    dispute_id = new_dispute_id()
    disputed = _dispute(order, dispute_id, "needs_response", withdrawn=True)
    assert post_event(shop.app, "charge.dispute.created", disputed).status_code == 200
    _sweep(shop)
    assert DisputedAtStripe.refund_calls == 1  # our records hold it now: no call at all

    # Lost: the bank gave the shopper the whole charge; the share is not refunded on top.
    lost = {**disputed, "status": "lost"}
    assert post_event(shop.app, "charge.dispute.closed", lost).status_code == 200
    _sweep(shop)
    _sweep(shop)

    payment = shop.order(order.number).payment
    assert payment is not None and payment.status == PaymentStatus.CAPTURED
    [refund] = payment.refunds
    assert refund.status == RefundStatus.FAILED and refund.provider_reference is None
    assert DisputedAtStripe.refund_calls == 1
    flagged = shop.order(order.number)
    assert flagged.attention_reason and "was lost" in flagged.attention_reason
    assert _kinds(shop, order).count("refund_covered_by_bank") == 1
    # The books show a cancelled share OneCart never refunded: the bank's chargeback paid it,
    # and the order is on the operator's list to check that it covered it (the shop fixture
    # checks every other order's books).
    shop.unbalanced_orders.add(order.number)


class RefusesForGood(DisputedAtStripe):
    """Stripe refuses the refund for good, for a reason of its own (not a chargeback)."""

    def refund(
        self, provider_reference: str, amount: Money, *, idempotency_key: str, reference: str
    ) -> str:
        DisputedAtStripe.refund_calls += 1
        raise PaymentDeclined("The card refund re_refused failed.")


def test_a_refund_refused_for_good_on_an_order_already_listed_is_added_to_its_reasons(
    shop: Shop,
) -> None:
    """A disputed order is on the operator's list from the dispute on; a refund of it refused for
    good later needs an action of its own and must not hide behind the dispute's reason."""
    order = _captured_order(shop)
    inquiry = _dispute(order, new_dispute_id(), "warning_needs_response")
    assert post_event(shop.app, "charge.dispute.created", inquiry).status_code == 200
    flagged = shop.order(order.number)
    assert flagged.attention_reason and "disputed" in flagged.attention_reason

    kiondo = shop.sub_order(order, "kiondo")
    number = str(kiondo.marketplace_order_id).rsplit("/", 1)[-1]
    response = loopback_http().post(
        f"{shop.sandbox_url}/_sandbox/orders/kiondo/{number}/cancel", timeout=10
    )
    assert response.status_code == 200, response.text

    def refusing(session: Session, payment: Payment) -> PaymentGateway:
        return RefusesForGood(gateway_for_payment(session, payment))  # type: ignore[return-value]

    # An inquiry moves no money: the refund is sent, and Stripe refuses it for its own reason.
    track_open_sub_orders(
        shop.session_factory, adapter_for=adapter_for_marketplace, gateway_for=refusing
    )
    payment = shop.order(order.number).payment
    assert payment is not None
    [refund] = payment.refunds
    assert refund.status == RefundStatus.FAILED and DisputedAtStripe.refund_calls == 1
    flagged = shop.order(order.number)
    assert flagged.attention_reason and "disputed" in flagged.attention_reason
    assert f"Refund {refund.idempotency_key} refused by the provider" in flagged.attention_reason
    shop.unbalanced_orders.add(order.number)  # the refused refund is the operator's


def test_every_reason_a_lost_chargeback_puts_on_the_order_stays_whole_for_the_operator(
    shop: Shop,
) -> None:
    """A part cancelled during a chargeback that the shop then loses puts four reasons on the
    order's flag: Stripe refusing the refund, the dispute to answer, the refund held, and the
    lost dispute's "pay the shopper the rest by hand". The flag held 500 characters and cut the
    oldest reasons to make room, so the operator's list no longer said the dispute had to be
    answered (nor why the refund was refused), and acknowledging the dispute could not find its
    reason to take off. Every distinct reason now stays whole until an operator clears it."""
    order = _captured_order(shop)
    _kiondo_cancels(shop, order)  # Stripe refuses the refund before the dispute's event
    dispute_id = new_dispute_id()
    disputed = _dispute(order, dispute_id, "needs_response", withdrawn=True)
    assert post_event(shop.app, "charge.dispute.created", disputed).status_code == 200
    _sweep(shop)
    lost = {**disputed, "status": "lost"}
    assert post_event(shop.app, "charge.dispute.closed", lost).status_code == 200
    _sweep(shop)
    shop.unbalanced_orders.add(order.number)  # the bank's chargeback paid the share

    flag = shop.order(order.number).attention_reason or ""
    refused, answer, held, not_sent = flag.split(" | ")
    assert refused.startswith("Refund refund-sub-") and "held until the dispute is decided" in (
        refused
    )
    assert answer.startswith("The card payment is disputed") and answer.endswith(
        f"answer the dispute {dispute_id} in Stripe. Nothing was refunded."
    )
    assert held.endswith("sent if the shop keeps the money.")
    assert not_sent.endswith("pay the shopper the rest by hand.")

    with shop.session() as session:
        row_id = session.scalar(
            sa.select(PaymentDispute.id).where(PaymentDispute.dispute_id == dispute_id)
        )
    assert row_id is not None
    assert acknowledge_dispute(shop.session_factory, row_id, "operator@example.com")
    assert shop.order(order.number).attention_reason == " | ".join([refused, held, not_sent])

"""A card refund Stripe refused with `charge_disputed` is held and sent again later (commerce.refunds);
Stripe stores that refusal under the refund's idempotency key and replays it to every request with
the key for a day (https://docs.stripe.com/idempotency). So the resend is a new attempt with a key
of its own (commerce.provider_attempts): once Stripe takes refunds of the charge again, the held
refund goes out instead of being answered with the stored refusal.

The shop of tests/faults (localstripe, which keeps no idempotency keys): the gateway in front of it
answers refunds as Stripe does for a charged-back charge while `disputed` is set, and replays the
stored answer of a key it has seen, as Stripe does."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from commerce.marketplace_access import adapter_for_marketplace
from commerce.order_models import Payment, PaymentStatus, RefundKind, RefundStatus, SubOrderStatus
from commerce.payments.gateway import PaymentDeclined, PaymentGateway
from commerce.payments.providers import gateway_for_payment
from commerce.sweeper import SweepPolicy, sweep
from commerce.tracking import track_open_sub_orders
from onecart.money import Money
from tests.checkout.shop import Shop
from tests.faults.conftest import check_invariants
from tests.faults.test_dispute_refunds import DisputedAtStripe, _captured_order
from tests.loopback_http import loopback_http

pytestmark = pytest.mark.slow


class StoresAnswers(DisputedAtStripe):
    """DisputedAtStripe, keeping each refund key's refusal and replaying it to that key."""

    stored: dict[str, PaymentDeclined] = {}
    keys: list[str] = []

    def refund(
        self, provider_reference: str, amount: Money, *, idempotency_key: str, reference: str
    ) -> str:
        StoresAnswers.keys.append(idempotency_key)
        if idempotency_key in StoresAnswers.stored:
            raise StoresAnswers.stored[idempotency_key]
        try:
            return super().refund(
                provider_reference, amount, idempotency_key=idempotency_key, reference=reference
            )
        except PaymentDeclined as exc:
            StoresAnswers.stored[idempotency_key] = exc
            raise


def _storing(session: Session, payment: Payment) -> PaymentGateway:
    return StoresAnswers(gateway_for_payment(session, payment))  # type: ignore[return-value]


@pytest.fixture(autouse=True)
def _fresh_stripe() -> None:
    DisputedAtStripe.disputed = True
    DisputedAtStripe.refund_calls = 0
    StoresAnswers.stored = {}
    StoresAnswers.keys = []


def _sweep(shop: Shop) -> None:
    def no_queue(message: object) -> str:
        raise ConnectionError("no queue in this test")

    sweep(
        shop.session_factory,
        no_queue,
        policy=SweepPolicy(stuck_after=timedelta(0), refund_processing_after=timedelta(0)),
        gateway_for=_storing,
    )


def test_a_refund_held_for_a_chargeback_is_sent_as_a_new_attempt_not_answered_by_the_replay(
    shop: Shop,
) -> None:
    order = _captured_order(shop)
    kiondo = shop.sub_order(order, "kiondo")
    number = str(kiondo.marketplace_order_id).rsplit("/", 1)[-1]
    response = loopback_http().post(
        f"{shop.sandbox_url}/_sandbox/orders/kiondo/{number}/cancel", timeout=10
    )
    assert response.status_code == 200, response.text
    # Stripe knows of the chargeback before our records do (its event is late): refused.
    track_open_sub_orders(
        shop.session_factory, adapter_for=adapter_for_marketplace, gateway_for=_storing
    )
    assert shop.sub_order(order, "kiondo").status == SubOrderStatus.CANCELLED
    payment = shop.order(order.number).payment
    assert payment is not None
    [refund] = payment.refunds
    assert refund.status == RefundStatus.PENDING
    assert StoresAnswers.keys == [refund.idempotency_key]

    # The chargeback is over at Stripe (its events never reached us): the held refund goes out.
    DisputedAtStripe.disputed = False
    _sweep(shop)

    payment = shop.order(order.number).payment
    assert payment is not None and payment.status == PaymentStatus.PARTIALLY_REFUNDED
    [refund] = payment.refunds
    assert (refund.kind, refund.status) == (RefundKind.CARD_REFUND, RefundStatus.SUCCEEDED)
    assert StoresAnswers.keys == [refund.idempotency_key, f"{refund.idempotency_key}-attempt-1"]
    check_invariants(shop)

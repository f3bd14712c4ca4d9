"""A card refund Stripe answered with its own failure (HTTP 5xx) (commerce.refunds).

Stripe stores a 500 answer under the idempotency key and replays it to every request with that
key for a day (https://docs.stripe.com/idempotency: "including 500 errors"), so a resend under
the same key can never succeed; and the failure does not say whether the refund was made, so a
new key sent blind could refund twice. The unknown is resolved by asking Stripe: the intent's
refunds are listed and ours found by the reference in its metadata. Found: done, never sent
again. Listed and absent: sent again as a new attempt (a new key). Stripe cannot be asked: the
refund stays in doubt, and after a while an operator is told; nothing is sent on a guess.

The shop of tests/faults (localstripe, which never fails and keeps no idempotency keys): the
gateway in front of it answers the first refund with Stripe's 500 (after making the refund, or
without) and replays it to that key, as Stripe does."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from commerce.marketplace_access import adapter_for_marketplace
from commerce.order_models import (
    Order,
    Payment,
    PaymentStatus,
    RefundStatus,
    SubOrderStatus,
)
from commerce.payments.gateway import (
    FoundRefund,
    PaymentGateway,
    PaymentServiceFailed,
    PaymentUnavailable,
    StoredFailureReplayed,
)
from commerce.payments.providers import gateway_for_payment
from commerce.sweeper import SweepPolicy, sweep
from commerce.tracking import track_open_sub_orders
from onecart.money import Money
from tests.checkout.shop import Shop, stripe_client
from tests.faults.conftest import check_invariants
from tests.faults.test_dispute_refunds import DisputedAtStripe, _captured_order
from tests.loopback_http import loopback_http

pytestmark = pytest.mark.slow


class FailsLikeStripe:
    """The real gateway; its first refund is answered with Stripe's 500, made at Stripe first when
    `made_before_failing`, and that answer is replayed to its key. `lookup_down`: the list of
    refunds cannot be read."""

    made_before_failing = False
    lookup_down = False
    failures_left = 1
    stored: dict[str, PaymentServiceFailed] = {}
    keys: list[str] = []

    def __init__(self, inner: PaymentGateway) -> None:
        self.inner = inner
        self.method = inner.method

    def refund(
        self, provider_reference: str, amount: Money, *, idempotency_key: str, reference: str
    ) -> str:
        FailsLikeStripe.keys.append(idempotency_key)
        if idempotency_key in FailsLikeStripe.stored:
            raise StoredFailureReplayed(FailsLikeStripe.stored[idempotency_key].message)
        if FailsLikeStripe.failures_left > 0:
            FailsLikeStripe.failures_left -= 1
            if FailsLikeStripe.made_before_failing:
                self.inner.refund(
                    provider_reference, amount, idempotency_key=idempotency_key, reference=reference
                )
            failure = PaymentServiceFailed("The card payment service failed (refunded).")
            FailsLikeStripe.stored[idempotency_key] = failure
            raise failure
        return self.inner.refund(
            provider_reference, amount, idempotency_key=idempotency_key, reference=reference
        )

    def find_refund(self, provider_reference: str, reference: str) -> FoundRefund | None:
        if FailsLikeStripe.lookup_down:
            raise PaymentUnavailable("The card payment service is unreachable (looked up).")
        return self.inner.find_refund(provider_reference, reference)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _failing(session: Session, payment: Payment) -> PaymentGateway:
    return FailsLikeStripe(gateway_for_payment(session, payment))  # type: ignore[return-value]


@pytest.fixture(autouse=True)
def _fresh_stripe() -> None:
    DisputedAtStripe.disputed = False
    FailsLikeStripe.made_before_failing = False
    FailsLikeStripe.lookup_down = False
    FailsLikeStripe.failures_left = 1
    FailsLikeStripe.stored = {}
    FailsLikeStripe.keys = []


def _sweep(shop: Shop, *, flag_after: timedelta = timedelta(hours=1)) -> None:
    def no_queue(message: object) -> str:
        raise ConnectionError("no queue in this test")

    sweep(
        shop.session_factory,
        no_queue,
        policy=SweepPolicy(
            stuck_after=timedelta(0),
            refund_processing_after=timedelta(0),
            refund_in_doubt_flag_after=flag_after,
        ),
        gateway_for=_failing,
    )


def _cancel_kiondo(shop: Shop) -> tuple[Order, str]:
    """A captured card order whose kiondo part kiondo cancels; tracking sees it and sends its
    share's refund through FailsLikeStripe. The refund's own key."""
    order = _captured_order(shop)
    kiondo = shop.sub_order(order, "kiondo")
    number = str(kiondo.marketplace_order_id).rsplit("/", 1)[-1]
    response = loopback_http().post(
        f"{shop.sandbox_url}/_sandbox/orders/kiondo/{number}/cancel", timeout=10
    )
    assert response.status_code == 200, response.text
    track_open_sub_orders(
        shop.session_factory, adapter_for=adapter_for_marketplace, gateway_for=_failing
    )
    assert shop.sub_order(order, "kiondo").status == SubOrderStatus.CANCELLED
    [refund] = shop.order(order.number).payment.refunds  # type: ignore[union-attr]
    return order, refund.idempotency_key


def _refunds_at_stripe(order: Order) -> list[Any]:
    assert order.payment is not None
    return list(
        stripe_client()
        .v1.refunds.list(params={"payment_intent": order.payment.provider_reference})
        .auto_paging_iter()
    )


def test_a_refund_stripe_failed_without_making_is_sent_again_under_a_new_key(
    shop: Shop,
) -> None:
    order, key = _cancel_kiondo(shop)
    # Asked at once: Stripe lists no refund of ours, so the next send is a new attempt.
    [refund] = shop.order(order.number).payment.refunds  # type: ignore[union-attr]
    assert refund.status == RefundStatus.PENDING
    assert _refunds_at_stripe(order) == []

    _sweep(shop)

    payment = shop.order(order.number).payment
    assert payment is not None and payment.status == PaymentStatus.PARTIALLY_REFUNDED
    [refund] = payment.refunds
    assert refund.status == RefundStatus.SUCCEEDED
    # Never resent under the key whose stored 500 Stripe replays.
    assert FailsLikeStripe.keys == [key, f"{key}-attempt-1"]
    [made] = _refunds_at_stripe(order)
    assert made.id == refund.provider_reference
    assert made.metadata["onecart_refund_reference"] == key
    check_invariants(shop)


def test_a_refund_stripe_made_before_failing_is_found_and_never_sent_again(shop: Shop) -> None:
    FailsLikeStripe.made_before_failing = True

    order, key = _cancel_kiondo(shop)
    _sweep(shop)

    payment = shop.order(order.number).payment
    assert payment is not None and payment.status == PaymentStatus.PARTIALLY_REFUNDED
    [refund] = payment.refunds
    assert refund.status == RefundStatus.SUCCEEDED
    [made] = _refunds_at_stripe(order)
    assert made.id == refund.provider_reference
    assert FailsLikeStripe.keys == [key]
    check_invariants(shop)


def test_a_refund_stripe_cannot_be_asked_about_stays_in_doubt_and_goes_to_an_operator(
    shop: Shop,
) -> None:
    FailsLikeStripe.lookup_down = True

    order, key = _cancel_kiondo(shop)
    _sweep(shop)

    # Still in doubt, not yet long: asked again, never sent again, nobody bothered yet.
    [refund] = shop.order(order.number).payment.refunds  # type: ignore[union-attr]
    assert refund.status == RefundStatus.PROCESSING
    assert shop.order(order.number).attention_reason is None

    # In doubt past the bound: the operator is told, once however many sweeps ask.
    _sweep(shop, flag_after=timedelta(0))
    _sweep(shop, flag_after=timedelta(0))

    flagged = shop.order(order.number)
    [refund] = flagged.payment.refunds  # type: ignore[union-attr]
    assert refund.status == RefundStatus.PROCESSING
    assert flagged.attention_reason is not None
    assert flagged.attention_reason.count(f"Refund {key} ") == 1
    assert "outcome at Stripe is unknown" in flagged.attention_reason
    assert FailsLikeStripe.keys == [key]
    assert _refunds_at_stripe(order) == []

    # Stripe answers again and lists none: sent again under its key (the look-up does not
    # know that key's answer was a 500), which meets the stored 500, and the next look-up,
    # knowing it, moves to a new attempt.
    FailsLikeStripe.lookup_down = False
    _sweep(shop)
    _sweep(shop)
    [refund] = shop.order(order.number).payment.refunds  # type: ignore[union-attr]
    assert refund.status == RefundStatus.SUCCEEDED
    assert FailsLikeStripe.keys == [key, key, f"{key}-attempt-1"]
    assert len(_refunds_at_stripe(order)) == 1
    check_invariants(shop)

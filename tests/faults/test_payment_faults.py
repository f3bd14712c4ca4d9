"""Payment faults: a capture or refund whose reply is lost, Stripe unreachable at capture, a capture
refused for good. Placement and tracking run in-process against the sandbox and localstripe with
a gateway that loses replies (or a fake one, where localstripe cannot refuse: it captures
cancelled intents); the sweeper then resolves everything by asking Stripe. Every test ends with
the invariants (tests/faults/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import stripe
from sqlalchemy.orm import Session

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
from commerce.payments.gateway import (
    FoundRefund,
    PaymentDeclined,
    PaymentGateway,
    PaymentUnavailable,
    ProviderPaymentState,
    ProviderStatus,
)
from commerce.payments.providers import gateway_for_payment
from commerce.payments.stripe_gateway import StripeGateway
from commerce.placement import place_sub_order
from commerce.sweeper import SweepPolicy, sweep
from commerce.tracking import track_open_sub_orders
from onecart import processes
from onecart.money import Money, format_money
from onecart.settings import get_settings
from tests.checkout.shop import Shop, stripe_client
from tests.faults.conftest import check_invariants
from tests.loopback_http import loopback_http

pytestmark = pytest.mark.slow

GatewayFor = Callable[[Session, Payment], PaymentGateway]


class LosesReplies:
    """A real gateway whose chosen calls happen at Stripe, then lose their reply (a timeout)."""

    def __init__(self, inner: PaymentGateway, *, lose: set[str]) -> None:
        self.inner = inner
        self.method = inner.method
        self.lose = lose

    def capture(self, provider_reference: str, amount: Money, *, attempt: int | None = 0) -> None:
        self.inner.capture(provider_reference, amount, attempt=attempt)
        if "capture" in self.lose:
            raise PaymentUnavailable("timed out after sending the capture")

    def refund(
        self, provider_reference: str, amount: Money, *, idempotency_key: str, reference: str
    ) -> str:
        made = self.inner.refund(
            provider_reference, amount, idempotency_key=idempotency_key, reference=reference
        )
        if "refund" in self.lose:
            raise PaymentUnavailable("timed out after sending the refund")
        return made

    def retrieve(self, provider_reference: str) -> ProviderPaymentState:
        if "retrieve" in self.lose:
            raise PaymentUnavailable("unreachable")
        return self.inner.retrieve(provider_reference)

    def find_refund(self, provider_reference: str, reference: str) -> FoundRefund | None:
        if "find_refund" in self.lose:
            raise PaymentUnavailable("unreachable")
        return self.inner.find_refund(provider_reference, reference)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _losing(*calls: str) -> GatewayFor:
    def gateway_for(session: Session, payment: Payment) -> PaymentGateway:
        return LosesReplies(gateway_for_payment(session, payment), lose=set(calls))  # type: ignore[return-value]

    return gateway_for


def _card_order(shop: Shop, lines: list[tuple[str, int, int]]) -> Order:
    user = shop.make_user()
    shop.fill_cart(user, lines)
    return shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")


def _place_all(shop: Shop, order: Order, gateway_for: GatewayFor) -> None:
    for sub in order.charged_sub_orders:
        place_sub_order(
            shop.session_factory,
            sub.id,
            adapter_for=adapter_for_marketplace,
            final_attempt=True,
            gateway_for=gateway_for,
        )


def _sweep(shop: Shop, gateway_for: GatewayFor = gateway_for_payment) -> None:
    sweep(
        shop.session_factory,
        lambda message: pytest.fail("nothing should need enqueueing"),
        policy=SweepPolicy(stuck_after=timedelta(0), refund_processing_after=timedelta(0)),
        gateway_for=gateway_for,
    )


def _payment(shop: Shop, order: Order) -> Payment:
    payment = shop.order(order.number).payment
    assert payment is not None
    return payment


def _cancel_on_marketplace(shop: Shop, slug: str, number: str) -> None:
    response = loopback_http().post(
        f"{shop.sandbox_url}/_sandbox/orders/{slug}/{number.rsplit('/', 1)[-1]}/cancel",
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_capture_reply_lost_then_a_cancellation_is_resolved_by_asking_stripe(shop: Shop) -> None:
    order = _card_order(shop, [("shopwave", 2, 1), ("kiondo", 2, 1)])
    # Stripe captures both shares; the reply is lost and Stripe cannot be asked right away.
    _place_all(shop, order, _losing("capture", "retrieve"))
    payment = _payment(shop, order)
    assert payment.status == PaymentStatus.RECONCILING
    intent = stripe_client().v1.payment_intents.retrieve(payment.provider_reference)
    assert intent.status == "succeeded"

    # Meanwhile Kiondo cancels its part: the share went into the capture, so it is a card refund.
    kiondo = shop.sub_order(order, "kiondo")
    _cancel_on_marketplace(shop, "kiondo", str(kiondo.marketplace_order_id))
    track_open_sub_orders(
        shop.session_factory, adapter_for=adapter_for_marketplace, gateway_for=_losing("retrieve")
    )
    assert shop.sub_order(order, "kiondo").status == SubOrderStatus.CANCELLED

    _sweep(shop)

    payment = _payment(shop, order)
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED
    assert payment.captured_minor == order.total_minor  # one capture, never a second one
    [refund] = payment.refunds
    assert (refund.kind, refund.status) == (RefundKind.CARD_REFUND, RefundStatus.SUCCEEDED)
    assert refund.amount_minor == kiondo.charge_minor
    check_invariants(shop)


def test_stripe_unreachable_at_capture_waits_in_reconciling_then_captures(shop: Shop) -> None:
    order = _card_order(shop, [("shopwave", 3, 1), ("fakestore", 3, 1)])
    settings = get_settings()
    dead = stripe.StripeClient(
        settings.stripe_api_key,
        base_addresses={"api": f"http://127.0.0.1:{processes.free_port()}"},
        max_network_retries=0,
    )

    def unreachable(session: Session, payment: Payment) -> PaymentGateway:
        return StripeGateway(dead)

    _place_all(shop, order, unreachable)
    payment = _payment(shop, order)
    assert payment.status == PaymentStatus.RECONCILING
    assert shop.order(order.number).attention_reason is None
    _sweep(shop, unreachable)  # still unreachable: nothing changes, nothing is retried blind
    assert _payment(shop, order).status == PaymentStatus.RECONCILING

    _sweep(shop)  # Stripe is back: the intent is still authorized, so the capture runs now

    payment = _payment(shop, order)
    assert payment.status == PaymentStatus.CAPTURED
    assert payment.captured_minor == order.total_minor
    check_invariants(shop)


def test_refund_reply_lost_is_found_by_its_key_and_never_sent_twice(shop: Shop) -> None:
    order = _card_order(shop, [("shopwave", 5, 1), ("kiondo", 5, 1)])
    _place_all(shop, order, gateway_for_payment)
    assert _payment(shop, order).status == PaymentStatus.CAPTURED
    shopwave = shop.sub_order(order, "shopwave")
    _cancel_on_marketplace(shop, "shopwave", str(shopwave.marketplace_order_id))

    track_open_sub_orders(
        shop.session_factory,
        adapter_for=adapter_for_marketplace,
        gateway_for=_losing("refund", "find_refund"),
    )
    [refund] = _payment(shop, order).refunds
    assert refund.status == RefundStatus.PROCESSING  # sent, outcome unknown

    _sweep(shop)

    [refund] = _payment(shop, order).refunds
    assert refund.status == RefundStatus.SUCCEEDED and refund.provider_reference
    refunds = stripe_client().v1.refunds.list(
        params={"payment_intent": _payment(shop, order).provider_reference}
    )
    ours = [r for r in refunds.data if r.to_dict().get("metadata", {}).get("onecart_refund_key")]
    assert len(ours) == 1
    check_invariants(shop)


class RefusesCapture:
    """A gateway whose capture is refused for good (the hold expired): what localstripe cannot
    do, since it captures even cancelled intents."""

    captures = 0  # across instances: a gateway is built per call

    def __init__(self, inner: PaymentGateway) -> None:
        self.inner = inner
        self.method = inner.method

    def capture(self, provider_reference: str, amount: Money, *, attempt: int | None = 0) -> None:
        RefusesCapture.captures += 1
        raise PaymentDeclined("This PaymentIntent's authorization has expired.")

    def retrieve(self, provider_reference: str) -> ProviderPaymentState:
        state = self.inner.retrieve(provider_reference)
        return ProviderPaymentState(
            provider_reference, ProviderStatus.CANCELED, state.amount_minor, 0, 0, state.currency
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_capture_refused_for_good_fails_the_payment_flags_the_order_and_tells_the_shopper(
    shop: Shop,
) -> None:
    order = _card_order(shop, [("shopwave", 6, 1)])

    def refusing(session: Session, payment: Payment) -> PaymentGateway:
        return RefusesCapture(gateway_for_payment(session, payment))  # type: ignore[return-value]

    RefusesCapture.captures = 0
    _place_all(shop, order, refusing)
    _sweep(shop, refusing)  # not retried forever: it stays failed
    _sweep(shop, refusing)

    assert RefusesCapture.captures == 1
    payment = _payment(shop, order)
    assert payment.status == PaymentStatus.FAILED
    assert payment.captured_minor == 0
    intent = stripe_client().v1.payment_intents.retrieve(payment.provider_reference)
    assert intent.status == "requires_capture"  # nothing was taken from the card
    assert payment.failure_message and "expired" in payment.failure_message
    flagged = shop.order(order.number)
    assert flagged.attention_reason and "could not be collected" in flagged.attention_reason
    with shop.session() as session:
        kinds = list(
            session.scalars(sa.select(Notification.kind).where(Notification.order_id == order.id))
        )
    assert "payment_failed" in kinds
    admin = shop.make_user(is_admin=True)
    page = shop.client_for(admin).get("/admin/attention").get_data(as_text=True)
    assert order.number in page

    # Later the marketplace cancels its part: nothing was taken, so nothing goes to the card.
    shopwave = shop.sub_order(order, "shopwave")
    _cancel_on_marketplace(shop, "shopwave", str(shopwave.marketplace_order_id))
    track_open_sub_orders(
        shop.session_factory, adapter_for=adapter_for_marketplace, gateway_for=refusing
    )
    assert shop.sub_order(order, "shopwave").status == SubOrderStatus.CANCELLED
    [refund] = _payment(shop, order).refunds
    assert (refund.kind, refund.status) == (RefundKind.RELEASE, RefundStatus.SUCCEEDED)
    assert RefusesCapture.captures == 1
    check_invariants(shop)


class CapturesOtherAmount:
    """A gateway whose capture reply is lost and whose PaymentIntent then reports a captured
    amount other than the one asked (what localstripe cannot report: it has no amount_received)."""

    def __init__(self, inner: PaymentGateway) -> None:
        self.inner = inner
        self.method = inner.method

    def capture(self, provider_reference: str, amount: Money, *, attempt: int | None = 0) -> None:
        self.inner.capture(provider_reference, amount, attempt=attempt)
        raise PaymentUnavailable("timed out after sending the capture")

    def retrieve(self, provider_reference: str) -> ProviderPaymentState:
        state = self.inner.retrieve(provider_reference)
        return ProviderPaymentState(
            provider_reference,
            state.status,
            state.amount_minor,
            state.captured_minor - 100,
            0,
            state.currency,
            captured_on_record_minor=state.captured_minor - 100,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_capture_of_another_amount_than_asked_records_stripes_figure_and_flags_the_order(
    shop: Shop,
) -> None:
    order = _card_order(shop, [("shopwave", 6, 1)])

    def other_amount(session: Session, payment: Payment) -> PaymentGateway:
        return CapturesOtherAmount(gateway_for_payment(session, payment))  # type: ignore[return-value]

    _place_all(shop, order, other_amount)

    payment = _payment(shop, order)
    assert payment.status == PaymentStatus.CAPTURED
    assert payment.captured_minor == payment.amount_minor - 100  # Stripe's figure
    flagged = shop.order(order.number)
    assert flagged.attention_reason and "not the" in flagged.attention_reason
    assert "captured" in flagged.attention_reason
    admin = shop.make_user(is_admin=True)
    page = shop.client_for(admin).get("/admin/attention").get_data(as_text=True)
    assert order.number in page
    # Our books now hold Stripe's figure while the shares say otherwise: that is the operator's.
    shop.unbalanced_orders.add(order.number)


class CapturesTheWholeHold:
    """A gateway whose capture at localstripe takes the whole hold rather than the placed shares
    asked for (an earlier attempt's request for the whole order, landing late), and whose reply
    is lost. localstripe records it truly: its charge refunds nothing, so it kept everything."""

    def __init__(self, inner: PaymentGateway) -> None:
        self.inner = inner
        self.method = inner.method

    def capture(self, provider_reference: str, amount: Money, *, attempt: int | None = 0) -> None:
        stripe_client().v1.payment_intents.capture(provider_reference)
        raise PaymentUnavailable("timed out after sending the capture")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_capture_localstripe_took_in_full_is_read_from_its_charge_not_taken_as_asked(
    shop: Shop,
) -> None:
    """Kiondo never gets the order, so only ShopWave's share is asked for; localstripe captured
    the whole hold and the reply was lost. Reconciliation reads localstripe's charge (no
    `amount_received` there): Kiondo's share was charged, so it goes back to the card as a
    refund (not marked released while the card paid it) and the order is flagged."""
    order = _card_order(shop, [("shopwave", 2, 1), ("kiondo", 2, 1)])
    shop.make_unreachable("kiondo")

    def whole_hold(session: Session, payment: Payment) -> PaymentGateway:
        return CapturesTheWholeHold(gateway_for_payment(session, payment))  # type: ignore[return-value]

    _place_all(shop, order, whole_hold)

    kiondo = shop.sub_order(order, "kiondo")
    assert kiondo.status == SubOrderStatus.FAILED
    payment = _payment(shop, order)
    assert payment.captured_minor == payment.amount_minor  # localstripe's figure
    [refund] = payment.refunds
    assert (refund.kind, refund.status, refund.amount_minor) == (
        RefundKind.CARD_REFUND,
        RefundStatus.SUCCEEDED,
        kiondo.charge_minor,
    )
    assert payment.status == PaymentStatus.PARTIALLY_REFUNDED
    flagged = shop.order(order.number)
    assert flagged.attention_reason and "not the" in flagged.attention_reason
    check_invariants(shop)


def test_a_partial_capture_whose_reply_is_lost_agrees_with_localstripes_charge(shop: Shop) -> None:
    """The common case read the same way: ShopWave's share captured, the reply lost. localstripe
    records Kiondo's released share as the charge's refund; what the charge kept is what was
    asked, so the release is completed and nothing is flagged."""
    order = _card_order(shop, [("shopwave", 2, 1), ("kiondo", 2, 1)])
    shop.make_unreachable("kiondo")

    _place_all(shop, order, _losing("capture"))

    shopwave = shop.sub_order(order, "shopwave")
    payment = _payment(shop, order)
    assert payment.status == PaymentStatus.CAPTURED
    assert payment.captured_minor == shopwave.charge_minor
    [refund] = payment.refunds
    assert (refund.kind, refund.status) == (RefundKind.RELEASE, RefundStatus.SUCCEEDED)
    assert shop.order(order.number).attention_reason is None
    check_invariants(shop)


class CaptureNeverSent:
    """A gateway whose capture fails before it reaches Stripe (a connection refused) and which
    cannot ask Stripe right away: the capture's outcome is unknown, yet nothing was captured."""

    def __init__(self, inner: PaymentGateway) -> None:
        self.inner = inner
        self.method = inner.method

    def capture(self, provider_reference: str, amount: Money, *, attempt: int | None = 0) -> None:
        raise PaymentUnavailable("connection refused before the capture was sent")

    def retrieve(self, provider_reference: str) -> ProviderPaymentState:
        raise PaymentUnavailable("unreachable")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_share_cancelled_while_a_capture_is_in_doubt_that_never_happened_is_released_not_refunded(
    shop: Shop,
) -> None:
    """The capture's outcome is unknown when Kiondo cancels its part, so its refund is recorded
    as a card refund. Stripe then says nothing was captured: the next capture leaves Kiondo's
    share out, so that share is released; sending it as a card refund too would give it back
    twice (out of Shopwave's captured share)."""
    order = _card_order(shop, [("shopwave", 2, 1), ("kiondo", 2, 1)])

    def never_sent(session: Session, payment: Payment) -> PaymentGateway:
        return CaptureNeverSent(gateway_for_payment(session, payment))  # type: ignore[return-value]

    _place_all(shop, order, never_sent)
    payment = _payment(shop, order)
    assert payment.status == PaymentStatus.RECONCILING
    assert stripe_client().v1.payment_intents.retrieve(payment.provider_reference).status == (
        "requires_capture"
    )
    kiondo = shop.sub_order(order, "kiondo")
    _cancel_on_marketplace(shop, "kiondo", str(kiondo.marketplace_order_id))
    track_open_sub_orders(
        shop.session_factory, adapter_for=adapter_for_marketplace, gateway_for=never_sent
    )
    assert shop.sub_order(order, "kiondo").status == SubOrderStatus.CANCELLED

    _sweep(shop)  # Stripe answers: still authorized; the claim is given back
    _sweep(shop)  # and the capture runs for Shopwave's share alone

    payment = _payment(shop, order)
    shopwave = shop.sub_order(order, "shopwave")
    assert payment.status == PaymentStatus.CAPTURED
    assert payment.captured_minor == shopwave.charge_minor
    [refund] = payment.refunds
    assert (refund.kind, refund.status) == (RefundKind.RELEASE, RefundStatus.SUCCEEDED)
    refunds = stripe_client().v1.refunds.list(params={"payment_intent": payment.provider_reference})
    # localstripe lists the uncaptured rest of a partial capture as a refund without our key;
    # no refund of ours went to the card: Kiondo's share was never taken.
    assert [
        r for r in refunds.data if r.to_dict().get("metadata", {}).get("onecart_refund_key")
    ] == []
    check_invariants(shop)


def _messages(shop: Shop, order: Order) -> list[str]:
    with shop.session() as session:
        return list(
            session.scalars(
                sa.select(Notification.message)
                .where(Notification.order_id == order.id)
                .order_by(Notification.id)
            )
        )


def test_the_shopper_is_told_refunded_only_once_the_card_refund_is_made(shop: Shop) -> None:
    order = _card_order(shop, [("shopwave", 7, 1)])
    _place_all(shop, order, gateway_for_payment)
    assert _payment(shop, order).status == PaymentStatus.CAPTURED
    shopwave = shop.sub_order(order, "shopwave")
    _cancel_on_marketplace(shop, "shopwave", str(shopwave.marketplace_order_id))

    # The marketplace cancelled the only part; the card refund's reply is lost.
    track_open_sub_orders(
        shop.session_factory,
        adapter_for=adapter_for_marketplace,
        gateway_for=_losing("refund", "find_refund"),
    )
    [refund] = _payment(shop, order).refunds
    assert refund.status == RefundStatus.PROCESSING
    told = " ".join(_messages(shop, order))
    assert "has been refunded" not in told and "you have been refunded" not in told
    assert (
        f"Your order {order.number} was cancelled at ShopWave (ShopWave cancelled the order); "
        "we are refunding you in full to your card." in told
    )

    _sweep(shop)  # Stripe holds the refund: now it is made, and the shopper is told so

    [refund] = _payment(shop, order).refunds
    assert refund.status == RefundStatus.SUCCEEDED
    made = [m for m in _messages(shop, order) if m.startswith("We refunded")]
    assert made == [
        f"We refunded {format_money(shopwave.charge_minor, shopwave.charge_currency)} of order "
        f"{order.number} to your card; your bank shows it within a few days."
    ]
    check_invariants(shop)

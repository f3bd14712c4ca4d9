"""Stripe webhooks (signature, replays, unknown events) and recovering a capture whose outcome was
never recorded, against localstripe; placement runs in-process here (no queue needed)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce import settlement
from commerce.card_holds import checkout_intent_metadata
from commerce.checkout import OutcomeKind, submit_checkout
from commerce.exactly_once_models import ProcessedWebhookEvent
from commerce.fx import FxTable
from commerce.marketplace_access import adapter_for_marketplace, lookup_adapter_for_marketplace
from commerce.notification_models import Notification
from commerce.order_locks import lock_order
from commerce.order_models import (
    MarketplaceOrder,
    Order,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundStatus,
    SubOrderStatus,
)
from commerce.payments.gateway import FoundRefund, PaymentGateway, PaymentUnavailable
from commerce.payments.providers import gateway_for_payment
from commerce.payments.stripe_gateway import StripeGateway, stripe_client_from_settings
from commerce.placement import PlacementResult, place_sub_order
from commerce.refund_progress import adjustment_key
from commerce.sub_order_compensation import adjust_share, compensate_sub_order, refund_key
from commerce.sweeper import SweepPolicy, sweep
from onecart.money import Money
from onecart.settings import get_settings
from tests.checkout.shop import Shop, stripe_client


def _signed(payload: dict[str, Any], secret: str | None = None) -> tuple[bytes, str]:
    body = json.dumps(payload).encode()
    timestamp = int(time.time())
    key = (secret or get_settings().stripe_webhook_secret).encode()
    signature = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={timestamp},v1={signature}"


def _event(event_type: str, data: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": data},
    }


def _post(shop: Shop, payload: dict[str, Any], secret: str | None = None) -> Any:
    body, header = _signed(payload, secret)
    return shop.app.test_client().post(
        "/webhooks/stripe",
        data=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


def test_unsigned_or_badly_signed_events_are_refused(shop: Shop) -> None:
    client = shop.app.test_client()
    payload = _event("payment_intent.succeeded", {"id": "pi_x", "object": "payment_intent"})

    missing = client.post("/webhooks/stripe", data=json.dumps(payload))
    forged = _post(shop, payload, secret="whsec_not_ours")

    assert missing.status_code == 400 and forged.status_code == 400
    with shop.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(ProcessedWebhookEvent)) == 0


def test_unknown_and_replayed_events_are_harmless(shop: Shop) -> None:
    unknown_type = _event("customer.created", {"id": "cus_1", "object": "customer"})
    unknown_payment = _event(
        "payment_intent.succeeded", {"id": "pi_unknown", "object": "payment_intent"}
    )

    first = _post(shop, unknown_type)
    second = _post(shop, unknown_payment)
    replay = _post(shop, unknown_payment)

    assert [r.status_code for r in (first, second, replay)] == [200, 200, 200]
    assert first.get_json()["outcome"] == "ignored: unhandled type"
    assert second.get_json()["outcome"] == "ignored: unknown payment"
    assert replay.get_json()["outcome"] == "replayed"


class CrashAfterCapture:
    """A gateway that really captures, then dies before the result is recorded (a worker killed
    right after Stripe answered)."""

    def __init__(self, inner: PaymentGateway) -> None:
        self.inner = inner
        self.method = inner.method

    def capture(self, provider_reference: str, amount: Money, *, attempt: int | None = 0) -> None:
        self.inner.capture(provider_reference, amount, attempt=attempt)
        raise SystemExit("worker killed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _place_all_crashing_at_capture(shop: Shop, order: Order) -> None:
    def crashing(session: Session, payment: Payment) -> PaymentGateway:
        return CrashAfterCapture(gateway_for_payment(session, payment))  # type: ignore[return-value]

    results = []
    for sub in order.charged_sub_orders:
        try:
            results.append(
                place_sub_order(
                    shop.session_factory,
                    sub.id,
                    adapter_for=adapter_for_marketplace,
                    final_attempt=True,
                    gateway_for=crashing,
                )
            )
        except SystemExit:
            results.append(PlacementResult.PLACED)
    assert results == [PlacementResult.PLACED] * len(order.charged_sub_orders)
    payment = shop.order(order.number).payment
    assert payment is not None and payment.status == PaymentStatus.CAPTURING


@pytest.fixture
def crashed_capture(shop: Shop) -> Callable[[], Order]:
    def make() -> Order:
        user = shop.make_user()
        shop.fill_cart(user, [("shopwave", 2, 1), ("fakestore", 4, 1)])
        order = shop.checkout(
            shop.client_for(user), payment_method="stripe", test_card="pm_card_visa"
        )
        _place_all_crashing_at_capture(shop, order)
        return order

    return make


def test_payment_succeeded_webhook_records_a_capture_the_crash_left_open(
    shop: Shop, crashed_capture: Callable[[], Order]
) -> None:
    order = crashed_capture()
    assert order.payment is not None
    intent = stripe_client().v1.payment_intents.retrieve(order.payment.provider_reference)
    event = _event("payment_intent.succeeded", intent.to_dict())

    response = _post(shop, event)
    replay = _post(shop, event)

    assert response.get_json()["outcome"] == "capture confirmed"
    assert replay.get_json()["outcome"] == "replayed"
    payment = shop.order(order.number).payment
    assert payment is not None and payment.status == PaymentStatus.CAPTURED
    assert payment.captured_minor == order.total_minor


def test_sweeper_reconciles_a_capture_the_crash_left_open(
    shop: Shop, crashed_capture: Callable[[], Order]
) -> None:
    order = crashed_capture()

    report = sweep(
        shop.session_factory,
        lambda message: pytest.fail("nothing should need enqueueing"),
        policy=SweepPolicy(stuck_after=timedelta(0)),
    )

    assert report.dispatch_failures == 0
    payment = shop.order(order.number).payment
    assert payment is not None and payment.status == PaymentStatus.CAPTURED


def _confirmed_intent(amount: int, currency: str, token: str, user_id: int) -> str:
    """What Stripe.js leaves behind after the Payment Element confirms: a manual-capture intent
    holding the amount, tagged with the checkout's token and shopper."""
    intent = stripe_client().v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": currency.lower(),
            "payment_method": "pm_card_visa",
            "capture_method": "manual",
            "confirm": True,
            "metadata": checkout_intent_metadata(user_id, token),
        }
    )
    assert intent.status == "requires_capture"
    return str(intent.id)


def test_a_payment_intent_confirmed_in_the_browser_is_adopted(shop: Shop) -> None:
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 3, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)
    intent_id = _confirmed_intent(int(form["total_seen"]), "USD", form["validation_token"], user.id)

    response = shop.submit(client, form, payment_method="stripe", payment_intent_id=intent_id)

    assert response.status_code == 303
    [order] = shop.orders()
    assert order.payment is not None
    assert order.payment.provider_reference == intent_id
    assert order.payment.status == PaymentStatus.AUTHORIZED


@pytest.mark.parametrize("mismatch", ["amount", "token"])
def test_a_payment_intent_for_another_amount_or_checkout_is_refused(
    shop: Shop, mismatch: str
) -> None:
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 3, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)
    amount = int(form["total_seen"]) - (1 if mismatch == "amount" else 0)
    token = form["validation_token"] if mismatch == "amount" else "another-checkout-token-123"
    intent_id = _confirmed_intent(amount, "USD", token, user.id)

    response = shop.submit(client, form, payment_method="stripe", payment_intent_id=intent_id)

    assert response.status_code == 422
    assert "does not match this checkout" in response.get_data(as_text=True)
    assert shop.orders() == []
    # Nothing was captured: this checkout's stale hold is released, another checkout's intent
    # is left alone.
    status = stripe_client().v1.payment_intents.retrieve(intent_id).status
    assert status == ("canceled" if mismatch == "amount" else "requires_capture")


def test_a_browser_hold_for_a_total_that_changed_is_released(shop: Shop) -> None:
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 4, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)
    intent_id = _confirmed_intent(int(form["total_seen"]), "USD", form["validation_token"], user.id)
    shop.knobs("shopwave", price_drift=1.0)

    response = shop.submit(client, form, payment_method="stripe", payment_intent_id=intent_id)

    assert response.status_code == 409
    assert shop.orders() == []
    assert stripe_client().v1.payment_intents.retrieve(intent_id).status == "canceled"
    # The page for the new total must not hand the released hold back: checkout.js submits a
    # form that already names an intent without asking for one, so every later submit would be
    # refused as not matching this checkout, and the shopper could not pay from this page.
    assert Shop.hidden_fields(response.get_data(as_text=True)).get("payment_intent_id", "") == ""


def test_a_browser_hold_of_a_second_tab_whose_cart_the_first_tab_bought_is_released(
    shop: Shop,
) -> None:
    """Two tabs of one checkout: the first pays and empties the cart; the second's Payment
    Element had already held the same total on the card. Its submit finds nothing to pay for,
    and the hold it brought is released then, not left on the card until the sweeper finds it
    half an hour later."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 4, 1)])
    client = shop.client_for(user)
    first, second = shop.checkout_form(client), shop.checkout_form(client)
    first_hold = _confirmed_intent(
        int(first["total_seen"]), "USD", first["validation_token"], user.id
    )
    second_hold = _confirmed_intent(
        int(second["total_seen"]), "USD", second["validation_token"], user.id
    )
    assert (
        shop.submit(client, first, payment_method="stripe", payment_intent_id=first_hold)
    ).status_code == 303

    response = shop.submit(client, second, payment_method="stripe", payment_intent_id=second_hold)

    assert response.status_code == 422
    assert "Your cart is empty" in response.get_data(as_text=True)
    assert len(shop.orders()) == 1
    assert stripe_client().v1.payment_intents.retrieve(second_hold).status == "canceled"
    assert stripe_client().v1.payment_intents.retrieve(first_hold).status == "requires_capture"


def test_a_browser_hold_is_released_at_once_when_the_shopper_pays_by_wallet(shop: Shop) -> None:
    """Stripe.js held the total on the card, then the shopper chose the wallet (the page came
    back with the hold, say for a missing address): the wallet order uses no hold, so this one
    is released now, not left on the card for the sweeper's half hour."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 3, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)
    hold = _confirmed_intent(int(form["total_seen"]), "USD", form["validation_token"], user.id)

    response = shop.submit(client, form, payment_method="wallet", payment_intent_id=hold)

    assert response.status_code == 303
    [order] = shop.orders()
    assert order.payment is not None and order.payment.method == PaymentMethod.WALLET
    assert stripe_client().v1.payment_intents.retrieve(hold).status == "canceled"


def test_a_browser_hold_survives_a_wallet_too_short_and_pays_by_card(shop: Shop) -> None:
    """The wallet does not cover the total: the card hold for that total is still good, so the
    page keeps it and paying by card next adopts it (no second hold, none left behind)."""
    user = shop.make_user(wallet=Decimal("1"))
    shop.fill_cart(user, [("shopwave", 3, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)
    hold = _confirmed_intent(int(form["total_seen"]), "USD", form["validation_token"], user.id)

    refused = shop.submit(client, form, payment_method="wallet", payment_intent_id=hold)

    assert refused.status_code == 422
    assert Shop.hidden_fields(refused.get_data(as_text=True))["payment_intent_id"] == hold
    assert stripe_client().v1.payment_intents.retrieve(hold).status == "requires_capture"
    paid = shop.submit(client, form, payment_method="stripe", payment_intent_id=hold)
    assert paid.status_code == 303
    [order] = shop.orders()
    assert order.payment is not None and order.payment.provider_reference == hold


def test_a_browser_hold_refused_only_for_missing_rates_is_kept_for_the_next_submit(
    shop: Shop,
) -> None:
    """Rates missing says nothing about the form: its hold stays on the card and on the page,
    so the submit once rates are back adopts it (releasing it would leave checkout.js a
    released intent to confirm again, its key replayed)."""
    user = shop.make_user()
    shop.fill_cart(user, [("kiondo", 1, 1)])
    form = shop.checkout_form(shop.client_for(user))
    hold = _confirmed_intent(int(form["total_seen"]), "USD", form["validation_token"], user.id)
    submission = replace(shop.card_submission(user, form), payment_intent_id=hold)

    outcome = submit_checkout(
        shop.session_factory,
        submission,
        fx=FxTable(per_usd={}),
        adapter_for=lookup_adapter_for_marketplace,
        card_gateway=StripeGateway(stripe_client_from_settings(get_settings())),
    )

    assert (outcome.kind, outcome.keep_card_hold) == (OutcomeKind.REJECTED, True)
    assert stripe_client().v1.payment_intents.retrieve(hold).status == "requires_capture"
    assert shop.orders() == []


def test_a_browser_hold_is_kept_when_a_wallet_submit_lacks_the_wallets_rate(shop: Shop) -> None:
    """Paying by a wallet in a currency with no rate today is refused, but says nothing about the
    card hold the form brought for the shown total: it stays on the page (as for a card submit
    lacking rates), so the shopper can pay by card with it instead of leaving it to the sweeper."""
    user = shop.make_user(wallet=Decimal("5000"), wallet_currency="EUR")
    shop.fill_cart(user, [("shopwave", 3, 1)])
    form = shop.checkout_form(shop.client_for(user))
    hold = _confirmed_intent(int(form["total_seen"]), "USD", form["validation_token"], user.id)
    submission = replace(
        shop.card_submission(user, form),
        payment_method=PaymentMethod.WALLET,
        card_payment_method=None,
        payment_intent_id=hold,
        wallet_total_seen_minor=1,
    )

    outcome = submit_checkout(
        shop.session_factory,
        submission,
        fx=FxTable(per_usd={}),  # USD (the page's total) needs none; EUR has none
        adapter_for=lookup_adapter_for_marketplace,
        card_gateway=StripeGateway(stripe_client_from_settings(get_settings())),
    )

    assert outcome.kind == OutcomeKind.REJECTED and "EUR" in outcome.message
    assert outcome.keep_card_hold is True
    assert stripe_client().v1.payment_intents.retrieve(hold).status == "requires_capture"
    assert shop.orders() == []


def test_an_event_whose_handling_failed_is_applied_when_stripe_sends_it_again(
    shop: Shop, crashed_capture: Callable[[], Order], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database failed while the event was being applied: the delivery fails, and Stripe's
    redelivery must apply it, not be taken for a replay of an event already handled."""
    order = crashed_capture()
    assert order.payment is not None
    intent = stripe_client().v1.payment_intents.retrieve(order.payment.provider_reference)
    event = _event("payment_intent.succeeded", intent.to_dict())
    real_finish = settlement.finish_settlement
    failures: list[int] = []

    def fails_once(*args: Any, **kwargs: Any) -> None:
        if not failures:
            failures.append(1)
            raise sa.exc.OperationalError("UPDATE payments", {}, Exception("connection reset"))
        real_finish(*args, **kwargs)

    monkeypatch.setattr(settlement, "finish_settlement", fails_once)
    failed = _post(shop, event)
    redelivered = _post(shop, event)

    assert failed.status_code == 500  # Stripe delivers it again
    assert redelivered.get_json()["outcome"] == "capture confirmed"
    payment = shop.order(order.number).payment
    assert payment is not None and payment.status == PaymentStatus.CAPTURED


def _captured_card_order(shop: Shop, lines: list[tuple[str, int, int]]) -> Order:
    """A card order placed in-process and captured in full."""
    user = shop.make_user()
    shop.fill_cart(user, lines)
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    for sub in order.charged_sub_orders:
        place_sub_order(
            shop.session_factory, sub.id, adapter_for=adapter_for_marketplace, final_attempt=True
        )
    payment = shop.order(order.number).payment
    assert payment is not None and payment.status == PaymentStatus.CAPTURED
    return shop.order(order.number)


def _charge_of(intent_id: str) -> dict[str, Any]:
    intent = stripe_client().v1.payment_intents.retrieve(
        intent_id, params={"expand": ["latest_charge"]}
    )
    return intent.latest_charge.to_dict()


def test_a_refund_made_in_the_stripe_dashboard_puts_the_order_on_the_operators_list(
    shop: Shop,
) -> None:
    """Stripe reports more refunded than OneCart ever refunded: someone refunded the card outside
    OneCart, while our books (and the marketplaces) still count that money as paid. Nothing is
    corrected silently; an operator must look."""
    order = _captured_card_order(shop, [("shopwave", 2, 1), ("kiondo", 2, 1)])
    assert order.payment is not None
    intent_id = order.payment.provider_reference
    stripe_client().v1.refunds.create(params={"payment_intent": intent_id, "amount": 500})

    response = _post(shop, _event("charge.refunded", _charge_of(intent_id)))

    assert response.status_code == 200
    assert "outside OneCart" in response.get_json()["outcome"]
    flagged = shop.order(order.number)
    assert flagged.attention_reason and "outside OneCart" in flagged.attention_reason
    assert flagged.payment is not None and flagged.payment.status == PaymentStatus.CAPTURED
    admin = shop.make_user(is_admin=True)
    page = shop.client_for(admin).get("/admin/attention").get_data(as_text=True)
    assert order.number in page
    shop.unbalanced_orders.add(order.number)  # Stripe's books differ from ours: the operator's


class LosesRefundReply:
    """A gateway whose refund reaches Stripe but whose reply is lost, and that cannot ask."""

    def __init__(self, inner: PaymentGateway) -> None:
        self.inner = inner
        self.method = inner.method

    def refund(
        self, provider_reference: str, amount: Money, *, idempotency_key: str, reference: str
    ) -> str:
        self.inner.refund(
            provider_reference, amount, idempotency_key=idempotency_key, reference=reference
        )
        raise PaymentUnavailable("timed out after sending the refund")

    def find_refund(self, provider_reference: str, reference: str) -> FoundRefund | None:
        raise PaymentUnavailable("unreachable")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _cancel_with_the_refund_reply_lost(
    shop: Shop, order: Order, sub_order: MarketplaceOrder
) -> Refund:
    """Cancel `sub_order` and send its share's card refund through LosesRefundReply: the refund
    is made at Stripe and left `processing` here."""

    def losing(session: Session, payment: Payment) -> PaymentGateway:
        return LosesRefundReply(gateway_for_payment(session, payment))  # type: ignore[return-value]

    with shop.session_factory() as session, session.begin():
        sub = session.get(MarketplaceOrder, sub_order.id)
        assert sub is not None
        lock_order(session, sub.order_id)
        compensate_sub_order(session, sub, status=SubOrderStatus.CANCELLED, reason="test")
    settlement.process_refunds(shop.session_factory, order.id, gateway_for=losing)
    [refund] = shop.order(order.number).payment.refunds  # type: ignore[union-attr]
    assert refund.status == RefundStatus.PROCESSING
    return refund


def test_a_refund_of_ours_reported_by_stripe_is_consistent_and_resolves_one_in_doubt(
    shop: Shop,
) -> None:
    """charge.refunded for a refund OneCart sent whose reply was lost: the event is the moment
    to ask Stripe for it by our key (recorded as done, never sent again); nothing is flagged."""
    order = _captured_card_order(shop, [("shopwave", 5, 1), ("kiondo", 5, 1)])
    assert order.payment is not None
    kiondo = shop.sub_order(order, "kiondo")

    _cancel_with_the_refund_reply_lost(shop, order, kiondo)

    response = _post(shop, _event("charge.refunded", _charge_of(order.payment.provider_reference)))

    assert response.status_code == 200
    assert "outside" not in response.get_json()["outcome"]
    payment = shop.order(order.number).payment
    assert payment is not None and payment.status == PaymentStatus.PARTIALLY_REFUNDED
    [refund] = payment.refunds
    assert refund.status == RefundStatus.SUCCEEDED and refund.provider_reference
    assert refund.amount_minor == kiondo.charge_minor
    assert shop.order(order.number).attention_reason is None


def test_payment_succeeded_webhook_for_another_amount_than_asked_records_stripes_figure(
    shop: Shop, crashed_capture: Callable[[], Order]
) -> None:
    """The worker died during the capture; Stripe's event says it captured less than asked. The
    event's figure is Stripe's word (signed), so it is recorded and the order flagged, as the
    sweeper's reconciliation would: never the amount we merely asked for."""
    order = crashed_capture()
    assert order.payment is not None
    intent = stripe_client().v1.payment_intents.retrieve(order.payment.provider_reference)
    reported = {**intent.to_dict(), "amount_received": order.total_minor - 100}

    response = _post(shop, _event("payment_intent.succeeded", reported))

    assert response.get_json()["outcome"] == "capture confirmed"
    payment = shop.order(order.number).payment
    assert payment is not None and payment.status == PaymentStatus.CAPTURED
    assert payment.captured_minor == order.total_minor - 100
    flagged = shop.order(order.number)
    assert flagged.attention_reason and "not the" in flagged.attention_reason
    shop.unbalanced_orders.add(order.number)  # Stripe's figure differs from the shares


class CrashAfterCapturingLess:
    """A gateway whose capture at localstripe takes 100 less than asked, then dies before the
    result is recorded."""

    def __init__(self, inner: PaymentGateway) -> None:
        self.inner = inner
        self.method = inner.method

    def capture(self, provider_reference: str, amount: Money, *, attempt: int | None = 0) -> None:
        self.inner.capture(
            provider_reference, Money(amount.minor - 100, amount.currency), attempt=0
        )
        raise SystemExit("worker killed")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_payment_succeeded_webhook_silent_on_the_amount_reads_stripes_record(shop: Shop) -> None:
    """localstripe's own event carries no `amount_received`: the figure is read from Stripe's
    record of the intent (the charge less the released rest), never taken as the amount asked."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 2, 1), ("fakestore", 4, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")

    def crashing(session: Session, payment: Payment) -> PaymentGateway:
        return CrashAfterCapturingLess(gateway_for_payment(session, payment))  # type: ignore[return-value]

    for sub in order.charged_sub_orders:
        with contextlib.suppress(SystemExit):
            place_sub_order(
                shop.session_factory,
                sub.id,
                adapter_for=adapter_for_marketplace,
                final_attempt=True,
                gateway_for=crashing,
            )
    assert order.payment is not None
    intent = stripe_client().v1.payment_intents.retrieve(order.payment.provider_reference)
    assert "amount_received" not in intent.to_dict()

    response = _post(shop, _event("payment_intent.succeeded", intent.to_dict()))

    assert response.get_json()["outcome"] == "capture confirmed"
    payment = shop.order(order.number).payment
    assert payment is not None and payment.status == PaymentStatus.CAPTURED
    assert payment.captured_minor == order.total_minor - 100
    flagged = shop.order(order.number)
    assert flagged.attention_reason and "not the" in flagged.attention_reason
    shop.unbalanced_orders.add(order.number)  # Stripe's figure differs from the shares


def stripe_refund_failed(refund_reference: str) -> dict[str, Any]:
    """Stripe's Refund object for one of our refunds as Stripe reports it failed after accepting
    it (the card was closed). localstripe's refunds never fail, so tests sign and post this."""
    stripe_refund = stripe_client().v1.refunds.retrieve(refund_reference)
    return {
        **stripe_refund.to_dict(),
        "status": "failed",
        "failure_reason": "expired_or_canceled_card",
    }


def test_a_card_refund_stripe_reports_failed_after_accepting_it_is_undone_and_flagged(
    shop: Shop,
) -> None:
    """Stripe accepts a refund as `pending` (recorded done) and days later reports it failed (the
    card was closed): the shopper got nothing, so the refund is failed again, the order goes on
    the operator's list and the shopper is told; nothing is re-sent blind. localstripe's refunds
    never fail: the event is Stripe's Refund object with the failure, signed and posted."""
    order = _captured_card_order(shop, [("shopwave", 6, 1), ("kiondo", 6, 1)])
    assert order.payment is not None
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

    response = _post(shop, _event("charge.refund.updated", failed))

    assert response.status_code == 200
    assert response.get_json()["outcome"] == "refund failed after success: order flagged"
    payment = shop.order(order.number).payment
    assert payment is not None and payment.status == PaymentStatus.CAPTURED
    [refund] = payment.refunds
    assert refund.status == RefundStatus.FAILED
    flagged = shop.order(order.number)
    assert flagged.attention_reason and "expired_or_canceled_card" in flagged.attention_reason
    with shop.session() as session:
        kinds = list(
            session.scalars(sa.select(Notification.kind).where(Notification.order_id == order.id))
        )
    assert kinds.count("refund_failed") == 1
    # Stripe's newer event for the same failure changes nothing more.
    again = _post(shop, _event("refund.failed", failed)).get_json()["outcome"]
    assert again.endswith("nothing to undo")
    shop.unbalanced_orders.add(order.number)  # the shopper is owed the share: the operator's


def test_a_refund_stripe_reports_failed_while_its_outcome_is_unknown_is_shown_to_the_operator(
    shop: Shop,
) -> None:
    """The refund's reply was lost (`processing`) and Stripe reports it failed: re-sent with its
    key, Stripe would replay its first answer (`pending`) and the look-up could read it done, so
    the operator is told at once; the refund itself is left to its look-up."""
    order = _captured_card_order(shop, [("shopwave", 6, 1), ("kiondo", 6, 1)])
    assert order.payment is not None
    kiondo = shop.sub_order(order, "kiondo")

    refund = _cancel_with_the_refund_reply_lost(shop, order, kiondo)
    [made] = (
        stripe_client()
        .v1.refunds.list(params={"payment_intent": order.payment.provider_reference})
        .data
    )
    failed = {**made.to_dict(), "status": "failed", "failure_reason": "expired_or_canceled_card"}

    outcome = _post(shop, _event("charge.refund.updated", failed)).get_json()["outcome"]

    assert outcome == "refund failed while in doubt: order flagged"
    flagged = shop.order(order.number)
    assert flagged.attention_reason and refund.idempotency_key in flagged.attention_reason
    [refund] = flagged.payment.refunds  # type: ignore[union-attr]
    assert refund.status == RefundStatus.PROCESSING
    shop.unbalanced_orders.add(order.number)  # left in doubt on purpose: the operator's


def test_a_refund_made_by_a_later_attempt_and_reported_failed_is_known_by_its_reference(
    shop: Shop,
) -> None:
    """A refund in doubt sent again as a later attempt (its first key held Stripe's 500) carries
    that attempt's key and the refund's own reference: Stripe's failure report of it is ours,
    found by the reference (the attempt's key names no refund row), and the operator is told."""
    order = _captured_card_order(shop, [("shopwave", 6, 1), ("kiondo", 6, 1)])
    assert order.payment is not None
    kiondo = shop.sub_order(order, "kiondo")

    refund = _cancel_with_the_refund_reply_lost(shop, order, kiondo)
    [made] = (
        stripe_client()
        .v1.refunds.list(params={"payment_intent": order.payment.provider_reference})
        .data
    )
    key = refund.idempotency_key
    failed = {
        **made.to_dict(),
        "status": "failed",
        "failure_reason": "expired_or_canceled_card",
        "metadata": {"onecart_refund_key": f"{key}-attempt-1", "onecart_refund_reference": key},
    }

    outcome = _post(shop, _event("charge.refund.updated", failed)).get_json()["outcome"]

    assert outcome == "refund failed while in doubt: order flagged"
    flagged = shop.order(order.number)
    assert flagged.attention_reason and key in flagged.attention_reason
    shop.unbalanced_orders.add(order.number)  # left in doubt on purpose: the operator's


def test_a_refund_failed_for_good_is_not_sent_again_by_a_later_cancellation(shop: Shop) -> None:
    """A store kept only part of a sub-order; the refund of the rest failed for good (the card
    was closed), so the operator was told to pay it another way. When the store later cancels
    the sub-order, only what is left is refunded: the failed part is the operator's, never sent
    again automatically (the shopper would be paid twice once the operator has paid)."""
    order = _captured_card_order(shop, [("shopwave", 6, 1), ("kiondo", 6, 1)])
    assert order.payment is not None
    kiondo = shop.sub_order(order, "kiondo")
    kept = kiondo.charge_minor // 2
    with shop.session_factory() as session, session.begin():
        sub = session.get(MarketplaceOrder, kiondo.id)
        assert sub is not None
        lock_order(session, sub.order_id)
        adjust_share(session, sub, kept, reason="Kiondo kept only part.")
    settlement.process_refunds(shop.session_factory, order.id)
    [adjustment] = shop.order(order.number).payment.refunds  # type: ignore[union-attr]
    assert adjustment.status == RefundStatus.SUCCEEDED and adjustment.provider_reference
    failed = stripe_refund_failed(adjustment.provider_reference)
    assert _post(shop, _event("charge.refund.updated", failed)).status_code == 200

    with shop.session_factory() as session, session.begin():
        sub = session.get(MarketplaceOrder, kiondo.id)
        assert sub is not None
        lock_order(session, sub.order_id)
        compensate_sub_order(session, sub, status=SubOrderStatus.CANCELLED, reason="store")
    settlement.process_refunds(shop.session_factory, order.id)

    payment = shop.order(order.number).payment
    assert payment is not None
    refunds = {refund.idempotency_key: refund for refund in payment.refunds}
    assert refunds[adjustment_key(kiondo)].status == RefundStatus.FAILED
    cancellation = refunds[refund_key(kiondo)]
    assert cancellation.amount_minor == kiondo.charge_minor - adjustment.amount_minor
    assert cancellation.status == RefundStatus.SUCCEEDED
    shop.unbalanced_orders.add(order.number)  # the failed part is owed: the operator's

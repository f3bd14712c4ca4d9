"""The card hold a form brought (Stripe.js confirmed it) when its submit is refused is released at
once, whatever state Stripe reports it in, and with three outcomes: released (the cancel
confirmed, or Stripe's record says cancelled after an unclear cancel), nothing to release, or
unknown, which becomes a hold in doubt for the sweeper (resolved from Stripe's record within
minutes; listed for an operator while it cannot be; never refunded on a guess). Before, a hold
still `processing` at that moment, or one Stripe could not be asked about, was left to the
unrecorded-hold sweep, which finds it only 30 minutes later.

Real localstripe behind Stripe's own client, whose HTTP layer here can report the intent as
still processing, or lose the reply of the cancel (before or after it reached Stripe)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import stripe

from commerce.card_holds import checkout_intent_metadata
from commerce.checkout import OutcomeKind, submit_checkout
from commerce.exactly_once_models import CardHoldInDoubt
from commerce.fx import FxTable
from commerce.marketplace_access import lookup_adapter_for_marketplace
from commerce.payments.stripe_gateway import StripeGateway
from commerce.sweeper import SweepPolicy, sweep
from onecart.settings import get_settings
from tests.checkout.shop import Shop, stripe_client


class StripeWire(stripe.HTTPClient):
    """localstripe, with faults on one intent: its first `processing_reads` reads answer
    `processing`; its cancel is lost before (`cancel`="lost") or after ("reply lost") reaching
    Stripe; `down` fails every request before it is sent."""

    name = "faulty-localstripe"

    def __init__(self, intent_id: str, *, processing_reads: int = 0, cancel: str = "") -> None:
        super().__init__()
        self.real = stripe.new_default_http_client()
        self.intent_id = intent_id
        self.processing_reads = processing_reads
        self.cancel = cancel
        self.down = False
        self.cancels_sent = 0

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> tuple[Any, int, Any]:
        if self.down:
            raise stripe.APIConnectionError("connection refused")
        is_cancel = method == "post" and url.split("?")[0].endswith(f"{self.intent_id}/cancel")
        if is_cancel:
            self.cancels_sent += 1
            if self.cancel == "lost":
                raise stripe.APIConnectionError("connection reset before the reply")
        body, status, reply_headers = self.real.request(method, url, headers, post_data)
        if is_cancel and self.cancel == "reply lost":
            raise stripe.APIConnectionError("connection reset before the reply")
        read = method == "get" and url.split("?")[0].endswith(f"/payment_intents/{self.intent_id}")
        if read and self.processing_reads > 0 and status == 200:
            self.processing_reads -= 1
            intent = json.loads(body)
            intent["status"] = "processing"
            body = json.dumps(intent)
        return body, status, reply_headers

    def close(self) -> None:
        self.real.close()


def _confirmed_intent(amount: int, token: str, user_id: int) -> str:
    intent = stripe_client().v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "capture_method": "manual",
            "confirm": True,
            "metadata": checkout_intent_metadata(user_id, token),
        }
    )
    return str(intent.id)


def _gateway(wire: StripeWire) -> StripeGateway:
    settings = get_settings()
    client = stripe.StripeClient(
        settings.stripe_api_key,
        base_addresses={"api": str(settings.stripe_api_base).rstrip("/")},
        http_client=wire,
        max_network_retries=0,
    )
    return StripeGateway(client, search_available=False)


def _refused_submit(shop: Shop, wire_for: Any) -> tuple[str, StripeWire]:
    """A form whose Payment Element held the total, submitted after the price changed."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 4, 1)])
    form = shop.checkout_form(shop.client_for(user))
    hold = _confirmed_intent(int(form["total_seen"]), form["validation_token"], user.id)
    shop.knobs("shopwave", price_drift=1.0)
    wire = wire_for(hold)
    outcome = submit_checkout(
        shop.session_factory,
        replace(shop.card_submission(user, form), card_payment_method=None, payment_intent_id=hold),
        fx=FxTable(per_usd={}),
        adapter_for=lookup_adapter_for_marketplace,
        card_gateway=_gateway(wire),
    )
    assert outcome.kind == OutcomeKind.CHANGED
    assert shop.orders() == []
    return hold, wire


def _rows(shop: Shop) -> list[CardHoldInDoubt]:
    with shop.session() as session:
        rows = list(session.scalars(sa.select(CardHoldInDoubt)))
        session.expunge_all()
        return rows


def _status(intent_id: str) -> str:
    return str(stripe_client().v1.payment_intents.retrieve(intent_id).status)


def _sweep(shop: Shop) -> None:
    def no_queue(message: object) -> str:
        raise ConnectionError("no queue in this test")

    sweep(shop.session_factory, no_queue, policy=SweepPolicy(hold_in_doubt_after=timedelta(0)))


@pytest.mark.parametrize("cancel", ["", "reply lost"])
def test_a_processing_hold_of_a_refused_submit_is_released_at_once(shop: Shop, cancel: str) -> None:
    """Processing when the submit is refused: the cancel is sent at once. Confirmed, or its reply
    lost but Stripe's record says cancelled: released, nothing left for the sweeper."""
    hold, wire = _refused_submit(
        shop, lambda intent: StripeWire(intent, processing_reads=1, cancel=cancel)
    )

    assert wire.cancels_sent == 1
    assert _status(hold) == "canceled"
    assert _rows(shop) == []


def test_a_hold_still_processing_after_a_moment_is_left_in_doubt_not_cancelled_blind(
    shop: Shop,
) -> None:
    """Still processing after a moment's re-reads: no cancel is sent (Stripe may refuse one in
    that state and replay the refusal to the sweeper's release under the same key); the hold is
    left in doubt, and the sweep releases it from Stripe's record once it holds money."""
    hold, wire = _refused_submit(shop, lambda intent: StripeWire(intent, processing_reads=10))

    assert wire.cancels_sent == 0
    [row] = _rows(shop)
    assert row.intent_id == hold and row.resolved_at is None and "processing" in str(row.last_error)

    _sweep(shop)

    assert _status(hold) == "canceled"
    [row] = _rows(shop)
    assert row.resolved_at is not None and "released" in str(row.resolution)


@pytest.mark.parametrize("fault", ["cancel lost", "stripe down"])
def test_a_hold_whose_release_has_no_answer_is_left_in_doubt_for_the_sweeper(
    shop: Shop, fault: str
) -> None:
    """The cancel's answer is lost and Stripe's record still shows the hold (or Stripe cannot be
    asked at all): unknown, so a hold in doubt naming the intent, which the next sweep resolves
    from Stripe's record (released: no order uses it) instead of the 30-minute unrecorded one."""

    def wire_for(intent: str) -> StripeWire:
        wire = StripeWire(intent, processing_reads=1, cancel="lost")
        wire.down = fault == "stripe down"
        return wire

    hold, _ = _refused_submit(shop, wire_for)

    assert _status(hold) == "requires_capture"
    [row] = _rows(shop)
    assert row.intent_id == hold and row.resolved_at is None
    assert row.amount_minor > 0 and row.currency == "USD"

    _sweep(shop)

    assert _status(hold) == "canceled"
    [row] = _rows(shop)
    assert row.resolved_at is not None and "released" in str(row.resolution)


def test_another_checkouts_intent_named_by_a_refused_submit_is_left_alone(shop: Shop) -> None:
    """A form naming an intent of another checkout (a forged or stale id): not this checkout's
    to release, and nothing to record."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 4, 1)])
    form = shop.checkout_form(shop.client_for(user))
    other = _confirmed_intent(int(form["total_seen"]), "another-checkout-token-123", user.id)
    shop.knobs("shopwave", price_drift=1.0)

    outcome = submit_checkout(
        shop.session_factory,
        replace(
            shop.card_submission(user, form), card_payment_method=None, payment_intent_id=other
        ),
        fx=FxTable(per_usd={}),
        adapter_for=lookup_adapter_for_marketplace,
        card_gateway=_gateway(StripeWire(other, processing_reads=1)),
    )

    assert outcome.kind == OutcomeKind.CHANGED
    assert _status(other) == "requires_capture"
    assert _rows(shop) == []

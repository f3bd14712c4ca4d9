"""Stripe stores the first answer to an idempotency key, refusals included, and replays it to every
request with that key for a day (https://docs.stripe.com/idempotency). A refused cancel or capture
must not answer every later attempt: the key names the attempt (commerce.provider_attempts), so a
resend of an attempt whose answer was lost is recognised, and an attempt after a refusal is new.
And a hold in doubt naming an intent Stripe does not know (404 `resource_missing`) is resolved,
not asked about at every sweep for ever.

localstripe keeps no idempotency keys, so here Stripe's own client (the real gateway) talks to a
fake Stripe over HTTP that keeps intents and replays a key's stored answer as Stripe does. The
real test database."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
import stripe
from sqlalchemy.orm import Session, sessionmaker

from commerce.card_holds import (
    CHECKOUT_TOKEN_METADATA,
    NO_SUCH_INTENT,
    checkout_intent_metadata,
    resolve_holds_in_doubt,
)
from commerce.db import get_session_factory
from commerce.exactly_once_models import CardHoldInDoubt, ProviderCallAttempt
from commerce.models import utc_now
from commerce.order_models import new_validation_token
from commerce.payments.gateway import PaymentDeclined, PaymentUnavailable
from commerce.payments.stripe_gateway import StripeGateway
from commerce.provider_attempts import capture_intent, void_intent
from onecart.money import Money
from tests.checkout.shop import empty_tables
from tests.checkout.test_unrecorded_card_holds import _shopper
from tests.storefront.conftest import storefront_db_url  # noqa: F401 (a fixture)


@pytest.fixture
def session_factory(storefront_db_url: str) -> Iterator[sessionmaker[Session]]:  # noqa: F811
    yield get_session_factory(storefront_db_url)
    empty_tables(storefront_db_url)


def _refusal(message: str) -> tuple[int, dict[str, Any]]:
    error = {"type": "invalid_request_error", "code": "payment_intent_unexpected_state"}
    return 400, {"error": {**error, "message": message}}


class ReplayingStripe(stripe.HTTPClient):
    """PaymentIntents at a fake Stripe that stores each idempotency key's first answer and
    replays it (with `Idempotent-Replayed: true`) to every later request with that key.
    `refuse_cancels` / `refuse_captures`: how many of the next new cancels / captures it
    refuses (a transient refusal: the intent is still held afterwards); `fail_cancels`: how many
    it answers with its own failure (a 500, stored like any answer)."""

    name = "replaying"

    def __init__(self) -> None:
        super().__init__()
        self.intents: dict[str, dict[str, Any]] = {}
        self.stored: dict[str, tuple[int, dict[str, Any]]] = {}
        self.refuse_cancels = 0
        self.refuse_captures = 0
        self.fail_cancels = 0
        self.keys_sent: list[str | None] = []

    def hold(self, metadata: dict[str, str], amount: int = 2500) -> str:
        intent_id = f"pi_{uuid.uuid4().hex[:24]}"
        self.intents[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "status": "requires_capture",
            "amount": amount,
            "amount_received": 0,
            "currency": "usd",
            "metadata": metadata,
            "created": int(utc_now().timestamp()) - 7200,
        }
        return intent_id

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> tuple[str, int, dict[str, str]]:
        parts = urlsplit(url).path.strip("/").split("/")  # v1, payment_intents, id[, verb]
        key = dict(headers).get("Idempotency-Key")
        if method == "post":
            self.keys_sent.append(key)
            if key in self.stored:
                status, body = self.stored[key]
                return json.dumps(body), status, {"Idempotent-Replayed": "true"}
        status, body = self._answer(method, parts, post_data)
        if method == "post" and key is not None:
            self.stored[key] = (status, body)
        return json.dumps(body), status, {"request-id": "req_replaying"}

    def _answer(self, method: str, parts: list[str], post_data: Any) -> tuple[int, dict[str, Any]]:
        intent = self.intents.get(parts[2])
        if intent is None:
            error = {"type": "invalid_request_error", "code": "resource_missing"}
            return 404, {"error": {**error, "message": f"No such payment_intent: '{parts[2]}'"}}
        verb = parts[3] if len(parts) > 3 else None
        if method == "get" and verb is None:
            return 200, intent
        if verb == "cancel":
            if self.fail_cancels:
                self.fail_cancels -= 1
                return 500, {"error": {"type": "api_error", "message": "Something went wrong."}}
            if self.refuse_cancels:
                self.refuse_cancels -= 1
                return _refusal("This PaymentIntent is processing; try again in a moment.")
            if intent["status"] != "requires_capture":
                return _refusal(f"You cannot cancel this PaymentIntent ({intent['status']}).")
            intent["status"] = "canceled"
            return 200, intent
        if verb == "capture":
            if self.refuse_captures:
                self.refuse_captures -= 1
                return _refusal("This PaymentIntent is processing; try again in a moment.")
            if intent["status"] != "requires_capture":
                return _refusal(f"You cannot capture this PaymentIntent ({intent['status']}).")
            intent["status"] = "succeeded"
            intent["amount_received"] = intent["amount"]
            return 200, intent
        return 400, {"error": {"type": "invalid_request_error", "message": "not faked"}}

    def close(self) -> None:
        # Nothing to close: no connection is ever opened.
        self.intents.clear()


@pytest.fixture
def fake_stripe() -> ReplayingStripe:
    return ReplayingStripe()


def _gateway(fake: ReplayingStripe) -> StripeGateway:
    client = stripe.StripeClient("sk_test_replaying", http_client=fake, max_network_retries=0)
    return StripeGateway(client, search_available=False)


def _row_for(session_factory: sessionmaker[Session], user_id: int, token: str, intent: str) -> int:
    with session_factory() as session, session.begin():
        row = CardHoldInDoubt(
            user_id=user_id,
            validation_token=token,
            idempotency_key=f"refused-form-{intent}",
            intent_id=intent,
            amount_minor=2500,
            currency="USD",
            created_at=utc_now() - timedelta(minutes=10),
            last_error="released after a refused submit: still processing",
        )
        session.add(row)
        session.flush()
        return row.id


def _row(session_factory: sessionmaker[Session], row_id: int) -> CardHoldInDoubt:
    with session_factory() as session:
        row = session.get(CardHoldInDoubt, row_id)
        assert row is not None
        return row


def test_a_release_after_a_refused_cancel_is_not_answered_with_the_stored_refusal(
    session_factory: sessionmaker[Session], fake_stripe: ReplayingStripe
) -> None:
    user_id, token = _shopper(session_factory), new_validation_token()
    intent = fake_stripe.hold(checkout_intent_metadata(user_id, token))
    row_id = _row_for(session_factory, user_id, token, intent)
    gateway = _gateway(fake_stripe)
    fake_stripe.refuse_cancels = 1  # the first cancel is refused, and Stripe stores it

    assert resolve_holds_in_doubt(session_factory, lambda: gateway, older_than=timedelta()) == 0
    assert fake_stripe.intents[intent]["status"] == "requires_capture"
    assert "release of" in (_row(session_factory, row_id).last_error or "")

    # The next sweep's release is a new attempt: Stripe cancels it (before, it was sent with
    # the same key and answered with the stored refusal for a day).
    assert resolve_holds_in_doubt(session_factory, lambda: gateway, older_than=timedelta()) == 1
    assert fake_stripe.intents[intent]["status"] == "canceled"
    row = _row(session_factory, row_id)
    assert row.resolved_at is not None
    assert row.resolution == f"{intent} released"
    assert fake_stripe.keys_sent == [f"void-{intent}-0", f"void-{intent}-1"]


def test_a_resend_after_an_unknown_answer_is_the_same_attempt(
    session_factory: sessionmaker[Session], fake_stripe: ReplayingStripe
) -> None:
    intent = fake_stripe.hold({CHECKOUT_TOKEN_METADATA: new_validation_token()})
    gateway = _gateway(fake_stripe)

    class LosesReply:
        method = gateway.method

        def void(self, provider_reference: str, *, attempt: int | None) -> None:
            gateway.void(provider_reference, attempt=attempt)
            raise PaymentUnavailable("The card payment service is unreachable (released).")

    with pytest.raises(PaymentUnavailable):
        void_intent(session_factory, LosesReply(), intent)  # type: ignore[arg-type]
    # The resend carries the same key: Stripe answers with the first attempt's success.
    void_intent(session_factory, gateway, intent)
    assert fake_stripe.keys_sent == [f"void-{intent}-0", f"void-{intent}-0"]
    assert fake_stripe.intents[intent]["status"] == "canceled"


def test_a_capture_after_a_refused_capture_is_a_new_attempt(
    session_factory: sessionmaker[Session], fake_stripe: ReplayingStripe
) -> None:
    intent = fake_stripe.hold({CHECKOUT_TOKEN_METADATA: new_validation_token()})
    gateway = _gateway(fake_stripe)
    fake_stripe.refuse_captures = 1
    amount = Money(2500, "USD")

    with pytest.raises(PaymentDeclined):
        capture_intent(session_factory, gateway, intent, amount)
    capture_intent(session_factory, gateway, intent, amount)

    assert fake_stripe.intents[intent]["status"] == "succeeded"
    assert fake_stripe.keys_sent == [f"capture-{intent}-2500-0", f"capture-{intent}-2500-1"]
    with session_factory() as session:
        attempt = session.scalar(
            sa.select(ProviderCallAttempt).where(
                ProviderCallAttempt.call == f"capture-{intent}-2500"
            )
        )
        assert attempt is not None and attempt.attempt == 1
        assert "processing" in (attempt.last_refusal or "")


def test_a_refusal_seen_by_two_workers_moves_the_attempt_on_once(
    session_factory: sessionmaker[Session], fake_stripe: ReplayingStripe
) -> None:
    intent = fake_stripe.hold({CHECKOUT_TOKEN_METADATA: new_validation_token()})
    gateway = _gateway(fake_stripe)
    fake_stripe.refuse_cancels = 1

    class SecondWorkerRefusedToo:
        """Another worker sent attempt 0 as well and was answered with the stored refusal; it
        notes the refusal between this worker's call and its note."""

        method = gateway.method

        def void(self, provider_reference: str, *, attempt: int | None) -> None:
            try:
                gateway.void(provider_reference, attempt=attempt)
            except PaymentDeclined:
                with pytest.raises(PaymentDeclined):
                    void_intent(session_factory, gateway, provider_reference)
                raise

    with pytest.raises(PaymentDeclined):
        void_intent(session_factory, SecondWorkerRefusedToo(), intent)  # type: ignore[arg-type]
    void_intent(session_factory, gateway, intent)

    assert fake_stripe.keys_sent == [f"void-{intent}-0", f"void-{intent}-0", f"void-{intent}-1"]
    assert fake_stripe.intents[intent]["status"] == "canceled"


def test_a_hold_naming_an_intent_stripe_does_not_know_is_resolved_with_the_reason(
    session_factory: sessionmaker[Session], fake_stripe: ReplayingStripe
) -> None:
    user_id, token = _shopper(session_factory), new_validation_token()
    forged = f"pi_{uuid.uuid4().hex[:24]}"  # a form's id: Stripe answers 404 resource_missing
    row_id = _row_for(session_factory, user_id, token, forged)
    gateway = _gateway(fake_stripe)

    assert resolve_holds_in_doubt(session_factory, lambda: gateway, older_than=timedelta()) == 1
    row = _row(session_factory, row_id)
    assert row.resolved_at is not None
    assert row.resolution == f"{NO_SUCH_INTENT}: {forged}"
    # Not asked about again.
    assert resolve_holds_in_doubt(session_factory, lambda: gateway, older_than=timedelta()) == 0


def test_an_outage_still_leaves_the_hold_in_doubt(
    session_factory: sessionmaker[Session], fake_stripe: ReplayingStripe
) -> None:
    user_id, token = _shopper(session_factory), new_validation_token()
    intent = fake_stripe.hold(checkout_intent_metadata(user_id, token))
    row_id = _row_for(session_factory, user_id, token, intent)

    class Down(stripe.HTTPClient):
        name = "down"

        def request(self, *args: Any, **kwargs: Any) -> tuple[str, int, dict[str, str]]:
            raise stripe.APIConnectionError("no route to Stripe")

        def close(self) -> None:
            self.closed = True

    client = stripe.StripeClient("sk_test_down", http_client=Down(), max_network_retries=0)
    down = StripeGateway(client, search_available=False)

    assert resolve_holds_in_doubt(session_factory, lambda: down, older_than=timedelta()) == 0
    row = _row(session_factory, row_id)
    assert row.resolved_at is None
    assert "cannot be asked" in (row.last_error or "")


def test_a_release_after_stripe_failed_a_cancel_is_a_new_attempt(
    session_factory: sessionmaker[Session], fake_stripe: ReplayingStripe
) -> None:
    """Stripe stores its own 500 under the key too: the cancel stays unknown (the row is left in
    doubt and the intent read again), and the next release is a new attempt, since Stripe
    cancels an intent once and a new key cannot release anything twice."""
    user_id, token = _shopper(session_factory), new_validation_token()
    intent = fake_stripe.hold(checkout_intent_metadata(user_id, token))
    row_id = _row_for(session_factory, user_id, token, intent)
    gateway = _gateway(fake_stripe)
    fake_stripe.fail_cancels = 1

    assert resolve_holds_in_doubt(session_factory, lambda: gateway, older_than=timedelta()) == 0
    assert _row(session_factory, row_id).resolved_at is None
    assert resolve_holds_in_doubt(session_factory, lambda: gateway, older_than=timedelta()) == 1
    assert fake_stripe.intents[intent]["status"] == "canceled"
    assert fake_stripe.keys_sent == [f"void-{intent}-0", f"void-{intent}-1"]


def test_a_release_when_the_database_cannot_be_read_goes_out_as_a_one_off_attempt(
    fake_stripe: ReplayingStripe, tmp_path: Path
) -> None:
    """Checkout releases a hold precisely when the database failed its order: the release is
    still sent, with a key of its own (Stripe cancels an intent once, so it cannot release
    twice, and a refusal stored under it answers no later attempt)."""
    intent = fake_stripe.hold({CHECKOUT_TOKEN_METADATA: new_validation_token()})
    unreadable = sessionmaker(sa.create_engine(f"sqlite:///{tmp_path}/missing/db.sqlite"))

    void_intent(unreadable, _gateway(fake_stripe), intent)

    assert fake_stripe.intents[intent]["status"] == "canceled"
    [key] = fake_stripe.keys_sent
    assert key is not None and not key.startswith("void-")

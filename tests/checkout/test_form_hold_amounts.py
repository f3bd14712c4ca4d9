"""A refused submit's hold left in doubt records what Stripe holds, not what the form said.

The form's `total_seen` is the shopper's to send: a tampered one is exactly what makes the submit
refused ("the total changed"), and it is the amount release_form_hold recorded on the hold in
doubt even when Stripe had just answered with the intent's own amount. The operator's lists
(/admin/attention: holds in doubt, holds captured without an order, to refund in Stripe) then
showed the forged figure. Stripe's amount is recorded whenever Stripe answered; the form's only
when it could not be asked. A fake Stripe; the real test database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce import form_holds
from commerce.card_holds import checkout_intent_metadata
from commerce.db import get_session_factory
from commerce.exactly_once_models import CardHoldInDoubt
from commerce.form_holds import release_form_hold
from commerce.models import User, utc_now
from commerce.order_models import PaymentMethod, new_validation_token
from commerce.payments.gateway import PaymentUnavailable, ProviderPaymentState, ProviderStatus
from tests.checkout.shop import empty_tables
from tests.storefront.conftest import storefront_db_url  # noqa: F401 (a fixture)

HELD = 42_500  # what Stripe holds on the card, in minor units
FORGED = 1  # what the tampered form said


@pytest.fixture
def session_factory(storefront_db_url: str) -> Iterator[sessionmaker[Session]]:  # noqa: F811
    yield get_session_factory(storefront_db_url)
    empty_tables(storefront_db_url)


class OneIntent:
    """Stripe's record of one checkout PaymentIntent in `status`; its cancel gets no answer."""

    method = PaymentMethod.STRIPE

    def __init__(self, user_id: int, token: str, status: ProviderStatus) -> None:
        self.intent_id = f"pi_{uuid.uuid4().hex[:24]}"
        self.metadata = checkout_intent_metadata(user_id, token)
        self.status = status

    def retrieve(self, provider_reference: str) -> ProviderPaymentState:
        assert provider_reference == self.intent_id
        captured = HELD if self.status == ProviderStatus.CAPTURED else 0
        return ProviderPaymentState(
            provider_reference, self.status, HELD, captured, 0, "USD", metadata=self.metadata
        )

    def void(self, provider_reference: str, *, attempt: int | None) -> None:
        raise PaymentUnavailable("The card payment service is unreachable (released).")


def _shopper(session_factory: sessionmaker[Session]) -> int:
    name = f"former{uuid.uuid4().hex[:10]}"
    with session_factory() as session, session.begin():
        user = User(
            username=name,
            email=f"{name}@example.com",
            password_hash="unused",
            date_joined=utc_now() - timedelta(days=30),
        )
        session.add(user)
        session.flush()
        return user.id


@pytest.mark.parametrize(
    "status", [ProviderStatus.PENDING, ProviderStatus.CAPTURED, ProviderStatus.AUTHORIZED]
)
def test_a_hold_left_in_doubt_records_what_stripe_holds_not_the_forms_total(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, status: ProviderStatus
) -> None:
    monkeypatch.setattr(form_holds, "PENDING_REREAD_S", 0)
    user_id = _shopper(session_factory)
    token = new_validation_token()
    stripe = OneIntent(user_id, token, status)

    outcome = release_form_hold(
        session_factory,
        stripe,  # type: ignore[arg-type]
        user_id=user_id,
        validation_token=token,
        intent_id=stripe.intent_id,
        shown_minor=FORGED,
        currency="USD",
    )

    assert outcome == "in doubt"
    with session_factory() as session:
        [row] = session.scalars(sa.select(CardHoldInDoubt)).all()
        assert row.intent_id == stripe.intent_id
        assert (row.amount_minor, row.currency) == (HELD, "USD")


def test_when_stripe_cannot_be_asked_the_forms_total_is_all_there_is(
    session_factory: sessionmaker[Session],
) -> None:
    user_id = _shopper(session_factory)
    token = new_validation_token()
    stripe = OneIntent(user_id, token, ProviderStatus.AUTHORIZED)

    def down(provider_reference: str) -> ProviderPaymentState:
        raise PaymentUnavailable("The card payment service is unreachable (looked up).")

    stripe.retrieve = down  # type: ignore[method-assign]

    assert (
        release_form_hold(
            session_factory,
            stripe,  # type: ignore[arg-type]
            user_id=user_id,
            validation_token=token,
            intent_id=stripe.intent_id,
            shown_minor=FORGED,
            currency="USD",
        )
        == "in doubt"
    )
    with session_factory() as session:
        [row] = session.scalars(sa.select(CardHoldInDoubt)).all()
        assert (row.amount_minor, row.currency) == (FORGED, "USD")


def test_a_processing_intent_read_again_as_captured_is_left_in_doubt_not_nothing_held(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processing at the first read, captured at the next: money taken with no order. It is
    recorded for the sweeper, which lists it for an operator to refund in Stripe, as one read
    captured at once is; it was "nothing held" with no record, and the unrecorded-hold sweep
    lists only uncaptured holds, so nobody would ever have seen it."""
    monkeypatch.setattr(form_holds, "PENDING_REREAD_S", 0)
    user_id = _shopper(session_factory)
    token = new_validation_token()
    stripe = OneIntent(user_id, token, ProviderStatus.PENDING)
    reads = iter([ProviderStatus.PENDING, ProviderStatus.CAPTURED])
    first_read = stripe.retrieve

    def moving(provider_reference: str) -> ProviderPaymentState:
        stripe.status = next(reads, ProviderStatus.CAPTURED)
        return first_read(provider_reference)

    stripe.retrieve = moving  # type: ignore[method-assign]

    outcome = release_form_hold(
        session_factory,
        stripe,  # type: ignore[arg-type]
        user_id=user_id,
        validation_token=token,
        intent_id=stripe.intent_id,
        shown_minor=HELD,
        currency="USD",
    )

    assert outcome == "in doubt"
    with session_factory() as session:
        [row] = session.scalars(sa.select(CardHoldInDoubt)).all()
        assert row.intent_id == stripe.intent_id and row.resolved_at is None
        assert "captured" in str(row.last_error)

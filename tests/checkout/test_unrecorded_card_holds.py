"""Card holds our database never recorded (it was down when checkout would have written the row):
the sweeper asks Stripe for the checkout holds it keeps uncaptured and records, as holds in doubt,
those no order and no row accounts for, so they are used or released like any other
(commerce.unrecorded_card_holds, then commerce.card_holds). A fake gateway plays Stripe; the
database is the real test database."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce import unrecorded_card_holds
from commerce.card_holds import CHECKOUT_TOKEN_METADATA, checkout_intent_metadata
from commerce.db import get_session_factory
from commerce.dispute_models import UnownedCardHold
from commerce.exactly_once_models import CardHoldInDoubt
from commerce.models import User, utc_now
from commerce.order_models import Order, Payment, PaymentMethod, PaymentStatus, new_validation_token
from commerce.payments.gateway import (
    AUTHORIZATION_KEY_METADATA,
    PaymentUnavailable,
    ProviderPaymentState,
    ProviderStatus,
    UncapturedAuthorization,
)
from commerce.sweeper import SweepPolicy, sweep
from commerce.unrecorded_card_holds import UNRECORDED_AFTER, record_unrecorded_holds
from tests.checkout.shop import empty_tables
from tests.storefront.conftest import storefront_db_url  # noqa: F401 (a fixture)

HOLD_AMOUNT = 4_250


class FakeStripe:
    """Stripe's record of some PaymentIntents: lists the uncaptured ones, releases on request."""

    method = PaymentMethod.STRIPE

    def __init__(self, *holds: UncapturedAuthorization) -> None:
        self.holds = {hold.provider_reference: hold for hold in holds}
        self.released: list[str] = []
        self.listing_down = False
        self.asked_before: list[datetime] = []

    def find_uncaptured_authorizations(
        self, created_before: datetime
    ) -> list[UncapturedAuthorization]:
        self.asked_before.append(created_before)
        if self.listing_down:
            raise PaymentUnavailable("The card payment service is unreachable (listed).")
        # Stripe's search lags: a hold released a moment ago is still listed as uncaptured.
        return [hold for hold in self.holds.values() if hold.created_at < created_before]

    def retrieve(self, provider_reference: str) -> ProviderPaymentState:
        hold = self.holds[provider_reference]
        status = (
            ProviderStatus.CANCELED
            if provider_reference in self.released
            else ProviderStatus.AUTHORIZED
        )
        return ProviderPaymentState(
            provider_reference, status, hold.amount_minor, 0, 0, hold.currency
        )

    def find_authorizations(self, idempotency_key: str) -> list[ProviderPaymentState]:
        return [
            self.retrieve(reference)
            for reference, hold in self.holds.items()
            if hold.metadata.get(AUTHORIZATION_KEY_METADATA) == idempotency_key
        ]

    def void(self, provider_reference: str, *, attempt: int | None = 0) -> None:
        self.released.append(provider_reference)


@pytest.fixture
def session_factory(storefront_db_url: str) -> Iterator[sessionmaker[Session]]:  # noqa: F811
    yield get_session_factory(storefront_db_url)
    empty_tables(storefront_db_url)


def _shopper(session_factory: sessionmaker[Session]) -> int:
    name = f"holder{uuid.uuid4().hex[:10]}"
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


def _hold(
    user_id: int | None, *, age: timedelta = UNRECORDED_AFTER * 2, token: str | None = None
) -> UncapturedAuthorization:
    """A checkout hold of `user_id` (None: made before intents named their shopper)."""
    token = token or new_validation_token()
    metadata = (
        checkout_intent_metadata(user_id, token)
        if user_id is not None
        else {CHECKOUT_TOKEN_METADATA: token}
    )
    metadata[AUTHORIZATION_KEY_METADATA] = f"onecart-checkout-{uuid.uuid4().hex[:32]}"
    return UncapturedAuthorization(
        provider_reference=f"pi_{uuid.uuid4().hex[:24]}",
        amount_minor=HOLD_AMOUNT,
        currency="USD",
        created_at=utc_now() - age,
        metadata=metadata,
    )


def _order_paid_with(
    session_factory: sessionmaker[Session], user_id: int, hold: UncapturedAuthorization
) -> None:
    """The order checkout recorded with this hold (of the hold's form)."""
    with session_factory() as session, session.begin():
        order = Order(
            user_id=user_id,
            total_minor=HOLD_AMOUNT,
            currency="USD",
            payment_method=PaymentMethod.STRIPE,
            validation_token=hold.metadata[CHECKOUT_TOKEN_METADATA],
            email="holder@example.com",
            ship_name="Holder",
            ship_line1="1 Road",
            ship_city="Nairobi",
            ship_country="KE",
        )
        session.add(order)
        session.flush()
        session.add(
            Payment(
                order_id=order.id,
                method=PaymentMethod.STRIPE,
                status=PaymentStatus.AUTHORIZED,
                currency="USD",
                amount_minor=HOLD_AMOUNT,
                provider_reference=hold.provider_reference,
            )
        )


def _rows(session_factory: sessionmaker[Session]) -> list[CardHoldInDoubt]:
    with session_factory() as session:
        rows = list(session.scalars(sa.select(CardHoldInDoubt).order_by(CardHoldInDoubt.id)))
        session.expunge_all()
        return rows


def _sweep(session_factory: sessionmaker[Session], stripe: FakeStripe) -> int:
    def no_queue(message: object) -> str:
        raise ConnectionError("no queue in this test")

    report = sweep(session_factory, no_queue, policy=SweepPolicy(), card_gateway=lambda: stripe)
    return report.unrecorded_holds


def test_a_hold_no_record_accounts_for_is_recorded_and_released_once(
    session_factory: sessionmaker[Session],
) -> None:
    user_id = _shopper(session_factory)
    hold = _hold(user_id)
    stripe = FakeStripe(hold)

    assert _sweep(session_factory, stripe) == 1

    [row] = _rows(session_factory)
    assert (row.intent_id, row.user_id) == (hold.provider_reference, user_id)
    assert (row.amount_minor, row.currency) == (HOLD_AMOUNT, "USD")
    assert row.validation_token == hold.metadata[CHECKOUT_TOKEN_METADATA]
    assert row.resolved_at is not None and "released" in str(row.resolution)
    assert stripe.released == [hold.provider_reference]
    # Asked only about holds older than a checkout can keep one unrecorded.
    [asked_before] = stripe.asked_before
    assert utc_now() - UNRECORDED_AFTER - timedelta(minutes=1) < asked_before
    assert asked_before <= utc_now() - UNRECORDED_AFTER

    # Stripe's search still lists the released hold: it is not recorded (or released) again.
    assert _sweep(session_factory, stripe) == 0
    assert len(_rows(session_factory)) == 1
    assert stripe.released == [hold.provider_reference]


def test_a_hold_an_order_uses_is_kept(session_factory: sessionmaker[Session]) -> None:
    user_id = _shopper(session_factory)
    hold = _hold(user_id)
    _order_paid_with(session_factory, user_id, hold)
    stripe = FakeStripe(hold)

    assert record_unrecorded_holds(session_factory, lambda: stripe) == 0

    assert _rows(session_factory) == []
    assert stripe.released == []


@pytest.mark.parametrize("recorded_by", ["key", "intent"])
def test_a_hold_already_in_doubt_is_not_recorded_twice(
    session_factory: sessionmaker[Session], recorded_by: str
) -> None:
    user_id = _shopper(session_factory)
    hold = _hold(user_id)
    with session_factory() as session, session.begin():
        session.add(
            CardHoldInDoubt(
                user_id=user_id,
                validation_token=hold.metadata[CHECKOUT_TOKEN_METADATA],
                idempotency_key=hold.metadata[AUTHORIZATION_KEY_METADATA],
                intent_id=hold.provider_reference if recorded_by == "intent" else None,
                amount_minor=HOLD_AMOUNT,
                currency="USD",
            )
        )
    stripe = FakeStripe(hold)

    assert record_unrecorded_holds(session_factory, lambda: stripe) == 0

    [row] = _rows(session_factory)
    assert row.idempotency_key == hold.metadata[AUTHORIZATION_KEY_METADATA]
    assert row.resolved_at is None
    assert stripe.released == []


def test_two_sweepers_that_both_see_a_hold_unrecorded_record_it_once(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = _shopper(session_factory)
    hold = _hold(user_id)
    stripe = FakeStripe(hold)
    # The other sweeper checked our records before either wrote its row.
    monkeypatch.setattr(unrecorded_card_holds, "_unaccounted", lambda session, holds: list(holds))

    first = record_unrecorded_holds(session_factory, lambda: stripe)
    second = record_unrecorded_holds(session_factory, lambda: stripe)

    assert (first, second) == (1, 0)
    [row] = _rows(session_factory)
    assert row.intent_id == hold.provider_reference


def test_an_unreachable_stripe_changes_nothing_and_is_logged(
    session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    user_id = _shopper(session_factory)
    stripe = FakeStripe(_hold(user_id))
    stripe.listing_down = True

    with caplog.at_level(logging.WARNING, logger="commerce.unrecorded_card_holds"):
        assert _sweep(session_factory, stripe) == 0

    assert _rows(session_factory) == []
    assert stripe.released == []
    assert "uncaptured card holds cannot be listed" in caplog.text
    assert "unreachable (listed)" in caplog.text


@pytest.mark.parametrize("owner", ["unknown user", "joined after the hold", "none"])
def test_a_hold_of_no_account_of_this_shop_is_left_alone_and_logged(
    session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture, owner: str
) -> None:
    user_id = _shopper(session_factory)
    if owner == "joined after the hold":
        hold = _hold(user_id, age=timedelta(days=31))
    else:
        hold = _hold(user_id + 1000 if owner == "unknown user" else None)
    stripe = FakeStripe(hold)

    with caplog.at_level(logging.ERROR, logger="commerce.unrecorded_card_holds"):
        assert record_unrecorded_holds(session_factory, lambda: stripe) == 0

    assert _rows(session_factory) == []
    assert stripe.released == []
    assert hold.provider_reference in caplog.text and "names no account" in caplog.text


def _unowned(session_factory: sessionmaker[Session]) -> list[UnownedCardHold]:
    with session_factory() as session:
        rows = list(session.scalars(sa.select(UnownedCardHold).order_by(UnownedCardHold.id)))
        session.expunge_all()
        return rows


def test_a_hold_of_no_account_goes_on_the_operators_list_once_until_stripe_lets_it_go(
    session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    """Not a log line every sweep: one row per hold for /admin/attention, seen again by every
    sweep, off the list once Stripe no longer holds it (released in its dashboard)."""
    user_id = _shopper(session_factory)
    hold, nobodys = _hold(user_id + 1000), _hold(None)
    stripe = FakeStripe(hold, nobodys)

    with caplog.at_level(logging.ERROR, logger="commerce.unrecorded_card_holds"):
        for _ in range(3):
            assert _sweep(session_factory, stripe) == 0

    rows = _unowned(session_factory)
    assert [row.intent_id for row in rows] == [hold.provider_reference, nobodys.provider_reference]
    assert [row.named_user for row in rows] == [str(user_id + 1000), ""]
    assert rows[0].amount_minor == HOLD_AMOUNT and rows[0].gone_at is None
    assert rows[0].last_seen_at > rows[0].first_seen_at
    assert caplog.text.count(hold.provider_reference) == 1  # logged when listed, not per sweep
    assert stripe.released == [] and _rows(session_factory) == []

    del stripe.holds[hold.provider_reference]  # an operator released it at Stripe
    _sweep(session_factory, stripe)
    first, second = _unowned(session_factory)
    assert first.gone_at is not None and second.gone_at is None

    stripe.listing_down = True  # an unanswered listing says nothing about what Stripe holds
    _sweep(session_factory, stripe)
    assert _unowned(session_factory)[1].gone_at is None


def test_a_hold_made_before_intents_named_their_shopper_belongs_to_its_forms_order_user(
    session_factory: sessionmaker[Session],
) -> None:
    """A second hold of a form whose order used another one (a retry after Stripe forgot the
    key), made before checkout put the user id in the metadata."""
    user_id = _shopper(session_factory)
    token = new_validation_token()
    used, spare = _hold(None, token=token), _hold(None, token=token)
    _order_paid_with(session_factory, user_id, used)
    stripe = FakeStripe(used, spare)

    assert _sweep(session_factory, stripe) == 1

    [row] = _rows(session_factory)
    assert (row.intent_id, row.user_id) == (spare.provider_reference, user_id)
    assert stripe.released == [spare.provider_reference]


def test_holds_of_wallet_top_ups_and_other_payments_are_not_ours_to_record(
    session_factory: sessionmaker[Session],
) -> None:
    user_id = _shopper(session_factory)
    foreign = UncapturedAuthorization(
        provider_reference="pi_foreign",
        amount_minor=HOLD_AMOUNT,
        currency="USD",
        created_at=utc_now() - timedelta(hours=2),
        metadata={"onecart_user_id": str(user_id), "onecart_purpose": "wallet_topup"},
    )
    stripe = FakeStripe(foreign)

    assert record_unrecorded_holds(session_factory, lambda: stripe) == 0
    assert _rows(session_factory) == []
    assert stripe.released == []

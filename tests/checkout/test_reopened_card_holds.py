"""A card hold in doubt reopened by a new attempt names the PaymentIntent the sweep must ask about.

A resubmit whose authorization has no answer again reopens the row of its key
(commerce.card_holds.record_hold_in_doubt). The row kept the PaymentIntent it named before, so
once that intent was settled (released), the next sweep asked about it alone, found it holding
nothing and resolved the row, while the new attempt's hold under the same key stayed on the card.
Now a resolved row reopened by an attempt that knows no intent names none (the sweep asks by the
key), an open one keeps the intent not yet settled (an operator's finding among them), and the
reopen and the sweep's resolution are compare-and-set: a reopen between a sweep's read and its
answer leaves the row open. Fake Stripe over HTTP (tests.checkout's replaying one, with search),
the real gateway and the real test database.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.card_hold_resolutions import HoldFinding, resolve_flagged_hold
from commerce.card_holds import (
    checkout_intent_metadata,
    record_hold_in_doubt,
    resolve_holds_in_doubt,
)
from commerce.db import get_session_factory
from commerce.exactly_once_models import CardHoldInDoubt
from commerce.models import utc_now
from commerce.order_models import new_validation_token
from commerce.payments.gateway import AuthorizationRequest
from commerce.payments.stripe_gateway import AUTHORIZATION_KEY_METADATA
from onecart.money import Money
from tests.checkout.shop import empty_tables
from tests.checkout.test_authorization_replays import CreatingStripe, _hold_row
from tests.checkout.test_idempotent_replays import _gateway
from tests.checkout.test_unrecorded_card_holds import _shopper
from tests.storefront.conftest import storefront_db_url  # noqa: F401 (a fixture)

HELD = "requires_capture"


@pytest.fixture
def session_factory(storefront_db_url: str) -> Iterator[sessionmaker[Session]]:  # noqa: F811
    yield get_session_factory(storefront_db_url)
    empty_tables(storefront_db_url)


def _request(user_id: int, token: str) -> AuthorizationRequest:
    return AuthorizationRequest(
        amount=Money(2500, "USD"),
        idempotency_key=f"onecart-checkout-{token[:32]}",
        metadata=checkout_intent_metadata(user_id, token),
        payment_token="pm_card_visa",
    )


def _hold_under_key(fake: CreatingStripe, request: AuthorizationRequest) -> str:
    """An intent Stripe holds, made under the request's key (as the authorization makes it)."""
    return fake.hold({**request.metadata, AUTHORIZATION_KEY_METADATA: request.idempotency_key})


def _sweep(session_factory: sessionmaker[Session], fake: CreatingStripe) -> int:
    return resolve_holds_in_doubt(session_factory, lambda: _gateway(fake), older_than=timedelta(0))


def test_a_released_hold_reopened_by_a_new_attempt_has_the_sweep_release_the_new_hold(
    session_factory: sessionmaker[Session],
) -> None:
    user_id, token = _shopper(session_factory), new_validation_token()
    request = _request(user_id, token)
    fake = CreatingStripe([])
    first = _hold_under_key(fake, request)
    # The first submit's hold is known by its id (an order could not be recorded for it).
    record_hold_in_doubt(session_factory, user_id, token, request, "lost", intent_id=first)
    assert _sweep(session_factory, fake) == 1
    assert fake.intents[first]["status"] == "canceled"

    # The form is sent again; Stripe made a hold for it, and its answer was lost again.
    second = _hold_under_key(fake, request)
    record_hold_in_doubt(session_factory, user_id, token, request, "lost again")
    reopened = _hold_row(session_factory)
    assert reopened.resolved_at is None
    assert reopened.intent_id is None

    assert _sweep(session_factory, fake) == 1

    assert fake.intents[second]["status"] == "canceled"
    resolved = _hold_row(session_factory)
    assert resolved.resolved_at is not None
    assert f"{second} released" in str(resolved.resolution)


def test_a_new_attempt_that_knows_its_intent_replaces_the_settled_one(
    session_factory: sessionmaker[Session],
) -> None:
    user_id, token = _shopper(session_factory), new_validation_token()
    request = _request(user_id, token)
    fake = CreatingStripe([])
    first = _hold_under_key(fake, request)
    record_hold_in_doubt(session_factory, user_id, token, request, "lost", intent_id=first)
    _sweep(session_factory, fake)
    second = _hold_under_key(fake, request)

    record_hold_in_doubt(session_factory, user_id, token, request, "again", intent_id=second)

    assert _hold_row(session_factory).intent_id == second
    _sweep(session_factory, fake)
    assert fake.intents[second]["status"] == "canceled"


def test_an_operators_intent_on_an_open_row_stays_when_the_shopper_submits_again(
    session_factory: sessionmaker[Session],
) -> None:
    """Stripe's stored 500, then an operator found the intent in Stripe's log: the shopper's
    next submit (the replayed 500, no intent known) must not wipe it from the row."""
    user_id, token = _shopper(session_factory), new_validation_token()
    request = _request(user_id, token)
    fake = CreatingStripe([])
    found = fake.hold(dict(request.metadata))  # search never shows it: not under the key
    record_hold_in_doubt(session_factory, user_id, token, request, "500", stripe_failed=True)
    two_hours_ago = utc_now() - timedelta(hours=2)
    with session_factory() as session, session.begin():
        session.execute(
            sa.update(CardHoldInDoubt).values(
                created_at=two_hours_ago, stripe_failed_since=two_hours_ago
            )
        )
    _sweep(session_factory, fake)
    row = _hold_row(session_factory)
    assert row.flagged_at is not None
    answer = resolve_flagged_hold(
        session_factory,
        row.id,
        HoldFinding.INTENT,
        operator="ops-ana",
        seen=row.created_at,
        intent_id=found,
    )
    assert answer.done

    assert record_hold_in_doubt(
        session_factory, user_id, token, request, "500 again", stripe_failed=True
    )

    assert _hold_row(session_factory).intent_id == found
    _sweep(session_factory, fake)
    assert fake.intents[found]["status"] == "canceled"


class ReopenedWhileAsked:
    """The real gateway; while the sweep asks Stripe about the row, the shopper's resubmit
    reopens it (a checkout whose lock lease ran out, or any writer the lock does not cover)."""

    def __init__(self, inner: Any, reopen: Any) -> None:
        self.inner = inner
        self.reopen = reopen

    def retrieve(self, intent_id: str) -> Any:
        state = self.inner.retrieve(intent_id)
        self.reopen()
        return state

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_reopen_while_the_sweep_asks_stripe_leaves_the_row_open_for_the_new_attempt(
    session_factory: sessionmaker[Session],
) -> None:
    user_id, token = _shopper(session_factory), new_validation_token()
    request = _request(user_id, token)
    fake = CreatingStripe([])
    first = _hold_under_key(fake, request)
    record_hold_in_doubt(session_factory, user_id, token, request, "lost", intent_id=first)
    second = _hold_under_key(fake, request)
    reopened: list[bool] = []

    def reopen() -> None:
        if not reopened:
            reopened.append(True)
            record_hold_in_doubt(
                session_factory, user_id, token, request, "again", intent_id=second
            )

    resolved = resolve_holds_in_doubt(
        session_factory,
        lambda: ReopenedWhileAsked(_gateway(fake), reopen),  # type: ignore[arg-type,return-value]
        older_than=timedelta(0),
    )

    assert resolved == 0
    row = _hold_row(session_factory)
    assert row.resolved_at is None and row.intent_id == second
    assert _sweep(session_factory, fake) == 1
    assert fake.intents[second]["status"] == "canceled"

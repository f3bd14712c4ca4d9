"""Rows of provider_call_attempts outlive Stripe's keys only by a margin: the sweeper prunes a
cancel's or capture's row once its last refusal is older than Stripe's 24 h key lifetime plus a
day (commerce.provider_attempts.prune_attempts). A younger row, a refund's row and an
authorization's row stay (for those a reset number could name an attempt still in doubt).
Compare-and-set: a row refused again meanwhile is not deleted. The real test database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.db import get_session_factory
from commerce.exactly_once_models import ProviderCallAttempt
from commerce.models import utc_now
from commerce.provider_attempts import (
    ATTEMPTS_KEPT_FOR,
    authorize_call,
    capture_call,
    current_attempt,
    prune_attempts,
    refund_call,
    void_call,
)
from commerce.sweeper import sweep
from onecart.money import Money
from tests.checkout.shop import empty_tables
from tests.storefront.conftest import storefront_db_url  # noqa: F401 (a fixture)


@pytest.fixture
def session_factory(storefront_db_url: str) -> Iterator[sessionmaker[Session]]:  # noqa: F811
    yield get_session_factory(storefront_db_url)
    empty_tables(storefront_db_url)


def _row(session_factory: sessionmaker[Session], call: str, age: timedelta) -> None:
    with session_factory() as session, session.begin():
        session.add(
            ProviderCallAttempt(
                call=call, attempt=2, refused_at=utc_now() - age, last_refusal="processing"
            )
        )


def _calls(session_factory: sessionmaker[Session]) -> set[str]:
    with session_factory() as session:
        return set(session.scalars(sa.select(ProviderCallAttempt.call)))


def test_rows_past_stripes_key_lifetime_are_pruned_by_the_sweeper(
    session_factory: sessionmaker[Session],
) -> None:
    assert timedelta(hours=24) < ATTEMPTS_KEPT_FOR
    old = ATTEMPTS_KEPT_FOR + timedelta(minutes=5)
    _row(session_factory, void_call("pi_old"), old)
    _row(session_factory, capture_call("pi_old", Money(2500, "USD")), old)
    _row(session_factory, void_call("pi_young"), timedelta(hours=25))
    _row(session_factory, refund_call("refund-key-1"), old)
    _row(session_factory, authorize_call("onecart-checkout-abc"), old)

    report = sweep(
        session_factory,
        lambda message: "job",
        card_gateway=lambda: (_ for _ in ()).throw(RuntimeError("no card gateway here")),
    )

    assert report.attempts_pruned == 2
    assert _calls(session_factory) == {
        void_call("pi_young"),
        refund_call("refund-key-1"),
        authorize_call("onecart-checkout-abc"),
    }
    # A pruned call starts again at attempt 0: Stripe forgot that key long ago (and a cancel or
    # a capture happens once at Stripe whatever the key).
    assert current_attempt(session_factory, void_call("pi_old")) == 0


def test_a_row_refused_again_meanwhile_is_not_pruned(
    session_factory: sessionmaker[Session],
) -> None:
    call = void_call("pi_busy")
    _row(session_factory, call, ATTEMPTS_KEPT_FOR + timedelta(hours=1))
    seen = [(call, 2)]
    # Between the sweeper's read and its delete, a worker's refusal moved the row on.
    with session_factory() as session, session.begin():
        session.execute(
            sa.update(ProviderCallAttempt)
            .where(ProviderCallAttempt.call == call)
            .values(attempt=3, refused_at=utc_now())
        )

    assert prune_attempts(session_factory, candidates=seen) == 0
    assert current_attempt(session_factory, call) == 3

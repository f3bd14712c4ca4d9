"""A card hold before an operator (Stripe answered its authorization with its own stored 500, and
its search never shows an intent): the operator's reason stays on the row whatever later sweeps
meet, and the operator resolves the row with what they can establish in Stripe: no payment under
the key (the row is resolved, once), or the PaymentIntent Stripe holds under it (recorded on the
row; the sweeper then releases it unless an order uses it, as for any hold). A page older than
the shopper's last submit resolves nothing. Fake Stripe over HTTP (tests.checkout's replaying
one), the real test database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.card_hold_resolutions import HoldFinding, resolve_flagged_hold
from commerce.card_holds import checkout_intent_metadata, resolve_holds_in_doubt
from commerce.db import get_session_factory
from commerce.exactly_once_models import CardHoldInDoubt
from commerce.models import utc_now
from commerce.order_models import new_validation_token
from tests.checkout.shop import empty_tables
from tests.checkout.test_authorization_replays import (
    HELD,
    CreatingStripe,
    _hold_row,
    _submit_as_checkout,
)
from tests.checkout.test_idempotent_replays import _gateway
from tests.checkout.test_unrecorded_card_holds import _shopper
from tests.storefront.conftest import storefront_db_url  # noqa: F401 (a fixture)


@pytest.fixture
def session_factory(storefront_db_url: str) -> Iterator[sessionmaker[Session]]:  # noqa: F811
    yield get_session_factory(storefront_db_url)
    empty_tables(storefront_db_url)


@pytest.fixture
def shopper(session_factory: sessionmaker[Session]) -> tuple[int, str]:
    return _shopper(session_factory), new_validation_token()


class SearchDownStripe(CreatingStripe):
    """CreatingStripe whose search answers 503 while `search_down` is set."""

    search_down = False

    def _answer(self, method: str, parts: list[str], post_data: Any) -> tuple[int, dict[str, Any]]:
        if self.search_down and parts == ["v1", "payment_intents", "search"]:
            return 503, {"error": {"type": "api_error", "message": "Search is unavailable."}}
        return super()._answer(method, parts, post_data)


def _flagged(
    session_factory: sessionmaker[Session], fake: CreatingStripe, shopper: tuple[int, str]
) -> CardHoldInDoubt:
    """A submit that met Stripe's 500, two hours ago, swept until it is before an operator."""
    _submit_as_checkout(session_factory, fake, *shopper)
    two_hours_ago = utc_now() - timedelta(hours=2)
    with session_factory() as session, session.begin():
        session.execute(
            sa.update(CardHoldInDoubt).values(
                created_at=two_hours_ago, stripe_failed_since=two_hours_ago
            )
        )
    _sweep(session_factory, fake)
    row = _hold_row(session_factory)
    assert row.flagged_at is not None and row.resolved_at is None
    return row


def _sweep(session_factory: sessionmaker[Session], fake: CreatingStripe) -> int:
    return resolve_holds_in_doubt(session_factory, lambda: _gateway(fake), older_than=timedelta(0))


def test_the_operators_reason_stays_on_a_flagged_hold_when_stripe_cannot_be_asked(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    """The next sweep met Stripe's search down and wrote "Stripe cannot be asked yet" over the
    reason: /admin/attention, which shows only that column, no longer said what to do."""
    fake = SearchDownStripe(["fail-none"])
    _flagged(session_factory, fake, shopper)
    fake.search_down = True

    _sweep(session_factory, fake)

    row = _hold_row(session_factory)
    assert row.resolved_at is None
    assert row.last_error is not None and "ask Stripe whether it holds money" in row.last_error


def test_an_operator_who_finds_no_payment_in_stripe_resolves_the_flagged_hold_once(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    fake = CreatingStripe(["fail-none"])
    row = _flagged(session_factory, fake, shopper)

    first = resolve_flagged_hold(
        session_factory, row.id, HoldFinding.NO_HOLD, operator="ops-ana", seen=row.created_at
    )
    again = resolve_flagged_hold(
        session_factory, row.id, HoldFinding.NO_HOLD, operator="ops-ben", seen=row.created_at
    )

    assert first.done and not again.done
    resolved = _hold_row(session_factory)
    assert resolved.resolved_at is not None
    assert resolved.resolution is not None and "ops-ana" in resolved.resolution
    assert "no payment" in resolved.resolution
    assert _sweep(session_factory, fake) == 0  # off the sweeper's list too
    assert fake.held() == [] and len(set(fake.keys_sent)) == 1


def test_an_operator_who_finds_the_intent_in_stripe_has_the_sweeper_release_it(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    """Stripe's 500 came after it made a hold that its search never shows: the operator finds
    the intent in Stripe (its request log, by the key) and names it; the next sweep retrieves it
    and releases it, since no order uses it. Nothing is released from the web request."""
    fake = CreatingStripe(["fail-held"])
    fake.hidden = set()
    original = fake._create

    def create_hidden(form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        status, body = original(form)
        fake.hidden |= set(fake.intents)
        return status, body

    fake._create = create_hidden  # type: ignore[method-assign]
    row = _flagged(session_factory, fake, shopper)
    [intent_id] = fake.held()

    named = resolve_flagged_hold(
        session_factory,
        row.id,
        HoldFinding.INTENT,
        operator="ops-ana",
        seen=row.created_at,
        intent_id=f"  {intent_id} ",
    )

    assert named.done
    assert fake.held() == [intent_id]  # not released by the operator's request
    noted = _hold_row(session_factory)
    assert noted.intent_id == intent_id and noted.resolved_at is None
    assert noted.last_error is not None and "ops-ana" in noted.last_error
    _sweep(session_factory, fake)
    assert fake.intents[intent_id]["status"] != HELD
    released = _hold_row(session_factory)
    assert released.resolved_at is not None
    assert released.resolution is not None and f"{intent_id} released" in released.resolution


@pytest.mark.parametrize("intent_id", ["", "ch_123", "pi_" + "x" * 300, "pi_1 2"])
def test_an_intent_that_is_not_a_payment_intent_id_is_refused(
    session_factory: sessionmaker[Session], shopper: tuple[int, str], intent_id: str
) -> None:
    fake = CreatingStripe(["fail-none"])
    row = _flagged(session_factory, fake, shopper)

    answer = resolve_flagged_hold(
        session_factory,
        row.id,
        HoldFinding.INTENT,
        operator="ops-ana",
        seen=row.created_at,
        intent_id=intent_id,
    )

    assert not answer.done and "pi_" in answer.message
    assert _hold_row(session_factory).intent_id is None


def test_a_page_older_than_the_shoppers_last_submit_resolves_nothing(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    """The shopper sent the form again after the operator looked in Stripe: that submit reached
    Stripe after what the operator saw, so their "no payment" is not taken for it."""
    fake = CreatingStripe(["fail-none"])
    row = _flagged(session_factory, fake, shopper)
    _submit_as_checkout(session_factory, fake, *shopper)  # reopens: a new submit

    answer = resolve_flagged_hold(
        session_factory, row.id, HoldFinding.NO_HOLD, operator="ops-ana", seen=row.created_at
    )

    assert not answer.done and "again" in answer.message
    assert _hold_row(session_factory).resolved_at is None


def test_a_hold_not_before_an_operator_is_left_to_the_sweeper(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    fake = CreatingStripe(["fail-none"])
    _submit_as_checkout(session_factory, fake, *shopper)
    row = _hold_row(session_factory)
    assert row.flagged_at is None

    answer = resolve_flagged_hold(
        session_factory, row.id, HoldFinding.NO_HOLD, operator="ops-ana", seen=row.created_at
    )

    assert not answer.done
    assert _hold_row(session_factory).resolved_at is None


def test_resolving_a_hold_that_does_not_exist_is_a_lookup_error(
    session_factory: sessionmaker[Session],
) -> None:
    with pytest.raises(LookupError):
        resolve_flagged_hold(
            session_factory, 999_999, HoldFinding.NO_HOLD, operator="ops-ana", seen=utc_now()
        )


def test_an_intent_stripe_does_not_know_sends_the_hold_back_to_the_operator(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    """A mistyped id (well-formed, unknown to Stripe): the sweep resolved the row as "Stripe
    knows no such PaymentIntent" and it left the operator's list, though what Stripe holds under
    the key was as unknown as before. It goes back to the operator, the id taken off."""
    fake = CreatingStripe(["fail-none"])
    row = _flagged(session_factory, fake, shopper)
    answer = resolve_flagged_hold(
        session_factory,
        row.id,
        HoldFinding.INTENT,
        operator="ops-ana",
        seen=row.created_at,
        intent_id="pi_mistyped123",
    )
    assert answer.done

    assert _sweep(session_factory, fake) == 0

    back = _hold_row(session_factory)
    assert back.resolved_at is None and back.flagged_at is not None
    assert back.intent_id is None
    assert back.last_error is not None
    assert "Stripe knows no pi_mistyped123" in back.last_error and "again" in back.last_error
    # Asked by its key again at the next sweep, still before the operator.
    assert _sweep(session_factory, fake) == 0
    assert _hold_row(session_factory).resolved_at is None


def test_another_checkouts_intent_named_by_the_operator_sends_the_hold_back_to_them(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    fake = CreatingStripe(["fail-none"])
    row = _flagged(session_factory, fake, shopper)
    others = fake.hold(checkout_intent_metadata(shopper[0], new_validation_token()))
    resolve_flagged_hold(
        session_factory,
        row.id,
        HoldFinding.INTENT,
        operator="ops-ana",
        seen=row.created_at,
        intent_id=others,
    )

    assert _sweep(session_factory, fake) == 0

    back = _hold_row(session_factory)
    assert back.resolved_at is None and back.intent_id is None
    assert back.last_error is not None and f"{others} is another checkout's" in back.last_error
    assert fake.intents[others]["status"] == HELD  # left alone

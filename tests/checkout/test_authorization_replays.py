"""A checkout's card authorization key is the form's, card's and amount's, and Stripe replays its
first answer to that key for a day, refusals and 500s included (https://docs.stripe.com/idempotency).
A resubmit of the form after a decline, or after a stored 500 whose intent Stripe shows holding
nothing, is a new attempt with a key of its own (`<key>-a<n>`, the number in
provider_call_attempts); after a 500 whose intent holds money, or whose intent cannot be seen,
the attempt is kept (never two holds for one form). The real gateway on Stripe's own client
talks to the replaying fake Stripe (tests/checkout/test_idempotent_replays.py), here with
PaymentIntent creation and search. The real test database."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
import stripe
from sqlalchemy.orm import Session, sessionmaker

from commerce.card_holds import (
    IN_DOUBT_MESSAGE,
    checkout_intent_metadata,
    in_doubt_message,
    record_hold_in_doubt,
    resolve_authorization_in_doubt,
    resolve_holds_in_doubt,
)
from commerce.checkout_authorization import authorize_card
from commerce.checkout_intents import prepare_checkout_intent
from commerce.db import get_session_factory
from commerce.exactly_once_models import CardHoldInDoubt
from commerce.models import utc_now
from commerce.order_models import new_validation_token
from commerce.payments.gateway import (
    AuthorizationReleased,
    AuthorizationRequest,
    PaymentDeclined,
    PaymentServiceFailed,
    PaymentUnavailable,
)
from onecart.money import Money
from tests.checkout.shop import empty_tables
from tests.checkout.test_idempotent_replays import ReplayingStripe, _gateway
from tests.checkout.test_unrecorded_card_holds import _shopper
from tests.storefront.conftest import storefront_db_url  # noqa: F401 (a fixture)

HELD, DEAD = "requires_capture", "requires_payment_method"


@pytest.fixture
def session_factory(storefront_db_url: str) -> Iterator[sessionmaker[Session]]:  # noqa: F811
    yield get_session_factory(storefront_db_url)
    empty_tables(storefront_db_url)


class CreatingStripe(ReplayingStripe):
    """The replaying fake Stripe that also creates (and confirms) PaymentIntents and searches
    them by metadata. `outcomes`: what each new create does, in order: "hold", "decline" (402,
    the intent left holding nothing, as Stripe does), "fail-held" / "fail-dead" (Stripe's 500
    after making an intent that holds / holds nothing), "fail-none" (a 500, nothing made).
    `hidden`: intents search does not show yet (Stripe's search lags writes)."""

    def __init__(self, outcomes: list[str]) -> None:
        super().__init__()
        self.outcomes = outcomes
        self.hidden: set[str] = set()

    def _answer(self, method: str, parts: list[str], post_data: Any) -> tuple[int, dict[str, Any]]:
        if parts == ["v1", "payment_intents"] and method == "post":
            return self._create(parse_qs(post_data or ""))
        if parts == ["v1", "payment_intents", "search"]:
            return 200, self._search()
        return super()._answer(method, parts, post_data)

    def _create(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        outcome = self.outcomes.pop(0)
        metadata = {
            name[len("metadata[") : -1]: values[0]
            for name, values in form.items()
            if name.startswith("metadata[")
        }
        status = HELD if outcome in ("hold", "fail-held") else DEAD
        intent = None
        if outcome != "fail-none":
            intent = self.intents[self.hold(metadata, int(form["amount"][0]))]
            intent["status"] = status
            intent["client_secret"] = f"{intent['id']}_secret_x"
        if outcome.startswith("fail"):
            return 500, {"error": {"type": "api_error", "message": "Something went wrong."}}
        if outcome == "decline":
            error = {"type": "card_error", "code": "card_declined", "payment_intent": intent}
            return 402, {"error": {**error, "message": "Your card was declined."}}
        return 200, intent  # type: ignore[return-value]

    def _search(self) -> dict[str, Any]:
        # The only query the gateway sends: metadata['onecart_authorization_key']:'<key>'.
        query = self.last_query
        key = query.split(":'", 1)[1].rstrip("'")
        found = [
            intent
            for intent in self.intents.values()
            if intent["metadata"].get("onecart_authorization_key") == key
            and intent["id"] not in self.hidden
        ]
        return {"object": "search_result", "data": found, "has_more": False, "url": "/x"}

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> tuple[str, int, dict[str, str]]:
        self.last_query = parse_qs(urlsplit(url).query).get("query", [""])[0]
        return super().request(method, url, headers, post_data)

    def held(self) -> list[str]:
        return [i for i, intent in self.intents.items() if intent["status"] == HELD]


def _submit(
    session_factory: sessionmaker[Session], fake: CreatingStripe, user_id: int, token: str
) -> str:
    """One submit of the form's card authorization: the intent held, or the outcome's name."""
    request = AuthorizationRequest(
        amount=Money(2500, "USD"),
        idempotency_key=f"onecart-checkout-{token[:32]}",
        metadata=checkout_intent_metadata(user_id, token),
        payment_token="pm_card_visa",
    )
    try:
        return authorize_card(
            session_factory, _gateway(fake), request, user_id=user_id, validation_token=token
        ).provider_reference
    except PaymentDeclined:
        return "declined"
    except PaymentUnavailable:
        return "unknown"


@pytest.fixture
def shopper(session_factory: sessionmaker[Session]) -> tuple[int, str]:
    return _shopper(session_factory), new_validation_token()


def test_a_resubmit_after_a_decline_is_a_new_attempt_not_the_stored_decline(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    fake = CreatingStripe(["decline", "hold"])
    assert _submit(session_factory, fake, *shopper) == "declined"
    # Before: the same key, answered with the stored decline for a day.
    held = _submit(session_factory, fake, *shopper)
    assert fake.held() == [held]
    key = fake.keys_sent[0]
    assert fake.keys_sent == [key, f"{key}-a1"]


def test_a_resubmit_after_a_stored_500_whose_intent_holds_nothing_is_a_new_attempt(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    fake = CreatingStripe(["fail-dead", "hold"])
    assert _submit(session_factory, fake, *shopper) == "declined"
    held = _submit(session_factory, fake, *shopper)
    assert fake.held() == [held]


def test_a_stored_500_whose_intent_holds_money_is_that_hold_never_a_second(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    fake = CreatingStripe(["fail-held", "hold"])
    first = _submit(session_factory, fake, *shopper)
    assert _submit(session_factory, fake, *shopper) == first
    assert fake.held() == [first]
    assert len(set(fake.keys_sent)) == 1


def test_a_stored_500_whose_intent_cannot_be_seen_keeps_its_attempt(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    fake = CreatingStripe(["fail-none", "hold"])
    assert _submit(session_factory, fake, *shopper) == "unknown"
    assert _submit(session_factory, fake, *shopper) == "unknown"
    assert fake.held() == [] and len(set(fake.keys_sent)) == 1


def test_an_earlier_declined_attempt_does_not_make_an_unseen_one_declined(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    fake = CreatingStripe(["decline", "fail-held", "hold"])
    assert _submit(session_factory, fake, *shopper) == "declined"
    # Attempt 1's 500 made a hold that search does not show yet; search shows only attempt
    # 0's declined intent. That is not a decline of attempt 1: it stays unknown.
    original = fake._create

    def create_hidden(form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        status, body = original(form)
        fake.hidden |= {i for i, intent in fake.intents.items() if intent["status"] == HELD}
        return status, body

    fake._create = create_hidden  # type: ignore[method-assign]
    assert _submit(session_factory, fake, *shopper) == "unknown"
    # The resubmit is the same attempt again (the held intent may be it), so no second hold.
    assert _submit(session_factory, fake, *shopper) == "unknown"
    assert len(fake.held()) == 1
    key = fake.keys_sent[0]
    assert fake.keys_sent[1:] == [f"{key}-a1", f"{key}-a1"]


def test_a_form_whose_prepared_intent_got_a_stored_500_gets_a_usable_intent_on_reload(
    shopper: tuple[int, str],
) -> None:
    # The prepared intent is confirmed only by the browser holding its client secret; a key
    # whose first answer was Stripe's 500 never handed that secret to anyone, so its intent (if
    # Stripe made one) can never hold money, and the next generation's key is safe.
    user_id, token = shopper
    fake = CreatingStripe(["fail-none", "prepared"])
    gateway = _gateway(fake)
    amount = Money(2500, "USD")
    with pytest.raises(PaymentServiceFailed):
        prepare_checkout_intent(gateway, amount, validation_token=token, user_id=user_id)
    # Before: the reload got the stored 500 for a day.
    intent_id, secret = prepare_checkout_intent(
        gateway, amount, validation_token=token, user_id=user_id
    )
    assert secret == f"{intent_id}_secret_x"
    assert fake.held() == [] and list(fake.intents) == [intent_id]
    # Once more: the same walk to the same intent (each generation is idempotent).
    assert prepare_checkout_intent(gateway, amount, validation_token=token, user_id=user_id) == (
        intent_id,
        secret,
    )


def _submit_as_checkout(
    session_factory: sessionmaker[Session], fake: CreatingStripe, user_id: int, token: str
) -> str:
    """A submit as checkout handles an answer that is not one: the hold in doubt recorded (with
    whether Stripe itself failed), and what the shopper is told."""
    request = AuthorizationRequest(
        amount=Money(2500, "USD"),
        idempotency_key=f"onecart-checkout-{token[:32]}",
        metadata=checkout_intent_metadata(user_id, token),
        payment_token="pm_card_visa",
    )
    try:
        authorize_card(
            session_factory, _gateway(fake), request, user_id=user_id, validation_token=token
        )
    except PaymentUnavailable as exc:
        with_operator = record_hold_in_doubt(
            session_factory,
            user_id,
            token,
            request,
            exc.message,
            stripe_failed=isinstance(exc, PaymentServiceFailed),
        )
        return in_doubt_message(with_operator=with_operator)
    return "held"


def _hold_row(session_factory: sessionmaker[Session]) -> CardHoldInDoubt:
    with session_factory() as session:
        [row] = session.scalars(sa.select(CardHoldInDoubt)).all()
        session.expunge(row)
        return row


def test_a_stored_500_whose_intent_is_never_found_goes_to_an_operator_not_a_new_key(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    """Stripe answered the authorization with its own 500 (stored under the key, replayed to
    every resubmit) and its search never shows an intent for it: after a bounded time the hold
    goes before an operator, with a reason, once; it is never taken for "nothing held" and
    never sent under a new key; the shopper who submits the form again is told the truth."""
    fake = CreatingStripe(["fail-none", "hold"])
    first = _submit_as_checkout(session_factory, fake, *shopper)
    assert first == IN_DOUBT_MESSAGE
    two_hours_ago = utc_now() - timedelta(hours=2)
    with session_factory() as session, session.begin():
        session.execute(
            sa.update(CardHoldInDoubt).values(
                created_at=two_hours_ago, stripe_failed_since=two_hours_ago
            )
        )

    for _ in range(2):
        resolve_holds_in_doubt(session_factory, lambda: _gateway(fake), older_than=timedelta(0))

    row = _hold_row(session_factory)
    assert row.resolved_at is None  # still asked: it stays on the operator's list
    assert row.flagged_at is not None
    assert row.last_error is not None and "ask Stripe" in row.last_error
    flagged_at = row.flagged_at

    told = _submit_as_checkout(session_factory, fake, *shopper)
    assert told != IN_DOUBT_MESSAGE and "our team" in told
    resolve_holds_in_doubt(session_factory, lambda: _gateway(fake), older_than=timedelta(0))
    assert _hold_row(session_factory).flagged_at == flagged_at  # flagged once
    assert fake.held() == [] and len(set(fake.keys_sent)) == 1  # never a new key


def test_a_timeout_whose_intent_is_never_found_is_still_resolved_as_nothing_held(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    """No answer at all (not Stripe's stored failure): nothing is stored under the key, search
    is trusted after its lag, and the row is resolved as before, not put before an operator."""
    user_id, token = shopper
    request = AuthorizationRequest(
        amount=Money(2500, "USD"),
        idempotency_key=f"onecart-checkout-{token[:32]}",
        metadata=checkout_intent_metadata(user_id, token),
        payment_token="pm_card_visa",
    )
    assert not record_hold_in_doubt(
        session_factory, user_id, token, request, "timed out", stripe_failed=False
    )
    with session_factory() as session, session.begin():
        session.execute(
            sa.update(CardHoldInDoubt).values(created_at=utc_now() - timedelta(hours=2))
        )
    fake = CreatingStripe([])

    resolve_holds_in_doubt(session_factory, lambda: _gateway(fake), older_than=timedelta(0))

    row = _hold_row(session_factory)
    assert row.resolved_at is not None and row.flagged_at is None


class LosesFirstReply(CreatingStripe):
    """CreatingStripe that stores each answer as Stripe does, a snapshot of the reply (the intent
    as it was then, not as it is when replayed), and loses the reply to the first create: Stripe
    made and stored it, the client saw a dropped connection."""

    def __init__(self, outcomes: list[str]) -> None:
        super().__init__(outcomes)
        self.lose_next_create = True

    def _create(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        status, body = super()._create(form)
        return status, copy.deepcopy(body)

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> tuple[str, int, dict[str, str]]:
        answer = super().request(method, url, headers, post_data)
        creates = method == "post" and urlsplit(url).path == "/v1/payment_intents"
        if creates and self.lose_next_create:
            self.lose_next_create = False
            self.hidden |= set(self.intents)  # Stripe's search lags the write
            raise stripe.APIConnectionError("connection reset by peer")
        return answer


def test_a_resubmit_after_the_sweeper_released_the_forms_hold_is_not_the_released_hold(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    """The authorization's reply was lost, its hold in doubt; the sweeper found the hold unused
    and released it. The shopper then sends the page again, as told ("try again in a few
    minutes with the same page"): the same attempt's key gets Stripe's stored answer, which
    says the intent holds money, as it did then. It holds nothing now: that answer is checked
    against Stripe's record and a new attempt holds the card, never an order on a released
    hold (its capture would fail after the marketplaces were ordered from)."""
    user_id, token = shopper
    fake = LosesFirstReply(["hold", "hold"])
    assert _submit_as_checkout(session_factory, fake, user_id, token) == IN_DOUBT_MESSAGE
    [first] = fake.intents
    fake.hidden.clear()  # Stripe's search shows it now
    resolve_holds_in_doubt(session_factory, lambda: _gateway(fake), older_than=timedelta(0))
    assert fake.intents[first]["status"] == "canceled"

    held = _submit(session_factory, fake, user_id, token)

    assert held != first
    assert fake.held() == [held]
    key = fake.keys_sent[0]
    assert fake.keys_sent[-1] == f"{key}-a1"


class LosesFirstReplyAndALookUp(LosesFirstReply):
    """LosesFirstReply that also loses the reply to the first look-up of one intent (a GET of
    `/v1/payment_intents/<id>` once `lose_look_up_of` names it)."""

    lose_look_up_of: str | None = None

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> tuple[str, int, dict[str, str]]:
        path = urlsplit(url).path
        if method == "get" and self.lose_look_up_of and path.endswith(f"/{self.lose_look_up_of}"):
            self.lose_look_up_of = None
            raise stripe.APIConnectionError("connection reset by peer")
        return super().request(method, url, headers, post_data)


def test_a_released_hold_whose_replay_cannot_be_checked_is_not_called_a_decline(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    """As above, the sweeper released the form's hold; the resend gets Stripe's stored answer,
    and asking Stripe for the intent as it is now fails. Search then shows this attempt's own
    intent `canceled`: we released it ourselves. The shopper was told "Your card was declined."
    (and to try another card) for a card nothing was wrong with. Nothing is held: the submit
    goes on as the next attempt, as after a replay that could be checked."""
    user_id, token = shopper
    fake = LosesFirstReplyAndALookUp(["hold", "hold"])
    assert _submit_as_checkout(session_factory, fake, user_id, token) == IN_DOUBT_MESSAGE
    [first] = fake.intents
    fake.hidden.clear()
    resolve_holds_in_doubt(session_factory, lambda: _gateway(fake), older_than=timedelta(0))
    assert fake.intents[first]["status"] == "canceled"
    fake.lose_look_up_of = first

    held = _submit(session_factory, fake, user_id, token)

    assert fake.lose_look_up_of is None  # the look-up was lost, as the case needs
    assert held not in ("declined", first)
    assert fake.held() == [held]
    key = fake.keys_sent[0]
    assert fake.keys_sent[-1] == f"{key}-a1"


def test_an_in_doubt_look_up_that_finds_our_own_release_says_nothing_is_held(
    session_factory: sessionmaker[Session], shopper: tuple[int, str]
) -> None:
    """The look-up itself, for this attempt's intent seen `canceled` (a release of ours, never
    a refusal by the bank): its words say nothing is held and to send the page again."""
    user_id, token = shopper
    fake = LosesFirstReply(["hold"])
    assert _submit_as_checkout(session_factory, fake, user_id, token) == IN_DOUBT_MESSAGE
    fake.hidden.clear()
    resolve_holds_in_doubt(session_factory, lambda: _gateway(fake), older_than=timedelta(0))
    request = AuthorizationRequest(
        amount=Money(2500, "USD"),
        idempotency_key=f"onecart-checkout-{token[:32]}",
        metadata=checkout_intent_metadata(user_id, token),
        payment_token="pm_card_visa",
    )

    with pytest.raises(AuthorizationReleased) as released:
        resolve_authorization_in_doubt(_gateway(fake), request)

    assert "declined" not in released.value.message
    assert "nothing" in released.value.message.lower()

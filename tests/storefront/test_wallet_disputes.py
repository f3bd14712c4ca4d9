"""A disputed wallet top-up (a chargeback of its card payment): the wallet gives up the disputed
credit as far as it is unspent, once per dispute, never below zero, and gets exactly that back if
the shop wins. Against localstripe, with Stripe's dispute events signed and posted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
import stripe
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from commerce.db import get_session_factory
from commerce.dispute_models import PaymentDispute
from commerce.disputes import REFUND_READS, apply_dispute_event, dispute_facts
from commerce.models import User, WalletEntry
from commerce.payments.gateway import PaymentUnavailable
from commerce.topup_refunds import TopUpRefunds, take_back_refunded_topup
from commerce.wallet import pay_from_wallet
from onecart.money import Money
from onecart.settings import get_settings
from tests.checkout.conftest import localstripe_server
from tests.checkout.dispute_events import charge_of, dispute_object, new_dispute_id, post_event
from tests.checkout.shop import stripe_client
from tests.storefront.test_wallet_topup import (
    _balance,
    _pay_in_browser,
    _refund_in_dashboard,
    _start_topup,
    _webhook,
    app_config_overrides,
)

__all__ = ["app_config_overrides", "localstripe_server"]


def _paid_topup(app: Flask, client: FlaskClient, amount: str, *, credited: bool = True) -> str:
    intent_id = _start_topup(client, amount)
    _pay_in_browser(intent_id)
    if credited:
        assert _webhook(app, intent_id).status_code == 200
    return intent_id


def _dispute(intent_id: str, amount: int, status: str, **extra: Any) -> dict[str, Any]:
    return dispute_object(
        extra.pop("dispute_id", new_dispute_id()),
        charge=charge_of(intent_id),
        intent=intent_id,
        amount=amount,
        status=status,
        **extra,
    )


def _row(db_session: Session, dispute_id: str) -> PaymentDispute:
    db_session.expire_all()
    row = db_session.scalar(
        sa.select(PaymentDispute).where(PaymentDispute.dispute_id == dispute_id)
    )
    assert row is not None
    return row


def _dispute_lines(db_session: Session, user: User) -> list[int]:
    return list(
        db_session.scalars(
            sa.select(WalletEntry.amount_minor)
            .where(WalletEntry.user_id == user.id, WalletEntry.reference.like("stripe-dispute-%"))
            .order_by(WalletEntry.id)
        )
    )


def test_a_chargeback_holds_the_credit_once_and_a_won_dispute_gives_it_back_once(
    app: Flask, client: FlaskClient, signed_in_user: User, db_session: Session
) -> None:
    intent_id = _paid_topup(app, client, "30")
    opened = _dispute(intent_id, 3000, "needs_response")
    now = int(time.time())

    created = post_event(app, "charge.dispute.created", opened, created=now - 50, event_id="e1")
    withdrawn = {**opened, "balance_transactions": [{"amount": -3000}]}
    post_event(app, "charge.dispute.funds_withdrawn", withdrawn, created=now - 49)
    post_event(app, "charge.dispute.created", opened, created=now - 50, event_id="e1")  # replay

    assert created.status_code == 200
    assert "30.00 USD held in the wallet" in created.get_json()["dispute"]
    assert _balance(db_session, signed_in_user) == Money(0, "USD")

    won = {**opened, "status": "won"}
    post_event(app, "charge.dispute.closed", won, created=now - 10)
    post_event(app, "charge.dispute.funds_reinstated", won, created=now - 9)
    post_event(app, "charge.dispute.closed", won, created=now - 10)

    assert _balance(db_session, signed_in_user) == Money(3000, "USD")
    assert _dispute_lines(db_session, signed_in_user) == [-3000, 3000]
    row = _row(db_session, opened["id"])
    assert (row.purpose, row.status, row.wallet_held_minor, row.wallet_released_minor) == (
        "wallet_topup",
        "won",
        3000,
        3000,
    )


def test_a_lost_dispute_keeps_what_was_held_and_the_spent_part_goes_to_the_operator(
    app: Flask, client: FlaskClient, signed_in_user: User, db_session: Session, make_user: Any
) -> None:
    intent_id = _paid_topup(app, client, "10")
    pay_from_wallet(db_session, signed_in_user, Money(700, "USD"), reference="spent-it")
    db_session.commit()
    opened = _dispute(intent_id, 1000, "needs_response", reason="fraudulent")
    now = int(time.time())

    response = post_event(app, "charge.dispute.created", opened, created=now - 20)
    post_event(app, "charge.dispute.closed", {**opened, "status": "lost"}, created=now)
    # Stripe reinstates nothing for a lost dispute of an unrefunded charge; an event claiming
    # reinstated funds for a lost dispute (a partially refunded charge's refunded part) gives
    # nothing back either.
    lost = {**opened, "status": "lost", "balance_transactions": [{"amount": 1}]}
    post_event(app, "charge.dispute.funds_reinstated", lost, created=now + 1)

    assert "7.00 USD already spent" in response.get_json()["dispute"]
    assert _balance(db_session, signed_in_user) == Money(0, "USD")  # never below zero
    row = _row(db_session, opened["id"])
    assert (row.status, row.wallet_held_minor, row.wallet_short_minor) == ("lost", 300, 700)
    assert row.wallet_released_minor is None
    admin = app.test_client()
    admin_user = make_user(username="ops", email="ops@example.com", is_admin=True)
    from tests.storefront.conftest import log_in

    log_in(admin, admin_user)
    page = admin.get("/admin/attention").get_data(as_text=True)
    assert opened["id"] in page and "held 300; 700 already spent" in page
    assert "wallet top-up of" in page and "fraudulent" in page


def test_a_dispute_closed_before_its_opening_event_arrives_holds_once(
    app: Flask, client: FlaskClient, signed_in_user: User, db_session: Session
) -> None:
    """Stripe does not promise order: the closing (lost) event first, the opening one late."""
    intent_id = _paid_topup(app, client, "12")
    opened = _dispute(intent_id, 1200, "needs_response")
    now = int(time.time())

    post_event(app, "charge.dispute.closed", {**opened, "status": "lost"}, created=now)
    late = post_event(app, "charge.dispute.created", opened, created=now - 100)

    assert late.status_code == 200
    assert _balance(db_session, signed_in_user) == Money(0, "USD")
    assert _dispute_lines(db_session, signed_in_user) == [-1200]
    assert _row(db_session, opened["id"]).status == "lost"


def test_an_inquiry_takes_nothing_until_it_becomes_a_chargeback(
    app: Flask, client: FlaskClient, signed_in_user: User, db_session: Session
) -> None:
    """An inquiry (warning_*) moves no money at Stripe; closed as an inquiry, nothing happened."""
    first = _paid_topup(app, client, "8")
    inquiry = _dispute(first, 800, "warning_needs_response")
    now = int(time.time())
    post_event(app, "charge.dispute.created", inquiry, created=now - 30)
    assert _balance(db_session, signed_in_user) == Money(800, "USD")
    post_event(app, "charge.dispute.closed", {**inquiry, "status": "warning_closed"}, created=now)
    assert _balance(db_session, signed_in_user) == Money(800, "USD")
    assert _row(db_session, inquiry["id"]).wallet_held_minor is None

    second = _paid_topup(app, client, "5")
    escalating = _dispute(second, 500, "warning_needs_response")
    post_event(app, "charge.dispute.created", escalating, created=now - 30)
    post_event(app, "charge.dispute.updated", {**escalating, "status": "needs_response"})
    assert _balance(db_session, signed_in_user) == Money(800, "USD")


def test_a_partly_refunded_top_up_disputed_in_full_holds_only_what_the_card_did_not_get_back(
    app: Flask, client: FlaskClient, signed_in_user: User, db_session: Session
) -> None:
    intent_id = _paid_topup(app, client, "30")
    assert _refund_in_dashboard(app, intent_id, 1200).status_code == 200  # 12 taken back
    _paid_topup(app, client, "50")  # another top-up: not the dispute's to take
    assert _balance(db_session, signed_in_user) == Money(6800, "USD")

    post_event(app, "charge.dispute.created", _dispute(intent_id, 3000, "needs_response"))

    assert _balance(db_session, signed_in_user) == Money(5000, "USD")


def test_a_disputed_top_up_never_credited_is_credited_then_held_and_not_credited_again(
    app: Flask, client: FlaskClient, signed_in_user: User, db_session: Session
) -> None:
    """The dispute comes before the success event was ever handled: the top-up is credited (by
    asking Stripe) and held at once; the late success event credits nothing more."""
    intent_id = _paid_topup(app, client, "20", credited=False)

    response = post_event(app, "charge.dispute.created", _dispute(intent_id, 2000, "under_review"))
    assert _webhook(app, intent_id).status_code == 200

    assert "20.00 USD held" in response.get_json()["dispute"]
    assert _balance(db_session, signed_in_user) == Money(0, "USD")


def test_a_refund_while_a_chargeback_holds_the_credit_is_not_taken_twice(
    app: Flask, client: FlaskClient, signed_in_user: User, db_session: Session
) -> None:
    """The whole top-up is disputed and held; someone then refunds it in Stripe's dashboard.
    The card gets the 30 back once (by the refund or the chargeback), so the wallet gives it up
    once: the refund takes nothing more, and winning the dispute gives nothing back."""
    intent_id = _paid_topup(app, client, "30")
    _paid_topup(app, client, "50")  # another top-up: not the refund's to take
    opened = _dispute(intent_id, 3000, "needs_response")
    now = int(time.time())
    post_event(app, "charge.dispute.created", opened, created=now - 50)
    assert _balance(db_session, signed_in_user) == Money(5000, "USD")

    assert _refund_in_dashboard(app, intent_id, 3000).status_code == 200
    intent = stripe_client().v1.payment_intents.retrieve(
        intent_id, params={"expand": ["latest_charge"]}
    )
    post_event(app, "charge.refunded", intent.latest_charge.to_dict())  # told again

    assert _balance(db_session, signed_in_user) == Money(5000, "USD")
    post_event(app, "charge.dispute.closed", {**opened, "status": "won"}, created=now - 10)
    post_event(app, "charge.dispute.closed", {**opened, "status": "won"}, created=now - 10)
    assert _balance(db_session, signed_in_user) == Money(5000, "USD")
    row = _row(db_session, opened["id"])
    assert (row.wallet_held_minor, row.wallet_refund_covered_minor, row.wallet_released_minor) == (
        3000,
        3000,
        0,
    )


def test_a_partial_dispute_and_a_larger_refund_take_the_top_up_at_most_once_in_all(
    app: Flask, client: FlaskClient, signed_in_user: User, db_session: Session
) -> None:
    """10 of a 30 top-up is disputed (held), then 25 refunded: the card gets back 30 at most, so
    the refund takes 20 (5 of it the hold already took); won gives back only the 5 the refund
    did not need, leaving the wallet short exactly the 25 refunded."""
    intent_id = _paid_topup(app, client, "30")
    _paid_topup(app, client, "50")
    opened = _dispute(intent_id, 1000, "needs_response")
    now = int(time.time())
    post_event(app, "charge.dispute.created", opened, created=now - 50)
    assert _balance(db_session, signed_in_user) == Money(7000, "USD")

    assert _refund_in_dashboard(app, intent_id, 2500).status_code == 200
    assert _balance(db_session, signed_in_user) == Money(5000, "USD")

    post_event(app, "charge.dispute.closed", {**opened, "status": "won"}, created=now - 10)
    assert _balance(db_session, signed_in_user) == Money(5500, "USD")


def test_a_refund_and_a_lost_dispute_never_take_the_top_up_twice(
    app: Flask, client: FlaskClient, signed_in_user: User, db_session: Session
) -> None:
    intent_id = _paid_topup(app, client, "30")
    _paid_topup(app, client, "50")
    opened = _dispute(intent_id, 3000, "needs_response")
    now = int(time.time())
    post_event(app, "charge.dispute.created", opened, created=now - 50)
    assert _refund_in_dashboard(app, intent_id, 1000).status_code == 200
    post_event(app, "charge.dispute.closed", {**opened, "status": "lost"}, created=now - 10)

    assert _balance(db_session, signed_in_user) == Money(5000, "USD")


@pytest.mark.parametrize("status", ["under_review", "won"])
def test_a_refund_and_a_dispute_event_racing_leave_the_wallet_as_either_order_would(
    app: Flask,
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
    storefront_db_url: str,
    status: str,
) -> None:
    """The refund's event (twice) and the held dispute's next event (twice) at the same moment:
    in either order the wallet ends without the refunded top-up, once, and keeps the other."""
    if storefront_db_url.startswith("sqlite"):
        # SQLite refuses a second concurrent writer outright (database is locked) instead of
        # queueing it; the row-locking race is PostgreSQL's.
        pytest.skip("concurrent writers need PostgreSQL")
    intent_id = _paid_topup(app, client, "30")
    _paid_topup(app, client, "50")
    opened = _dispute(intent_id, 3000, "needs_response")
    now = int(time.time())
    post_event(app, "charge.dispute.created", opened, created=now - 50)
    stripe_client().v1.refunds.create(params={"payment_intent": intent_id, "amount": 3000})
    event = "charge.dispute.closed" if status == "won" else "charge.dispute.updated"
    later = dispute_facts(event, {**opened, "status": status}, now - 10)
    factory = get_session_factory(storefront_db_url)
    barrier = threading.Barrier(4)

    def deliver(number: int) -> None:
        barrier.wait()
        if number % 2:
            apply_dispute_event(factory, later, stripe_client())
            return
        with factory() as session:
            take_back_refunded_topup(session, stripe_client(), intent_id)
            session.commit()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(deliver, range(4)))

    assert _balance(db_session, signed_in_user) == Money(5000, "USD")


class _Meanwhile(stripe.HTTPClient):
    """Stripe over HTTP, running the next of `meanwhile` right after each answer: the dispute
    handler has read what was refunded and not taken the wallet's lock yet."""

    name = "meanwhile"

    def __init__(self, *meanwhile: Callable[[], None]) -> None:
        super().__init__()
        self.inner = stripe.new_default_http_client()
        self.meanwhile = list(meanwhile)

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> tuple[Any, int, Any]:
        answer = self.inner.request(method, url, headers, post_data)
        if self.meanwhile:
            self.meanwhile.pop(0)()
        return answer

    def close(self) -> None:
        self.inner.close()


def _stripe_over(
    http: stripe.HTTPClient | None = None, api: str | None = None
) -> stripe.StripeClient:
    settings = get_settings()
    return stripe.StripeClient(
        settings.stripe_api_key,
        base_addresses={"api": api or str(settings.stripe_api_base)},
        http_client=http,
        max_network_retries=0,
    )


def _refunded_meanwhile(
    factory: sessionmaker[Session], intent_id: str, amount: int
) -> tuple[Callable[[], None], list[TopUpRefunds | None]]:
    """Refund `amount` of the top-up at Stripe and take it back from the wallet (the refund's
    event handled), and what the take-back found."""
    found: list[TopUpRefunds | None] = []

    def refund() -> None:
        stripe_client().v1.refunds.create(params={"payment_intent": intent_id, "amount": amount})
        with factory() as session:
            found.append(take_back_refunded_topup(session, stripe_client(), intent_id))
            session.commit()

    return refund, found


@pytest.mark.parametrize("spent", [False, True], ids=["unspent", "refund-short-then-topped-up"])
def test_a_refund_taken_back_between_the_holds_stripe_read_and_its_lock_is_not_held_again(
    app: Flask,
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
    storefront_db_url: str,
    spent: bool,
) -> None:
    """The dispute's handler asks Stripe what was refunded (nothing yet); before it takes the
    wallet's lock, 9 of the 30 top-up is refunded and that refund taken back from the wallet. The
    card gets back 30 in all (9 by the refund, 21 by the chargeback), so the hold is 21, not 30.
    Spent: the refund's take-back finds only 5 (4 short), then the shopper tops up 50: the hold
    still claims 21 (the card got 9 back, not the 5 the wallet had), and takes it."""
    intent_id = _paid_topup(app, client, "30")
    if spent:
        pay_from_wallet(db_session, signed_in_user, Money(2500, "USD"), reference="spent-it")
        db_session.commit()
    else:
        _paid_topup(app, client, "50")  # another top-up: not the dispute's to take
    factory = get_session_factory(storefront_db_url)
    refund, found = _refunded_meanwhile(factory, intent_id, 900)

    def refunded_meanwhile() -> None:
        refund()
        if spent:
            _paid_topup(app, client, "50")

    http = _Meanwhile(refunded_meanwhile)
    opened = _dispute(intent_id, 3000, "needs_response")
    facts = dispute_facts("charge.dispute.created", opened, int(time.time()))

    outcome = apply_dispute_event(factory, facts, _stripe_over(http))

    [refunds] = found  # taken back between the read and the lock
    assert refunds is not None
    assert (refunds.taken, refunds.short) == ((500, 400) if spent else (900, 0))
    assert "21.00 USD held in the wallet" in outcome
    assert _balance(db_session, signed_in_user) == Money(2900 if spent else 5000, "USD")
    row = _row(db_session, opened["id"])
    assert (row.wallet_held_minor, row.wallet_short_minor, row.wallet_refund_covered_minor) == (
        2100,
        0,
        0,
    )
    # Won: the hold comes back whole; the refund stays taken.
    won = dispute_facts("charge.dispute.closed", {**opened, "status": "won"}, int(time.time()) + 1)
    apply_dispute_event(factory, won, stripe_client())
    assert _balance(db_session, signed_in_user) == Money(5000 if spent else 7100, "USD")


def test_refunds_taken_back_at_every_read_or_stripe_unreachable_record_nothing_until_redelivery(
    app: Flask,
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
    storefront_db_url: str,
    unreachable_url: str,
) -> None:
    """Unknown is not refused: when Stripe cannot be asked, or each answer is overtaken by a
    refund taken back before the lock, nothing is recorded and the event's redelivery holds."""
    intent_id = _paid_topup(app, client, "30")
    _paid_topup(app, client, "50")
    factory = get_session_factory(storefront_db_url)
    opened = _dispute(intent_id, 3000, "needs_response")
    facts = dispute_facts("charge.dispute.created", opened, int(time.time()))

    with pytest.raises(PaymentUnavailable):
        apply_dispute_event(factory, facts, _stripe_over(api=unreachable_url))
    assert _balance(db_session, signed_in_user) == Money(8000, "USD")

    overtaken = [_refunded_meanwhile(factory, intent_id, 300)[0] for _ in range(REFUND_READS)]
    with pytest.raises(PaymentUnavailable):
        apply_dispute_event(factory, facts, _stripe_over(_Meanwhile(*overtaken)))
    assert _balance(db_session, signed_in_user) == Money(7100, "USD")
    recorded = sa.select(PaymentDispute.id).where(PaymentDispute.dispute_id == opened["id"])
    assert db_session.scalar(recorded) is None

    outcome = apply_dispute_event(factory, facts, stripe_client())
    assert "21.00 USD held in the wallet" in outcome
    assert _balance(db_session, signed_in_user) == Money(5000, "USD")

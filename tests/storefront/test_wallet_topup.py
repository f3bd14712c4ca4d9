"""Wallet top-ups (issue 12: a top-up took no payment). Outside sandbox mode a top-up is a Stripe
PaymentIntent, credited only once Stripe says it succeeded, by the webhook or the return page,
and never twice; the free top-up exists only in sandbox mode and says so. Against localstripe."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
import stripe
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.db import get_session_factory
from commerce.models import User, WalletEntry
from commerce.wallet import WalletError, pay_from_wallet, wallet_balance
from commerce.wallet_topup import TopUpState, credit_card_topup, sandbox_top_up, topup_amount
from onecart.money import Money
from tests.checkout.conftest import localstripe_server
from tests.checkout.dispute_events import post_event
from tests.checkout.shop import stripe_client

__all__ = ["localstripe_server"]

_PAY_URL = re.compile(r"/profile/wallet/top-up/(pi_[A-Za-z0-9]+)/pay$")


@pytest.fixture
def app_config_overrides(localstripe_server: str) -> dict[str, Any]:
    """A real deployment's top-ups (sandbox mode off), with Stripe played by localstripe."""
    return {"SANDBOX_MODE": False}


def _reference(client: FlaskClient) -> str:
    html = client.get("/profile").get_data(as_text=True)
    match = re.search(r'name="reference" type="hidden" value="([^"]+)"', html)
    assert match
    return match.group(1)


def _start_topup(client: FlaskClient, amount: str) -> str:
    response = client.post(
        "/profile/wallet/top-up", data={"amount": amount, "reference": _reference(client)}
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    match = _PAY_URL.search(response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


def _pay_in_browser(intent_id: str, payment_method: str = "pm_card_visa") -> None:
    """What Stripe.js does with the card the shopper typed: attach it and confirm."""
    client = stripe_client()
    client.v1.payment_intents.update(intent_id, params={"payment_method": payment_method})
    with contextlib.suppress(stripe.CardError):  # a declined card: the intent stays unpaid
        client.v1.payment_intents.confirm(intent_id)


def _webhook(app: Flask, intent_id: str, *, event_id: str | None = None) -> Any:
    """Stripe's signed payment_intent.succeeded event for `intent_id` (its object as Stripe
    sends it, metadata included)."""
    intent = stripe_client().v1.payment_intents.retrieve(intent_id)
    data = {
        "id": intent_id,
        "object": "payment_intent",
        "amount": intent.amount,
        "currency": intent.currency,
        "status": "succeeded",  # what the event claims; the shop asks Stripe itself
        "metadata": intent.metadata.to_dict(),
    }
    return post_event(app, "payment_intent.succeeded", data, event_id=event_id)


def _balance(db_session: Session, user: User) -> Money:
    db_session.expire_all()
    return wallet_balance(db_session, user)


def test_a_top_up_is_a_card_payment_credited_once_when_it_succeeds(
    app: Flask,
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
) -> None:
    intent_id = _start_topup(client, "25.50")
    assert _balance(db_session, signed_in_user) == Money(0, "USD")  # nothing for a form alone

    page = client.get(f"/profile/wallet/top-up/{intent_id}/pay")
    assert page.status_code == 200
    assert "js.stripe.com" in page.headers["Content-Security-Policy"]
    assert f"{intent_id}_secret_" in page.get_data(as_text=True)

    # Coming back before paying credits nothing.
    client.get(f"/profile/wallet/top-up/{intent_id}/done")
    assert _balance(db_session, signed_in_user) == Money(0, "USD")

    _pay_in_browser(intent_id)
    first = _webhook(app, intent_id)
    assert first.status_code == 200
    assert _balance(db_session, signed_in_user) == Money(2550, "USD")

    # The same PaymentIntent never credits twice: a replayed or second event, the return page.
    assert _webhook(app, intent_id).status_code == 200
    back = client.get(f"/profile/wallet/top-up/{intent_id}/done", follow_redirects=True)
    assert "wallet has been topped up" in back.get_data(as_text=True)
    assert _balance(db_session, signed_in_user) == Money(2550, "USD")
    lines = db_session.scalars(
        sa.select(WalletEntry).where(WalletEntry.user_id == signed_in_user.id)
    ).all()
    assert [(line.amount_minor, line.description) for line in lines] == [
        (2550, "Top-up (card payment)")
    ]


def _directives(policy: str) -> dict[str, list[str]]:
    parsed = {}
    for directive in policy.split(";"):
        name, *sources = directive.split()
        parsed[name] = sources
    return parsed


def test_the_card_pages_allow_no_injected_stylesheet(
    client: FlaskClient, signed_in_user: User
) -> None:
    """Security review, fifth pass: the Stripe pages allowed `style-src 'unsafe-inline'`, so an
    injected <style> could read the page's client secret and CSRF token with attribute selectors
    and send them out as background images (img-src is any host). Stripe documents no style
    source for Stripe.js (only script, frame and connect sources, js.stripe.com and its
    subdomains); Stripe.js sets style attributes on the elements it mounts, so only those stay
    allowed (style-src-attr). Checkout's card page uses the same policy."""
    from storefront.checkout import routes as checkout_routes
    from storefront.security import STRIPE_JS_CONTENT_SECURITY_POLICY

    intent_id = _start_topup(client, "12.00")
    policy = _directives(
        client.get(f"/profile/wallet/top-up/{intent_id}/pay").headers["Content-Security-Policy"]
    )
    assert policy["style-src"] == ["'self'"]
    assert "style-src-elem" not in policy  # falls back to style-src: no inline <style>
    assert policy["style-src-attr"] == ["'unsafe-inline'"]
    for directive in ("script-src", "frame-src"):
        assert {"https://js.stripe.com", "https://*.js.stripe.com"} <= set(policy[directive])
    assert "https://api.stripe.com" in policy["connect-src"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert checkout_routes.STRIPE_JS_CONTENT_SECURITY_POLICY is STRIPE_JS_CONTENT_SECURITY_POLICY


def test_the_return_page_credits_when_the_webhook_is_late(
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
) -> None:
    intent_id = _start_topup(client, "10")
    _pay_in_browser(intent_id)
    client.get(f"/profile/wallet/top-up/{intent_id}/done")
    assert _balance(db_session, signed_in_user) == Money(1000, "USD")


def test_an_unpaid_or_declined_top_up_credits_nothing_whatever_the_event_claims(
    app: Flask,
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
) -> None:
    unpaid = _start_topup(client, "40")
    declined = _start_topup(client, "50")
    _pay_in_browser(declined, "pm_card_chargeCustomerFail")
    for intent_id in (unpaid, declined):
        # The event says "succeeded"; Stripe, asked directly, does not.
        assert _webhook(app, intent_id).status_code == 200
        client.get(f"/profile/wallet/top-up/{intent_id}/done")
    assert _balance(db_session, signed_in_user) == Money(0, "USD")


def test_nobody_can_claim_another_shoppers_top_up(
    client: FlaskClient,
    app: Flask,
    make_user: Callable[..., User],
    login: Callable[..., Any],
    db_session: Session,
) -> None:
    owner, other = make_user(), make_user()
    login(client, owner)
    intent_id = _start_topup(client, "30")
    _pay_in_browser(intent_id)
    intruder = app.test_client()
    login(intruder, other)
    assert intruder.get(f"/profile/wallet/top-up/{intent_id}/pay").status_code == 302
    intruder.get(f"/profile/wallet/top-up/{intent_id}/done")
    assert _balance(db_session, other) == Money(0, "USD")
    assert _balance(db_session, owner) == Money(0, "USD")  # credited by its own webhook/return


def test_the_free_top_up_exists_only_in_sandbox_mode(
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
) -> None:
    html = client.get("/profile").get_data(as_text=True)
    assert "Top-ups are paid by card" in html and "Sandbox mode" not in html
    with pytest.raises(WalletError, match="only in sandbox mode"):
        sandbox_top_up(
            db_session, signed_in_user, Decimal("5"), reference="sandbox-x", sandbox_mode=False
        )


@pytest.mark.parametrize("app_config_overrides", [{"SANDBOX_MODE": True}])
def test_sandbox_mode_says_its_top_ups_are_free(client: FlaskClient, signed_in_user: User) -> None:
    html = client.get("/profile").get_data(as_text=True)
    assert "Sandbox mode: top-ups are free and take no payment" in html


def test_concurrent_confirmations_of_one_payment_credit_once(
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
    storefront_db_url: str,
) -> None:
    """The webhook and the return page racing each other (several times over)."""
    if storefront_db_url.startswith("sqlite"):
        # SQLite refuses a second concurrent writer outright (database is locked) instead of
        # queueing it; the row-locking race is PostgreSQL's (CI runs this file there too).
        pytest.skip("concurrent writers need PostgreSQL")
    intent_id = _start_topup(client, "12")
    _pay_in_browser(intent_id)
    factory = get_session_factory(storefront_db_url)
    barrier = threading.Barrier(4)

    def confirm(_number: int) -> TopUpState:
        with factory() as session:
            barrier.wait()
            outcome = credit_card_topup(session, stripe_client(), intent_id)
            session.commit()
            return outcome.state

    with ThreadPoolExecutor(max_workers=4) as pool:
        states = list(pool.map(confirm, range(4)))
    assert states == [TopUpState.CREDITED] * 4
    assert _balance(db_session, signed_in_user) == Money(1200, "USD")


def _refund_in_dashboard(app: Flask, intent_id: str, amount: int) -> Any:
    """Someone refunds part of a top-up in the Stripe dashboard; Stripe sends charge.refunded
    (the charge, which names its PaymentIntent)."""
    client = stripe_client()
    client.v1.refunds.create(params={"payment_intent": intent_id, "amount": amount})
    intent = client.v1.payment_intents.retrieve(intent_id, params={"expand": ["latest_charge"]})
    return post_event(app, "charge.refunded", intent.latest_charge.to_dict())


def test_a_top_up_refunded_on_the_card_is_taken_back_from_the_wallet_once(
    app: Flask, client: FlaskClient, signed_in_user: User, db_session: Session
) -> None:
    """OneCart never refunds a top-up, so a refund of one was made outside OneCart: the card got
    the money back, so the wallet must give it up (once, however often Stripe tells us)."""
    intent_id = _start_topup(client, "30")
    _pay_in_browser(intent_id)
    assert _webhook(app, intent_id).status_code == 200
    assert _balance(db_session, signed_in_user) == Money(3000, "USD")

    response = _refund_in_dashboard(app, intent_id, 1200)
    assert response.status_code == 200
    assert _balance(db_session, signed_in_user) == Money(1800, "USD")

    # Told again (a second charge.refunded for a second refund lists both): the first is
    # never taken twice.
    assert _refund_in_dashboard(app, intent_id, 300).status_code == 200
    assert _balance(db_session, signed_in_user) == Money(1500, "USD")


def test_a_top_up_refunded_before_its_success_event_arrived_is_credited_net(
    app: Flask, client: FlaskClient, signed_in_user: User, db_session: Session
) -> None:
    """Events out of order: charge.refunded comes before payment_intent.succeeded. The late
    success event must not credit what the card already got back."""
    intent_id = _start_topup(client, "20")
    _pay_in_browser(intent_id)

    assert _refund_in_dashboard(app, intent_id, 2000).status_code == 200
    assert _webhook(app, intent_id).status_code == 200
    client.get(f"/profile/wallet/top-up/{intent_id}/done")

    assert _balance(db_session, signed_in_user) == Money(0, "USD")


def test_a_refunded_top_up_already_spent_never_takes_the_wallet_below_zero(
    app: Flask, client: FlaskClient, signed_in_user: User, db_session: Session
) -> None:
    intent_id = _start_topup(client, "10")
    _pay_in_browser(intent_id)
    assert _webhook(app, intent_id).status_code == 200
    pay_from_wallet(db_session, signed_in_user, Money(700, "USD"), reference="spent-it")
    db_session.commit()

    response = _refund_in_dashboard(app, intent_id, 1000)

    assert response.status_code == 200
    # What the wallet could not give back is said (and logged for an operator).
    assert "7.00 USD already spent" in response.get_json()["topup"]
    assert _balance(db_session, signed_in_user) == Money(0, "USD")


@pytest.mark.parametrize(
    ("currency", "amount", "expected", "message"),
    [
        ("KWD", Decimal("12.340"), Money(12340, "KWD"), None),
        ("KWD", Decimal("12.345"), None, r"steps of 0\.010: enter 12\.340 or 12\.350\."),
        ("BHD", Decimal("0.005"), None, r"steps of 0\.010: enter 0\.010\."),
        ("USD", Decimal("12.34"), Money(1234, "USD"), None),
        ("JPY", Decimal("1235"), Money(1235, "JPY"), None),
    ],
)
def test_a_card_top_up_is_asked_in_the_steps_a_card_can_be_charged_in(
    currency: str, amount: Decimal, expected: Money | None, message: str | None
) -> None:
    """Stripe charges three-decimal currencies only in steps of 10 minor units: the shopper is
    told the nearest amounts before any card is asked for, not refused by Stripe after."""
    user = User(username="steps", email="steps@example.com", wallet_currency=currency)
    if message is None:
        assert topup_amount(user, amount) == expected
    else:
        with pytest.raises(WalletError, match=message):
            topup_amount(user, amount)


@pytest.mark.parametrize(
    ("currency", "amount", "message"),
    [
        ("USD", Decimal("12.345"), "Enter an amount in USD with at most 2 decimal places."),
        ("KWD", Decimal("12.3456"), "Enter an amount in KWD with at most 3 decimal places."),
        ("JPY", Decimal("1235.5"), "Enter a whole number of JPY: JPY amounts have no decimals."),
    ],
)
def test_a_top_up_with_too_many_decimals_says_how_many_the_currency_has(
    currency: str, amount: Decimal, message: str
) -> None:
    user = User(username="places", email="places@example.com", wallet_currency=currency)
    with pytest.raises(WalletError) as refused:
        topup_amount(user, amount)
    assert str(refused.value) == message


def test_a_top_up_in_an_isk_wallet_charges_and_credits_the_kronur_typed(
    app: Flask, client: FlaskClient, signed_in_user: User, db_session: Session
) -> None:
    """Stripe takes ISK as two-decimal values ending in 00 (docs.stripe.com/currencies, special
    cases): 500 ISK is an `amount` of 50000 there, and the wallet gets 500 ISK for it, not 5 ISK
    charged for 500 credited. A refund of 100 ISK in the dashboard takes 100 ISK back."""
    signed_in_user.wallet_currency = "ISK"
    db_session.commit()
    intent_id = _start_topup(client, "500")
    assert int(stripe_client().v1.payment_intents.retrieve(intent_id).amount) == 50_000

    _pay_in_browser(intent_id)
    assert _webhook(app, intent_id).status_code == 200
    assert _balance(db_session, signed_in_user) == Money(500, "ISK")

    assert _refund_in_dashboard(app, intent_id, 10_000).status_code == 200
    assert _balance(db_session, signed_in_user) == Money(400, "ISK")

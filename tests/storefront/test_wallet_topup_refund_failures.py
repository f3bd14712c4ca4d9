"""A refund of a top-up that Stripe later reports failed (a closed card): the wallet took it back
when Stripe accepted it, the card got nothing, so the wallet gets it back, once; and a refund that
failed before its take-back ran is never taken. Against localstripe, with Stripe's events signed
and posted; localstripe cannot fail a refund, so the client the webhook asks reports the chosen
refunds failed (everything else is localstripe's)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.dispute_models import PaymentDispute
from commerce.models import User
from onecart.money import Money
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


class _StripeFailsRefunds:
    """localstripe's client, except that the refunds in `failed` read `failed` when retrieved;
    listed, they read `failed` too unless `stale_list` (Stripe's list answered before the
    failure)."""

    def __init__(self) -> None:
        self.client = stripe_client()
        self.failed: set[str] = set()
        self.stale_list = False
        self.v1 = SimpleNamespace(
            payment_intents=self.client.v1.payment_intents,
            charges=self.client.v1.charges,
            refunds=SimpleNamespace(retrieve=self._retrieve, list=self._list),
        )

    def _mark(self, refund: Any) -> Any:
        if refund.id in self.failed:
            refund["status"] = "failed"
            refund["failure_reason"] = "expired_or_canceled_card"
        return refund

    def _retrieve(self, refund_id: str, *args: Any, **kwargs: Any) -> Any:
        return self._mark(self.client.v1.refunds.retrieve(refund_id, *args, **kwargs))

    def _list(self, *args: Any, **kwargs: Any) -> Any:
        listing = self.client.v1.refunds.list(*args, **kwargs)
        if not self.stale_list:
            for refund in listing.data:
                self._mark(refund)
        return listing


@pytest.fixture
def stripe_side(monkeypatch: pytest.MonkeyPatch) -> _StripeFailsRefunds:
    side = _StripeFailsRefunds()
    monkeypatch.setattr(
        "storefront.webhooks.routes.stripe_client_from_settings", lambda settings: side
    )
    return side


def _refund_failed(app: Flask, intent_id: str, refund_id: str) -> Any:
    """Stripe's charge.refund.updated for a refund that failed (the event's object; the shop asks
    Stripe for the refund itself)."""
    refund = stripe_client().v1.refunds.retrieve(refund_id).to_dict()
    refund.update(status="failed", failure_reason="expired_or_canceled_card")
    refund["payment_intent"] = intent_id
    return post_event(app, "charge.refund.updated", refund)


def _refunds(intent_id: str) -> list[str]:
    listing = stripe_client().v1.refunds.list(params={"payment_intent": intent_id})
    return [str(refund.id) for refund in sorted(listing.data, key=lambda r: r.created)]


def test_a_top_up_refund_that_fails_after_it_was_taken_back_is_given_back_once(
    app: Flask,
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
    stripe_side: _StripeFailsRefunds,
) -> None:
    intent_id = _start_topup(client, "30")
    _pay_in_browser(intent_id)
    assert _webhook(app, intent_id).status_code == 200
    assert _refund_in_dashboard(app, intent_id, 1200).status_code == 200
    assert _balance(db_session, signed_in_user) == Money(1800, "USD")
    [refund_id] = _refunds(intent_id)

    stripe_side.failed.add(refund_id)
    response = _refund_failed(app, intent_id, refund_id)

    assert response.status_code == 200, response.get_data(as_text=True)
    assert _balance(db_session, signed_in_user) == Money(3000, "USD")
    # Told again, and a later refund of the same top-up: the failed one counts for nothing.
    assert _refund_failed(app, intent_id, refund_id).status_code == 200
    assert _refund_in_dashboard(app, intent_id, 500).status_code == 200
    assert _balance(db_session, signed_in_user) == Money(2500, "USD")


def test_a_top_up_refund_that_failed_before_its_take_back_ran_is_never_taken(
    app: Flask,
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
    stripe_side: _StripeFailsRefunds,
) -> None:
    intent_id = _start_topup(client, "30")
    _pay_in_browser(intent_id)
    assert _webhook(app, intent_id).status_code == 200
    stripe_client().v1.refunds.create(params={"payment_intent": intent_id, "amount": 1200})
    [refund_id] = _refunds(intent_id)
    stripe_side.failed.add(refund_id)
    assert _refund_failed(app, intent_id, refund_id).status_code == 200
    assert _balance(db_session, signed_in_user) == Money(3000, "USD")

    # charge.refunded comes late, from a list Stripe answered before the refund failed.
    stripe_side.stale_list = True
    charge = stripe_client().v1.payment_intents.retrieve(
        intent_id, params={"expand": ["latest_charge"]}
    )
    response = post_event(app, "charge.refunded", charge.latest_charge.to_dict())

    assert response.status_code == 200
    assert _balance(db_session, signed_in_user) == Money(3000, "USD")


def test_a_refund_stripe_still_reports_succeeded_is_not_given_back(
    app: Flask,
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
    stripe_side: _StripeFailsRefunds,
) -> None:
    """The event is signed, but the shop asks Stripe: a refund Stripe reads succeeded stays
    taken back."""
    intent_id = _start_topup(client, "30")
    _pay_in_browser(intent_id)
    assert _webhook(app, intent_id).status_code == 200
    assert _refund_in_dashboard(app, intent_id, 1200).status_code == 200
    [refund_id] = _refunds(intent_id)

    assert _refund_failed(app, intent_id, refund_id).status_code == 200

    assert _balance(db_session, signed_in_user) == Money(1800, "USD")


def _held_and_refunded_in_full(app: Flask, client: FlaskClient) -> tuple[str, dict[str, Any], str]:
    """A 30 top-up (beside a 50 one) disputed in full and held, then refunded in full in the
    dashboard: the hold stands in for the refund, which takes nothing more from the wallet."""
    intent_id = _start_topup(client, "30")
    _pay_in_browser(intent_id)
    assert _webhook(app, intent_id).status_code == 200
    other = _start_topup(client, "50")
    _pay_in_browser(other)
    assert _webhook(app, other).status_code == 200
    opened = dispute_object(
        new_dispute_id(),
        charge=charge_of(intent_id),
        intent=intent_id,
        amount=3000,
        status="needs_response",
    )
    assert post_event(app, "charge.dispute.created", opened).status_code == 200
    assert _refund_in_dashboard(app, intent_id, 3000).status_code == 200
    [refund_id] = _refunds(intent_id)
    return intent_id, opened, refund_id


def _covered(db_session: Session, dispute_id: str) -> int:
    db_session.expire_all()
    row = db_session.scalar(
        sa.select(PaymentDispute).where(PaymentDispute.dispute_id == dispute_id)
    )
    assert row is not None
    return row.wallet_refund_covered_minor


def test_a_failed_refund_a_hold_stood_in_for_is_held_again_and_a_won_dispute_gives_it_back(
    app: Flask,
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
    stripe_side: _StripeFailsRefunds,
) -> None:
    """The card got nothing by the refund, so the hold stands for the chargeback alone again:
    won, the whole 30 comes back (it gave back nothing: the hold kept the 30 as the refund's)."""
    intent_id, opened, refund_id = _held_and_refunded_in_full(app, client)
    assert _balance(db_session, signed_in_user) == Money(5000, "USD")
    assert _covered(db_session, opened["id"]) == 3000

    stripe_side.failed.add(refund_id)
    assert _refund_failed(app, intent_id, refund_id).status_code == 200
    assert _refund_failed(app, intent_id, refund_id).status_code == 200  # told twice

    assert _balance(db_session, signed_in_user) == Money(5000, "USD")  # still held
    closed = {**opened, "status": "won"}
    assert post_event(app, "charge.dispute.closed", closed).status_code == 200
    assert _balance(db_session, signed_in_user) == Money(8000, "USD")
    assert _covered(db_session, opened["id"]) == 0


def test_a_failed_refund_a_released_hold_stood_in_for_is_given_back_to_the_wallet_once(
    app: Flask,
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
    stripe_side: _StripeFailsRefunds,
) -> None:
    """The dispute was won before the refund failed: its release kept the 30 the refund was
    to give the card; the card got nothing, so the wallet gets the 30 now (it gave back nothing:
    only what the take-back took, 0, came back)."""
    intent_id, opened, refund_id = _held_and_refunded_in_full(app, client)
    assert post_event(app, "charge.dispute.closed", {**opened, "status": "won"}).status_code == 200
    assert _balance(db_session, signed_in_user) == Money(5000, "USD")

    stripe_side.failed.add(refund_id)
    response = _refund_failed(app, intent_id, refund_id)
    assert _refund_failed(app, intent_id, refund_id).status_code == 200  # told twice

    assert response.status_code == 200, response.get_data(as_text=True)
    assert "30.00 USD given back" in response.get_json()["topup"]
    assert _balance(db_session, signed_in_user) == Money(8000, "USD")
    assert _covered(db_session, opened["id"]) == 0


def test_a_failed_refund_a_hold_stood_in_for_gives_nothing_back_once_the_dispute_is_lost(
    app: Flask,
    client: FlaskClient,
    signed_in_user: User,
    db_session: Session,
    stripe_side: _StripeFailsRefunds,
) -> None:
    """Lost, the card got the 30 back by the chargeback, which the hold paid: the failed refund
    gave it nothing more, and the wallet nothing back."""
    intent_id, opened, refund_id = _held_and_refunded_in_full(app, client)
    assert post_event(app, "charge.dispute.closed", {**opened, "status": "lost"}).status_code == 200

    stripe_side.failed.add(refund_id)
    assert _refund_failed(app, intent_id, refund_id).status_code == 200

    assert _balance(db_session, signed_in_user) == Money(5000, "USD")
    assert _covered(db_session, opened["id"]) == 0

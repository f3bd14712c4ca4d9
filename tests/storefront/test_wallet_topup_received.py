"""A top-up credits what Stripe says it received, never the amount asked on trust: a PaymentIntent
reported `succeeded` with `amount_received` 0 (or short of the amount) credited the amount asked.
Pure logic of the credit against a real database, with Stripe's own client reading canned
replies (localstripe always receives what is asked, so it cannot show this); the top-up's happy
path against localstripe is tests/storefront/test_wallet_topup.py."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
import stripe
from sqlalchemy.orm import Session

from commerce.models import User, WalletEntry
from commerce.payments.gateway import PaymentError, PaymentUnavailable
from commerce.wallet import wallet_balance
from commerce.wallet_topup import TOPUP_PURPOSE, TopUpState, credit_card_topup
from onecart.money import Money


class CannedIntent(stripe.HTTPClient):
    """Answers every request with one PaymentIntent, and keeps what was asked."""

    name = "canned-intent"

    def __init__(self, intent: dict[str, Any]) -> None:
        super().__init__()
        self.body = json.dumps(intent)
        self.sent: list[tuple[str, str]] = []

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None
    ) -> tuple[str, int, dict[str, str]]:
        self.sent.append((method, url))
        return self.body, 200, {"request-id": "req_canned"}

    def close(self) -> None:
        # Nothing is held open: the reply is in memory.
        self.sent.clear()


def _client(user: User, *, received: int | None, charge: dict[str, Any] | None = None) -> Any:
    intent: dict[str, Any] = {
        "id": "pi_topupcanned",
        "object": "payment_intent",
        "status": "succeeded",
        "amount": 1000,
        "currency": "usd",
        "metadata": {"onecart_purpose": TOPUP_PURPOSE, "onecart_user_id": str(user.id)},
        "latest_charge": charge,
    }
    if received is not None:
        intent["amount_received"] = received
    return stripe.StripeClient(
        "sk_test_canned", http_client=CannedIntent(intent), max_network_retries=0
    )


def _charge(*, captured: int | None, refunded: int = 0) -> dict[str, Any]:
    """The intent's charge as Stripe expands it; localstripe keeps no `amount_captured`."""
    charge: dict[str, Any] = {
        "id": "ch_topupcanned",
        "object": "charge",
        "amount": 1000,
        "amount_refunded": refunded,
        "captured": True,
        "currency": "usd",
    }
    if captured is not None:
        charge["amount_captured"] = captured
    return charge


def _lines(db_session: Session, user: User) -> list[int]:
    db_session.expire_all()
    return list(
        db_session.scalars(
            sa.select(WalletEntry.amount_minor).where(WalletEntry.user_id == user.id)
        )
    )


@pytest.mark.parametrize(
    ("received", "charge", "credited"),
    [
        (1000, None, 1000),
        (700, None, 700),
        # localstripe's shape: no amount_received, the charge captured in full (a refund made
        # outside OneCart later is taken back on its own event, not left out here).
        (None, _charge(captured=None, refunded=300), 1000),
        (None, _charge(captured=600), 600),
    ],
    ids=["all", "short", "charge-captured", "charge-amount-captured"],
)
def test_a_top_up_credits_what_stripe_received(
    db_session: Session,
    make_user: Callable[..., User],
    caplog: pytest.LogCaptureFixture,
    received: int | None,
    charge: dict[str, Any] | None,
    credited: int,
) -> None:
    user = make_user()
    with caplog.at_level(logging.ERROR, logger="commerce.wallet_topup"):
        outcome = credit_card_topup(
            db_session, _client(user, received=received, charge=charge), "pi_topupcanned"
        )
        db_session.commit()
    assert outcome.state == TopUpState.CREDITED
    assert outcome.amount == Money(credited, "USD")
    assert _lines(db_session, user) == [credited]
    assert wallet_balance(db_session, user) == Money(credited, "USD")
    # A top-up that received less than was asked is an operator's to look at (once).
    assert ("received" in caplog.text) == (credited != 1000)


def test_a_top_up_stripe_received_nothing_of_credits_nothing(
    db_session: Session, make_user: Callable[..., User], caplog: pytest.LogCaptureFixture
) -> None:
    user = make_user()
    with (
        caplog.at_level(logging.ERROR, logger="commerce.wallet_topup"),
        pytest.raises(PaymentError) as refused,
    ):
        credit_card_topup(db_session, _client(user, received=0), "pi_topupcanned")
    assert not isinstance(refused.value, PaymentUnavailable)
    db_session.rollback()
    assert _lines(db_session, user) == []
    assert "received nothing" in caplog.text


def test_a_top_up_whose_received_amount_stripe_does_not_say_is_not_credited_yet(
    db_session: Session, make_user: Callable[..., User]
) -> None:
    """No `amount_received` and no charge to read it from: unknown, so nothing is credited and
    the webhook's redelivery (or the shopper's next visit) asks again."""
    user = make_user()
    with pytest.raises(PaymentUnavailable):
        credit_card_topup(db_session, _client(user, received=None), "pi_topupcanned")
    db_session.rollback()
    assert _lines(db_session, user) == []

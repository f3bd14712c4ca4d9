"""Wallet top-ups: a real card payment outside sandbox mode, a free top-up only inside it.

Outside sandbox mode a top-up is a Stripe PaymentIntent (automatic capture) created for the
amount the shopper typed and tagged with who it is for. The browser confirms it with Stripe.js;
the wallet is credited only once Stripe says the PaymentIntent *succeeded*, with what Stripe
says it received (never the amount asked on trust, never more than it): on the
`payment_intent.succeeded` webhook and when the shopper comes back from Stripe, both of which
call :func:`credit_card_topup`, which asks Stripe for the PaymentIntent itself instead of trusting
what it was handed. The ledger line's reference is the PaymentIntent id and (kind, reference) is
unique, so however often and however concurrently it is called, one PaymentIntent credits once.

A refund of a top-up made outside OneCart (the Stripe dashboard) is taken back from the wallet
by commerce.topup_refunds.

Stripe is asked before anything is written, never while a lock is held: on SQLite any write
holds the whole database's write lock, on PostgreSQL the wallet's row lock, until the commit, and
a slow Stripe answer would stall every other writer (checkouts, other webhooks) meanwhile. So each
function reads Stripe first, then writes, and re-checks under the wallet's lock what the wallet
did since Stripe answered (the lines keyed by refund, the dispute holds).

In sandbox mode (settings.sandbox_enabled: development, or ONECART_SANDBOX_MODE=true) the old
free top-up remains for demos, and its ledger line says that no payment was taken.
Services flush; the caller commits.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import stripe
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from commerce.models import User, WalletEntryKind
from commerce.payments.gateway import (
    PaymentDeclined,
    PaymentError,
    PaymentUnavailable,
    card_amount_step,
    from_stripe_amount,
    to_stripe_amount,
)
from commerce.payments.stripe_replies import captured_on_record
from commerce.wallet import (
    TopUpReceipt,
    WalletError,
    check_topup_limit,
    record_wallet_entry,
    top_up,
    topup_minor_units,
)
from onecart.money import Money, from_minor_units

logger = logging.getLogger(__name__)

TOPUP_PURPOSE = "wallet_topup"
CARD_TOPUP_DESCRIPTION = "Top-up (card payment)"
# The wallet line's reference (unique per kind: written once); the admin's ledger names a line's
# cause by it (commerce.wallet_admin).
CARD_TOPUP_REFERENCE_PREFIX = "stripe-topup-"


class TopUpState(enum.StrEnum):
    """Where a card top-up stands, as the shopper is told."""

    CREDITED = "credited"
    PENDING = "pending"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CardTopUp:
    """A PaymentIntent waiting for the browser: its id and the client secret Stripe.js needs."""

    intent_id: str
    client_secret: str
    amount: Money


@dataclass(frozen=True, slots=True)
class TopUpOutcome:
    """What :func:`credit_card_topup` found; `created` is False when it was credited before."""

    state: TopUpState
    amount: Money | None = None
    created: bool = False


def stripe_failure(exc: stripe.StripeError, action: str) -> PaymentError:
    if isinstance(exc, stripe.CardError | stripe.InvalidRequestError):
        return PaymentDeclined(f"The card payment could not be {action}: {exc.user_message}")
    return PaymentUnavailable(f"The card payment service is unavailable ({action}).")


def topup_amount(user: User, amount: Decimal) -> Money:
    """The top-up amount in the wallet currency, checked: positive, exact, at most the limit,
    and in the steps a card can be charged in (Stripe takes BHD, JOD, KWD, OMR and TND only in
    steps of 10 minor units, so 12.345 KWD would be refused after the shopper entered a card)."""
    currency = user.wallet_currency
    minor = topup_minor_units(amount, currency)
    step = card_amount_step(currency)
    if minor % step:
        lower = minor - minor % step
        nearest = [from_minor_units(m, currency) for m in (lower, lower + step) if m > 0]
        raise WalletError(
            f"Cards are charged in {currency} in steps of {from_minor_units(step, currency)}: "
            f"enter {' or '.join(str(amount) for amount in nearest)}."
        )
    check_topup_limit(minor, currency)
    return Money(minor, currency)


def sandbox_top_up(
    session: Session, user: User, amount: Decimal, *, reference: str, sandbox_mode: bool
) -> TopUpReceipt:
    """The free demo top-up; refused (WalletError) unless sandbox mode is on."""
    if not sandbox_mode:
        raise WalletError("Top-ups are paid by card; free top-ups exist only in sandbox mode.")
    return top_up(session, user, amount, reference=reference)


def start_card_topup(
    client: stripe.StripeClient, user: User, amount: Decimal, *, reference: str
) -> CardTopUp:
    """Create the PaymentIntent for a top-up form (the same form reference reuses the same
    intent: the idempotency key is derived from it). Nothing is credited here."""
    money = topup_amount(user, amount)
    try:
        intent = client.v1.payment_intents.create(
            params={
                "amount": to_stripe_amount(money.minor, money.currency),
                "currency": money.currency.lower(),
                "payment_method_types": ["card"],
                "capture_method": "automatic",
                "metadata": {
                    "onecart_purpose": TOPUP_PURPOSE,
                    "onecart_user_id": str(user.id),
                    "onecart_topup_reference": reference,
                },
            },
            options={"idempotency_key": f"wallet-topup-{user.id}-{reference}"},
        )
    except stripe.StripeError as exc:
        raise stripe_failure(exc, "prepared") from exc
    return CardTopUp(
        intent_id=str(intent.id), client_secret=str(intent.client_secret), amount=money
    )


def intent_metadata(intent: Any) -> dict[str, Any]:
    metadata = getattr(intent, "metadata", None)
    return metadata.to_dict() if metadata is not None and hasattr(metadata, "to_dict") else {}


def is_topup_intent(data: Any) -> bool:
    """True when a PaymentIntent (or a webhook's object) is a wallet top-up."""
    metadata = data.get("metadata") if isinstance(data, dict) else None
    return isinstance(metadata, dict) and metadata.get("onecart_purpose") == TOPUP_PURPOSE


def topup_client_secret(client: stripe.StripeClient, user: User, intent_id: str) -> CardTopUp:
    """The client secret of `user`'s own top-up intent (for the payment page); PaymentError when
    the intent is not theirs or not a top-up."""
    intent = retrieve_intent(client, intent_id)
    _check_owner(intent, user)
    currency = str(intent.currency).upper()
    return CardTopUp(
        intent_id=str(intent.id),
        client_secret=str(intent.client_secret),
        amount=Money(from_stripe_amount(intent.amount, currency), currency),
    )


def retrieve_intent(client: stripe.StripeClient, intent_id: str) -> Any:
    if not intent_id.startswith("pi_") or len(intent_id) > 255:
        raise PaymentError("That is not a card payment of this shop.")
    try:
        # The charge expanded: what was received is read from it when the intent does not say.
        return client.v1.payment_intents.retrieve(intent_id, params={"expand": ["latest_charge"]})
    except stripe.StripeError as exc:
        raise stripe_failure(exc, "looked up") from exc


def _received(intent: Any) -> int:
    """What Stripe says it received of a succeeded top-up, in Stripe's units
    (stripe_replies.captured_on_record). A top-up is captured at once, in full or not at all,
    so a refund of the charge later is not subtracted: its own event takes it back.
    PaymentUnavailable when Stripe's record says nothing: nothing is credited, the webhook's
    redelivery asks again."""
    received = captured_on_record(intent.to_dict(), refunds_are_the_released_rest=False)
    if received is None:
        raise PaymentUnavailable(
            "The card payment service did not say how much of this top-up it received; "
            "nothing was credited yet."
        )
    return received


def _check_owner(intent: Any, user: User) -> None:
    metadata = intent_metadata(intent)
    if metadata.get("onecart_purpose") != TOPUP_PURPOSE or metadata.get("onecart_user_id") != str(
        user.id
    ):
        raise PaymentError("That is not one of your wallet top-ups.")


def topup_account(session: Session, metadata: Mapping[str, Any]) -> User:
    """The account a top-up's PaymentIntent metadata names (ASCII digits only, bounded before
    `int`); PaymentError when it names none of this shop's."""
    user_id = str(metadata.get("onecart_user_id") or "")
    user = (
        session.get(User, int(user_id))
        if user_id.isascii() and user_id.isdigit() and len(user_id) < 19
        else None
    )
    if user is None:
        raise PaymentError("The top-up names no account of this shop.")
    return user


def card_topup_reference(intent_id: str) -> str:
    """The wallet line that credits the card top-up paid by PaymentIntent `intent_id`."""
    return f"{CARD_TOPUP_REFERENCE_PREFIX}{intent_id}"


def credit_card_topup(
    session: Session, client: stripe.StripeClient, intent_id: str, *, user: User | None = None
) -> TopUpOutcome:
    """Credit the wallet for a top-up PaymentIntent once Stripe says it succeeded.

    The PaymentIntent is retrieved from Stripe (never taken from the caller); with `user`, it must
    be that user's. Idempotent and safe to race: the ledger line's reference is the intent id.
    Stripe is asked before anything is written, so the caller must hold no lock of its own here.
    Raises PaymentError (PaymentUnavailable when Stripe cannot be reached: nothing is credited,
    the webhook's retry or the shopper's next visit tries again).
    """
    return credit_retrieved_topup(session, retrieve_intent(client, intent_id), user)[0]


def credit_retrieved_topup(
    session: Session, intent: Any, user: User | None
) -> tuple[TopUpOutcome, User]:
    """:func:`credit_card_topup` on the PaymentIntent Stripe answered (asks Stripe nothing), and
    the account it credits."""
    metadata = intent_metadata(intent)
    if metadata.get("onecart_purpose") != TOPUP_PURPOSE:
        raise PaymentError("That is not a wallet top-up.")
    if user is not None:
        _check_owner(intent, user)
    else:
        user = topup_account(session, metadata)
    status = str(intent.status)
    if status != "succeeded":
        failed = status in ("canceled", "requires_payment_method")
        return TopUpOutcome(TopUpState.FAILED if failed else TopUpState.PENDING), user
    currency = str(intent.currency).upper()
    asked = Money(from_stripe_amount(int(intent.amount), currency), currency)
    # What Stripe received, never the amount asked on trust (and never more than asked).
    amount = Money(
        from_stripe_amount(min(int(intent.amount), _received(intent)), currency), currency
    )
    if amount.currency != user.wallet_currency:
        # Cannot happen for intents we created; an operator must look at it rather than guess.
        logger.error("top-up %s in %s for a %s wallet", intent.id, amount, user.wallet_currency)
        raise PaymentError("This top-up is in another currency than your wallet.")
    if amount.minor <= 0:
        # "Succeeded" with nothing received: no credit, and an operator looks (as for a
        # capture Stripe reports for another amount than asked).
        logger.error(
            "top-up %s of user %s: succeeded, but Stripe received nothing of %s",
            intent.id,
            user.id,
            asked,
        )
        raise PaymentError(
            "Your card payment service reports this top-up paid but received nothing, so "
            "nothing was added to your wallet; our team will look into it."
        )
    try:
        with session.begin_nested():
            receipt = record_wallet_entry(
                session,
                user,
                kind=WalletEntryKind.TOPUP,
                amount=amount,
                reference=card_topup_reference(intent.id),
                description=CARD_TOPUP_DESCRIPTION,
            )
    except IntegrityError:  # a concurrent call credited it a moment ago
        return TopUpOutcome(TopUpState.CREDITED, amount=amount, created=False), user
    if receipt.created and amount != asked:
        # Stripe's figure is what the wallet gets; the shortfall is an operator's to look at
        # (the shopper typed more), once: not at every event or return visit.
        logger.error(
            "top-up %s of user %s: Stripe received %s of the %s asked; %s credited",
            intent.id,
            user.id,
            amount,
            asked,
            amount,
        )
    return TopUpOutcome(TopUpState.CREDITED, amount=amount, created=receipt.created), user

"""The card hold a checkout form brought, when its submit is refused: released at once.

Stripe.js confirms the form's PaymentIntent before the submit, so a submit refused (the total
changed, the cart was bought in another tab, the order could not be recorded for its stock) may
leave a hold no order will use. It is released there and then, under the shopper's checkout
lock, with the three outcomes of every money call; one whose release has no answer becomes a
hold in doubt that the sweeper resolves from Stripe's record (commerce.card_holds), not a hold
left for the unrecorded-hold sweep half an hour later.

Beside commerce.card_holds in the order lifecycle stack (payments and models only; the checkout
calls it). Its rows are keyed by their intent as unrecorded holds' are
(commerce.unrecorded_card_holds.intent_row_key).
"""

from __future__ import annotations

import logging
import time

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.card_holds import CHECKOUT_TOKEN_METADATA, ERROR_TEXT_LIMIT
from commerce.exactly_once_models import CardHoldInDoubt
from commerce.models import utc_now
from commerce.payments.gateway import (
    PaymentDeclined,
    PaymentError,
    PaymentGateway,
    ProviderPaymentState,
    ProviderStatus,
)
from commerce.provider_attempts import void_intent
from commerce.unrecorded_card_holds import intent_row_key
from onecart.money import Money, MoneyError

logger = logging.getLogger(__name__)

# The row of a form's hold whose release, when its submit was refused, had no answer.
REFUSED_FORM_KEY_PREFIX = "refused-form-"
# A processing intent is read again this many times, this far apart, before it is left in
# doubt for the sweeper (the shopper's refused submit waits for it: at most 1.5 s).
PENDING_REREADS = 3
PENDING_REREAD_S = 0.5


def release_form_hold(
    session_factory: sessionmaker[Session],
    gateway: PaymentGateway,
    *,
    user_id: int,
    validation_token: str,
    intent_id: str,
    shown_minor: int | None,
    currency: str,
) -> str:
    """Release, now, the PaymentIntent a form brought (Stripe.js confirmed it) when the submit is
    refused (or its order is paid from the wallet): no order uses it (the caller holds the
    shopper's checkout lock, and the form's order, if any, holds no card). What became of it:
    "released", "nothing held", "not this checkout's", or "in doubt".

    Three outcomes, as for every money call. An intent that holds money is cancelled; one still
    `processing` (it becomes a hold moments later) is read again for a moment first and then
    cancelled. A refused or unanswered cancel is not taken for a release: Stripe's record of
    the intent says whether it is cancelled. When neither the cancel nor the record
    answers (or the record still shows money held), the intent becomes a hold in doubt: the
    sweeper resolves it from Stripe's record within minutes, under this lock, and lists it for
    an operator while it cannot (/admin/attention); nothing is refunded on a guess.
    `shown_minor` and `currency`: the total the form showed, which its intent was made for
    (recorded when Stripe cannot be asked what the intent holds)."""
    amount = _shown_total(shown_minor, currency)
    try:
        state = gateway.retrieve(intent_id)
    except PaymentDeclined:
        return "nothing held"  # Stripe knows no such intent: a form's id, never checked
    except PaymentError as exc:
        _record_form_hold(
            session_factory, user_id, validation_token, intent_id, amount, exc.message
        )
        return "in doubt"
    if state.metadata.get(CHECKOUT_TOKEN_METADATA) != validation_token:
        return "not this checkout's"
    # Stripe answered: its amount is what the card holds. The form's total is the shopper's to
    # send (a tampered one is what refuses the submit), so it is recorded only when Stripe
    # cannot be asked.
    amount = _held(state, amount)
    for _ in range(PENDING_REREADS):
        if state.status != ProviderStatus.PENDING:
            break
        # Processing lasts moments for a card: asked again before the cancel is sent, since
        # Stripe may refuse to cancel a processing intent (the refusal would only move the
        # cancel's attempt on, commerce.provider_attempts, but leave the hold in doubt).
        time.sleep(PENDING_REREAD_S)
        try:
            state = gateway.retrieve(intent_id)
        except PaymentError as exc:
            _record_form_hold(
                session_factory, user_id, validation_token, intent_id, amount, exc.message
            )
            return "in doubt"
    if state.status == ProviderStatus.PENDING:
        _record_form_hold(
            session_factory, user_id, validation_token, intent_id, amount, "still processing"
        )
        return "in doubt"
    if state.status == ProviderStatus.CAPTURED:
        # Checkout never captures: money taken with no order, which the sweeper lists for an
        # operator to refund in Stripe (card_holds), never refunded here on a guess. Checked
        # after the re-reads too: a processing intent may be read again captured, and the
        # unrecorded-hold sweep lists only uncaptured holds, so unrecorded it is never seen.
        _record_form_hold(session_factory, user_id, validation_token, intent_id, amount, "captured")
        return "in doubt"
    if state.status != ProviderStatus.AUTHORIZED:
        return "nothing held"
    try:
        void_intent(session_factory, gateway, intent_id)
    except PaymentError as exc:
        logger.warning("release of %s after a refused submit: %s", intent_id, exc.message)
        try:
            state = gateway.retrieve(intent_id)
        except PaymentError as lookup:
            error = f"{exc.message}; then {lookup.message}"
        else:
            if state.status == ProviderStatus.CANCELED:
                return "released"
            if state.status == ProviderStatus.FAILED:
                return "nothing held"
            error = f"{exc.message} (Stripe: {state.status.value})"
        _record_form_hold(
            session_factory, user_id, validation_token, intent_id, _held(state, amount), error
        )
        return "in doubt"
    return "released"


def _record_form_hold(
    session_factory: sessionmaker[Session],
    user_id: int,
    validation_token: str,
    intent_id: str,
    amount: Money | None,
    error: str,
) -> None:
    """A hold in doubt for a form's intent whose release had no answer, keyed by the intent (a
    second refused submit of the form reopens the same row). A record that fails too is logged:
    the unrecorded-hold sweep still finds the hold, later."""
    key = intent_row_key(intent_id, prefix=REFUSED_FORM_KEY_PREFIX)
    try:
        with session_factory() as session, session.begin():
            row = session.scalar(
                sa.select(CardHoldInDoubt).where(CardHoldInDoubt.idempotency_key == key)
            )
            if row is None:
                session.add(
                    CardHoldInDoubt(
                        user_id=user_id,
                        validation_token=validation_token[:64],
                        idempotency_key=key,
                        intent_id=intent_id,
                        amount_minor=amount.minor if amount is not None else 0,
                        currency=amount.currency if amount is not None else "",
                        last_error=f"released after a refused submit: {error}"[:ERROR_TEXT_LIMIT],
                    )
                )
            else:
                row.created_at = utc_now()
                row.resolved_at = None
                row.resolution = None
                row.last_error = f"released after a refused submit: {error}"[:ERROR_TEXT_LIMIT]
    except Exception:
        logger.exception(
            "card hold %s of a refused submit could not be recorded; the unrecorded-hold sweep "
            "finds it",
            intent_id,
        )
        return
    logger.warning("card hold %s of a refused submit: release unknown, left in doubt", intent_id)


def _held(state: ProviderPaymentState, otherwise: Money | None) -> Money | None:
    """What Stripe's record says the intent is for, else `otherwise`."""
    if state.amount_minor <= 0:
        return otherwise
    try:
        return Money(state.amount_minor, state.currency)
    except MoneyError:
        return otherwise


def _shown_total(shown_minor: int | None, currency: str) -> Money | None:
    if shown_minor is None:
        return None
    try:
        return Money(shown_minor, currency)
    except MoneyError:
        return None

"""Card holds in doubt: an authorization whose outcome checkout could not learn is not a refusal.

When the card authorization at checkout ends in PaymentUnavailable (Stripe unreachable, or the
reply lost after the request was sent) Stripe may hold money on the card. Before the shopper is
told anything, Stripe is asked for the PaymentIntent: by its id when the browser confirmed it
(Stripe.js), else by the authorization's idempotency key, which the intent carries in its
metadata. Authorized → checkout goes on with it, as if the reply had arrived. Refused → declined.
Still unknown → a durable `CardHoldInDoubt` row, and the shopper is told the payment is being
checked (never "declined"); no order is written.

The sweeper then resolves every row from Stripe's record, under the shopper's checkout lock (so a
submit of the same form cannot be recording an order with that hold meanwhile): a hold an order
uses stays (a retried submit of the same form reuses the key, so Stripe returns the same intent);
any other hold is released. "No such intent" is trusted only long after the attempt, because
Stripe's search can lag its writes. A hold is therefore always either used or voided.

Sits beside settlement in the order lifecycle stack (payments and models only; the checkout and
the sweeper call it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.checkout_lock import CheckoutBusy, checkout_lock
from commerce.models import utc_now
from commerce.order_models import CardHoldInDoubt, Order, Payment
from commerce.payments.gateway import (
    Authorization,
    AuthorizationRequest,
    PaymentDeclined,
    PaymentError,
    PaymentGateway,
    PaymentUnavailable,
    ProviderPaymentState,
    ProviderStatus,
)

logger = logging.getLogger(__name__)

ERROR_TEXT_LIMIT = 500
# A checkout holds its shopper's lock for at most a few minutes; rows younger than this are left
# to it (a retried submit may still adopt the hold).
RESOLVE_AFTER = timedelta(minutes=2)
# Stripe's search can lag writes (about a minute, longer in an incident): "no intent with this
# key" is believed only this long after the attempt. An uncaptured hold lasts 7 days.
NOT_FOUND_TRUSTED_AFTER = timedelta(hours=1)
SWEEPER_LOCK_WAIT_S = 1.0

CardGatewayFactory = Callable[[], PaymentGateway]

IN_DOUBT_MESSAGE = (
    "We could not get an answer from the card payment service, so we are checking your payment "
    "with it. No order was placed yet: try again in a few minutes with the same page (you will "
    "not be charged twice). If a hold shows on your card without an order, it is released."
)


def resolve_authorization_in_doubt(
    gateway: PaymentGateway, request: AuthorizationRequest
) -> tuple[Authorization | None, bool]:
    """What Stripe holds for an authorization whose reply was not an answer: (the authorization
    when a PaymentIntent is authorized for this amount, whether any other hold remains for the
    sweeper). PaymentDeclined when Stripe refused it; (None, True) while it cannot be told."""
    if request.intent_id:
        # Adopting a browser-confirmed intent only reads it: asking again is the lookup.
        try:
            return gateway.authorize(request), False
        except PaymentUnavailable:
            return None, True
    try:
        states = gateway.find_authorizations(request.idempotency_key)
    except PaymentError as exc:
        logger.warning("authorization %s cannot be looked up: %s", request.idempotency_key, exc)
        return None, True
    usable = [
        state
        for state in states
        if state.status == ProviderStatus.AUTHORIZED
        and state.amount_minor == request.amount.minor
        and state.currency == request.amount.currency
    ]
    if usable:
        chosen = usable[0]
        authorization = Authorization(
            provider_reference=chosen.provider_reference,
            amount_minor=chosen.amount_minor,
            currency=chosen.currency,
            captured=False,
        )
        return authorization, any(
            state.status in (ProviderStatus.AUTHORIZED, ProviderStatus.PENDING)
            for state in states
            if state is not chosen
        )
    if states and all(
        state.status in (ProviderStatus.FAILED, ProviderStatus.CANCELED) for state in states
    ):
        raise PaymentDeclined("Your card was declined.")
    return None, True


def record_hold_in_doubt(
    session_factory: sessionmaker[Session],
    user_id: int,
    validation_token: str,
    request: AuthorizationRequest,
    error: str,
    *,
    intent_id: str | None = None,
) -> None:
    """Remember the authorization for the sweeper (once per key; a row already resolved is
    reopened, since the new attempt may have made a hold). `intent_id`: the PaymentIntent when
    it is known (else the request's browser-confirmed one, else found by the key)."""
    intent_id = intent_id or request.intent_id
    with session_factory() as session, session.begin():
        row = session.scalar(
            sa.select(CardHoldInDoubt).where(
                CardHoldInDoubt.idempotency_key == request.idempotency_key
            )
        )
        if row is None:
            session.add(
                CardHoldInDoubt(
                    user_id=user_id,
                    validation_token=validation_token,
                    idempotency_key=request.idempotency_key,
                    intent_id=intent_id,
                    amount_minor=request.amount.minor,
                    currency=request.amount.currency,
                    last_error=error[:ERROR_TEXT_LIMIT],
                )
            )
        else:
            row.intent_id = intent_id or row.intent_id
            row.created_at = utc_now()
            row.resolved_at = None
            row.resolution = None
            row.last_error = error[:ERROR_TEXT_LIMIT]


def resolve_holds_in_doubt(
    session_factory: sessionmaker[Session],
    gateway_factory: CardGatewayFactory,
    *,
    older_than: timedelta = RESOLVE_AFTER,
    not_found_after: timedelta = NOT_FOUND_TRUSTED_AFTER,
) -> int:
    """Resolve the open holds in doubt older than `older_than` from Stripe's record; returns how
    many were resolved. Each is handled under its shopper's checkout lock; a busy lock or an
    unreachable Stripe leaves the row for the next sweep."""
    with session_factory() as session:
        rows = session.execute(
            sa.select(CardHoldInDoubt.id, CardHoldInDoubt.user_id).where(
                CardHoldInDoubt.resolved_at.is_(None),
                CardHoldInDoubt.created_at < utc_now() - older_than,
            )
        ).all()
    if not rows:
        return 0
    gateway = gateway_factory()
    resolved = 0
    for row_id, user_id in rows:
        try:
            with checkout_lock(session_factory, user_id, wait_s=SWEEPER_LOCK_WAIT_S):
                resolved += _resolve_one(session_factory, gateway, row_id, not_found_after)
        except CheckoutBusy:
            continue
    return resolved


def _resolve_one(
    session_factory: sessionmaker[Session],
    gateway: PaymentGateway,
    row_id: int,
    not_found_after: timedelta,
) -> bool:
    with session_factory() as session:
        row = session.get(CardHoldInDoubt, row_id)
        if row is None or row.resolved_at is not None:
            return False
        intent_id, key, created_at = row.intent_id, row.idempotency_key, row.created_at
    try:
        states = [gateway.retrieve(intent_id)] if intent_id else gateway.find_authorizations(key)
    except PaymentError as exc:
        _note(session_factory, row_id, error=f"Stripe cannot be asked yet: {exc.message}")
        return False
    if not states:
        if created_at > utc_now() - not_found_after:
            return False
        _note(session_factory, row_id, resolution="Stripe holds no payment for it")
        return True
    outcomes: list[str] = []
    for state in states:
        outcome = _settle_hold(session_factory, gateway, row_id, state)
        if outcome is None:
            return False  # asked again at the next sweep (voids are idempotent)
        outcomes.append(outcome)
    _note(session_factory, row_id, resolution="; ".join(outcomes))
    return True


def _settle_hold(
    session_factory: sessionmaker[Session],
    gateway: PaymentGateway,
    row_id: int,
    state: ProviderPaymentState,
) -> str | None:
    """Keep or release one PaymentIntent; what became of it, or None while it cannot be."""
    reference = state.provider_reference
    order_number = _order_using(session_factory, state)
    if order_number is not None:
        return f"{reference} used by order {order_number}"
    if state.status == ProviderStatus.AUTHORIZED:
        try:
            gateway.void(reference)
        except PaymentError as exc:
            _note(session_factory, row_id, error=f"release of {reference} failed: {exc.message}")
            return None
        return f"{reference} released"
    if state.status == ProviderStatus.PENDING:
        return None
    if state.status == ProviderStatus.CAPTURED:
        # Never made by checkout (manual capture, captured only for an order): left open and
        # logged, so an operator refunds it.
        logger.error("card hold in doubt %s: %s captured without an order", row_id, reference)
        _note(session_factory, row_id, error=f"{reference} captured without an order")
        return None
    return f"{reference} holds nothing (Stripe: {state.status.value})"


def _order_using(session_factory: sessionmaker[Session], state: ProviderPaymentState) -> str | None:
    with session_factory() as session:
        return session.scalar(
            sa.select(Order.number)
            .join(Payment, Payment.order_id == Order.id)
            .where(Payment.provider_reference == state.provider_reference)
        )


def _note(
    session_factory: sessionmaker[Session],
    row_id: int,
    *,
    resolution: str | None = None,
    error: str | None = None,
) -> None:
    with session_factory() as session, session.begin():
        row = session.get(CardHoldInDoubt, row_id)
        assert row is not None
        if resolution is not None:
            row.resolution = resolution[:200]
            row.resolved_at = utc_now()
        if error is not None:
            row.last_error = error[:ERROR_TEXT_LIMIT]

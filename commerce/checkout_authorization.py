"""A checkout's card authorization, with its three outcomes: held, refused, unknown (resolved by
asking Stripe for the PaymentIntents this checkout made before anything is said).

The authorization's key names the form, card and amount, and Stripe replays the first answer to a
key for a day, refusals and its own 500s included (commerce.payments.stripe_gateway cites its
documentation). So the key sent carries an attempt number (`<key>-a<n>`, kept in
provider_call_attempts as `authorize-<key>`), moved on, compare-and-set, only when this attempt
is known to hold nothing:

- a decline: Stripe leaves the declined intent without a hold (`requires_payment_method`), or
  made none (a request it refused);
- an answer that was not one (a 500, a timeout) after which Stripe's search shows this attempt's
  own intent (its number is in the intent's metadata) holding nothing.

Otherwise the attempt is kept: its intent may hold the money (or may yet, while search lags), and
a new key would make a second hold. A hold found for the authorization is used, whichever
attempt made it; at most one attempt can hold, since the number moves on only past an attempt
that holds nothing. That includes an attempt whose hold was released after Stripe stored its
answer (a hold in doubt the sweeper released, a hold checkout gave back when its order could not
be written): the resend of the page gets the stored answer, which still says "held", so the
gateway asks Stripe for the intent as it is now (AuthorizationReleased), and the page's submit
goes on as the next attempt. A browser-confirmed intent (Stripe.js) is only read: no key, no
attempts.
"""

from __future__ import annotations

import dataclasses
import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.card_holds import record_hold_in_doubt, resolve_authorization_in_doubt
from commerce.payments.gateway import (
    Authorization,
    AuthorizationReleased,
    AuthorizationRequest,
    PaymentDeclined,
    PaymentGateway,
    PaymentUnavailable,
)
from commerce.provider_attempts import authorize_call, current_attempt, note_refused

logger = logging.getLogger(__name__)


def authorize_card(
    session_factory: sessionmaker[Session],
    gateway: PaymentGateway,
    request: AuthorizationRequest,
    *,
    user_id: int,
    validation_token: str,
) -> Authorization:
    """Hold the amount on the card. An answer that is not one (Stripe unreachable, a reply lost
    after sending, Stripe's stored 500) is resolved by asking Stripe for the PaymentIntents before
    anything is said: authorized → used; this attempt refused → PaymentDeclined; still unknown →
    PaymentUnavailable. A decline moves the attempt on, so a resubmit is answered afresh."""
    if not request.intent_id:
        request = dataclasses.replace(request, attempt=_current_attempt(session_factory, request))
    try:
        return _authorize_attempt(
            session_factory, gateway, request, user_id=user_id, validation_token=validation_token
        )
    except AuthorizationReleased:
        # The attempt's hold was released after Stripe stored its answer: it was moved on
        # (holding nothing, like a decline), and this submit is the next attempt's. Once: a
        # second replay means the move could not be recorded, and the shopper is told so.
        request = dataclasses.replace(request, attempt=_current_attempt(session_factory, request))
        return _authorize_attempt(
            session_factory, gateway, request, user_id=user_id, validation_token=validation_token
        )


def _authorize_attempt(
    session_factory: sessionmaker[Session],
    gateway: PaymentGateway,
    request: AuthorizationRequest,
    *,
    user_id: int,
    validation_token: str,
) -> Authorization:
    """One attempt of authorize_card (`request.attempt`)."""
    try:
        try:
            return gateway.authorize(request)
        except PaymentUnavailable as exc:
            logger.warning("card authorization %s in doubt: %s", request.idempotency_key, exc)
            authorization, others_held = resolve_authorization_in_doubt(gateway, request)
            if authorization is None:
                raise
            if others_held:
                # Another hold with this key (a retry after Stripe forgot it): the sweeper
                # releases every one no order uses.
                record_hold_in_doubt(session_factory, user_id, validation_token, request, str(exc))
            return authorization
    except PaymentDeclined as exc:
        if not request.intent_id:
            _move_on(session_factory, request, exc.message)
        raise


def _current_attempt(session_factory: sessionmaker[Session], request: AuthorizationRequest) -> int:
    """The attempt to send; 0 (the key as it was before attempts) when the database cannot say:
    at worst the stored answer to that key is replayed, never a second hold."""
    try:
        return current_attempt(session_factory, authorize_call(request.idempotency_key))
    except sa.exc.SQLAlchemyError:
        logger.warning("attempt of %s cannot be read; attempt 0 sent", request.idempotency_key)
        return 0


def _move_on(
    session_factory: sessionmaker[Session], request: AuthorizationRequest, why: str
) -> None:
    """This attempt holds nothing: the next submit is a new attempt. A database that cannot take
    it is logged, not raised over the decline (the resubmit then gets the stored answer)."""
    try:
        note_refused(session_factory, authorize_call(request.idempotency_key), request.attempt, why)
    except sa.exc.SQLAlchemyError:
        logger.warning("refusal of %s could not be recorded", request.idempotency_key)

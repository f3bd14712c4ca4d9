"""POST /webhooks/stripe: signature-verified, idempotent, harmless for unknown or replayed events."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

import stripe
from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue

from commerce.disputes import (
    DISPUTE_EVENT_TYPES,
    DisputeEventError,
    apply_dispute_event,
    dispute_facts,
)
from commerce.payments.gateway import PaymentError, PaymentUnavailable
from commerce.payments.stripe_gateway import stripe_client_from_settings
from commerce.payments.stripe_webhooks import REFUND_OBJECT_EVENTS, handle_stripe_event
from commerce.topup_refunds import take_back_refunded_topup, undo_failed_topup_refund
from commerce.wallet_topup import credit_card_topup, is_topup_intent
from onecart.money import Money
from onecart.settings import get_settings
from storefront.database import session_factory
from storefront.extensions import csrf

logger = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)
# Stripe signs the body; a CSRF token cannot exist for a server-to-server call.
csrf.exempt(bp)

MAX_WEBHOOK_BYTES = 512 * 1024


@bp.post("/webhooks/stripe")
def stripe_webhook() -> ResponseReturnValue:
    """Verify the Stripe-Signature header, then reconcile the event (see stripe_webhooks)."""
    payload = request.get_data(cache=False)
    if len(payload) > MAX_WEBHOOK_BYTES:
        return jsonify(error="payload too large"), 413
    signature = request.headers.get("Stripe-Signature")
    try:
        event = stripe.Webhook.construct_event(
            payload, signature, get_settings().stripe_webhook_secret
        )
    except (ValueError, stripe.SignatureVerificationError):
        return jsonify(error="invalid signature"), 400
    data = event.data.object
    data_dict = data.to_dict() if hasattr(data, "to_dict") else dict(data)
    topup: str | None = None
    if str(event.type) == "payment_intent.succeeded" and is_topup_intent(data_dict):
        try:
            topup = _credit_topup(str(data_dict.get("id") or ""))
        except PaymentUnavailable as exc:
            # Stripe retries a failed delivery: nothing was credited, the retry tries again.
            logger.warning("stripe event %s: top-up not credited yet: %s", event.id, exc.message)
            return jsonify(error="top-up not credited, retry later"), 503
        except PaymentError as exc:
            # Not ours to fix by retrying (another currency, no such account): an operator looks.
            topup = f"top-up refused: {exc.message}"
            logger.error("stripe event %s: %s", event.id, topup)
        logger.info("stripe event %s (%s): %s", event.id, event.type, topup)
    # A top-up refunded on the card, or a top-up refund Stripe reports failed: the wallet's side.
    refund_step: Callable[[], str | None] | None = None
    if str(event.type) == "charge.refunded" and isinstance(data_dict.get("payment_intent"), str):
        refund_step = partial(_take_back_topup_refunds, data_dict["payment_intent"])
    if (
        str(event.type) in REFUND_OBJECT_EVENTS
        and isinstance(data_dict.get("payment_intent"), str)
        and isinstance(data_dict.get("id"), str)
        and data_dict.get("status") in ("failed", "canceled")
    ):
        refund_step = partial(
            _undo_failed_topup_refund, data_dict["payment_intent"], data_dict["id"]
        )
    if refund_step is not None:
        try:
            topup = refund_step()
        except PaymentUnavailable as exc:
            logger.warning("stripe event %s: top-up refund not checked: %s", event.id, exc.message)
            return jsonify(error="top-up refund not checked, retry later"), 503
        except PaymentError as exc:
            topup = f"top-up refund not applied: {exc.message}"
            logger.error("stripe event %s: %s", event.id, topup)
        if topup is not None:
            logger.info("stripe event %s (%s): %s", event.id, event.type, topup)
    dispute: str | None = None
    if str(event.type) in DISPUTE_EVENT_TYPES:
        try:
            dispute = apply_dispute_event(
                session_factory(),
                dispute_facts(str(event.type), data_dict, getattr(event, "created", None)),
                stripe_client_from_settings(get_settings()),
            )
        except DisputeEventError as exc:
            # Signed by Stripe yet unreadable: acknowledged (a retry would not read better) and
            # logged for an operator; the event id is recorded below as handled.
            dispute = f"unreadable dispute: {exc}"
            logger.error("stripe event %s: %s", event.id, dispute)
        except PaymentUnavailable as exc:
            logger.warning("stripe event %s: dispute not recorded yet: %s", event.id, exc.message)
            return jsonify(error="dispute not recorded, retry later"), 503
        logger.info("stripe event %s (%s): %s", event.id, event.type, dispute)
    outcome = handle_stripe_event(session_factory(), str(event.id), str(event.type), data_dict)
    logger.info("stripe event %s (%s): %s", event.id, event.type, outcome)
    return jsonify(received=True, outcome=outcome, topup=topup, dispute=dispute)


def _credit_topup(intent_id: str) -> str:
    """Credit a wallet top-up the event reports (idempotent; Stripe is asked, not believed)."""
    with session_factory()() as session:
        outcome = credit_card_topup(session, stripe_client_from_settings(get_settings()), intent_id)
        session.commit()
    return f"wallet top-up {outcome.state}" + (" (credited now)" if outcome.created else "")


def _take_back_topup_refunds(intent_id: str) -> str | None:
    """A top-up refunded on the card (outside OneCart): the wallet gives it back (idempotent;
    Stripe is asked). None when the refunded payment is not a top-up."""
    with session_factory()() as session:
        refunds = take_back_refunded_topup(
            session, stripe_client_from_settings(get_settings()), intent_id
        )
        session.commit()
    if refunds is None:
        return None
    currency = refunds.refunded.currency
    text = f"top-up refunded {refunds.refunded}: {Money(refunds.taken, currency)} taken back"
    return text + (f", {Money(refunds.short, currency)} already spent" if refunds.short else "")


def _undo_failed_topup_refund(intent_id: str, refund_id: str) -> str | None:
    """A top-up's refund Stripe reports failed: the wallet gets back what it gave up for it
    (idempotent; Stripe is asked). None when it is no top-up's, or Stripe does not say failed."""
    with session_factory()() as session:
        returned = undo_failed_topup_refund(
            session, stripe_client_from_settings(get_settings()), intent_id, refund_id
        )
        session.commit()
    if returned is None:
        return None
    return f"top-up refund {refund_id} failed at Stripe: {returned} given back to the wallet"

"""Stripe webhook events reconciled against our payments.

Events are verified by the caller (stripe.Webhook.construct_event). Each event id is recorded
once, so a replay does nothing (an event whose handling failed is forgotten, so its redelivery
is applied); events for PaymentIntents we do not know, and event types we do
not handle, are acknowledged and recorded as ignored. What an event can change is limited to
finishing what our own code started (a capture or void whose outcome was not recorded, because
the worker died during the call) and noting a provider-side failure on the payment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from commerce.models import utc_now
from commerce.order_models import Payment, PaymentMethod, PaymentStatus, ProcessedWebhookEvent

logger = logging.getLogger(__name__)

HANDLED_EVENT_TYPES = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.canceled",
        "payment_intent.payment_failed",
        "payment_intent.amount_capturable_updated",
        "charge.refunded",
    }
)


# A capture or void we started whose outcome was not recorded.
IN_DOUBT = frozenset({PaymentStatus.CAPTURING, PaymentStatus.RECONCILING})


def _intent_id(event_type: str, data: Mapping[str, Any]) -> str | None:
    if event_type.startswith("payment_intent."):
        value = data.get("id")
    else:
        value = data.get("payment_intent")
    return value if isinstance(value, str) else None


def handle_stripe_event(
    session_factory: sessionmaker[Session], event_id: str, event_type: str, data: Mapping[str, Any]
) -> str:
    """Apply one verified event once; returns what happened (also stored with the event id).
    An event whose handling fails is not recorded, so its redelivery is applied."""
    try:
        with session_factory() as session, session.begin():
            session.add(
                ProcessedWebhookEvent(
                    event_id=event_id, event_type=event_type[:80], received_at=utc_now()
                )
            )
    except IntegrityError:
        return "replayed"
    try:
        outcome = _apply_event(session_factory, event_type, data)
    except BaseException:
        # Not applied: forget the event id, so Stripe's redelivery (it retries a failed
        # delivery) applies it instead of being taken for a replay of an event already handled.
        with session_factory() as session, session.begin():
            session.execute(
                sa.delete(ProcessedWebhookEvent).where(ProcessedWebhookEvent.event_id == event_id)
            )
        raise
    with session_factory() as session, session.begin():
        session.execute(
            sa.update(ProcessedWebhookEvent)
            .where(ProcessedWebhookEvent.event_id == event_id)
            .values(outcome=outcome[:200])
        )
    return outcome


def _apply_event(
    session_factory: sessionmaker[Session], event_type: str, data: Mapping[str, Any]
) -> str:
    """What one new event changes (see the module docstring); returns what happened."""
    from commerce.settlement import finish_settlement, reconcile_payment

    outcome = "ignored: unhandled type"
    if event_type in HANDLED_EVENT_TYPES:
        intent_id = _intent_id(event_type, data)
        with session_factory() as session:
            payment = (
                session.scalar(
                    sa.select(Payment).where(
                        Payment.provider_reference == intent_id,
                        Payment.method == PaymentMethod.STRIPE,
                    )
                )
                if intent_id
                else None
            )
            payment_id = payment.id if payment is not None else None
            status = payment.status if payment is not None else None
            meant_minor = payment.captured_minor if payment is not None else 0
        if payment_id is None:
            outcome = "ignored: unknown payment"
        elif event_type == "payment_intent.succeeded" and status in IN_DOUBT:
            finish_settlement(session_factory, payment_id, captured=True)
            outcome = "capture confirmed"
        elif event_type == "payment_intent.canceled" and status in IN_DOUBT and not meant_minor:
            finish_settlement(session_factory, payment_id, captured=False)
            outcome = "void confirmed"
        elif event_type == "payment_intent.canceled" and status in IN_DOUBT:
            # We meant to capture: the provider's own record decides (a hold that expired).
            reconcile_payment(session_factory, payment_id)
            outcome = "capture reconciled"
        elif event_type in ("payment_intent.canceled", "payment_intent.payment_failed") and (
            status == PaymentStatus.AUTHORIZED
        ):
            message = (
                str(
                    (data.get("last_payment_error") or {}).get("message")
                    if isinstance(data.get("last_payment_error"), Mapping)
                    else ""
                )
                or event_type
            )
            with session_factory() as session, session.begin():
                session.execute(
                    sa.update(Payment)
                    .where(Payment.id == payment_id)
                    .values(failure_message=f"Stripe: {message}"[:500])
                )
            outcome = "noted provider failure"
            logger.warning("payment %s: %s while authorized", payment_id, event_type)
        else:
            outcome = f"consistent ({status})"
    return outcome

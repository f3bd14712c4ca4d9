"""Stripe webhook events reconciled against our payments.

Events are verified by the caller (stripe.Webhook.construct_event). Each event id is recorded
once, so a replay does nothing (an event whose handling failed is forgotten, and one whose
delivery never finished has no outcome, so the redelivery of either is applied); events for
PaymentIntents we do not know, and event types we do not handle, are acknowledged and recorded
as ignored. What an event can change is limited to
finishing what our own code started (a capture or void whose outcome was not recorded, because
the worker died during the call; a refund whose reply was lost, looked up by our key) and
noting what only an operator can sort out: a provider-side failure on the payment, money
Stripe reports refunded beyond what OneCart refunded (a refund made in the Stripe dashboard), or
a refund of ours Stripe accepted and later reports failed (undone: the shopper got nothing).
Disputes (`charge.dispute.*`) are applied before, by commerce.disputes, and only recorded here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from commerce.exactly_once_models import ProcessedWebhookEvent
from commerce.models import utc_now
from commerce.notifications import notify_refund_failed
from commerce.order_locks import locked_payment
from commerce.order_models import (
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
)
from commerce.order_state import flag_order
from commerce.payments.gateway import (
    REFUND_KEY_METADATA,
    REFUND_REFERENCE_METADATA,
    from_stripe_amount,
)
from onecart.money import format_money

logger = logging.getLogger(__name__)

HANDLED_EVENT_TYPES = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.canceled",
        "payment_intent.payment_failed",
        "payment_intent.amount_capturable_updated",
        "charge.refunded",
        *("charge.refund.updated", "refund.updated", "refund.failed"),
    }
)
# A Refund object's events (Stripe sends charge.refund.updated, and refund.* on newer API
# versions): a refund Stripe accepted as `pending` can still fail days later (a closed card).
REFUND_OBJECT_EVENTS = frozenset({"charge.refund.updated", "refund.updated", "refund.failed"})


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
    An event whose handling fails is not recorded, so its redelivery is applied.

    The id is recorded before the event is applied and its outcome after. An id recorded with
    no outcome is an event whose delivery never finished: its process died while applying it
    (no handler ran, so the id was not forgotten) and Stripe, which got no answer, delivers it
    again; or, rarely, the first delivery is still running. Either way the redelivery applies
    it: every change an event makes is compare-and-set, so applying it twice is applying it
    once, while taking it for a replay would lose it for good (a refund Stripe failed would
    stay done)."""
    try:
        with session_factory() as session, session.begin():
            session.add(
                ProcessedWebhookEvent(
                    event_id=event_id, event_type=event_type[:80], received_at=utc_now()
                )
            )
    except IntegrityError:
        if _finished(session_factory, event_id):
            return "replayed"
        logger.warning("stripe event %s: an earlier delivery did not finish; applied", event_id)
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


def _finished(session_factory: sessionmaker[Session], event_id: str) -> bool:
    """Whether the recorded event was applied to the end (its outcome stored). A row gone since
    (its application failed and was forgotten) was not."""
    with session_factory() as session:
        outcome = session.scalar(
            sa.select(ProcessedWebhookEvent.outcome).where(
                ProcessedWebhookEvent.event_id == event_id
            )
        )
    return bool(outcome)


def _apply_event(
    session_factory: sessionmaker[Session], event_type: str, data: Mapping[str, Any]
) -> str:
    """What one new event changes (see the module docstring); returns what happened."""
    from commerce.settlement import finish_settlement, reconcile_payment

    outcome = "ignored: unhandled type"
    if event_type.startswith("charge.dispute."):
        # Applied before, by commerce.disputes (it may ask Stripe what the charge paid for).
        outcome = "dispute (see payment_disputes)"
    elif event_type in HANDLED_EVENT_TYPES:
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
            received = _reported_minor(data, "amount_received")
            if received is not None:
                # Stripe's own figure (the event is signed): a capture of another amount than
                # we asked is recorded as taken and flagged, as reconcile_payment does.
                finish_settlement(
                    session_factory, payment_id, captured=True, captured_minor=received
                )
                outcome = "capture confirmed"
            elif reconcile_payment(session_factory, payment_id):
                # Silent on the amount (localstripe's events): Stripe's record says, never the
                # amount merely asked for.
                outcome = "capture confirmed"
            else:
                outcome = "capture left to the sweeper"
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
        elif event_type == "charge.refunded":
            outcome = _refunds_reported(session_factory, payment_id, data)
        elif event_type in REFUND_OBJECT_EVENTS:
            outcome = _refund_update_reported(session_factory, payment_id, data)
        else:
            outcome = f"consistent ({status})"
    return outcome


def _reported_minor(data: Mapping[str, Any], field: str) -> int | None:
    """An amount of the event's object in ISO minor units of its currency (Stripe's own units
    differ for ISK and UGX)."""
    value, currency = data.get(field), data.get("currency")
    if not isinstance(value, int) or isinstance(value, bool) or not isinstance(currency, str):
        return None
    return from_stripe_amount(value, currency)


def _refunds_reported(
    session_factory: sessionmaker[Session], payment_id: int, data: Mapping[str, Any]
) -> str:
    """charge.refunded: Stripe reports money given back on a card payment of ours.

    Our refunds whose outcome is unknown (`processing`) are looked up now by our key: one Stripe
    holds is recorded done at once, rather than after the sweeper's wait (one it does not hold
    yet may still be in flight, so it is left to its worker and the sweeper). Then Stripe's
    total is compared with ours: what Stripe reports refunded beyond the part a partial capture
    left uncaptured and the card refunds OneCart sent was refunded outside OneCart (the Stripe
    dashboard). The books are not corrected from an event: the order goes on the operator's
    list."""
    from commerce.payments.providers import gateway_for_payment
    from commerce.refunds import SETTLED_CARD_STATUSES, reconcile_refund

    with session_factory() as session:
        processing = list(
            session.scalars(
                sa.select(Refund.id).where(
                    Refund.payment_id == payment_id, Refund.status == RefundStatus.PROCESSING
                )
            )
        )
    resolved = sum(
        1
        for refund_id in processing
        if reconcile_refund(
            session_factory, refund_id, gateway_for=gateway_for_payment, only_if_found=True
        )
    )
    reported = _reported_minor(data, "amount_refunded")
    if reported is None:
        return f"refunds looked up ({resolved} resolved)"
    with session_factory() as session, session.begin():
        payment = locked_payment(session, payment_id)
        if payment.status not in SETTLED_CARD_STATUSES:
            # A capture still in doubt: its reconciliation records what Stripe took.
            return f"refunds not compared ({payment.status})"
        captured = _reported_minor(data, "amount_captured")
        uncaptured = payment.amount_minor - (
            captured if captured is not None else payment.captured_minor
        )
        # A refund still `processing` may have happened: it counts as ours, never as outside.
        ours = sum(
            refund.amount_minor
            for refund in payment.refunds
            if refund.kind == RefundKind.CARD_REFUND
            and refund.status in (RefundStatus.SUCCEEDED, RefundStatus.PROCESSING)
        )
        outside = reported - max(uncaptured, 0) - ours
        if outside <= 0:
            return f"refunds consistent ({resolved} resolved)"
        currency = payment.currency
        flag_order(
            payment.order,
            f"Stripe reports {format_money(reported, currency)} refunded on the card, "
            f"{format_money(outside, currency)} more than OneCart refunded or released: a "
            "refund made outside OneCart (the Stripe dashboard?). Check the order's books and "
            "its marketplaces against Stripe.",
        )
    logger.error("payment %s: %s refunded outside OneCart", payment_id, outside)
    return f"refund outside OneCart ({outside}): order flagged"


def _refund_update_reported(
    session_factory: sessionmaker[Session], payment_id: int, data: Mapping[str, Any]
) -> str:
    """A Refund object changed at Stripe. One of ours recorded done (Stripe answered `pending`,
    which is as good as done until the bank refuses it) that Stripe now reports `failed` or
    `canceled` gave the shopper nothing: it is failed again (compare-and-set on `succeeded`),
    the order goes on the operator's list and the shopper is told. Never re-sent by itself: the
    card refused it, so another way of paying back is a person's call. A refund still in doubt
    (`processing`, or `pending` again after a look-up found none yet) is left to its look-up,
    which fails it the same way; the failed refund's id is kept, so a reply naming it does not
    make it done. A failure of another refund than the one recorded done undoes nothing."""
    from commerce.payments.stripe_replies import REFUND_FAILED_STATUSES
    from commerce.refunds import note_failure_reported, refresh_payment_status

    status = data.get("status")
    if status not in REFUND_FAILED_STATUSES:
        return f"refund update consistent ({status})"
    reference = data.get("id")
    metadata = data.get("metadata")
    # Our refund's reference (its row's key) names it whichever attempt made it; a refund
    # made before refunds carried it names its attempt's key, the row's own for attempt 0.
    key = (
        metadata.get(REFUND_REFERENCE_METADATA) or metadata.get(REFUND_KEY_METADATA)
        if isinstance(metadata, Mapping)
        else None
    )
    matches = []
    if isinstance(reference, str) and reference:
        matches.append(Refund.provider_reference == reference)
    if isinstance(key, str) and key:
        matches.append(Refund.idempotency_key == key)
    if not matches:
        return "ignored: refund not named"
    with session_factory() as session, session.begin():
        payment = locked_payment(session, payment_id)
        refund = session.scalar(
            sa.select(Refund).where(Refund.payment_id == payment_id, sa.or_(*matches))
        )
        if refund is None:
            return "ignored: not a refund of ours"
        if refund.status in (RefundStatus.PROCESSING, RefundStatus.PENDING):
            # Its outcome is unknown to us (`pending` too when it was sent before: a look-up
            # that found none yet while its call still ran made it pending again, and the call's
            # reply, or the next sweep's resend under the same key, names the refund Stripe
            # made). Its look-up (commerce.refunds) records what Stripe lists for it, failed
            # included; the operator is told now as well, since the look-up may wait for Stripe
            # to answer. The row is not failed here: a later attempt of it may have made a
            # refund that counts. The failed refund's id is kept, so a reply naming it, older
            # than this word, keeps the refund failed.
            if isinstance(reference, str) and reference:
                note_failure_reported(refund, reference)
            flag_order(
                payment.order,
                f"Stripe reports refund {refund.idempotency_key} ({reference}) {status} while "
                "its outcome was unknown to OneCart: check that the shopper got it.",
            )
            return f"refund {status} while in doubt: order flagged"
        if refund.status != RefundStatus.SUCCEEDED or refund.kind != RefundKind.CARD_REFUND:
            return f"refund {refund.id} {refund.status.value}: nothing to undo"
        if refund.provider_reference and reference != refund.provider_reference:
            # Found by our reference, but another Stripe refund than the one that counts (an
            # earlier attempt's): its failure moved no money, and the refund made stands.
            return (
                f"refund {reference} {status}: not refund {refund.id}'s "
                f"({refund.provider_reference}), nothing to undo"
            )
        refund.status = RefundStatus.FAILED
        session.flush()
        session.refresh(payment, attribute_names=["refunds"])
        refresh_payment_status(payment)
        order = payment.order
        amount = format_money(refund.amount_minor, refund.currency)
        reason = data.get("failure_reason") or status
        flag_order(
            order,
            f"Stripe reports refund {refund.idempotency_key} ({reference}) of {amount} {status} "
            f"({reason}) after it was accepted: the shopper did not get it. Pay it back another "
            "way.",
        )
        notify_refund_failed(session, order, amount, sub_order_id=refund.sub_order_id)
    logger.error("refund %s reported %s by Stripe after it was recorded done", refund.id, status)
    return f"refund {status} after success: order flagged"

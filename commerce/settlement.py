"""Settling an order's one payment: capture exactly what the marketplaces kept, release the
shares they did not, and resolve every provider call whose outcome is unknown by asking the
provider before doing anything else. (Recording the refunds of those shares is
commerce.sub_order_compensation's job; sending them, commerce.refunds'.)

- The card is captured once no sub-order is in flight and no cancellation the shopper asked for
  still waits for a marketplace's answer, for exactly the placed shares, with one
  idempotency key per PaymentIntent and amount. Any error is followed by retrieving the
  PaymentIntent: captured → recorded (with Stripe's amount; another amount than asked flags the
  order), still authorized → back to authorized (a refusal for good: failed, flagged, the shopper
  told), unreachable → `reconciling` for the sweeper.
- The pending refunds of shares left out of the capture become releases; card refunds recorded
  since the capture was claimed are sent by commerce.refunds.process_refunds.

Calls to payment providers never run inside an open DB transaction.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from adapters.base import Capability
from commerce.marketplace_access import marketplace_can
from commerce.models import utc_now
from commerce.notifications import notify
from commerce.order_locks import lock_order, locked_payment
from commerce.order_models import (
    PLACED_SUB_ORDER_STATUSES,
    UNSETTLED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    Payment,
    PaymentStatus,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.order_state import ERROR_TEXT_LIMIT, flag_order
from commerce.payments.gateway import (
    PaymentDeclined,
    PaymentError,
    ProviderStatus,
)
from commerce.payments.providers import GatewayProvider, gateway_for_payment
from commerce.provider_attempts import capture_intent, void_intent
from commerce.refunds import (
    SETTLED_CARD_STATUSES,
    complete_refund,
    process_refunds,
    reconcile_refunds,
    refresh_payment_status,
)
from onecart.money import Money, format_money

logger = logging.getLogger(__name__)


# Importable from here: the refunds themselves live in commerce.refunds.
__all__ = [
    "SETTLED_CARD_STATUSES",
    "find_payments_to_reconcile",
    "finish_settlement",
    "process_refunds",
    "reconcile_payment",
    "reconcile_refunds",
    "settle_payment",
]


def placed_share_minor(order: Order) -> int:
    """What the placed sub-orders keep of the payment (the capture amount)."""
    return sum(
        sub.kept_charge_minor
        for sub in order.charged_sub_orders
        if sub.status in PLACED_SUB_ORDER_STATUSES
    )


def _placement_being_cancelled(session: Session, order_id: int) -> bool:
    """A placed sub-order still under its placement's claim: the marketplace billed beyond the
    tolerance and the cancel is under way (placement_outcomes.record_placement). A claim whose
    lease ran out counts too: its attempt died before the cancel had an answer, and the sweeper
    finishes that cancel (placement_outcomes.finish_abandoned_cancel) before anything of the
    share is captured."""
    return bool(
        session.scalar(
            sa.select(
                sa.exists().where(
                    MarketplaceOrder.order_id == order_id,
                    MarketplaceOrder.status.in_(PLACED_SUB_ORDER_STATUSES),
                    MarketplaceOrder.claim_token.is_not(None),
                )
            )
        )
    )


# Placed parts the shopper's cancellation job still asks the marketplace to cancel (a shipped
# one it reports refused without asking).
_CANCEL_ASKED_STATUSES = (SubOrderStatus.PLACED, SubOrderStatus.PROCESSING)


def cancellation_unanswered(order: Order) -> bool:
    """The shopper asked to cancel and a placed part its marketplace can cancel has no answer
    yet (`cancel_outcome`: the cancellation job records one for every part it asks, and the
    sweeper for a part whose job ended without; a part placed after the job gave up re-queues
    it). Its share is not captured meanwhile: a confirmed cancel then releases it rather than
    capturing and refunding it (a charge and, days later, a refund on the statement, Stripe's
    fee on the capture kept). Any answer ends the wait: refused, or unknown after the job's last
    attempt (an earlier attempt's unclear answer is not kept: RQ asks again), the part may ship
    and is captured. A part the abandoned-cancellation sweep holds (`cancel_claimed_at`: its
    "unknown" is only the claim's mark while it asks the marketplace) has no answer yet either;
    a claim its killed sweep left waits for the next sweep's answer."""
    return order.cancel_requested_at is not None and any(
        sub.status in _CANCEL_ASKED_STATUSES
        and (sub.cancel_outcome is None or sub.cancel_claimed_at is not None)
        and marketplace_can(sub.marketplace, Capability.CANCEL)
        for sub in order.charged_sub_orders
    )


def settle_payment(
    session_factory: sessionmaker[Session],
    order_id: int,
    *,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> bool:
    """Capture exactly the placed shares once no sub-order is in flight and the shopper's
    cancellation has every answer it waits for (void when none was placed); the other shares'
    pending refunds become releases. True when it captured/voided.

    Claimed with a conditional UPDATE (authorized → capturing), so only one worker calls the
    provider; the amount is derived from the sub-orders at that moment, under the order lock.
    """
    with session_factory() as session, session.begin():
        lock_order(session, order_id)
        order = session.get(Order, order_id)
        assert order is not None
        payment = order.payment
        if payment is None or payment.status != PaymentStatus.AUTHORIZED:
            return False
        charged = order.charged_sub_orders
        if any(sub.status in UNSETTLED_SUB_ORDER_STATUSES for sub in charged):
            return False
        if _placement_being_cancelled(session, order_id) or cancellation_unanswered(order):
            return False
        capture_minor = placed_share_minor(order)
        claimed = session.execute(
            sa.update(Payment)
            .where(Payment.id == payment.id, Payment.status == PaymentStatus.AUTHORIZED)
            .values(
                status=PaymentStatus.CAPTURING, captured_minor=capture_minor, updated_at=utc_now()
            )
        ).rowcount  # type: ignore[attr-defined]
        if not claimed:
            return False
        payment_id = payment.id
        provider_reference = payment.provider_reference
        currency = payment.currency
    with session_factory() as session:
        payment = session.get(Payment, payment_id)
        assert payment is not None
        gateway = gateway_for(session, payment)
    try:
        if capture_minor > 0:
            capture_intent(
                session_factory, gateway, provider_reference, Money(capture_minor, currency)
            )
        else:
            void_intent(session_factory, gateway, provider_reference)
    except PaymentError as exc:
        logger.warning("settling payment %s: %s; asking the provider", payment_id, exc)
        _mark_payment_reconciling(session_factory, payment_id, str(exc))
        return reconcile_payment(
            session_factory,
            payment_id,
            gateway_for=gateway_for,
            refused=exc.message if isinstance(exc, PaymentDeclined) else None,
        )
    finish_settlement(session_factory, payment_id, captured=capture_minor > 0)
    process_refunds(session_factory, order_id, gateway_for=gateway_for)
    return True


def _mark_payment_reconciling(
    session_factory: sessionmaker[Session], payment_id: int, error: str
) -> None:
    with session_factory() as session, session.begin():
        session.execute(
            sa.update(Payment)
            .where(Payment.id == payment_id, Payment.status == PaymentStatus.CAPTURING)
            .values(
                status=PaymentStatus.RECONCILING,
                failure_message=error[:ERROR_TEXT_LIMIT],
                updated_at=utc_now(),
            )
        )


def reconcile_payment(
    session_factory: sessionmaker[Session],
    payment_id: int,
    *,
    gateway_for: GatewayProvider = gateway_for_payment,
    refused: str | None = None,
) -> bool:
    """Resolve a capture or void whose outcome is unknown (`reconciling`, or `capturing` left by
    a dead worker) from the provider's own record. True when it is settled now.

    `refused` is the provider's message when the call was refused: if the PaymentIntent is then
    still merely authorized (or cancelled while we meant to capture), the refusal is for good.
    """
    with session_factory() as session:
        payment = session.get(Payment, payment_id)
        if payment is None or payment.status not in (
            PaymentStatus.CAPTURING,
            PaymentStatus.RECONCILING,
        ):
            return False
        gateway = gateway_for(session, payment)
        order_id = payment.order_id
        meant_minor = payment.captured_minor
        try:
            state = gateway.retrieve(payment.provider_reference)
        except PaymentError as exc:
            logger.warning("payment %s cannot be looked up yet: %s", payment_id, exc)
            _mark_payment_reconciling(session_factory, payment_id, str(exc))
            return False
    if state.status == ProviderStatus.CAPTURED:
        # Read before the capture is recorded, so no card refund of ours was sent yet (they
        # wait for a recorded capture): on localstripe the charge's refunds are then only the
        # released rest, and what it kept is what was captured (captured_on_record_minor).
        finish_settlement(
            session_factory,
            payment_id,
            captured=True,
            captured_minor=state.captured_on_record_minor,
            amount_on_record=True,
        )
    elif state.status == ProviderStatus.CANCELED and meant_minor == 0:
        finish_settlement(session_factory, payment_id, captured=False)
    elif state.status == ProviderStatus.PENDING:
        return False
    elif state.status == ProviderStatus.AUTHORIZED and refused is None:
        _give_capture_claim_back(session_factory, payment_id)
        return False
    else:
        # Refused while the hold is still there, or the hold is gone (cancelled, expired).
        reason = refused or (
            "the card hold was cancelled or expired"
            if state.status == ProviderStatus.CANCELED
            else f"the provider reports the payment {state.status.value}"
        )
        _capture_refused(session_factory, payment_id, reason)
    process_refunds(session_factory, order_id, gateway_for=gateway_for)
    return True


def _give_capture_claim_back(session_factory: sessionmaker[Session], payment_id: int) -> None:
    """Nothing was captured after all: capturing/reconciling → authorized, and the next settle
    recomputes the amount from the sub-orders.

    A share cancelled while the capture was in doubt was recorded as a card refund (it might
    have been captured). It now stays out of the next capture, so it is a release: left a card
    refund, finish_settlement would send it to the card as well and give it back twice."""
    with session_factory() as session, session.begin():
        payment = locked_payment(session, payment_id)
        if payment.status not in (PaymentStatus.CAPTURING, PaymentStatus.RECONCILING):
            return
        payment.status = PaymentStatus.AUTHORIZED
        payment.captured_minor = 0
        payment.updated_at = utc_now()
        for refund in payment.refunds:
            if refund.status == RefundStatus.PENDING:
                refund.kind = RefundKind.RELEASE


def _capture_refused(session_factory: sessionmaker[Session], payment_id: int, reason: str) -> None:
    """The capture was refused for good: the payment failed, the order goes on the operator's
    list and the shopper is told. Nothing was taken, so the pending refunds are releases."""
    with session_factory() as session, session.begin():
        payment = locked_payment(session, payment_id)
        if payment.status not in (PaymentStatus.CAPTURING, PaymentStatus.RECONCILING):
            return
        payment.status = PaymentStatus.FAILED
        payment.captured_minor = 0
        payment.failure_message = f"Capture refused: {reason}"[:ERROR_TEXT_LIMIT]
        for refund in payment.refunds:
            if refund.status in (RefundStatus.PENDING, RefundStatus.PROCESSING):
                complete_refund(refund, RefundKind.RELEASE)
        order = payment.order
        flag_order(order, f"Card payment could not be collected: {reason}")
        notify(
            session,
            order,
            "payment_failed",
            f"We could not collect the card payment for order {order.number} ({reason}). "
            "Nothing was charged; our team will contact you about the items already ordered.",
        )


def finish_settlement(
    session_factory: sessionmaker[Session],
    payment_id: int,
    *,
    captured: bool,
    captured_minor: int | None = None,
    amount_on_record: bool = False,
) -> None:
    """capturing/reconciling → captured (or voided); the shares left out of the capture count as
    released. `captured_minor` is the provider's own figure when it is known; one that differs
    from the amount asked is recorded and puts the order on the operator's list.
    `amount_on_record`: the figure was asked of the provider's record (reconciliation), so
    None means the record says nothing of it, not that our own capture call confirmed it: the
    amount asked is recorded and the order goes on the operator's list."""
    with session_factory() as session, session.begin():
        payment = locked_payment(session, payment_id)
        if payment.status not in (PaymentStatus.CAPTURING, PaymentStatus.RECONCILING):
            return
        payment.status = PaymentStatus.CAPTURED if captured else PaymentStatus.VOIDED
        payment.failure_message = None
        if not captured:
            payment.captured_minor = 0
        elif captured_minor is None and amount_on_record:
            flag_order(
                payment.order,
                "Stripe's record of the card payment says it was captured but not how much: "
                f"recorded as the {format_money(payment.captured_minor, payment.currency)} "
                "asked for; check the card payment against the placed shares.",
            )
        elif captured_minor is not None:
            asked_minor = payment.captured_minor
            payment.captured_minor = captured_minor
            if captured_minor != asked_minor:
                # Stripe's figure is the truth for the books, but a capture of another amount
                # than the placed shares means the shopper paid more (or the marketplaces less)
                # than the order says: an operator must look, nothing is corrected silently.
                flag_order(
                    payment.order,
                    f"Stripe captured {format_money(captured_minor, payment.currency)}, not the "
                    f"{format_money(asked_minor, payment.currency)} asked for: check the card "
                    "payment against the placed shares.",
                )
        released = payment.amount_minor - payment.captured_minor
        for refund in payment.refunds:
            # Releases were recorded before the capture was claimed, so their shares were left
            # out of it; card refunds recorded since then are sent by process_refunds.
            if refund.status != RefundStatus.PENDING:
                continue
            if not captured:
                complete_refund(refund, RefundKind.RELEASE)
            elif refund.kind == RefundKind.RELEASE and released >= refund.amount_minor:
                released -= refund.amount_minor
                complete_refund(refund, RefundKind.RELEASE)
                refund.provider_reference = payment.provider_reference
            else:
                # Captured after all (a lost reply): this share must come back as a card refund.
                refund.kind = RefundKind.CARD_REFUND
        refresh_payment_status(payment)


def find_payments_to_reconcile(session: Session, *, older_than: timedelta) -> list[int]:
    """Payments in `reconciling`, and those left `capturing` for longer than `older_than`."""
    return list(
        session.scalars(
            sa.select(Payment.id)
            .where(
                sa.or_(
                    Payment.status == PaymentStatus.RECONCILING,
                    sa.and_(
                        Payment.status == PaymentStatus.CAPTURING,
                        Payment.updated_at < utc_now() - older_than,
                    ),
                )
            )
            .order_by(Payment.id)
        )
    )

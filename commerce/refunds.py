"""Carrying out refunds: wallet credits at once, card refunds claimed (pending → processing, with
the time the provider call started) before the provider is called. An unknown outcome stays
`processing` and is looked up by its idempotency key before it is ever sent again; a refusal for
good fails the refund and flags the order for the operator. Recording a refund is
commerce.sub_order_compensation's job.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.dispute_models import PaymentDispute
from commerce.disputes import order_chargeback
from commerce.models import utc_now
from commerce.notification_models import Notification
from commerce.notifications import notify, notify_refund_failed, notify_refund_refused
from commerce.order_locks import lock_order
from commerce.order_models import (
    Order,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
)
from commerce.order_state import flag_order
from commerce.payments.gateway import (
    FoundRefundStatus,
    PaymentDeclined,
    PaymentError,
    PaymentServiceFailed,
    RefundBlockedByDispute,
)
from commerce.payments.providers import GatewayProvider, gateway_for_payment
from commerce.provider_attempts import (
    current_attempt,
    note_refused,
    refund_attempt_key,
    refund_call,
)
from onecart.money import Money, format_money

logger = logging.getLogger(__name__)

# A card refund whose outcome Stripe cannot tell this long after its call started goes before an
# operator (it stays in doubt and is asked again; nothing sends it again on a guess).
REFUND_IN_DOUBT_FLAG_AFTER = timedelta(hours=1)

SETTLED_CARD_STATUSES = (
    PaymentStatus.CAPTURED,
    PaymentStatus.PARTIALLY_REFUNDED,
    PaymentStatus.REFUNDED,
)


def process_refunds(
    session_factory: sessionmaker[Session],
    order_id: int,
    *,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> int:
    """Carry out the order's pending refunds that can run now; returns how many succeeded.

    Card refunds need a captured payment; before capture the share is simply not captured (see
    :func:`settle_payment`). Each card refund is claimed first (pending → processing), so two
    workers never send it twice.
    """
    done = 0
    # The card refunds made by this run (one cancellation's, typically) are told in one message.
    told = RefundsTold()
    with session_factory() as session:
        refund_ids = list(
            session.scalars(
                sa.select(Refund.id)
                .join(Payment, Refund.payment_id == Payment.id)
                .where(Payment.order_id == order_id, Refund.status == RefundStatus.PENDING)
                .order_by(Refund.id)
            )
        )
    for refund_id in refund_ids:
        if _process_refund(session_factory, refund_id, gateway_for=gateway_for, told=told):
            done += 1
    return done


def _order_id_of_refund(session: Session, refund_id: int) -> int:
    order_id = session.scalar(
        sa.select(Payment.order_id)
        .join(Refund, Refund.payment_id == Payment.id)
        .where(Refund.id == refund_id)
    )
    if order_id is None:
        raise LookupError(f"refund {refund_id} does not exist")
    return order_id


def _locked_refund(session: Session, refund_id: int) -> Refund:
    """The refund, read after locking its order (every change to a refund is made under it)."""
    lock_order(session, _order_id_of_refund(session, refund_id))
    refund = session.get(Refund, refund_id)
    assert refund is not None
    return refund


class RefundsTold:
    """The card refunds one run made, and the notification that tells them: each refund made
    rewrites it (in the refund's own transaction), so a cancellation of several parts is one
    "We refunded …" naming each part's share, not one message per part. A run is one
    process_refunds call (its refunds confirmed at once by their look-up among them), or one
    order's refunds confirmed by a sweep's look-ups (reconcile_refund with the order's `told`)."""

    def __init__(self) -> None:
        self.notification_id: int | None = None
        self.refund_ids: list[int] = []


def _process_refund(
    session_factory: sessionmaker[Session],
    refund_id: int,
    *,
    gateway_for: GatewayProvider,
    told: RefundsTold | None = None,
) -> bool:
    with session_factory() as session, session.begin():
        refund = _locked_refund(session, refund_id)
        payment = refund.payment
        if refund.status != RefundStatus.PENDING:
            return False
        if payment.method == PaymentMethod.WALLET:
            gateway = gateway_for(session, payment)
            refund.provider_reference = gateway.refund(
                payment.provider_reference,
                Money(refund.amount_minor, refund.currency),
                idempotency_key=refund.idempotency_key,
                reference=refund.idempotency_key,
            )
            complete_refund(refund, RefundKind.WALLET_CREDIT)
            refresh_payment_status(payment)
            return True
        if payment.status in (PaymentStatus.VOIDED, PaymentStatus.FAILED) or (
            refund.kind == RefundKind.RELEASE and payment.status in SETTLED_CARD_STATUSES
        ):
            # Voided or never collected: nothing was taken. A release on a captured payment was
            # left out of the capture (finish_settlement normally completes these).
            complete_refund(refund, RefundKind.RELEASE)
            refresh_payment_status(payment)
            return True
        if payment.status not in (PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED):
            return False  # released at capture time, or sent once the capture is known
        chargeback = order_chargeback(session, payment.order_id)
        if chargeback is not None:
            # The bank is taking (or took) the charge back: not sent now (see _hold_refund).
            _hold_refund(session, refund, chargeback)
            return False
        refund.kind = RefundKind.CARD_REFUND
        refund.status = RefundStatus.PROCESSING
        refund.processing_started_at = utc_now()
        provider_reference = payment.provider_reference
        amount = Money(refund.amount_minor, refund.currency)
        key = refund.idempotency_key
    with session_factory() as session:
        payment = session.get(Refund, refund_id).payment  # type: ignore[union-attr]
        gateway = gateway_for(session, payment)
    attempt = current_attempt(session_factory, refund_call(key))
    try:
        reference = gateway.refund(
            provider_reference,
            amount,
            idempotency_key=refund_attempt_key(key, attempt),
            reference=key,
        )
    except RefundBlockedByDispute as exc:
        # Sent again once the dispute is decided: as a new attempt, since Stripe would answer
        # this key with the stored `charge_disputed` refusal (commerce.provider_attempts).
        note_refused(session_factory, refund_call(key), attempt, exc.message)
        # Stripe knows of a chargeback our records do not yet (its event is late): held, and
        # asked again at the next sweep until the dispute's event holds it without a call.
        _refund_blocked_by_dispute(session_factory, refund_id, exc.message)
        return False
    except PaymentDeclined as exc:
        _refund_refused(session_factory, refund_id, str(exc.message))
        return False
    except PaymentServiceFailed as exc:
        # Unknown, but answered: Stripe's own failure (5xx), which it stores under this key and
        # replays to every resend for a day. Its request is over, so Stripe's list of the
        # intent's refunds says now whether it refunded anything; none, and the next send is a
        # new attempt (reconcile_refund).
        logger.warning("refund %s failed at the provider: %s", refund_id, exc)
        reconcile_refund(
            session_factory, refund_id, gateway_for=gateway_for, key_spent=True, told=told
        )
        return False
    except PaymentError as exc:
        # Unknown with no answer (timeout, reset): the refund may have happened, or may still
        # be under way at Stripe, so "none yet" proves nothing now. Only a refund found is
        # recorded; otherwise it stays `processing` for the sweeper's look-up.
        logger.warning("refund %s outcome unknown: %s", refund_id, exc)
        reconcile_refund(
            session_factory, refund_id, gateway_for=gateway_for, only_if_found=True, told=told
        )
        return False
    _refund_done(session_factory, refund_id, reference, told=told)
    return True


def _refund_done(
    session_factory: sessionmaker[Session],
    refund_id: int,
    reference: str,
    *,
    told: RefundsTold | None = None,
) -> None:
    with session_factory() as session, session.begin():
        refund = _locked_refund(session, refund_id)
        # Failed is Stripe's later word: a refund it accepted (`pending`, taken for done) that
        # the bank refused since, recorded by a look-up or Stripe's event while this reply was
        # on its way. The reply is the older word and must not undo it: the shopper got nothing.
        if refund.status in (RefundStatus.SUCCEEDED, RefundStatus.FAILED):
            return
        if reference in failures_reported(refund):
            # Stripe's `refund.failed` event for this very refund came while the reply was on
            # its way (commerce.payments.stripe_webhooks): the reply is the older word.
            _reported_failed_before_reply(session, refund, reference)
            return
        refund.provider_reference = reference
        complete_refund(refund, RefundKind.CARD_REFUND)
        refresh_payment_status(refund.payment)
        # Until now the shopper was only told a refund is on its way (commerce.order_state).
        order = refund.payment.order
        if told is not None and told.notification_id is not None:
            # Not taken for e-mail yet: the run's one message grows by this part's share. A
            # compare-and-set with the e-mail's claim (commerce.notifications, which counts an
            # attempt before it reads the message): a message already taken is not rewritten
            # behind the e-mail, this share is told in a message of its own.
            ids = [*told.refund_ids, refund.id]
            made = list(session.scalars(sa.select(Refund).where(Refund.id.in_(ids))))
            merged = session.execute(
                sa.update(Notification)
                .where(
                    Notification.id == told.notification_id,
                    Notification.emailed_at.is_(None),
                    Notification.email_attempts == 0,
                )
                .values(message=_refunds_made_message(order.number, made))
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if merged:
                told.refund_ids = ids
                return
        note = notify(
            session,
            order,
            "refund_made",
            _refunds_made_message(order.number, [refund]),
            sub_order_id=refund.sub_order_id,
        )
        if told is not None:
            told.notification_id, told.refund_ids = note.id, [refund.id]


def failures_reported(refund: Refund) -> list[str]:
    """Stripe's ids of refunds of ours it reported failed while `refund` was `processing`."""
    return (refund.failures_reported or "").split()


def note_failure_reported(refund: Refund, reference: str) -> None:
    """Keep `reference`, a refund Stripe reported failed while `refund` is `processing` (under
    the order's lock): a reply naming it later does not make the refund done."""
    known = failures_reported(refund)
    if reference not in known:
        refund.failures_reported = "\n".join([*known, reference])


def _reported_failed_before_reply(session: Session, refund: Refund, reference: str) -> None:
    """The reply names a refund Stripe has since reported failed (under the order's lock): the
    refund fails, the operator pays it back another way, and the shopper, told only that a
    refund is on its way, is told their bank did not accept it (as when Stripe's failure comes
    after a refund recorded done)."""
    refund.provider_reference = reference
    refund.status = RefundStatus.FAILED
    order = refund.payment.order
    amount = format_money(refund.amount_minor, refund.currency)
    flag_order(
        order,
        f"Stripe reports refund {refund.idempotency_key} ({reference}) of {amount} failed "
        "before its reply arrived: the shopper did not get it. Pay it back another way.",
    )
    notify_refund_failed(session, order, amount, sub_order_id=refund.sub_order_id)
    logger.error("refund %s: its reply names %s, reported failed by Stripe", refund.id, reference)


def _refunds_made_message(number: str, refunds: list[Refund]) -> str:
    """ "We refunded $X of order … to your card", with each part's share when there are several
    (the refunds of one payment share its currency)."""
    refunds = sorted(refunds, key=lambda refund: refund.id)
    total = format_money(sum(refund.amount_minor for refund in refunds), refunds[0].currency)
    shares = ""
    if len(refunds) > 1:
        shares = (
            " ("
            + ", ".join(
                f"{refund.sub_order.marketplace.name if refund.sub_order else 'the order'} "
                f"{format_money(refund.amount_minor, refund.currency)}"
                for refund in refunds
            )
            + ")"
        )
    return (
        f"We refunded {total} of order {number} to your card{shares}; "
        "your bank shows it within a few days."
    )


def _refund_refused(session_factory: sessionmaker[Session], refund_id: int, message: str) -> None:
    """The provider refused the refund for good: failed, and the operator is told; so is the
    shopper, who was told the refund was on its way (commerce.order_state)."""
    with session_factory() as session, session.begin():
        refund = _locked_refund(session, refund_id)
        if refund.status != RefundStatus.PROCESSING:
            return
        refund.status = RefundStatus.FAILED
        order = session.get(Order, refund.payment.order_id)
        assert order is not None
        flag_order(order, f"Refund {refund.idempotency_key} refused by the provider: {message}")
        notify_refund_refused(
            session,
            order,
            format_money(refund.amount_minor, refund.currency),
            sub_order_id=refund.sub_order_id,
        )


def _hold_refund(session: Session, refund: Refund, chargeback: PaymentDispute) -> None:
    """A card refund of a charge the bank is taking back, or took back (under the order lock).

    Under way: it stays `pending` and is sent by the next sweep once the shop keeps the money
    (won, prevented); the shopper is told why it waits, once. Lost: the bank returned the
    disputed amount to the shopper, so sending the refund too would pay it twice, and whether
    that amount covered this share is a person's call: the refund fails (not sent) and the
    operator is told. Never an automatic refund on top of a chargeback."""
    order = refund.payment.order
    share = format_money(refund.amount_minor, refund.currency)
    returned = format_money(chargeback.amount_minor, chargeback.currency)
    if chargeback.status == "lost":
        refund.status = RefundStatus.FAILED
        refund.processing_started_at = None
        flag_order(
            order,
            f"Refund {refund.idempotency_key} of {share} not sent: the dispute "
            f"{chargeback.dispute_id} was lost and the bank returned {returned} to the shopper. "
            "If that does not cover this share, pay the shopper the rest by hand.",
        )
        notify(
            session,
            order,
            "refund_covered_by_bank",
            f"Your bank decided the dispute of order {order.number}'s card payment and returned "
            f"{returned} to you; the {share} refund we were holding is part of what the bank "
            "decided, so we are not sending it on top. Reply to this message if anything is "
            "still missing.",
            sub_order_id=refund.sub_order_id,
            once=True,
        )
        return
    flag_order(
        order,
        f"Refund {refund.idempotency_key} of {share} held: the card payment is charged back "
        f"(dispute {chargeback.dispute_id}); sent if the shop keeps the money.",
    )
    notify(
        session,
        order,
        "refund_on_hold",
        f"Your refund of {share} for order {order.number} is on hold: your bank is disputing "
        "the card payment, and no refund can be made while it does. If the bank decides for "
        "you, it returns the money itself; otherwise we send the refund once the dispute is "
        "closed.",
        sub_order_id=refund.sub_order_id,
        once=True,
    )


def _refund_blocked_by_dispute(
    session_factory: sessionmaker[Session], refund_id: int, message: str
) -> None:
    """Stripe refused the refund because the charge is charged back: nothing was refunded, so the
    refund is `pending` again (not failed: the dispute's outcome decides it), and the operator
    is told."""
    with session_factory() as session, session.begin():
        refund = _locked_refund(session, refund_id)
        if refund.status != RefundStatus.PROCESSING:
            return
        refund.status = RefundStatus.PENDING
        refund.processing_started_at = None
        order = refund.payment.order
        flag_order(
            order,
            f"Refund {refund.idempotency_key} refused by Stripe while the charge is disputed: "
            f"held until the dispute is decided ({message})",
        )
    logger.warning("refund %s held: %s", refund_id, message)


def reconcile_refund(
    session_factory: sessionmaker[Session],
    refund_id: int,
    *,
    gateway_for: GatewayProvider,
    only_if_found: bool = False,
    key_spent: bool = False,
    flag_after: timedelta = REFUND_IN_DOUBT_FLAG_AFTER,
    told: RefundsTold | None = None,
) -> bool:
    """A card refund left `processing` (unknown outcome, or a worker died): ask the provider for
    a refund carrying our reference, whichever attempt made it. True when it was resolved.
    `told`: the run's message of refunds made, which a refund found done joins.

    - found done → succeeded, with the provider's id; found failed (Stripe made it and the bank
      refused it) → failed and the operator told: never sent again by itself;
    - none (the provider answered, having listed them all) → pending again, sent by the next
      sweep: under the same key (Stripe recognises a resend, even of a call still running
      there), or, with `key_spent` (the last answer to this attempt's key was Stripe's own
      failure, stored and replayed to every resend), under the next attempt's key, moved on by
      compare-and-set from the attempt read before asking (of two workers that found none, one
      moves it on; one holding an older number changes nothing);
    - the provider cannot say (unreachable, or a refund of ours still unfinished there) → left
      as it is, and once its call started more than `flag_after` ago the operator is told.
      Never a second refund on a guess.

    `only_if_found`: a refund that may be in flight right now (its own call timed out, or a
    webhook asking on the side) is only ever marked done or failed; "none yet" proves nothing
    while its call may run, so it stays `processing` for the sweeper's timed look-up."""
    with session_factory() as session:
        refund = session.get(Refund, refund_id)
        if refund is None or refund.status != RefundStatus.PROCESSING:
            return False
        payment = refund.payment
        gateway = gateway_for(session, payment)
        provider_reference = payment.provider_reference
        key = refund.idempotency_key
    try:
        attempt = current_attempt(session_factory, refund_call(key))
        found = gateway.find_refund(provider_reference, key)
    except PaymentError as exc:
        # `key_spent` is not kept: once the list answers "none", the next sweep resends under
        # this attempt's key once more, Stripe replays its stored 500, and that answer moves the
        # attempt on (the resend's own look-up has `key_spent`). Harmless, and left so: a key
        # Stripe replays executes nothing; one it has pruned (over 24 h) makes the refund once,
        # which is right, since Stripe has just listed every refund of the intent and ours is
        # not among them; the one extra call costs a sweep interval, not money
        # (tests/faults/test_refund_service_failures.py, "cannot be asked" case).
        logger.warning("refund %s cannot be looked up yet: %s", refund_id, exc)
        if not only_if_found:
            _flag_if_in_doubt_too_long(session_factory, refund_id, flag_after)
        return False
    if found is not None:
        if found.status == FoundRefundStatus.DONE:
            _refund_done(session_factory, refund_id, found.provider_reference, told=told)
        else:
            _refund_refused(
                session_factory,
                refund_id,
                f"Stripe holds it {found.provider_status} ({found.provider_reference})",
            )
        return True
    if only_if_found:
        return False
    if key_spent and not note_refused(
        session_factory, refund_call(key), attempt, "no refund after the provider's failure"
    ):
        return False  # another worker moved it on (and owns the resend)
    with session_factory() as session, session.begin():
        session.execute(
            sa.update(Refund)
            .where(Refund.id == refund_id, Refund.status == RefundStatus.PROCESSING)
            .values(status=RefundStatus.PENDING, processing_started_at=None)
        )
    return True


def _flag_if_in_doubt_too_long(
    session_factory: sessionmaker[Session], refund_id: int, flag_after: timedelta
) -> None:
    """The refund's outcome is still unknown and Stripe cannot say: once its call started more
    than `flag_after` ago the operator is told (once: the reason's words do not change). It stays
    `processing` and is asked again at every sweep; only a person may pay it another way."""
    with session_factory() as session, session.begin():
        refund = _locked_refund(session, refund_id)
        if refund.status != RefundStatus.PROCESSING or not _started_before(
            session, refund_id, utc_now() - flag_after
        ):
            return
        flag_order(
            refund.payment.order,
            f"Refund {refund.idempotency_key} of "
            f"{format_money(refund.amount_minor, refund.currency)}: its outcome at Stripe is "
            "unknown and Stripe cannot be asked; asked again at every sweep, never sent again "
            "until Stripe answers. Check the payment's refunds in Stripe.",
        )


def _started_before(session: Session, refund_id: int, cutoff: datetime) -> bool:
    """Whether the refund's provider call started before `cutoff` (or when is not known)."""
    return (
        session.scalar(
            sa.select(Refund.id).where(
                Refund.id == refund_id,
                sa.or_(
                    Refund.processing_started_at.is_(None),
                    Refund.processing_started_at < cutoff,
                ),
            )
        )
        is not None
    )


def find_refunds_to_reconcile(session: Session, *, older_than: timedelta) -> list[int]:
    """Refunds whose provider call started more than `older_than` ago and never ended."""
    return list(
        session.scalars(
            sa.select(Refund.id)
            .where(
                Refund.status == RefundStatus.PROCESSING,
                sa.or_(
                    Refund.processing_started_at.is_(None),
                    Refund.processing_started_at < utc_now() - older_than,
                ),
            )
            .order_by(Refund.id)
        )
    )


def reconcile_refunds(
    session_factory: sessionmaker[Session],
    *,
    older_than: timedelta,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> int:
    """Every refund whose provider call started more than `older_than` ago and never ended;
    the ones of one order found done are told in one message."""
    with session_factory() as session:
        refund_ids = find_refunds_to_reconcile(session, older_than=older_than)
        orders = refund_orders(session, refund_ids)
    told: dict[int, RefundsTold] = {}
    return sum(
        1
        for refund_id in refund_ids
        if reconcile_refund(
            session_factory,
            refund_id,
            gateway_for=gateway_for,
            told=told.setdefault(orders[refund_id], RefundsTold()),
        )
    )


def refund_orders(session: Session, refund_ids: list[int]) -> dict[int, int]:
    """Each refund's order id."""
    if not refund_ids:
        return {}
    return {
        refund_id: order_id
        for refund_id, order_id in session.execute(
            sa.select(Refund.id, Payment.order_id)
            .join(Payment, Refund.payment_id == Payment.id)
            .where(Refund.id.in_(refund_ids))
        )
    }


def refund_said(refund: Refund | None, what: str) -> str:
    """How the shopper is told of a refund just recorded, `what` naming the amount ("their
    $5.00", "you $5.00"): a wallet credit is made in the same transaction, so it is said done
    ("we refunded … to your OneCart wallet"); a card refund is on its way ("we are refunding …")
    until the provider makes it, and then the shopper is told again (refund_made). A release
    is left out of a card payment not captured yet: never charged, never refunded, and nothing
    follows ("their $5.00 is not charged to your card")."""
    if refund is not None and refund.kind == RefundKind.RELEASE:
        return f"{what.removeprefix('you ')} is not charged to your card"
    if (
        refund is not None
        and refund.kind == RefundKind.WALLET_CREDIT
        and refund.status == RefundStatus.SUCCEEDED
    ):
        return f"we refunded {what} to your OneCart wallet"
    return f"we are refunding {what}"


def complete_refund(refund: Refund, kind: RefundKind) -> None:
    refund.kind = kind
    refund.status = RefundStatus.SUCCEEDED
    refund.completed_at = utc_now()


def refresh_payment_status(payment: Payment) -> None:
    """captured / partially_refunded / refunded from the succeeded refunds."""
    if payment.status not in SETTLED_CARD_STATUSES:
        return
    # Releases were never captured, so they do not make a captured payment "refunded".
    refunded = sum(
        refund.amount_minor
        for refund in payment.refunds
        if refund.status == RefundStatus.SUCCEEDED and refund.kind != RefundKind.RELEASE
    )
    if refunded and refunded >= payment.captured_minor:
        payment.status = PaymentStatus.REFUNDED
    elif refunded > 0:
        payment.status = PaymentStatus.PARTIALLY_REFUNDED
    else:
        payment.status = PaymentStatus.CAPTURED

"""Disputes (chargebacks and inquiries) of our card charges, from Stripe's `charge.dispute.*`
events: each dispute is one `PaymentDispute` row, kept up to date, and listed for an operator.

Nothing is refunded because of a dispute: the card network decides it, and an operator answers
it in Stripe (evidence by the due date). What OneCart does:

- **An order's charge:** the order goes on the operator's list with the amount, reason and
  evidence due date. Nothing is left to place by then: Stripe opens disputes only on captured
  charges, and settlement captures a card only once no sub-order is in flight
  (commerce.settlement), so no placement can go ahead silently behind an open dispute. The
  marketplaces' orders stand; whether to cancel what has not shipped is the operator's call,
  with the shopper's claim in front of them. A card refund of the order (a part cancelled or
  failed later) is held while the chargeback is on: Stripe refuses it then, and the bank's
  decision settles it — kept by the shop, the refund is sent; lost, the bank has returned the
  disputed amount, so the refund is not sent on top and an operator checks it covered the share
  (commerce.refunds, `order_chargeback`).
- **A wallet top-up's charge:** a chargeback takes the money back from the shop, so the wallet
  gives up the disputed credit as far as it is unspent (never below zero: what was spent is
  shown to the operator), once per dispute. Won (or the funds reinstated, or the dispute
  prevented) gives exactly that back once; lost leaves it taken. The spent part may have paid
  for orders still being placed; they are not stopped (the shopper bought them with a balance
  that was theirs then, and stopping them would mean refunds into a wallet under dispute): the
  operator sees the shortfall here and the orders in the shopper's wallet ledger. A top-up
  refunded in part before the chargeback is held for the rest only, and a refund taken back
  while the hold is being worked out is never held again: the hold is decided under the
  wallet's lock, from Stripe's refunds checked against the wallet's take-backs
  (commerce.topup_refunds.refunded_as_known). An inquiry (`warning_*` statuses) moves no
  money at Stripe, so it takes nothing until it becomes a chargeback. The wallet's lines are
  written by commerce.dispute_holds; this module reads the top-up's refunds from Stripe before
  the locks and takes the wallet's lock first.
- **A charge of neither:** recorded and listed all the same (the shop's Stripe balance paid it).

Every event carries the whole Dispute object; the row takes its status only from an event newer
than the one it has (Stripe's event `created`; within one second, the later stage of the
lifecycle), so replays and late deliveries never move it back, and `won`/`lost` are final (Stripe:
closing is irreversible). The row is read and changed under a row lock, and the wallet's lines
are keyed by the dispute, so concurrent deliveries apply each effect once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import stripe
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from commerce.dispute_holds import hold_or_release_topup_credit
from commerce.dispute_models import DisputePurpose, PaymentDispute, is_chargeback
from commerce.models import User, WalletEntry, WalletEntryKind, utc_now
from commerce.order_locks import lock_order
from commerce.order_models import Order, Payment, PaymentMethod
from commerce.order_state import flag_order
from commerce.payments.gateway import PaymentError, PaymentUnavailable, from_stripe_amount
from commerce.topup_refunds import (
    RefundsSeen,
    StaleRefunds,
    last_refund_takeback,
    topup_refunds,
)
from commerce.wallet import lock_wallet
from commerce.wallet_topup import (
    TOPUP_PURPOSE,
    card_topup_reference,
    credit_card_topup,
)
from onecart.money import format_money

logger = logging.getLogger(__name__)

DISPUTE_EVENT_TYPES = frozenset(
    {
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.funds_reinstated",
        "charge.dispute.closed",
    }
)
# Stripe's statuses in lifecycle order (an inquiry may become a chargeback on the same dispute).
STATUS_STAGE = {
    "warning_needs_response": 0,
    "warning_under_review": 1,
    "warning_closed": 2,
    "needs_response": 3,
    "under_review": 4,
    "won": 5,
    "lost": 5,
    "prevented": 5,
}
UNKNOWN_STATUS_STAGE = 4
FINAL_STATUSES = frozenset({"won", "lost", "prevented"})
CLOSED_STATUSES = FINAL_STATUSES | {"warning_closed"}
# How often a top-up's refunds are asked again when the wallet took one back meanwhile.
REFUND_READS = 3


class DisputeEventError(ValueError):
    """An event whose object is not a Stripe dispute we can read."""


@dataclass(frozen=True, slots=True)
class DisputeFacts:
    """What one event says of its dispute."""

    dispute_id: str
    charge_id: str
    intent_id: str | None
    amount_minor: int
    currency: str
    reason: str
    status: str
    evidence_due_by: datetime | None
    funds_withdrawn: bool
    funds_reinstated: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class _Owner:
    purpose: DisputePurpose
    order_id: int | None = None
    user_id: int | None = None


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC)
    return None


def dispute_facts(event_type: str, data: Mapping[str, Any], event_created: Any) -> DisputeFacts:
    """Read a `charge.dispute.*` event's Dispute object (Stripe's format: docs.stripe.com/api/
    disputes/object). DisputeEventError when it is not one."""
    dispute_id, charge, amount = data.get("id"), data.get("charge"), data.get("amount")
    if isinstance(charge, Mapping):  # expanded
        charge = charge.get("id")
    currency, status = data.get("currency"), data.get("status")
    if not (
        isinstance(dispute_id, str)
        and dispute_id
        and isinstance(charge, str)
        and charge
        and isinstance(amount, int)
        and not isinstance(amount, bool)
        and amount >= 0
        and isinstance(currency, str)
        and len(currency) == 3
        and isinstance(status, str)
        and status
    ):
        raise DisputeEventError(f"{event_type}: not a dispute object")
    intent = data.get("payment_intent")
    if isinstance(intent, Mapping):
        intent = intent.get("id")
    details = data.get("evidence_details")
    due = _timestamp(details.get("due_by")) if isinstance(details, Mapping) else None
    movements = [
        entry.get("amount")
        for entry in data.get("balance_transactions") or []
        if isinstance(entry, Mapping) and isinstance(entry.get("amount"), int)
    ]
    return DisputeFacts(
        dispute_id=dispute_id[:120],
        charge_id=charge[:120],
        intent_id=intent[:120] if isinstance(intent, str) and intent else None,
        amount_minor=from_stripe_amount(amount, currency),
        currency=currency.upper(),
        reason=str(data.get("reason") or "")[:60],
        status=status[:40],
        evidence_due_by=due,
        funds_withdrawn=event_type == "charge.dispute.funds_withdrawn"
        or any(value < 0 for value in movements),
        funds_reinstated=event_type == "charge.dispute.funds_reinstated"
        or any(value > 0 for value in movements),
        at=_timestamp(event_created) or utc_now(),
    )


def apply_dispute_event(
    session_factory: sessionmaker[Session],
    facts: DisputeFacts,
    client: stripe.StripeClient | None = None,
) -> str:
    """Record what the event says of its dispute and apply what follows (module docstring);
    returns what happened. `client` asks Stripe what the charge paid for when our records do not
    say (a top-up not credited yet; a dispute naming only its charge) and a disputed top-up's
    refunds (never while a lock is held: see commerce.topup_refunds.refunded_as_known; without a
    client nothing is known refunded). PaymentUnavailable: nothing changed, retry later."""
    with session_factory() as session:
        known = session.scalar(
            sa.select(PaymentDispute).where(PaymentDispute.dispute_id == facts.dispute_id)
        )
        owner = (
            _Owner(DisputePurpose(known.purpose), known.order_id, known.user_id)
            if known is not None
            else None
        )
        intent_id = known.payment_intent_id if known is not None else facts.intent_id
        held = known is not None and known.wallet_held_minor is not None
    if intent_id is None and client is not None:
        intent_id = _charge_intent(client, facts.charge_id)
    if owner is None:
        owner = _identify(session_factory, intent_id, client)
    for _ in range(REFUND_READS):
        seen = None
        if (
            owner.purpose == DisputePurpose.WALLET_TOPUP
            and owner.user_id is not None
            and intent_id is not None
            and not held
            and client is not None
        ):
            seen = _refunds_seen(session_factory, client, owner.user_id, intent_id)
        try:
            created, changed, status, effects = _record(
                session_factory, facts, owner, intent_id, seen
            )
            break
        except StaleRefunds as exc:
            logger.warning("stripe dispute %s: %s; asking Stripe again", facts.dispute_id, exc)
    else:
        raise PaymentUnavailable(
            "The disputed top-up's refunds kept changing while the hold was worked out."
        )
    what = (
        "dispute recorded" if created else ("dispute updated" if changed else "dispute unchanged")
    )
    logger.warning("stripe dispute %s (%s): %s", facts.dispute_id, status, what)
    return "; ".join([f"{what} ({status})", *effects])


def _record(
    session_factory: sessionmaker[Session],
    facts: DisputeFacts,
    owner: _Owner,
    intent_id: str | None,
    seen: RefundsSeen | None,
) -> tuple[bool, bool, str, list[str]]:
    """Record the event in one transaction: whether the row was created, whether it changed, its
    status, and what the wallet or the order got. StaleRefunds: nothing recorded."""
    with session_factory() as session, session.begin():
        if owner.purpose == DisputePurpose.WALLET_TOPUP and owner.user_id is not None:
            # The wallet's lock first, as a refund of the top-up takes it before reading its
            # disputes (commerce.wallet_topup): the two never take the same money twice.
            wallet_owner = session.get(User, owner.user_id)
            if wallet_owner is not None:
                lock_wallet(session, wallet_owner)
        row, created = _locked_row(session, facts, owner, intent_id)
        changed = _advance(session, row, facts)
        effects = []
        if row.purpose == DisputePurpose.WALLET_TOPUP:
            effects = hold_or_release_topup_credit(session, row, seen)
        if row.purpose == DisputePurpose.ORDER and created:
            _flag(session, row)
        return created, changed, row.status, effects


def _ask_stripe(what: str, fetch: Callable[[], Any]) -> Any:
    """`fetch`'s object, None when Stripe holds no such object; PaymentUnavailable when Stripe
    cannot be asked (nothing is recorded then: the event's redelivery asks again)."""
    try:
        return fetch()
    except stripe.InvalidRequestError:
        return None
    except stripe.StripeError as exc:
        raise PaymentUnavailable(f"The disputed {what} cannot be looked up: {exc}") from exc


def _retrieve_charge(client: stripe.StripeClient, charge_id: str) -> Any:
    return _ask_stripe("charge", lambda: client.v1.charges.retrieve(charge_id))


def _charge_intent(client: stripe.StripeClient, charge_id: str) -> str | None:
    intent = getattr(_retrieve_charge(client, charge_id), "payment_intent", None)
    return str(intent) if isinstance(intent, str) and intent else None


def _refunds_seen(
    session_factory: sessionmaker[Session],
    client: stripe.StripeClient,
    user_id: int,
    intent_id: str,
) -> RefundsSeen:
    """Stripe's refunds of the disputed top-up, and the wallet's newest refund take-back just
    before Stripe was asked (no transaction is left open while Stripe is asked)."""
    with session_factory() as session:
        mark = last_refund_takeback(session, user_id)
    refunds = _ask_stripe("top-up's refunds", lambda: topup_refunds(client, intent_id)) or []
    return RefundsSeen(
        {str(r.id): from_stripe_amount(r.amount, str(r.currency)) for r in refunds}, mark
    )


def _identify(
    session_factory: sessionmaker[Session],
    intent_id: str | None,
    client: stripe.StripeClient | None,
) -> _Owner:
    """What the disputed charge paid for: an order's payment or a credited top-up (our records),
    else (asking Stripe) a top-up not credited yet, which is credited first, so that its late
    success event credits nothing on top of the dispute."""
    if intent_id is None:
        return _Owner(DisputePurpose.UNKNOWN)
    with session_factory() as session:
        order = session.execute(
            sa.select(Order.id, Order.user_id)
            .join(Payment, Payment.order_id == Order.id)
            .where(Payment.provider_reference == intent_id, Payment.method == PaymentMethod.STRIPE)
        ).first()
        if order is not None:
            return _Owner(DisputePurpose.ORDER, order_id=order[0], user_id=order[1])
        user_id = _topup_user(session, intent_id)
    if user_id is not None:
        return _Owner(DisputePurpose.WALLET_TOPUP, user_id=user_id)
    if client is None:
        return _Owner(DisputePurpose.UNKNOWN)
    intent = _ask_stripe("payment", lambda: client.v1.payment_intents.retrieve(intent_id))
    if intent is None:
        return _Owner(DisputePurpose.UNKNOWN)
    metadata = intent.metadata.to_dict() if getattr(intent, "metadata", None) else {}
    if metadata.get("onecart_purpose") != TOPUP_PURPOSE:
        return _Owner(DisputePurpose.UNKNOWN)
    with session_factory() as session:
        try:
            credit_card_topup(session, client, intent_id)
        except PaymentUnavailable:
            raise
        except PaymentError as exc:
            logger.error("disputed top-up %s cannot be credited: %s", intent_id, exc.message)
            return _Owner(DisputePurpose.UNKNOWN)
        session.commit()
        user_id = _topup_user(session, intent_id)
    if user_id is None:  # not succeeded: nothing was credited, so nothing to hold
        return _Owner(DisputePurpose.UNKNOWN)
    return _Owner(DisputePurpose.WALLET_TOPUP, user_id=user_id)


def _topup_user(session: Session, intent_id: str) -> int | None:
    return session.scalar(
        sa.select(WalletEntry.user_id).where(
            WalletEntry.kind == WalletEntryKind.TOPUP,
            WalletEntry.reference == card_topup_reference(intent_id),
        )
    )


def _locked_row(
    session: Session, facts: DisputeFacts, owner: _Owner, intent_id: str | None
) -> tuple[PaymentDispute, bool]:
    """The dispute's row, locked for this transaction (written now when it is new: a concurrent
    first delivery meets the unique dispute id and locks the row the other one wrote)."""
    query = sa.select(PaymentDispute).where(PaymentDispute.dispute_id == facts.dispute_id)
    if session.get_bind().dialect.name != "postgresql":
        # SQLite: take the database's write lock before reading (see commerce.wallet._lock_user).
        session.execute(
            sa.update(PaymentDispute)
            .where(PaymentDispute.dispute_id == facts.dispute_id)
            .values(dispute_id=PaymentDispute.dispute_id)
            .execution_options(synchronize_session=False)
        )
    row = session.scalar(query.with_for_update())
    if row is not None:
        session.refresh(row)
        return row, False
    row = PaymentDispute(
        dispute_id=facts.dispute_id,
        charge_id=facts.charge_id,
        payment_intent_id=intent_id,
        purpose=owner.purpose.value,
        order_id=owner.order_id,
        user_id=owner.user_id,
        amount_minor=facts.amount_minor,
        currency=facts.currency,
        reason=facts.reason,
        status=facts.status,
        status_at=facts.at,
        evidence_due_by=facts.evidence_due_by,
        closed_at=facts.at if facts.status in CLOSED_STATUSES else None,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        row = session.scalars(query.with_for_update()).one()
        session.refresh(row)
        return row, False
    _note_funds(row, facts)
    return row, True


def _stage(status: str) -> int:
    return STATUS_STAGE.get(status, UNKNOWN_STATUS_STAGE)


def _advance(session: Session, row: PaymentDispute, facts: DisputeFacts) -> bool:
    """Take the event's status when it is newer than the row's (compare-and-set on the status
    read under the lock); note funds moved. Whether anything changed."""
    noted = _note_funds(row, facts)
    newer = facts.at > row.status_at or (
        facts.at == row.status_at and _stage(facts.status) > _stage(row.status)
    )
    if row.status in FINAL_STATUSES or not newer or facts.status == row.status:
        if facts.at >= row.status_at and facts.evidence_due_by is not None:
            row.evidence_due_by = facts.evidence_due_by
        return noted
    values: dict[str, Any] = {
        "status": facts.status,
        "status_at": facts.at,
        "amount_minor": facts.amount_minor,
        "reason": facts.reason or row.reason,
        "closed_at": facts.at if facts.status in CLOSED_STATUSES else None,
    }
    if facts.evidence_due_by is not None:
        values["evidence_due_by"] = facts.evidence_due_by
    result = session.execute(
        sa.update(PaymentDispute)
        .where(
            PaymentDispute.id == row.id,
            PaymentDispute.status == row.status,
            PaymentDispute.status_at == row.status_at,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise RuntimeError(f"dispute {row.dispute_id} changed under its lock")
    session.refresh(row)
    return True


def _note_funds(row: PaymentDispute, facts: DisputeFacts) -> bool:
    noted = False
    if facts.funds_withdrawn and row.funds_withdrawn_at is None:
        row.funds_withdrawn_at, noted = facts.at, True
    if facts.funds_reinstated and row.funds_reinstated_at is None:
        row.funds_reinstated_at, noted = facts.at, True
    return noted


def _flag(session: Session, row: PaymentDispute) -> None:
    """Put the disputed order on the operator's list (under the order's lock)."""
    if row.order_id is None:
        return
    lock_order(session, row.order_id)
    order = session.get(Order, row.order_id)
    assert order is not None
    session.refresh(order)
    due = (
        f", evidence due by {row.evidence_due_by:%Y-%m-%d %H:%M} UTC" if row.evidence_due_by else ""
    )
    flag_order(
        order,
        f"The card payment is disputed ({row.reason or 'no reason given'}, "
        f"{format_money(row.amount_minor, row.currency)}{due}): "
        f"{dispute_flag_marker(row.dispute_id)}. Nothing was refunded.",
    )


def dispute_flag_marker(dispute_id: str) -> str:
    """The words of the order's flag reason that name this dispute (acknowledging the dispute
    takes that reason off the order: commerce.flag_resolution)."""
    return f"answer the dispute {dispute_id} in Stripe"


def open_order_disputes(session: Session, order_id: int) -> list[PaymentDispute]:
    """The order's disputes the bank has not decided yet (no `closed_at`), acknowledged or not."""
    return list(
        session.scalars(
            sa.select(PaymentDispute)
            .where(PaymentDispute.order_id == order_id, PaymentDispute.closed_at.is_(None))
            .order_by(PaymentDispute.id)
        )
    )


def order_chargeback(session: Session, order_id: int) -> PaymentDispute | None:
    """The order's card charge dispute that took (or is taking) the money back through the bank:
    a chargeback under way or lost. None for none, an inquiry, or one the shop kept.

    While it is on, Stripe refuses refunds of the charge (`charge_disputed`); once it is lost,
    the bank has given the shopper the disputed amount, so a refund on top would pay twice
    (commerce.refunds holds card refunds accordingly)."""
    for row in session.scalars(
        sa.select(PaymentDispute)
        .where(
            PaymentDispute.order_id == order_id,
            PaymentDispute.purpose == DisputePurpose.ORDER.value,
        )
        .order_by(PaymentDispute.id)
    ):
        if is_chargeback(row):
            return row
    return None


def list_disputes(session: Session, *, closed_limit: int = 50) -> list[PaymentDispute]:
    """Open disputes (oldest evidence due date first), then the latest closed ones; those an
    operator acknowledged are left out (the order's and the wallet's pages still show them)."""
    open_rows = list(
        session.scalars(
            sa.select(PaymentDispute)
            .where(PaymentDispute.closed_at.is_(None), PaymentDispute.acknowledged_at.is_(None))
            .order_by(PaymentDispute.evidence_due_by.is_(None), PaymentDispute.evidence_due_by)
            .limit(200)
        )
    )
    closed = list(
        session.scalars(
            sa.select(PaymentDispute)
            .where(PaymentDispute.closed_at.is_not(None), PaymentDispute.acknowledged_at.is_(None))
            .order_by(PaymentDispute.closed_at.desc())
            .limit(closed_limit)
        )
    )
    return open_rows + closed

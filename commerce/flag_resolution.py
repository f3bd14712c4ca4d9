"""Clearing an order's flag for an operator (`Order.attention_reason`, written by
commerce.order_state.flag_order): "Resolved" on /admin/attention clears all of it, and
acknowledging a dispute (commerce.acknowledgements) clears that dispute's reason only. Each
clearing is recorded (commerce.attention_models.FlagResolution: the text cleared, who, when, the
note), so a resolved order leaves the list and its history stays; flagged again later, it is
listed with the new reason only.

Compare-and-set on what the operator saw: the form carries the flag's text as the page showed
it, and under the order's row lock (commerce.order_locks) the flag is cleared only while it still
reads exactly that. A reason added (or one cleared) meanwhile clears nothing: the operator is
shown the flag as it now reads and decides again. Two operators resolving at once record one
resolution; the second is told it was resolved already.

A disputed order cannot be resolved while any of its disputes is open (no `closed_at`: an inquiry
or chargeback the bank has not decided), acknowledged or not: the outcome decides what is left
to do (a card refund held behind a chargeback is sent if the shop keeps the money and failed if
the bank gave it back: commerce.refunds), and resolving before it would close the order's case
while that is still coming. Once every dispute is closed the order can be resolved.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload, sessionmaker

from commerce.attention_models import FlagResolution
from commerce.disputes import dispute_flag_marker, open_order_disputes
from commerce.order_locks import lock_order
from commerce.order_models import Order
from commerce.order_state import FLAG_TEXT_LIMIT, REASON_SEPARATOR, reasons_without

NOTE_LIMIT = 500
OPERATOR_NAME_LIMIT = 120
ACKNOWLEDGED_NOTE = "The dispute was acknowledged."


class FlagResolutionError(ValueError):
    """A resolve form that cannot be acted on (the message says why); nothing changed."""


class ResolveOutcome(enum.StrEnum):
    RESOLVED = "resolved"
    # The flag no longer reads what the operator saw: nothing cleared.
    CHANGED = "changed"
    # Nothing to clear (resolved meanwhile by someone else).
    NOT_FLAGGED = "not_flagged"
    # A dispute of the order is still open: refused (module docstring).
    DISPUTE_OPEN = "dispute_open"


@dataclass(frozen=True, slots=True)
class ResolveResult:
    outcome: ResolveOutcome
    order_number: str
    message: str

    @property
    def resolved(self) -> bool:
        return self.outcome == ResolveOutcome.RESOLVED


def _same_text(text: str) -> str:
    """The text as a browser posts it back: a form sends every line break as CRLF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def resolve_flag(
    session_factory: sessionmaker[Session],
    order_id: int,
    seen_reason: str,
    operator: str,
    note: str = "",
) -> ResolveResult:
    """Clear the order's flag if it still reads `seen_reason` (what the operator's page showed)
    and no dispute of the order is open; record who, when, the text and `note`.
    FlagResolutionError for a form that cannot be acted on, LookupError for no such order."""
    note = _same_text(note).strip()  # the textarea's limit counts a line break once
    if len(note) > NOTE_LIMIT:
        raise FlagResolutionError(
            f"The note is {len(note)} characters long; keep it to {NOTE_LIMIT}."
        )
    # CRLF line breaks may make the posted text a little longer than the column allows.
    if not seen_reason.strip() or len(seen_reason) > 2 * FLAG_TEXT_LIMIT:
        raise FlagResolutionError(
            "The form does not say which problem you resolved: reload the page and try again."
        )
    with session_factory() as session, session.begin():
        number = session.scalar(sa.select(Order.number).where(Order.id == order_id))
        if number is None:
            raise LookupError(f"order {order_id} does not exist")
        lock_order(session, order_id)
        current = session.scalar(sa.select(Order.attention_reason).where(Order.id == order_id))
        if current is None:
            return ResolveResult(
                ResolveOutcome.NOT_FLAGGED, number, _not_flagged(session, order_id, number)
            )
        if _same_text(current) != _same_text(seen_reason):
            return ResolveResult(
                ResolveOutcome.CHANGED, number, _changed(number, seen_reason, current)
            )
        disputes = open_order_disputes(session, order_id)
        if disputes:
            named = ", ".join(f"{row.dispute_id} ({row.status})" for row in disputes)
            return ResolveResult(
                ResolveOutcome.DISPUTE_OPEN,
                number,
                f"Order {number} cannot be resolved while its dispute is open: {named}. "
                "Answer it in Stripe; resolve the order once the bank has decided it.",
            )
        _clear(session, order_id, current, None)
        session.add(
            FlagResolution(
                order_id=order_id,
                reason=current,
                note=note,
                resolved_by=operator[:OPERATOR_NAME_LIMIT],
            )
        )
    return ResolveResult(ResolveOutcome.RESOLVED, number, f"Order {number} is resolved.")


def _not_flagged(session: Session, order_id: int, number: str) -> str:
    last = session.scalar(
        sa.select(FlagResolution)
        .where(FlagResolution.order_id == order_id)
        .order_by(FlagResolution.resolved_at.desc(), FlagResolution.id.desc())
        .limit(1)
    )
    if last is None:
        return f"Order {number} is not flagged: nothing to resolve."
    return (
        f"Order {number} was resolved already, by {last.resolved_by} at "
        f"{last.resolved_at:%Y-%m-%d %H:%M} UTC."
    )


def _changed(number: str, seen: str, current: str) -> str:
    seen_reasons = set(_same_text(seen).split(REASON_SEPARATOR))
    new = [
        reason
        for reason in current.split(REASON_SEPARATOR)
        if _same_text(reason) not in seen_reasons
    ]
    if new:
        return (
            f"A new problem was reported for order {number} since you looked: "
            f"{REASON_SEPARATOR.join(new)}. Nothing was resolved: read it and resolve again."
        )
    return (
        f"Order {number}'s problems changed since you looked (one was cleared meanwhile); "
        f"it now reads: {current}. Nothing was resolved: read it and resolve again."
    )


def _clear(session: Session, order_id: int, current: str, kept: str | None) -> None:
    """Set the flag to `kept` if it still reads `current` (the caller holds the order's lock:
    the condition restates what was read under it)."""
    changed = session.execute(
        sa.update(Order)
        .where(Order.id == order_id, Order.attention_reason == current)
        # Off the list once no reason is left: the time it was listed goes with the flag.
        .values(attention_reason=kept, **({"flagged_at": None} if kept is None else {}))
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    if changed != 1:
        raise RuntimeError(f"order {order_id}'s flag changed under its lock")


def clear_dispute_reason(session: Session, order_id: int, dispute_id: str, operator: str) -> bool:
    """In the caller's transaction (its dispute acknowledged): take that dispute's reason off the
    order's flag, keep the others (the order leaves the list when none is left), and record it.
    False when the flag holds no reason of that dispute (resolved already)."""
    lock_order(session, order_id)
    current = session.scalar(sa.select(Order.attention_reason).where(Order.id == order_id))
    if not current:
        return False
    kept, removed = reasons_without(current, dispute_flag_marker(dispute_id))
    if not removed:
        return False
    _clear(session, order_id, current, kept)
    session.add(
        FlagResolution(
            order_id=order_id,
            reason=removed[:FLAG_TEXT_LIMIT],
            note=ACKNOWLEDGED_NOTE,
            resolved_by=operator[:OPERATOR_NAME_LIMIT],
            dispute_id=dispute_id,
        )
    )
    return True


def recent_resolutions(session: Session, *, limit: int = 50) -> list[FlagResolution]:
    """The latest clearings of orders' flags, newest first, with their orders."""
    return list(
        session.scalars(
            sa.select(FlagResolution)
            .options(selectinload(FlagResolution.order))
            .order_by(FlagResolution.resolved_at.desc(), FlagResolution.id.desc())
            .limit(limit)
        )
    )

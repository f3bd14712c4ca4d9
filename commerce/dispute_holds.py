"""The wallet's side of a disputed card top-up: the disputed credit is held (taken back from the
wallet as far as it is unspent, never below zero) once a chargeback is on, and given back once if
the shop keeps the money (won, funds reinstated, prevented); lost leaves it taken.

commerce.disputes records the dispute and calls :func:`hold_or_release_topup_credit` under the
dispute row's lock and the wallet's lock (taken first, as a refund of the top-up takes it before
reading its disputes: commerce.wallet_topup). The wallet's lines are keyed by the dispute, so
each effect applies once however often the event is delivered.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.dispute_models import KEPT_STATUSES, PaymentDispute, is_chargeback
from commerce.models import User, WalletEntry, WalletEntryKind
from commerce.topup_refunds import RefundsSeen, refunded_as_known
from commerce.wallet import record_wallet_entry, take_back
from commerce.wallet_topup import card_topup_reference
from onecart.money import Money

logger = logging.getLogger(__name__)

HOLD_DESCRIPTION = "Card top-up disputed with the bank: credit held"
# The wallet lines' references: one hold and one give-back per dispute.
HOLD_REFERENCE_PREFIX = "stripe-dispute-"
RELEASE_REFERENCE_PREFIX = "stripe-dispute-release-"
RELEASE_DESCRIPTION = "Card top-up dispute won: credit given back"


def hold_or_release_topup_credit(
    session: Session, row: PaymentDispute, seen: RefundsSeen | None
) -> list[str]:
    """Hold the disputed top-up credit once a chargeback is on; give it back once the shop keeps
    the money. Under the row's lock; the wallet lines are keyed by the dispute as well. `seen`:
    Stripe's refunds of the top-up, read before the lock (None: nothing is known refunded).
    Returns what the wallet got, in words."""
    user = session.get(User, row.user_id) if row.user_id is not None else None
    if user is None:
        return ["the wallet's account is gone"]
    effects: list[str] = []
    if row.wallet_held_minor is None and is_chargeback(row):
        effects += _hold(session, user, row, seen)
    kept = row.status in KEPT_STATUSES or (
        row.funds_reinstated_at is not None and row.status != "lost"
    )
    # Reinstated funds with a lost dispute are the part refunded before the dispute, which the
    # hold never took: nothing to give back then.
    if kept and row.wallet_held_minor is not None and row.wallet_released_minor is None:
        effects.append(_release(session, user, row, row.wallet_held_minor))
    return effects


def _hold(session: Session, user: User, row: PaymentDispute, seen: RefundsSeen | None) -> list[str]:
    """Take back the disputed credit, as far as it is unspent; what was spent is recorded as
    short (the operator sees it) and logged."""
    credited = session.scalar(
        sa.select(WalletEntry.amount_minor).where(
            WalletEntry.kind == WalletEntryKind.TOPUP,
            WalletEntry.reference == card_topup_reference(row.payment_intent_id or ""),
        )
    )
    # A partially refunded top-up can be disputed for the whole charge: the chargeback claims at
    # most what the refunds left of it.
    refunded = refunded_as_known(session, user.id, seen) if seen is not None else 0
    disputed = max(0, min(row.amount_minor, (credited or 0) - refunded))
    if row.currency != user.wallet_currency:
        # Cannot happen for a top-up of ours (credited in the wallet's currency).
        row.wallet_held_minor, row.wallet_short_minor = 0, disputed
        return [f"in {row.currency}, not the wallet's {user.wallet_currency}"]
    taken = (
        take_back(
            session,
            user,
            Money(disputed, row.currency),
            reference=f"{HOLD_REFERENCE_PREFIX}{row.dispute_id}",
            description=HOLD_DESCRIPTION,
        )
        if disputed
        else 0
    )
    row.wallet_held_minor, row.wallet_short_minor = taken, disputed - taken
    effects = [f"{Money(taken, row.currency)} held in the wallet"]
    if disputed - taken:
        effects.append(f"{Money(disputed - taken, row.currency)} already spent")
        logger.error(
            "dispute %s of user %s: %s of the disputed top-up was already spent",
            row.dispute_id,
            user.id,
            Money(disputed - taken, row.currency),
        )
    return effects


def _release(session: Session, user: User, row: PaymentDispute, held: int) -> str:
    """Give the hold back once. What of it stands in for a refund of the top-up made meanwhile
    stays taken: the card got that back by the refund (commerce.topup_refunds)."""
    released = max(0, held - row.wallet_refund_covered_minor)
    if released:
        record_wallet_entry(
            session,
            user,
            kind=WalletEntryKind.ADJUSTMENT,
            amount=Money(released, row.currency),
            reference=f"{RELEASE_REFERENCE_PREFIX}{row.dispute_id}",
            description=RELEASE_DESCRIPTION,
        )
    row.wallet_released_minor = released
    return f"{Money(released, row.currency)} given back"

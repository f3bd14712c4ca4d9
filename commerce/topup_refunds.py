"""Refunds of wallet top-ups made outside OneCart, taken back from the wallet once each.

OneCart never refunds a top-up, so a refund of one was made outside OneCart (the Stripe
dashboard): on `charge.refunded`, :func:`take_back_refunded_topup` asks Stripe for the top-up's
refunds and takes each back from the wallet once (never below zero; what was already spent is
reported for an operator). It credits the top-up first if that had not happened yet
(commerce.wallet_topup), so a success event arriving after the refund credits nothing more. While
a chargeback of the same top-up holds its credit (commerce.dispute_holds), the card cannot get
more back than the top-up by the refund and the chargeback together: the part of a refund the
hold already took is not taken again (it is recorded on the dispute, whose won outcome gives back
only the rest of the hold). The other way round, a hold decided after a refund was taken back
claims only what the refunds left of the top-up, the wallet's take-backs telling it when Stripe's
answer is older than they are (:func:`refunded_as_known`).

A refund Stripe accepted and later reports failed or canceled (a closed card: Stripe's
`charge.refund.updated`) gave the card nothing: :func:`undo_failed_topup_refund` asks Stripe and
gives the wallet back what that refund's take-back took, once, and what a dispute hold stood in
for of it (recorded per refund, `TopUpRefundCover`): to the hold while it stands (a won dispute
gives it back, a lost one paid the chargeback with it), to the wallet when the hold was already
given back less it. A refund failed before its take-back ran is marked so that it is never taken
(Stripe's list may be older than the failure).

As in commerce.wallet_topup, Stripe is asked before anything is written, never while a lock is
held, and what the wallet did since Stripe answered is re-checked under the wallet's lock.
Services flush; the caller commits.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import stripe
from sqlalchemy.orm import Session

from commerce.dispute_models import PaymentDispute, TopUpRefundCover
from commerce.models import WalletEntry, WalletEntryKind
from commerce.payments.gateway import (
    PaymentError,
    from_stripe_amount,
)
from commerce.wallet import (
    lock_wallet,
    record_wallet_entry,
    take_back,
)
from commerce.wallet_topup import (
    TOPUP_PURPOSE,
    TopUpState,
    credit_retrieved_topup,
    intent_metadata,
    retrieve_intent,
    stripe_failure,
    topup_account,
)
from onecart.money import Money

logger = logging.getLogger(__name__)

TOPUP_REFUND_DESCRIPTION = "Top-up refunded on the card"
# The wallet lines' references (unique per kind: each is written once); the admin's ledger names
# a line's cause by them (commerce.wallet_admin).
TOPUP_REFUND_REFERENCE_PREFIX = "stripe-topup-refund-"
# A refund that failed at Stripe: its take-back given back (never a prefix of the take-backs':
# refunded_as_known reads those by prefix).
FAILED_REFUND_REFERENCE_PREFIX = "stripe-topup-failed-refund-"
FAILED_REFUND_DESCRIPTION = "Top-up refund failed at the card: taken-back amount returned"
# Refund statuses that give the money back to the card (or are about to).
TOPUP_REFUND_TAKEN_STATUSES = frozenset({"succeeded", "pending"})
# Refund statuses that gave the card nothing (Stripe: a refund can fail after it was accepted).
TOPUP_REFUND_FAILED_STATUSES = frozenset({"failed", "canceled"})


@dataclass(frozen=True, slots=True)
class TopUpRefunds:
    """What :func:`take_back_refunded_topup` found: refunded on the card, taken back from the
    wallet, and `short`: refunded but already spent (an operator follows it up)."""

    refunded: Money
    taken: int
    short: int


@dataclass(frozen=True, slots=True)
class RefundsSeen:
    """What Stripe listed as refunded of a top-up (refund id: amount), and the user's newest
    refund take-back line (:func:`last_refund_takeback`) read just before Stripe was asked."""

    amounts: Mapping[str, int]
    ledger_mark: int


class StaleRefunds(Exception):
    """The wallet took back a refund of the top-up that Stripe's answer did not list."""


def take_back_refunded_topup(
    session: Session, client: stripe.StripeClient, intent_id: str
) -> TopUpRefunds | None:
    """Take back from the wallet what Stripe refunded of a top-up (see the module docstring):
    one ADJUSTMENT line per Stripe refund, so however often Stripe tells us, each is taken once.
    None when the PaymentIntent is not a top-up (an order's payment: commerce.payments).

    Stripe is asked (the intent and its refunds), not the event believed, and asked before
    anything is written: the caller must hold no lock of its own here. PaymentUnavailable when it
    cannot be asked: nothing is taken, the event's redelivery tries again."""
    intent = retrieve_intent(client, intent_id)
    if intent_metadata(intent).get("onecart_purpose") != TOPUP_PURPOSE:
        return None
    try:
        taken_refunds = topup_refunds(client, intent_id)
    except stripe.StripeError as exc:
        raise stripe_failure(exc, "looked up") from exc
    # Nothing below asks Stripe: the wallet's lock (and SQLite's write lock, which the credit
    # already takes) is never held while a remote call waits. The answer may be older than the
    # lock; what the wallet did meanwhile is read under it (the take-backs' and failures' lines,
    # the holds), as the dispute's handler does the other way round (refunded_as_known).
    credited, user = credit_retrieved_topup(session, intent, None)
    if credited.state != TopUpState.CREDITED or credited.amount is None:
        return TopUpRefunds(Money(0, str(intent.currency).upper()), 0, 0)
    # The disputes of this top-up are read under the wallet's lock, which the dispute events
    # take too before they hold or give back (commerce.disputes): a hold and a refund never
    # both take the same money, however their events interleave.
    lock_wallet(session, user)
    holds = list(
        session.scalars(
            sa.select(PaymentDispute)
            .where(
                PaymentDispute.payment_intent_id == intent_id,
                PaymentDispute.wallet_held_minor.is_not(None),
            )
            .order_by(PaymentDispute.id)
            .with_for_update()
        )
    )
    refunded = taken = 0
    for refund in taken_refunds:
        currency = str(refund.currency).upper()
        amount = Money(from_stripe_amount(refund.amount, currency), currency)
        if amount.currency != credited.amount.currency:
            raise PaymentError(f"Refund {refund.id} is in another currency than the top-up.")
        if _taken_before(session, f"{FAILED_REFUND_REFERENCE_PREFIX}{refund.id}"):
            continue  # failed at Stripe since it listed this refund (undo_failed_topup_refund)
        refunded += amount.minor
        reference = f"{TOPUP_REFUND_REFERENCE_PREFIX}{refund.id}"
        asked = amount.minor
        if not _taken_before(session, reference):
            asked -= _covered_by_holds(
                session, holds, str(refund.id), amount.minor, credited.amount.minor, refunded
            )
        taken += take_back(
            session,
            user,
            Money(asked, amount.currency),
            reference=reference,
            description=TOPUP_REFUND_DESCRIPTION,
        )
    covered = sum(hold.wallet_refund_covered_minor for hold in holds)
    short = refunded - covered - taken
    if short:
        # Spent before the card got it back: the wallet does not go negative; an operator
        # takes it up with the shopper.
        logger.error(
            "top-up %s of user %s: %s refunded on the card was already spent",
            intent_id,
            user.id,
            Money(short, credited.amount.currency),
        )
    return TopUpRefunds(Money(refunded, credited.amount.currency), taken, short)


def undo_failed_topup_refund(
    session: Session, client: stripe.StripeClient, intent_id: str, refund_id: str
) -> Money | None:
    """A refund of top-up `intent_id` that Stripe now reports failed or canceled: give the wallet
    back what its take-back took (an ADJUSTMENT line keyed by the refund, written even when
    nothing was taken, so a take-back arriving later from an older list of Stripe's skips it).
    Returns what was given back; None when the intent is not a top-up or Stripe does not report
    the refund failed (Stripe is asked, not the event believed). PaymentUnavailable when it
    cannot be asked: nothing changes, the event's redelivery tries again."""
    intent = retrieve_intent(client, intent_id)
    if intent_metadata(intent).get("onecart_purpose") != TOPUP_PURPOSE:
        return None
    try:
        refund = client.v1.refunds.retrieve(refund_id)
    except stripe.StripeError as exc:
        raise stripe_failure(exc, "looked up") from exc
    refund_intent = getattr(refund, "payment_intent", None)
    if str(refund.status) not in TOPUP_REFUND_FAILED_STATUSES or refund_intent != intent_id:
        return None
    refunded_minor = from_stripe_amount(refund.amount, str(refund.currency))
    user = topup_account(session, intent_metadata(intent))
    lock_wallet(session, user)
    failed_reference = f"{FAILED_REFUND_REFERENCE_PREFIX}{refund.id}"
    given_before = session.scalar(
        sa.select(WalletEntry.amount_minor).where(
            WalletEntry.kind == WalletEntryKind.ADJUSTMENT,
            WalletEntry.reference == failed_reference,
        )
    )
    if given_before is not None:  # told before: its holds were given back their part then
        return Money(given_before, user.wallet_currency)
    taken_line = session.scalar(
        sa.select(WalletEntry.amount_minor).where(
            WalletEntry.kind == WalletEntryKind.ADJUSTMENT,
            WalletEntry.reference == f"{TOPUP_REFUND_REFERENCE_PREFIX}{refund.id}",
        )
    )
    taken = -(taken_line or 0)
    released = _uncover_failed_refund(session, str(refund.id))
    returned = record_wallet_entry(
        session,
        user,
        kind=WalletEntryKind.ADJUSTMENT,
        amount=Money(taken + released, user.wallet_currency),
        reference=failed_reference,
        description=FAILED_REFUND_DESCRIPTION,
    )
    amount = Money(returned.entry.amount_minor, user.wallet_currency)
    covered = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(TopUpRefundCover.amount_minor), 0)).where(
            TopUpRefundCover.refund_id == str(refund.id)
        )
    )
    unspent = taken + int(covered or 0)
    if taken_line is not None and refunded_minor > unspent:
        # The take-back found the rest spent (reported as short then): the card got nothing,
        # so nothing of it is owed by the shopper any more.
        logger.warning(
            "top-up %s of user %s: refund %s of %s failed at Stripe; %s of it had been reported "
            "spent and is no longer owed",
            intent_id,
            user.id,
            refund.id,
            Money(refunded_minor, user.wallet_currency),
            Money(refunded_minor - unspent, user.wallet_currency),
        )
    return amount


def _uncover_failed_refund(session: Session, refund_id: str) -> int:
    """Give back what dispute holds stood in for a refund that failed (the caller holds the
    wallet's lock, which the dispute events take before they hold or give back): each hold's
    coverage drops by its part, so it stands for the chargeback alone (a won dispute then gives
    it back, a lost one paid the chargeback with it); a hold already given back less that part
    cannot give it any more, so it is returned here, for the wallet's line. Called once per
    refund (its failed line is written in the same transaction)."""
    released = 0
    covers = session.execute(
        sa.select(TopUpRefundCover, PaymentDispute)
        .join(PaymentDispute, PaymentDispute.id == TopUpRefundCover.dispute_row_id)
        .where(TopUpRefundCover.refund_id == refund_id)
        .order_by(PaymentDispute.id)
        .with_for_update()
    ).all()
    for cover, hold in covers:
        session.refresh(hold)
        hold.wallet_refund_covered_minor -= cover.amount_minor
        if hold.wallet_released_minor is not None:
            released += cover.amount_minor
    session.flush()
    return released


def topup_refunds(client: stripe.StripeClient, intent_id: str) -> list[Any]:
    """Stripe's refunds of top-up `intent_id` that give (or are about to give) the money back
    to the card, oldest first, from every page Stripe lists (a refund past the first page is
    not absent). stripe.StripeError as raised: the caller says what it means."""
    refunds = client.v1.refunds.list(params={"payment_intent": intent_id, "limit": 100})
    return sorted(
        (r for r in refunds.auto_paging_iter() if str(r.status) in TOPUP_REFUND_TAKEN_STATUSES),
        key=lambda r: (int(getattr(r, "created", 0) or 0), str(r.id)),
    )


def _refund_takebacks(user_id: int) -> sa.Select[tuple[int, str]]:
    return sa.select(WalletEntry.id, WalletEntry.reference).where(
        WalletEntry.user_id == user_id,
        WalletEntry.kind == WalletEntryKind.ADJUSTMENT,
        WalletEntry.reference.startswith(TOPUP_REFUND_REFERENCE_PREFIX, autoescape=True),
    )


def last_refund_takeback(session: Session, user_id: int) -> int:
    """The newest line (its id; 0 for none) by which the user's wallet took back a top-up
    refund: the ledger's mark :func:`refunded_as_known` checks Stripe's answer against."""
    newest = _refund_takebacks(user_id).with_only_columns(sa.func.max(WalletEntry.id))
    return session.scalar(newest) or 0


def refunded_as_known(session: Session, user_id: int, seen: RefundsSeen) -> int:
    """What the card got back of a disputed top-up by refunds, as far as the dispute's hold must
    know (commerce.dispute_holds): under the wallet's lock, which every refund's take-back holds while
    it writes its line, with `seen` read from Stripe before the lock (never asked under it).

    Stripe's answer gives the figure: each refund it listed counts in full (what the card got
    back, even when its take-back found the wallet spent), whether or not its take-back has run:
    run before, it took the refund and the hold claims only the rest of the top-up; run later, it
    finds the hold and takes the refund in full, as the hold left it out. But what was taken back
    is the ledger's to say, not the answer's: a refund made and taken back between the answer and
    the lock is in the ledger only, and holding the whole top-up then takes it twice. The ledger
    cannot give the figure itself (a take-back line names its refund, not the top-up, and records
    what the wallet gave up, not what the card got back), so it is the check: a line up to the
    mark was written, its refunds read from Stripe, before `seen` was asked, so `seen` lists its
    refund; a newer line whose refund `seen` does not list means the answer is older than the
    wallet, and nothing may be held on it (StaleRefunds: the caller asks again, lock released).
    The line may be another top-up's: asking again costs one more question."""
    lines = session.execute(_refund_takebacks(user_id).where(WalletEntry.id > seen.ledger_mark))
    taken = {reference.removeprefix(TOPUP_REFUND_REFERENCE_PREFIX) for _, reference in lines}
    unlisted = taken - seen.amounts.keys()
    if unlisted:
        raise StaleRefunds(
            f"refunds {', '.join(sorted(unlisted))} taken back since Stripe was asked"
        )
    return sum(seen.amounts.values())


def _taken_before(session: Session, reference: str) -> bool:
    return (
        session.scalar(
            sa.select(WalletEntry.id).where(
                WalletEntry.kind == WalletEntryKind.ADJUSTMENT, WalletEntry.reference == reference
            )
        )
        is not None
    )


def _covered_by_holds(
    session: Session,
    holds: list[PaymentDispute],
    refund_id: str,
    refund_minor: int,
    credited_minor: int,
    refunded_minor: int,
) -> int:
    """What of a new refund a dispute hold on the same top-up already took (recorded on the
    dispute, and per refund for a failure to undo; the caller holds the lock). The card gets
    back at most the top-up in all: once `refunded_minor` (this refund included) is refunded, a
    chargeback can still claim only the rest, so whatever the hold keeps beyond that claim
    stands in for this refund."""
    covered = 0
    for hold in holds:
        if hold.wallet_held_minor is None or hold.wallet_released_minor is not None:
            continue  # no hold, or given back already: the refund is the wallet's to take
        still_claimable = min(hold.amount_minor, max(0, credited_minor - refunded_minor))
        spare = hold.wallet_held_minor - hold.wallet_refund_covered_minor - still_claimable
        part = max(0, min(refund_minor - covered, spare))
        if part:
            hold.wallet_refund_covered_minor += part
            session.add(
                TopUpRefundCover(dispute_row_id=hold.id, refund_id=refund_id, amount_minor=part)
            )
        covered += part
    return covered

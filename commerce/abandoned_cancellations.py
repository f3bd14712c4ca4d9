"""Shopper cancellations whose job is gone: found by the sweeper and resolved by asking.

The cancellation job (commerce.cancellation.carry_out_cancellation, retried by RQ) records an
answer on every placed part it asks to cancel (`cancel_outcome`; an unclear one only on its last
attempt, the earlier ones being retried). A job killed on its last attempt (the work horse
timed out, the machine went away) after the marketplace cancelled
leaves the part placed with no answer, and nothing runs the job again: a marketplace tracking
follows reports the cancellation and tracking refunds it, but on one tracking cannot ask
nothing ever refunds that part. The sweeper finds such parts once the order's last
cancellation job should long have ended, takes each over with a compare-and-set on
`cancel_outcome` (NULL -> "unknown", so two sweeps never both act; the claim's time is kept,
`cancel_claimed_at`, so that a claim left by a sweep killed mid-way is taken over once it is
older than any live sweep's, SWEEP_CLAIM_DEAD_AFTER; a live sweep renews it from a thread of
its own while it holds it (commerce.lease_renewal), however long a marketplace call takes, and
before each marketplace call, and every later write of the sweep is a compare-and-set on it, so
a sweep that lost its claim stops touching the part), and resolves it:

- it asks the marketplace for the order's status first: cancelled there, the share is
  refunded (the sub-order moves from a placed status only, under the order's lock);
- the marketplace answers it is not cancelled (the job died before its call took effect): the
  shopper's cancellation is carried out now (commerce.cancellation.cancel_on_marketplace); one
  the marketplace refuses, or a part it has shipped, goes ahead, and the shopper is told so
  once, as the job would have;
- a store that takes no cancellations (Fake Store): answered "refused", as the job would have
  (its order goes ahead, the shopper is told so once), unless it reports the order cancelled
  itself (tracking refunds that); a refusal the job recorded but was killed before telling the
  shopper of is told now, once;
- the marketplace cannot be asked (no status API): the cancel is sent again and only its own
  reply saying cancelled refunds; a refusal then cannot tell "cancelled already" from "will not
  cancel", so, unknown not being refused, the part goes to an operator;
- the question fails (unreachable): an operator is told, and the part is asked again at the
  next sweep. Nothing is ever refunded without the marketplace saying cancelled.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from adapters.base import Capability, MarketplaceAdapter, MarketplaceError, Unsupported
from commerce.cancellation import (
    CANCELLATION_REFUSED,
    CancelOutcome,
    cancel_on_marketplace,
    claim_refusals_to_tell,
)
from commerce.exactly_once_models import OutboxMessage, OutboxTopic
from commerce.lease_renewal import renewed_while_held
from commerce.marketplace_access import AdapterProvider, marketplace_can
from commerce.models import utc_now
from commerce.notifications import notify
from commerce.order_locks import lock_order
from commerce.order_models import (
    PLACED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    SubOrderStatus,
)
from commerce.order_state import flag_order, locked_sub_order, sub_order_status_for
from commerce.payments.providers import GatewayProvider

# A sweep's claim on a part is renewed while the sweep holds it; one older than this was left
# by a sweep that was killed, and is taken over.
from commerce.sweep_claim import SWEEP_CLAIM_DEAD_AFTER

logger = logging.getLogger(__name__)

# The shopper's notice that a part's cancellation was refused, so it goes ahead.
REFUSED_KIND = CANCELLATION_REFUSED
# Placed parts a cancellation job would still ask to cancel (shipped ones it reports refused).
_CANCELLABLE = (SubOrderStatus.PLACED, SubOrderStatus.PROCESSING)


def find_abandoned_cancellations(
    session: Session,
    *,
    job_ended_before: timedelta,
    claim_dead_after: timedelta = SWEEP_CLAIM_DEAD_AFTER,
) -> list[int]:
    """Placed sub-orders of orders whose cancellation was requested, whose order's latest
    cancellation job was enqueued longer ago than `job_ended_before` (every attempt of it has
    ended by then, by success or by being killed), and that the job left without an answer
    (`cancel_outcome` NULL; at any marketplace: one that takes no cancellations is answered
    "refused" too, as the job would have) or with a refusal it never told the shopper of (it
    was killed between recording the answers and the mail), or that a sweep took and was killed
    before answering (its claim older than `claim_dead_after`)."""
    cutoff = utc_now() - job_ended_before
    latest_job = (
        sa.select(sa.func.max(OutboxMessage.created_at))
        .where(
            OutboxMessage.order_id == MarketplaceOrder.order_id,
            OutboxMessage.topic == OutboxTopic.CANCEL_ORDER,
            OutboxMessage.dispatched_at.is_not(None),
        )
        .scalar_subquery()
    )
    undispatched = (
        sa.select(OutboxMessage.id)
        .where(
            OutboxMessage.order_id == MarketplaceOrder.order_id,
            OutboxMessage.topic == OutboxTopic.CANCEL_ORDER,
            OutboxMessage.dispatched_at.is_(None),
        )
        .exists()
    )
    rows = session.execute(
        sa.select(MarketplaceOrder.id)
        .join(Order, Order.id == MarketplaceOrder.order_id)
        .where(
            Order.cancel_requested_at.is_not(None),
            sa.or_(
                sa.and_(
                    MarketplaceOrder.status.in_(_CANCELLABLE),
                    _unanswered_or_abandoned(claim_dead_after),
                ),
                sa.and_(
                    MarketplaceOrder.status.in_(PLACED_SUB_ORDER_STATUSES),
                    MarketplaceOrder.cancel_outcome == CancelOutcome.REFUSED.value,
                    MarketplaceOrder.cancel_refusal_told_at.is_(None),
                ),
            ),
            MarketplaceOrder.marketplace_order_id.is_not(None),
            latest_job < cutoff,
            ~undispatched,
        )
        .order_by(MarketplaceOrder.id)
    ).all()
    return [sub_id for (sub_id,) in rows]


def _unanswered_or_abandoned(claim_dead_after: timedelta) -> sa.ColumnElement[bool]:
    """No answer (NULL), or a sweep's claim older than `claim_dead_after` (its sweep died)."""
    return sa.or_(
        MarketplaceOrder.cancel_outcome.is_(None),
        sa.and_(
            MarketplaceOrder.cancel_outcome == CancelOutcome.UNKNOWN.value,
            MarketplaceOrder.cancel_claimed_at < utc_now() - claim_dead_after,
        ),
    )


@dataclass(slots=True)
class _HeldClaim:
    """A sweep's claim on one part. The claim's time is its identity (every later write of the
    sweep is a compare-and-set on it) and moves forward at each renewal. Renewals also run on a
    thread of their own while the sweep works: `lock` is held for the whole transaction of a
    renewal (its write and the new time) and of each write made under the claim (`_holding`),
    so the sweep never compares with a time a renewal has just replaced and takes its own claim
    for lost. Always taken before any database lock, in both threads, so neither waits for the
    other while holding what the other needs."""

    sub_order_id: int
    at: datetime
    lock: threading.Lock = field(default_factory=threading.Lock)


def _claim(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    *,
    to: str = CancelOutcome.UNKNOWN.value,
    claim_dead_after: timedelta = SWEEP_CLAIM_DEAD_AFTER,
) -> _HeldClaim | None:
    """Compare-and-set on the part's answer: NULL (or a dead sweep's claim) -> "unknown", with
    the claim's time, takes it over; None when another sweep or a late job got there first."""
    now = utc_now()
    with session_factory() as session, session.begin():
        result = session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == sub_order_id, _unanswered_or_abandoned(claim_dead_after))
            .values(
                cancel_outcome=to, cancel_claimed_at=now, updated_at=MarketplaceOrder.updated_at
            )
            .execution_options(synchronize_session=False)
        )
        taken = bool(result.rowcount)  # type: ignore[attr-defined]
    return _HeldClaim(sub_order_id, now) if taken else None


def _held_by(claim: _HeldClaim) -> sa.ColumnElement[bool]:
    """The part is still under this sweep's claim: not answered, nor taken over since."""
    return sa.and_(
        MarketplaceOrder.id == claim.sub_order_id,
        MarketplaceOrder.cancel_outcome == CancelOutcome.UNKNOWN.value,
        MarketplaceOrder.cancel_claimed_at == claim.at,
    )


def _renew(session_factory: sessionmaker[Session], claim: _HeldClaim) -> bool:
    """While the sweep holds the claim (from its renewal thread, several times per claim) and
    before each marketplace call: the claim's time moves to now (compare-and-set on its value),
    so a live sweep is not taken for a dead one, however long one call takes (httpx's timeouts
    are per read: a marketplace trickling its answer holds a call as long as it likes). False
    when the claim is no longer this sweep's: answered, or taken over (its renewals failed for a
    whole claim, the database away): the sweep then stops touching the part."""
    with claim.lock:
        now = utc_now()
        with session_factory() as session, session.begin():
            result = session.execute(
                sa.update(MarketplaceOrder)
                .where(_held_by(claim))
                .values(cancel_claimed_at=now, updated_at=MarketplaceOrder.updated_at)
                .execution_options(synchronize_session=False)
            )
            renewed = bool(result.rowcount)  # type: ignore[attr-defined]
        if renewed:
            claim.at = now
    if not renewed:
        logger.info(
            "sub-order %s: its cancellation sweep's claim is no longer held (answered, or "
            "taken over)",
            claim.sub_order_id,
        )
    return renewed


def _holding(claim: _HeldClaim | None) -> contextlib.AbstractContextManager[object]:
    """Around a transaction that writes under `claim`: no renewal runs meanwhile (one after it
    finds the part answered and stops)."""
    return claim.lock if claim is not None else contextlib.nullcontext()


def _let_go(session: Session, claim: _HeldClaim, *, outcome: str | None) -> bool:
    """In the caller's transaction, inside `_holding(claim)`: end the claim with the part's
    answer (`outcome`; NULL gives the part back to the next sweep) if this sweep still holds
    it. False when it was taken over: the new owner answers, and this sweep writes nothing more
    about the part."""
    result = session.execute(
        sa.update(MarketplaceOrder)
        .where(_held_by(claim))
        .values(
            cancel_outcome=outcome, cancel_claimed_at=None, updated_at=MarketplaceOrder.updated_at
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _give_back(session_factory: sessionmaker[Session], claim: _HeldClaim) -> bool:
    """ "unknown" -> NULL: asked again by the next sweep. False when no longer this sweep's."""
    with _holding(claim), session_factory() as session, session.begin():
        return _let_go(session, claim, outcome=None)


def _refused(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    name: str,
    claim: _HeldClaim | None = None,
) -> CancelOutcome | None:
    """Record the marketplace's refusal and tell the shopper, once per part, that it goes
    ahead, as the job would have; under the order's lock, and only while the part is still
    placed: one cancelled meanwhile (an operator recording the marketplace's word, tracking
    reporting it) keeps its cancellation, and its shopper, refunded, is not told it goes
    ahead. With this sweep's `claim`, only while it still holds it (None when it was taken
    over: the new owner answers). What the part's answer is now."""
    with _holding(claim), session_factory() as session, session.begin():
        sub_order = session.get(MarketplaceOrder, sub_order_id)
        assert sub_order is not None
        lock_order(session, sub_order.order_id)
        if claim is not None and not _let_go(session, claim, outcome=None):
            return None
        session.refresh(sub_order)
        sub_order.cancel_claimed_at = None
        if sub_order.status == SubOrderStatus.CANCELLED:
            sub_order.cancel_outcome = CancelOutcome.CANCELLED.value
            return CancelOutcome.CANCELLED
        sub_order.cancel_outcome = CancelOutcome.REFUSED.value
        order = session.get(Order, sub_order.order_id)
        assert order is not None
        # Told once, whichever run or sweep finds the refusal (the part's mark, compare-and-set
        # under the order's lock); the order's notice, if any, named only the parts refused
        # when it was sent.
        if claim_refusals_to_tell(session, [sub_order_id]):
            notify(
                session,
                order,
                REFUSED_KIND,
                f"{name} could not cancel its part of your order, so it goes ahead.",
                sub_order_id=sub_order_id,
                once=True,
            )
    return CancelOutcome.REFUSED


def resolve_abandoned_cancellation(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    *,
    adapter_for: AdapterProvider,
    gateway_for: GatewayProvider,
    claim_dead_after: timedelta = SWEEP_CLAIM_DEAD_AFTER,
) -> CancelOutcome | None:
    """Resolve one part found by find_abandoned_cancellations; None when another took it (or
    took it over while this sweep worked: its claim is renewed before each marketplace call,
    and each write is conditional on it), or, at a store that takes no cancellations, when it
    reports the order cancelled (tracking refunds it)."""
    with session_factory() as session:
        sub_order = session.get(MarketplaceOrder, sub_order_id)
        assert sub_order is not None
        market = sub_order.marketplace
        name, marketplace_order_id = market.name, sub_order.marketplace_order_id or ""
        answer, can_cancel = sub_order.cancel_outcome, marketplace_can(market, Capability.CANCEL)
    if answer == CancelOutcome.REFUSED.value:
        # The job recorded the refusal and died before its mail: said now, once (the notice
        # is per part, checked under the order's lock, so two sweeps say it once).
        return _refused(session_factory, sub_order_id, name)
    claim = _claim(session_factory, sub_order_id, claim_dead_after=claim_dead_after)
    if claim is None:
        return None
    # Renewed while held, several times per claim: no marketplace call, however slow (a
    # trickled answer, a name with many addresses), lets the claim run out under a live sweep.
    with renewed_while_held(
        functools.partial(_renew, session_factory, claim),
        lease=claim_dead_after,
        what=f"cancellation sweep of sub-order {sub_order_id}",
    ):
        return _resolve_claimed(
            session_factory,
            claim,
            adapter_for(market),
            name=name,
            marketplace_order_id=marketplace_order_id,
            can_cancel=can_cancel,
            gateway_for=gateway_for,
        )


def _resolve_claimed(
    session_factory: sessionmaker[Session],
    claim: _HeldClaim,
    adapter: MarketplaceAdapter,
    *,
    name: str,
    marketplace_order_id: str,
    can_cancel: bool,
    gateway_for: GatewayProvider,
) -> CancelOutcome | None:
    """resolve_abandoned_cancellation's work on a part this sweep holds."""
    sub_order_id = claim.sub_order_id
    reason = f"Cancelled at your request; {name} confirmed."
    can_ask = True
    try:
        state = adapter.order_status(marketplace_order_id)
    except Unsupported:
        can_ask = False
    except MarketplaceError as exc:
        logger.warning("sub-order %s: its abandoned cancellation: %s", sub_order_id, exc)
        if not can_cancel:
            # The job answers such a store "refused" without calling it; its status was asked
            # only to spare the shopper "it goes ahead" if the store cancelled the order itself
            # (tracking refunds that, as after the job). Down, it is answered as the job would.
            return _refused(session_factory, sub_order_id, name, claim)
        if not _give_back(session_factory, claim):  # asked again at the next sweep
            return None
        _flag_while_placed(
            session_factory,
            sub_order_id,
            f"sub-order {sub_order_id}: the shopper's cancellation job ended without an answer "
            f"from {name}, and {name} cannot be asked now; nothing was refunded. Asked again at "
            "each sweep; or ask them whether it is cancelled.",
        )
        return CancelOutcome.UNKNOWN
    else:
        status = sub_order_status_for(state.status)
        if status in (SubOrderStatus.SHIPPED, SubOrderStatus.DELIVERED):
            # Too late to cancel: tracking moves it on; the cancellation is refused for it.
            return _refused(session_factory, sub_order_id, name, claim)
        if status == SubOrderStatus.CANCELLED and not can_cancel:
            # Cancelled by the store itself: tracking reports it and refunds the part; given
            # back, so a later sweep answers it if tracking has not by then.
            _give_back(session_factory, claim)
            return None
    if not can_cancel:
        # A store that takes no cancellations (Fake Store): the job would have answered
        # "refused" without calling it, and so does this sweep; the shopper is told it goes
        # ahead, once. Nothing is refunded.
        return _refused(session_factory, sub_order_id, name, claim)
    # The claim is renewed before the cancel is sent, and a sweep that lost it meanwhile sends
    # nothing (its new owner asks for itself).
    if not _renew(session_factory, claim):
        return None
    # Cancelled there already: cancel_on_marketplace's cancel is refused or answered cancelled,
    # and either way it reads the order back as cancelled before refunding. Not cancelled yet:
    # this is the cancellation the job never made.
    # The cancel call and the read-back after an unclear reply are two calls: renewed between
    # them too, and a sweep that lost the claim meanwhile does not read back nor record (its
    # new owner asks). Once the part is cancelled and refunded, no sweep finds it: the Stripe
    # calls that follow need no claim.
    outcome = cancel_on_marketplace(
        session_factory,
        sub_order_id,
        adapter,
        reason=reason,
        gateway_for=gateway_for,
        before_read_back=functools.partial(_renew, session_factory, claim),
    )
    if outcome == CancelOutcome.REFUSED and can_ask:
        return _refused(session_factory, sub_order_id, name, claim)
    if outcome == CancelOutcome.CANCELLED:
        # The part is cancelled and refunded (from a placed status only, under the order's
        # lock) whoever holds the claim; the answer is recorded by its holder.
        with _holding(claim), session_factory() as session, session.begin():
            _let_go(session, claim, outcome=outcome.value)
        return outcome
    # Unknown, or refused by a marketplace that cannot say whether it cancelled already: never
    # a refund on a guess, nor "it goes ahead" told to the shopper. An operator asks.
    if not _flag_while_placed(
        session_factory,
        sub_order_id,
        f"sub-order {sub_order_id}: the shopper's cancellation job ended without an answer "
        f"from {name}, and sending the cancel again gave none that says whether it is "
        f"cancelled; nothing was refunded. Ask {name}: refund the part if cancelled.",
        claim,
    ):
        return None
    return CancelOutcome.UNKNOWN


def _flag_while_placed(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    reason: str,
    claim: _HeldClaim | None = None,
) -> bool:
    """Ask an operator about a part the marketplace gave no answer for, under the order's lock
    and only while the part is still placed: one an operator recorded cancelled meanwhile (or
    tracking saw cancelled) is settled, and its order, perhaps cleared by the operator already,
    is not put back on the list for it. With this sweep's `claim`, the part is answered
    "unknown" for the operator (no longer a claim to take over) only while the sweep holds it:
    False, and nothing flagged, when it was taken over."""
    with _holding(claim), session_factory() as session, session.begin():
        sub_order = locked_sub_order(session, sub_order_id)
        if claim is not None:
            if not _let_go(session, claim, outcome=CancelOutcome.UNKNOWN.value):
                return False
            session.refresh(sub_order)
        if sub_order.status in PLACED_SUB_ORDER_STATUSES:
            flag_order(sub_order.order, reason)
    return True

"""A placement attempt's hold on a sub-order, and what an attempt can end in.

A placement is claimed with one conditional UPDATE that sets a claim token and a lease; every
later write of the attempt is conditional on that token, so a worker whose lease was taken over
never overwrites the new owner's result. The attempt renews its lease while it runs
(`renew_claim`, commerce.lease_renewal), so only a dead attempt's claim runs out: one still
waiting on a slow marketplace is never taken over by a second attempt, which would ask the
marketplace by reference before the first attempt's order exists there and send it again. A
pending sub-order of an order the shopper asked to cancel is never claimed.

A placement job belongs to one outbox row (`outbox_id`), and RQ retries it under that row. When
the sweeper re-queues a sub-order (a new outbox row) while the previous job still has retries
due, the claim lets only the job of the newest row take the sub-order: the older job's retries
find it `superseded` and end, so one chain of attempts works a part at a time, never two taking
turns at asking (and, should a marketplace answer "no such order" to one while the other's order
is on its way, placing).

The placement modules depend one way: placement_claims (this) → placement_outcomes (recording
what an attempt learnt) → placement (one attempt: ask the marketplace when in doubt, place).
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.exactly_once_models import OutboxMessage, OutboxTopic
from commerce.models import utc_now
from commerce.order_models import (
    PLACED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    SubOrderStatus,
)
from commerce.order_state import ERROR_TEXT_LIMIT

# A claim's lease: a placement whose claim has not been renewed for this long is presumed dead
# (its worker was killed) and may be claimed again, after asking the marketplace what it holds.
DEFAULT_STUCK_AFTER = timedelta(minutes=5)


class PlacementResult(enum.StrEnum):
    """What one placement attempt did."""

    PLACED = "placed"
    RECONCILED = "reconciled"
    NOT_CLAIMED = "not_claimed"
    RETRY = "retry"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Unknown outcome after the last attempt: the sweeper asks the marketplace again later.
    RECONCILING = "reconciling"
    NEEDS_ATTENTION = "needs_attention"
    # The job's outbox row is no longer the sub-order's newest: a re-queued job works it now.
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class Claim:
    """This attempt's hold on a sub-order. `in_doubt`: an earlier attempt may have reached the
    marketplace (its outcome was unknown, or its worker died mid-call)."""

    token: str
    in_doubt: bool


def _cancel_requested(order_id_column: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
    return (
        sa.select(Order.id)
        .where(Order.id == order_id_column, Order.cancel_requested_at.is_not(None))
        .exists()
    )


def _newer_placement_job(
    sub_order_id_column: sa.ColumnElement[int], outbox_id: int
) -> sa.ColumnElement[bool]:
    """A placement outbox row for the sub-order newer than `outbox_id` exists."""
    return (
        sa.select(OutboxMessage.id)
        .where(
            OutboxMessage.sub_order_id == sub_order_id_column,
            OutboxMessage.topic == OutboxTopic.PLACE_SUB_ORDER,
            OutboxMessage.id > outbox_id,
        )
        .exists()
    )


def is_superseded(session: Session, sub_order_id: int, outbox_id: int | None) -> bool:
    """True when the job of outbox row `outbox_id` is no longer the sub-order's newest placement
    job (None: a job from before jobs carried their row, never superseded)."""
    if outbox_id is None:
        return False
    return bool(
        session.scalar(sa.select(_newer_placement_job(sa.literal(sub_order_id), outbox_id)))
    )


def claim_sub_order(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    *,
    lease: timedelta,
    outbox_id: int | None = None,
) -> Claim | None:
    """Take the sub-order for one attempt (a conditional UPDATE); None when someone else holds
    it, there is nothing to place, or (with `outbox_id`, the job's outbox row) a newer placement
    job was queued for it.

    In doubt first: `reconciling`, or `placing` whose lease ran out. Then `pending`, unless the
    shopper asked to cancel the order (the cancellation and the claim both change the row only
    from `pending`, so exactly one of them wins)."""
    now = utc_now()
    token = secrets.token_hex(16)
    values = {
        "status": SubOrderStatus.PLACING,
        "claim_token": token,
        "claim_expires_at": now + lease,
        "placing_started_at": now,
        # Kept from the first claim while the part flips between `placing` (re-asking) and
        # `reconciling`: how long its outcome has been unknown (commerce.sweep_steps).
        "unresolved_since": sa.func.coalesce(MarketplaceOrder.unresolved_since, now),
        "attempts": MarketplaceOrder.attempts + 1,
        "updated_at": now,
    }
    candidates = (
        (
            True,
            sa.or_(
                MarketplaceOrder.status == SubOrderStatus.RECONCILING,
                sa.and_(
                    MarketplaceOrder.status == SubOrderStatus.PLACING,
                    sa.or_(
                        MarketplaceOrder.claim_expires_at.is_(None),
                        MarketplaceOrder.claim_expires_at < now,
                    ),
                ),
            ),
        ),
        (
            False,
            sa.and_(
                MarketplaceOrder.status == SubOrderStatus.PENDING,
                ~_cancel_requested(MarketplaceOrder.order_id),
            ),
        ),
    )
    newest_job = (
        sa.true() if outbox_id is None else ~_newer_placement_job(MarketplaceOrder.id, outbox_id)
    )
    for in_doubt, condition in candidates:
        with session_factory() as session, session.begin():
            claimed = session.execute(
                sa.update(MarketplaceOrder)
                .where(MarketplaceOrder.id == sub_order_id, condition, newest_job)
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
        if claimed:
            return Claim(token=token, in_doubt=in_doubt)
    return None


def renew_claim(
    session_factory: sessionmaker[Session], sub_order_id: int, claim: Claim, *, lease: timedelta
) -> bool:
    """Push the claim's lease forward while its attempt runs (placing, or placed and being
    cancelled with the claim kept); False once the claim is gone (released or recorded)."""
    with session_factory() as session, session.begin():
        renewed = session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == sub_order_id, MarketplaceOrder.claim_token == claim.token)
            .values(claim_expires_at=utc_now() + lease)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    return bool(renewed)


def take_over_kept_claim(
    session_factory: sessionmaker[Session], sub_order_id: int, *, lease: timedelta
) -> Claim | None:
    """Take over the claim a placement kept on a placed sub-order to cancel it (billed beyond
    the tolerance) once its lease ran out: the attempt died between recording the order and
    having the marketplace's answer to the cancel. A conditional UPDATE on the expired claim,
    so one sweeper finishes it; None when nothing is left to take over."""
    now = utc_now()
    token = secrets.token_hex(16)
    with session_factory() as session, session.begin():
        taken = session.execute(
            sa.update(MarketplaceOrder)
            .where(
                MarketplaceOrder.id == sub_order_id,
                MarketplaceOrder.status.in_(PLACED_SUB_ORDER_STATUSES),
                MarketplaceOrder.claim_token.is_not(None),
                MarketplaceOrder.claim_expires_at < now,
            )
            .values(claim_token=token, claim_expires_at=now + lease, updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    return Claim(token=token, in_doubt=False) if taken else None


def holds_claim(sub_order: MarketplaceOrder, claim: Claim) -> bool:
    """True while this attempt still owns the sub-order (placing, under its token)."""
    return sub_order.status == SubOrderStatus.PLACING and sub_order.claim_token == claim.token


def release_claim(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    claim: Claim,
    status: SubOrderStatus,
    error: str,
) -> bool:
    """placing → `status` (pending or reconciling) if this attempt still holds the claim."""
    with session_factory() as session, session.begin():
        released = session.execute(
            sa.update(MarketplaceOrder)
            .where(
                MarketplaceOrder.id == sub_order_id,
                MarketplaceOrder.status == SubOrderStatus.PLACING,
                MarketplaceOrder.claim_token == claim.token,
            )
            .values(
                status=status,
                claim_token=None,
                claim_expires_at=None,
                # Given back `pending`, nothing was sent: no outcome is unknown any more.
                unresolved_since=(
                    None if status == SubOrderStatus.PENDING else MarketplaceOrder.unresolved_since
                ),
                last_error=error[:ERROR_TEXT_LIMIT],
                updated_at=utc_now(),
            )
        ).rowcount  # type: ignore[attr-defined]
    return bool(released)

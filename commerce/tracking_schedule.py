"""Which sub-orders a tracking pass asks their marketplaces about, and how often.

Open sub-orders (placed, processing, shipped) are asked at every pass, least recently asked
first (by the last attempt, answered or not: a sub-order whose poll failed goes to the back of
the line). A delivered one is still watched for the marketplace's refunds (a return, a late goodwill
refund: commerce.marketplace_refunds passes them on) for a return window after its delivery, at
a lower rate (each at most once per `delivered_poll_interval`), in a small batch of its own
after the open ones, so a shop with many delivered orders never delays an open one. Past the
window it is no longer asked. Only marketplaces that can be tracked are asked: the others'
sub-orders are never polled, so they would otherwise stay first in line (never polled sorts
first) and fill every batch.

A marketplace whose polls fail is left alone for a backoff (commerce.tracking_health): its
sub-orders keep their place but leave the batches to the other marketplaces' until it is due
again, and then it gets one probe (its least recently asked sub-order, open before delivered,
one failing on its own only when there is no other) instead of a share of the batch; its first
answer puts it back in the batches. A sub-order whose polls fail on their own while its
marketplace answers the others backs off the same way by itself: it keeps its place in line but
is left out of the batches until it is due again.

Delivery is dated by the sub-order's recorded "delivered" step (when the marketplace says it
happened); a delivered sub-order without one (recorded before the timeline existed) is dated by
its placement, the earliest it can have been delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from adapters.base import Capability
from commerce.marketplace_access import marketplace_can
from commerce.models import Marketplace, UTCDateTime, utc_now
from commerce.order_models import MarketplaceOrder, OrderEvent, SubOrderStatus
from commerce.order_state import TRACKED_STATUSES
from commerce.order_timeline import TimelineStep

TRACK_BATCH_SIZE = 200
DELIVERED_BATCH_SIZE = 50
REFUND_WATCH_AFTER_DELIVERY = timedelta(days=30)
DELIVERED_POLL_INTERVAL = timedelta(hours=24)
# A failing marketplace's first backoff is one tracking pass (JobPolicy sets it to the pass's
# interval); each next failure doubles it, up to the cap.
FAILURE_BACKOFF_FIRST = timedelta(minutes=1)
FAILURE_BACKOFF_CAP = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class TrackingPolicy:
    """How much one tracking pass asks: every open sub-order up to `batch_size`, then up to
    `delivered_batch_size` delivered ones still inside their return window whose last answer is
    at least `delivered_poll_interval` old; a failing marketplace waits from
    `failure_backoff_first` (one pass) doubling up to `failure_backoff_cap`."""

    batch_size: int = TRACK_BATCH_SIZE
    delivered_batch_size: int = DELIVERED_BATCH_SIZE
    refund_watch_after_delivery: timedelta = REFUND_WATCH_AFTER_DELIVERY
    delivered_poll_interval: timedelta = DELIVERED_POLL_INTERVAL
    failure_backoff_first: timedelta = FAILURE_BACKOFF_FIRST
    failure_backoff_cap: timedelta = FAILURE_BACKOFF_CAP


@dataclass(frozen=True, slots=True)
class SubOrderToPoll:
    """One sub-order a pass asks about, with its marketplace (loaded in the caller's session)."""

    sub_order_id: int
    marketplace_order_id: str
    marketplace: Marketplace
    # Its own polls failed while its marketplace answered others (commerce.tracking_health).
    failing_alone: bool = False


def delivered_at_expression() -> sa.ColumnElement[datetime]:
    """When a sub-order was delivered: its recorded "delivered" step, else its placement."""
    delivered_step = (
        sa.select(OrderEvent.occurred_at)
        .where(
            OrderEvent.sub_order_id == MarketplaceOrder.id,
            OrderEvent.step == TimelineStep.DELIVERED.value,
        )
        .correlate(MarketplaceOrder)
        .limit(1)
        .scalar_subquery()
    )
    return sa.func.coalesce(
        delivered_step, MarketplaceOrder.placed_at, MarketplaceOrder.created_at, type_=UTCDateTime()
    )


def _leeway(policy: TrackingPolicy) -> timedelta:
    """Half a pass: passes start a little early or late, and something asked again "after one
    pass" is asked at the next pass, not the one after."""
    return policy.failure_backoff_first / 2


def marketplace_due(market: Marketplace, now: datetime, policy: TrackingPolicy) -> bool:
    """Whether a marketplace may be asked in a pass starting at `now`: it is not failing, or its
    backoff is over, give or take half a pass (_leeway)."""
    if market.tracking_failures <= 0 or market.tracking_retry_at is None:
        return True
    return market.tracking_retry_at <= now + _leeway(policy)


def sub_orders_to_poll(
    session: Session, policy: TrackingPolicy, *, now: datetime | None = None
) -> list[SubOrderToPoll]:
    """This pass's sub-orders, open ones first (least recently asked first), then the delivered
    ones due for their refund check; only at marketplaces that can be tracked and are not
    backing off, and a single probe at each failing marketplace whose backoff is over."""
    now = now or utc_now()
    due = [
        market
        for market in session.scalars(sa.select(Marketplace))
        if marketplace_can(market, Capability.TRACK) and marketplace_due(market, now, policy)
    ]
    by_id = {market.id: market for market in due}
    answering = [market.id for market in due if market.tracking_failures <= 0]
    probed = [market.id for market in due if market.tracking_failures > 0]
    rows = []
    if answering:
        rows += _open_rows(session, answering, policy, now, policy.batch_size)
        rows += _delivered_rows(session, answering, policy, now, policy.delivered_batch_size)
    for market_id in probed:
        rows += _open_rows(session, [market_id], policy, now, 1, probe=True) or _delivered_rows(
            session, [market_id], policy, now, 1, probe=True
        )
    return [
        SubOrderToPoll(sub_order_id, marketplace_order_id, by_id[marketplace_id], failures > 0)
        for sub_order_id, marketplace_order_id, marketplace_id, failures in rows
    ]


_COLUMNS = (
    MarketplaceOrder.id,
    MarketplaceOrder.marketplace_order_id,
    MarketplaceOrder.marketplace_id,
    MarketplaceOrder.poll_failures,
)
# Never asked sorts first, then the least recently asked.
_LEAST_RECENTLY_ASKED = (
    MarketplaceOrder.last_poll_attempt_at.is_not(None),
    MarketplaceOrder.last_poll_attempt_at,
    MarketplaceOrder.id,
)
# A probe asks whether the marketplace answers: an order failing on its own cannot tell.
_PROBE_ORDER = (MarketplaceOrder.poll_failures > 0, *_LEAST_RECENTLY_ASKED)

_Row = sa.Row[tuple[int, str, int, int]]


def _at(
    marketplace_ids: list[int], policy: TrackingPolicy, now: datetime
) -> sa.ColumnElement[bool]:
    """At these marketplaces, with an id there, and not backing off on its own."""
    return sa.and_(
        MarketplaceOrder.marketplace_id.in_(marketplace_ids),
        MarketplaceOrder.marketplace_order_id.is_not(None),
        sa.or_(
            MarketplaceOrder.poll_retry_at.is_(None),
            MarketplaceOrder.poll_retry_at <= now + _leeway(policy),
        ),
    )


def _open_rows(
    session: Session,
    marketplace_ids: list[int],
    policy: TrackingPolicy,
    now: datetime,
    limit: int,
    *,
    probe: bool = False,
) -> list[_Row]:
    """Open sub-orders at these marketplaces, least recently asked first."""
    return list(
        session.execute(
            sa.select(*_COLUMNS)
            .where(_at(marketplace_ids, policy, now), MarketplaceOrder.status.in_(TRACKED_STATUSES))
            .order_by(*(_PROBE_ORDER if probe else _LEAST_RECENTLY_ASKED))
            .limit(limit)
        ).all()
    )


def _delivered_rows(
    session: Session,
    marketplace_ids: list[int],
    policy: TrackingPolicy,
    now: datetime,
    limit: int,
    *,
    probe: bool = False,
) -> list[_Row]:
    """Delivered sub-orders at these marketplaces inside their return window, not asked (or
    answered) for `delivered_poll_interval`, least recently asked first."""
    return list(
        session.execute(
            sa.select(*_COLUMNS)
            .where(
                _at(marketplace_ids, policy, now),
                MarketplaceOrder.status == SubOrderStatus.DELIVERED,
                # A sub-order is updated when it becomes delivered (and at each answer after),
                # so this bounds the scan by the (status, updated_at) index to the recent ones;
                # the delivery date then decides.
                MarketplaceOrder.updated_at >= now - policy.refund_watch_after_delivery,
                delivered_at_expression() >= now - policy.refund_watch_after_delivery,
                # By the last attempt: a failed check waits like an answered one rather than
                # asking the same order at every pass.
                sa.or_(
                    MarketplaceOrder.last_poll_attempt_at.is_(None),
                    MarketplaceOrder.last_poll_attempt_at <= now - policy.delivered_poll_interval,
                ),
            )
            .order_by(*(_PROBE_ORDER if probe else _LEAST_RECENTLY_ASKED))
            .limit(limit)
        ).all()
    )

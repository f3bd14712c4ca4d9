"""Which sub-orders a tracking pass asks their marketplaces about, and how often.

Open sub-orders (placed, processing, shipped) are asked at every pass, least recently asked
first. A delivered one is still watched for the marketplace's refunds (a return, a late goodwill
refund: commerce.marketplace_refunds passes them on) for a return window after its delivery, at
a lower rate (each at most once per `delivered_poll_interval`), in a small batch of its own
after the open ones, so a shop with many delivered orders never delays an open one. Past the
window it is no longer asked. Only marketplaces that can be tracked are asked: the others'
sub-orders are never polled, so they would otherwise stay first in line (never polled sorts
first) and fill every batch.

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


@dataclass(frozen=True, slots=True)
class TrackingPolicy:
    """How much one tracking pass asks: every open sub-order up to `batch_size`, then up to
    `delivered_batch_size` delivered ones still inside their return window whose last answer is
    at least `delivered_poll_interval` old."""

    batch_size: int = TRACK_BATCH_SIZE
    delivered_batch_size: int = DELIVERED_BATCH_SIZE
    refund_watch_after_delivery: timedelta = REFUND_WATCH_AFTER_DELIVERY
    delivered_poll_interval: timedelta = DELIVERED_POLL_INTERVAL


@dataclass(frozen=True, slots=True)
class SubOrderToPoll:
    """One sub-order a pass asks about, with its marketplace (loaded in the caller's session)."""

    sub_order_id: int
    marketplace_order_id: str
    marketplace: Marketplace


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


def sub_orders_to_poll(
    session: Session, policy: TrackingPolicy, *, now: datetime | None = None
) -> list[SubOrderToPoll]:
    """This pass's sub-orders, open ones first (least recently polled first), then the delivered
    ones due for their refund check; only at marketplaces that can be tracked."""
    now = now or utc_now()
    trackable = [
        market
        for market in session.scalars(sa.select(Marketplace))
        if marketplace_can(market, Capability.TRACK)
    ]
    if not trackable:
        return []
    by_id = {market.id: market for market in trackable}
    at_trackable = sa.and_(
        MarketplaceOrder.marketplace_id.in_(list(by_id)),
        MarketplaceOrder.marketplace_order_id.is_not(None),
    )
    least_recently_polled = (
        MarketplaceOrder.last_polled_at.is_not(None),
        MarketplaceOrder.last_polled_at,
        MarketplaceOrder.id,
    )
    columns = (
        MarketplaceOrder.id,
        MarketplaceOrder.marketplace_order_id,
        MarketplaceOrder.marketplace_id,
    )
    open_rows = session.execute(
        sa.select(*columns)
        .where(at_trackable, MarketplaceOrder.status.in_(TRACKED_STATUSES))
        .order_by(*least_recently_polled)
        .limit(policy.batch_size)
    ).all()
    delivered_rows = session.execute(
        sa.select(*columns)
        .where(
            at_trackable,
            MarketplaceOrder.status == SubOrderStatus.DELIVERED,
            # A sub-order is updated when it becomes delivered (and at each poll after), so this
            # bounds the scan by the (status, updated_at) index to the recent ones; the delivery
            # date then decides.
            MarketplaceOrder.updated_at >= now - policy.refund_watch_after_delivery,
            delivered_at_expression() >= now - policy.refund_watch_after_delivery,
            sa.or_(
                MarketplaceOrder.last_polled_at.is_(None),
                MarketplaceOrder.last_polled_at <= now - policy.delivered_poll_interval,
            ),
        )
        .order_by(*least_recently_polled)
        .limit(policy.delivered_batch_size)
    ).all()
    return [
        SubOrderToPoll(sub_order_id, marketplace_order_id, by_id[marketplace_id])
        for sub_order_id, marketplace_order_id, marketplace_id in [*open_rows, *delivered_rows]
    ]

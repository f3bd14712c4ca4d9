"""Whether a marketplace's status API answers tracking, and how long tracking waits when it does
not.

Every poll is recorded as an attempt on its sub-order (`last_poll_attempt_at`), answered or
not, and the queue is ordered by it, so a sub-order whose poll fails goes to the back of the
line instead of staying first forever; `last_polled_at` keeps meaning the marketplace's last
answer. A poll that fails for any reason but "no such order" (down, timeout, 5xx, rate limit,
a refused key, an unreadable reply) counts against the marketplace: its failures in a row, the
first of them and the latest error are kept on its row, the rest of its pass is skipped, and it
is asked again only after a backoff that doubles from one tracking pass up to a cap (the
marketplace's own Retry-After is honoured up to that cap). Each retry is a single probe
(commerce.tracking_schedule); the first answer clears the failures, and its sub-orders are
polled as usual from the next pass. Nothing is dropped: a backed-off marketplace's sub-orders
keep their place and their status.

A marketplace failing for longer than TRACKING_FAILURE_ALERT_AFTER is logged as an error at
each failure and shown on /admin/marketplaces.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from adapters.base import MarketplaceError, RateLimited
from commerce.models import Marketplace
from commerce.order_models import MarketplaceOrder
from commerce.order_state import TRACKED_STATUSES
from commerce.tracking_schedule import TrackingPolicy

logger = logging.getLogger(__name__)

TRACKING_FAILURE_ALERT_AFTER = timedelta(hours=24)
MAX_ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class TrackingFailure:
    """A marketplace's state after one more failed poll."""

    failures: int
    failing_since: datetime
    retry_at: datetime


def backoff_after(failures: int, policy: TrackingPolicy) -> timedelta:
    """How long tracking leaves a marketplace alone after `failures` failed polls in a row: one
    pass after the first, doubling after each next one, never more than the cap."""
    if failures <= 0:
        return timedelta(0)
    # The exponent is bounded so that a long outage's count cannot overflow the arithmetic.
    doubled = policy.failure_backoff_first * 2 ** min(failures - 1, 24)
    return min(doubled, policy.failure_backoff_cap)


def record_poll_attempt(
    session_factory: sessionmaker[Session], sub_order_id: int, at: datetime
) -> None:
    """A sub-order was asked about and got no usable answer: it goes to the back of the line.
    Its last answer (`last_polled_at`) is left as it was."""
    with session_factory() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == sub_order_id)
            .values(last_poll_attempt_at=at, updated_at=MarketplaceOrder.updated_at)
            .execution_options(synchronize_session=False)
        )


def record_tracking_failure(
    session_factory: sessionmaker[Session],
    marketplace: Marketplace,
    error: MarketplaceError,
    *,
    pass_started: datetime,
    policy: TrackingPolicy,
) -> TrackingFailure:
    """One more failed poll of `marketplace`, counted in one statement (two tracking passes at
    once both count), and when it may be asked again, from the start of this pass so that a
    first failure waits exactly one pass. Logged; as an error once it has failed for longer
    than TRACKING_FAILURE_ALERT_AFTER."""
    error_text = f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]
    with session_factory() as session, session.begin():
        failures, failing_since = session.execute(
            sa.update(Marketplace)
            .where(Marketplace.id == marketplace.id)
            .values(
                tracking_failures=Marketplace.tracking_failures + 1,
                tracking_failing_since=sa.func.coalesce(
                    Marketplace.tracking_failing_since, pass_started
                ),
                tracking_last_error=error_text,
                # Tracking's bookkeeping is not an edit of the marketplace.
                updated_at=Marketplace.updated_at,
            )
            .returning(Marketplace.tracking_failures, Marketplace.tracking_failing_since)
        ).one()
        wait = backoff_after(failures, policy)
        if isinstance(error, RateLimited) and error.retry_after:
            wait = min(max(wait, timedelta(seconds=error.retry_after)), policy.failure_backoff_cap)
        retry_at = pass_started + wait
        session.execute(
            sa.update(Marketplace)
            .where(Marketplace.id == marketplace.id)
            .values(tracking_retry_at=retry_at, updated_at=Marketplace.updated_at)
        )
    if failing_since <= pass_started - TRACKING_FAILURE_ALERT_AFTER:
        logger.error(
            "tracking: %s has failed every status poll since %s (%d in a row, latest %s); its "
            "sub-orders are kept and asked again at %s",
            marketplace.slug,
            failing_since.isoformat(),
            failures,
            error_text,
            retry_at.isoformat(),
        )
    else:
        logger.warning(
            "tracking: %s failed a status poll (%d in a row: %s); asked again at %s",
            marketplace.slug,
            failures,
            error_text,
            retry_at.isoformat(),
        )
    return TrackingFailure(failures, failing_since, retry_at)


def record_tracking_answer(session_factory: sessionmaker[Session], marketplace_id: int) -> None:
    """The marketplace answered a poll: its failures, if any, are over."""
    with session_factory() as session, session.begin():
        session.execute(
            sa.update(Marketplace)
            .where(Marketplace.id == marketplace_id, Marketplace.tracking_failures > 0)
            .values(
                tracking_failures=0,
                tracking_failing_since=None,
                tracking_last_error=None,
                tracking_retry_at=None,
                updated_at=Marketplace.updated_at,
            )
        )


def tracking_failing_long(market: Marketplace, now: datetime) -> bool:
    """Whether tracking has had no answer from the marketplace for longer than
    TRACKING_FAILURE_ALERT_AFTER (an operator should look)."""
    since = market.tracking_failing_since
    return since is not None and since <= now - TRACKING_FAILURE_ALERT_AFTER


def open_sub_orders_by_marketplace(session: Session, marketplace_ids: list[int]) -> dict[int, int]:
    """How many open sub-orders (the ones tracking follows) each of these marketplaces has."""
    if not marketplace_ids:
        return {}
    rows = session.execute(
        sa.select(MarketplaceOrder.marketplace_id, sa.func.count())
        .where(
            MarketplaceOrder.marketplace_id.in_(marketplace_ids),
            MarketplaceOrder.status.in_(TRACKED_STATUSES),
            MarketplaceOrder.marketplace_order_id.is_not(None),
        )
        .group_by(MarketplaceOrder.marketplace_id)
    ).all()
    return {marketplace_id: count for marketplace_id, count in rows}

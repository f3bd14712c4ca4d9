"""Whether a marketplace's status API answers tracking, and how long tracking waits when it does
not; and the same for one sub-order that fails while its marketplace answers the others.

Every poll is recorded as an attempt on its sub-order (`last_poll_attempt_at`), answered or
not, and the queue is ordered by it, so a sub-order whose poll fails goes to the back of the
line instead of staying first forever; `last_polled_at` keeps meaning the marketplace's last
answer.

A failed poll (any reason but "no such order") is blamed on the marketplace or on the one order
by what else the marketplace did in the same pass (commerce.tracking.track_open_sub_orders).
"No such order" (NotFound, a 404) is not a failure here: it is the marketplace's API answering
about that order, so it counts as an answer (it clears the marketplace's failures and tells
that the pass's other failures are their orders'), while its order goes to the back of the line
with no backoff of its own.

- The marketplace's, when its whole API is in question (`fails_marketplace_wide`: no connection
  or a timeout, a rate limit, a refused key, a 503 Service Unavailable), or when
  MARKETPLACE_FAILURES_IN_A_ROW polls fail in a row. Its failures in a row, the first of them
  and the latest error are kept on its row, the rest of its pass is skipped, and it is asked
  again only after a backoff that doubles from one tracking pass up to a cap (the
  marketplace's own Retry-After is honoured up to that cap). Each retry is a single probe
  (commerce.tracking_schedule); the first answer clears the failures, and its sub-orders are
  polled as usual from the next pass. No order is blamed for an outage.
- The order's, when another order of the marketplace answers in the same pass, before or after
  it (a fresh order asked first is not taken for an outage while the next ones answer): the
  same record and the same doubling backoff on the sub-order's own row, while the marketplace
  keeps being tracked. The order's first answer clears it. One that has failed for longer than
  ORDER_FAILURE_ALERT_AFTER is put on the operator's list (/admin/attention) once per run of
  failures: a poll that fails never refunds anything, since the marketplace may still hold and
  ship the order.
- When the pass ends with failures and no order answered (the marketplace's only open order,
  or a backed-off marketplace's single probe), its order API is asked one question about no
  order in particular (`check_orders_api`: Shopify's `orders(first: 1)`, WooCommerce's
  `GET /orders?per_page=1`, the same API, key and scope as a status poll). It answers: the
  failures are the orders' and the marketplace answers. It fails: an outage. A format with no
  such question (Unsupported) leaves nothing to tell them apart, so, as before, a failure of
  an order with none of its own yet is taken for an outage (backing off the marketplace, never
  blaming an order for an outage), and one of an order already failing on its own stays its
  own. A check that answers while single-order reads fail for every order is caught at the
  next pass, when the other orders' polls fail in a row.

Nothing is dropped: a backed-off marketplace's or order's sub-orders keep their place and their
status.

A marketplace failing for longer than TRACKING_FAILURE_ALERT_AFTER is logged as an error at
each failure and shown on /admin/marketplaces.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from adapters.base import MarketplaceAdapter, MarketplaceError, RateLimited, Transient, Unsupported
from commerce.models import Marketplace
from commerce.order_locks import lock_order, order_id_of_sub_order
from commerce.order_models import MarketplaceOrder, Order
from commerce.order_state import TRACKED_STATUSES, flag_order
from commerce.tracking_schedule import TrackingPolicy

logger = logging.getLogger(__name__)

TRACKING_FAILURE_ALERT_AFTER = timedelta(hours=24)
ORDER_FAILURE_ALERT_AFTER = timedelta(hours=24)
MAX_ERROR_CHARS = 300
# Polls of one marketplace failing one after another in a pass, each with an error that could be
# its order's own, after which the marketplace is taken to be down (and is asked no more).
MARKETPLACE_FAILURES_IN_A_ROW = 3
# Refused credentials: every order of the marketplace would be refused alike; Service
# Unavailable is the whole service's (overload, maintenance: RFC 9110 15.6.4), not an order's.
_MARKETPLACE_WIDE_STATUSES = frozenset({401, 403, 503})


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


def fails_marketplace_wide(error: MarketplaceError) -> bool:
    """Whether a failed poll says nothing about its one order: the marketplace could not be
    reached or did not answer in time (Transient without an HTTP status), it limits our rate,
    it refused our key, or it said it is unavailable (503). Another 5xx or an unreadable reply
    (BadPayload) for one order may be that order's own problem."""
    return (
        isinstance(error, RateLimited)
        or (isinstance(error, Transient) and error.status is None)
        or error.status in _MARKETPLACE_WIDE_STATUSES
    )


def outage_without_answers(
    adapter: MarketplaceAdapter, unblamed: list[tuple[int, MarketplaceError, bool]]
) -> tuple[MarketplaceError | None, bool]:
    """Whose failures these are when no order of the marketplace answered in the pass:
    (the error to record as the marketplace's when it is an outage, else None; whether the
    marketplace answered the check). `unblamed`: (sub-order, its error, whether it was already
    failing on its own), at least one."""
    try:
        adapter.check_orders_api()
    except Unsupported:
        # No honest signal: an order with no failures of its own cannot be blamed on a guess.
        fresh = [error for _, error, failing_alone in unblamed if not failing_alone]
        return (fresh[-1] if fresh else None), False
    except MarketplaceError as exc:
        return exc, False
    return None, True


def error_text(error: Exception) -> str:
    """How a failed poll is recorded: the error's kind and message, cut to the column."""
    return f"{type(error).__name__}: {error}"[:MAX_ERROR_CHARS]


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
    latest = error_text(error)
    with session_factory() as session, session.begin():
        failures, failing_since = session.execute(
            sa.update(Marketplace)
            .where(Marketplace.id == marketplace.id)
            .values(
                tracking_failures=Marketplace.tracking_failures + 1,
                tracking_failing_since=sa.func.coalesce(
                    Marketplace.tracking_failing_since, pass_started
                ),
                tracking_last_error=latest,
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
            latest,
            retry_at.isoformat(),
        )
    else:
        logger.warning(
            "tracking: %s failed a status poll (%d in a row: %s); asked again at %s",
            marketplace.slug,
            failures,
            latest,
            retry_at.isoformat(),
        )
    return TrackingFailure(failures, failing_since, retry_at)


def record_order_failure(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    error: Exception,
    *,
    pass_started: datetime,
    policy: TrackingPolicy,
) -> TrackingFailure | None:
    """One more failed poll of one sub-order while its marketplace answers the others (its
    error, or ours applying its answer: commerce.tracking): counted
    in one statement on its row, and when it may be asked again (the marketplace's backoff,
    for this order alone). Once it has failed for longer than ORDER_FAILURE_ALERT_AFTER its
    order is flagged for an operator, once per run of failures; nothing is refunded. None when
    the sub-order is gone."""
    latest = error_text(error)
    flagged = False
    with session_factory() as session, session.begin():
        order_id = order_id_of_sub_order(session, sub_order_id)
        if order_id is None:
            return None
        # The order's row first, as every change to its sub-orders (a flag may be added).
        lock_order(session, order_id)
        failures, failing_since, flagged_at = session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == sub_order_id)
            .values(
                poll_failures=MarketplaceOrder.poll_failures + 1,
                poll_failing_since=sa.func.coalesce(
                    MarketplaceOrder.poll_failing_since, pass_started
                ),
                poll_last_error=latest,
                updated_at=MarketplaceOrder.updated_at,
            )
            .returning(
                MarketplaceOrder.poll_failures,
                MarketplaceOrder.poll_failing_since,
                MarketplaceOrder.poll_flagged_at,
            )
            .execution_options(synchronize_session=False)
        ).one()
        retry_at = pass_started + backoff_after(failures, policy)
        values: dict[str, object] = {"poll_retry_at": retry_at}
        if flagged_at is None and failing_since <= pass_started - ORDER_FAILURE_ALERT_AFTER:
            values["poll_flagged_at"] = pass_started
            flagged = True
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == sub_order_id)
            .values(**values, updated_at=MarketplaceOrder.updated_at)
            .execution_options(synchronize_session=False)
        )
        if flagged:
            sub_order = session.get(MarketplaceOrder, sub_order_id)
            order = session.get(Order, order_id)
            assert sub_order is not None and order is not None
            market = sub_order.marketplace.name
            number = sub_order.display_number or sub_order.marketplace_order_id
            flag_order(
                order,
                f"{market} sub-order {sub_order_id}: every status poll of it has failed since "
                f"{failing_since:%Y-%m-%d %H:%M} UTC while {market} answers its other orders "
                f"(latest: {latest}); nothing was refunded. Ask {market} about its order "
                f"{number}.",
            )
    log = logger.error if flagged else logger.warning
    log(
        "tracking sub-order %s: its status poll failed (%d in a row since %s: %s) while its "
        "marketplace answers others; asked again at %s",
        sub_order_id,
        failures,
        failing_since.isoformat(),
        latest,
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

"""One order's step of a sweep, run as its own failure (commerce.sweeper), and the step that
puts long-unresolved sub-orders (placing or reconciling) before an operator (each order its own failure too).

A step that raises something other than a payment error (those each step handles itself: a
refusal, an unknown outcome resolved by asking) ended the whole pass before; the failing order,
first in line again at every pass, then kept every order after it from being settled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.attention_models import FlagResolution
from commerce.models import Marketplace, utc_now
from commerce.order_locks import lock_order
from commerce.order_models import MarketplaceOrder, Order, SubOrderStatus
from commerce.order_state import flag_order
from commerce.placement_outcomes import flag_for_operator

logger = logging.getLogger(__name__)

# The most long-reconciling sub-orders one sweep flags (the rest at the next).
FLAG_BATCH_SIZE = 500


def order_step_flag(step: str, error: Exception) -> str:
    """The operator's reason for an order whose sweep step keeps raising. The same words at
    every pass (the error's type, not its text), so a flag is not repeated pass after pass."""
    return (
        f"Sweeping this order failed while {step} ({type(error).__name__}); nothing was "
        "refunded or captured on a guess, and it is tried again at every sweep: see the "
        "worker's log if this stays."
    )


class OrderSteps:
    """Runs each order's step of one sweep: an error is logged, counted (`failures`) and puts
    the order on the operator's list, and the sweep goes on with the next order (tracking has
    the same rule for one order's failed poll)."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory
        self.failures = 0

    def run(
        self, step: str, order: int | sa.Select[tuple[int]], call: Callable[[], int | bool]
    ) -> int:
        """What `call` counted (True counts 1), 0 when it raised. `order` is the order's id, or
        the query that finds it (asked only on a failure)."""
        try:
            return int(call())
        except Exception as exc:
            self.failures += 1
            logger.exception("sweep: %s failed (order %s); tried again next sweep", step, order)
            try:
                order_id = order if isinstance(order, int) else None
                if not isinstance(order, int):
                    with self.session_factory() as session:
                        order_id = session.scalar(order)
                if order_id is not None:
                    flag_for_operator(self.session_factory, order_id, order_step_flag(step, exc))
            except Exception:
                logger.exception("sweep: the order of a failed step could not be flagged")
            return 0


_MARKER_HEAD, _MARKER_TAIL = "sub-order ", ": no answer"


def reconciling_flag_marker(sub_order_id: int) -> str:
    """The words of the order's flag reason that name this long-unresolved sub-order."""
    return f"{_MARKER_HEAD}{sub_order_id}{_MARKER_TAIL}"


def duration_words(span: timedelta) -> str:
    """A threshold as an operator reads it: "30 min", "1 h 30 min", "24 h" (never "0 h")."""
    minutes = int(span.total_seconds() // 60)
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h {rest} min" if rest else f"{hours} h"


# Placement's outcome is unknown in either: `reconciling` between attempts, `placing` while an
# attempt (the sweeper's re-queue, or the job's retry) asks the marketplace again.
_UNRESOLVED = (SubOrderStatus.PLACING, SubOrderStatus.RECONCILING)


def flag_long_reconciling(session_factory: sessionmaker[Session], *, older_than: timedelta) -> int:
    """Put on the operator's list the orders of sub-orders whose placement outcome has stayed
    unresolved `older_than` since it first became so (`unresolved_since`, set by the first claim;
    the checkout time for rows older than that column): whether the marketplace holds the order
    is unknown that long, and nothing resolves it but the marketplace answering (the sweeper
    keeps re-asking; nothing is refunded on an unknown). `placing` counts as well as
    `reconciling`: each re-ask claims the part, so it flips between the two every few seconds
    under a short policy, and a sweep that looked at `reconciling` only could miss it at every
    pass. Once per sub-order: not while its reason is on the flag, nor again once an operator
    cleared it (the resolution keeps the reason's text). How many were flagged now."""
    since = sa.func.coalesce(MarketplaceOrder.unresolved_since, MarketplaceOrder.created_at)
    # Parts flagged already (or whose flag an operator cleared) stay unresolved: left out here,
    # or a full batch of them would be taken at every pass and the parts past it never flagged.
    # _flag_reconciling checks again under the order's lock.
    marker = sa.literal(_MARKER_HEAD) + sa.cast(MarketplaceOrder.id, sa.String) + _MARKER_TAIL
    on_flag = (
        sa.select(Order.id)
        .where(Order.id == MarketplaceOrder.order_id, Order.attention_reason.contains(marker))
        .exists()
    )
    cleared = (
        sa.select(FlagResolution.id)
        .where(
            FlagResolution.order_id == MarketplaceOrder.order_id,
            FlagResolution.reason.contains(marker),
        )
        .exists()
    )
    with session_factory() as session:
        rows = session.execute(
            sa.select(MarketplaceOrder.id, MarketplaceOrder.order_id, Marketplace.name)
            .join(Marketplace, MarketplaceOrder.marketplace_id == Marketplace.id)
            .where(
                MarketplaceOrder.status.in_(_UNRESOLVED),
                since < utc_now() - older_than,
                ~on_flag,
                ~cleared,
            )
            .order_by(MarketplaceOrder.id)
            .limit(FLAG_BATCH_SIZE)
        ).all()
    flagged = 0
    for sub_order_id, order_id, market in rows:
        try:
            flagged += _flag_reconciling(
                session_factory, sub_order_id, order_id, market, older_than
            )
        except Exception:
            # Flagging is what failed, so there is nothing more to flag: logged, and tried
            # again at the next sweep; the other orders are flagged meanwhile.
            logger.exception("sub-order %s: flagging its long reconciliation failed", sub_order_id)
    return flagged


def _flag_reconciling(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    order_id: int,
    market: str,
    older_than: timedelta,
) -> int:
    marker = reconciling_flag_marker(sub_order_id)
    with session_factory() as session, session.begin():
        lock_order(session, order_id)
        order = session.get(Order, order_id)
        if order is None or marker in (order.attention_reason or ""):
            return 0
        # Read again under the lock: a part found placed (or ended otherwise) since the batch
        # was read is no longer unresolved, and an operator must not be sent to ask about it.
        still_unresolved = session.scalar(
            sa.select(
                sa.exists().where(
                    MarketplaceOrder.id == sub_order_id,
                    MarketplaceOrder.status.in_(_UNRESOLVED),
                )
            )
        )
        if not still_unresolved:
            return 0
        cleared = session.scalar(
            sa.select(
                sa.exists().where(
                    FlagResolution.order_id == order_id,
                    FlagResolution.reason.contains(marker, autoescape=True),
                )
            )
        )
        if cleared:
            return 0
        # Under a minute (a test's or the soak's threshold) says no length at all.
        how_long = (
            f" for over {duration_words(older_than)}"
            if older_than >= timedelta(minutes=1)
            else " yet"
        )
        flag_order(
            order,
            f"{market} {marker}{how_long} on whether it holds the order (OneCart keeps asking "
            "and records what it answers; nothing is refunded meanwhile): ask "
            f"{market}. A card hold lapses after about 7 days.",
        )
        return 1

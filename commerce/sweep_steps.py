"""One order's step of a sweep, run as its own failure (commerce.sweeper).

A step that raises something other than a payment error (those each step handles itself: a
refusal, an unknown outcome resolved by asking) ended the whole pass before; the failing order,
first in line again at every pass, then kept every order after it from being settled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.placement_outcomes import flag_for_operator

logger = logging.getLogger(__name__)


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

"""Keeping a lease while its holder works.

A lease (the SQLite checkout lock, a placement's claim on its sub-order) stands in for a lock
that dies with its holder: a holder that crashed renews nothing, so its lease runs out and
another may take over. A fixed lease sized from a guess at the slowest holder is wrong both
ways: too long, and a crash blocks everyone for it; too short, and a holder still at work (a
slow marketplace retried five times, three worst-case Stripe calls) loses it while it runs, and
a second one does the same work beside it. So the holder renews its lease from a thread of its
own for as long as it holds it, several times per lease, and the lease itself only needs to
outlast a few missed renewals.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from onecart.helper_threads import leave_stop_signals_to_the_main_thread

logger = logging.getLogger(__name__)

# Renewals per lease: one or two can fail (the database busy or away for a moment) and the
# lease still has not run out by the next.
RENEWALS_PER_LEASE = 4
# How long the holder waits, when it is done, for a renewal under way to finish.
JOIN_TIMEOUT_S = 30.0


@contextmanager
def renewed_while_held(renew: Callable[[], bool], *, lease: timedelta, what: str) -> Iterator[None]:
    """Call `renew` every RENEWALS_PER_LEASE-th of `lease` until the block ends. `renew` pushes
    the lease's end forward and returns False when the lease is no longer this holder's (given
    back, or taken over after it ran out): renewing stops then. A renewal that raises is tried
    again at the next tick."""
    done = threading.Event()
    interval_s = lease.total_seconds() / RENEWALS_PER_LEASE

    def keep() -> None:
        # A renewal stuck on the database may outlast the job, and the worker goes back to its
        # Redis read for the next one.
        leave_stop_signals_to_the_main_thread()
        while not done.wait(interval_s):
            try:
                held = renew()
            except Exception:
                logger.warning("%s: lease not renewed; trying again", what, exc_info=True)
                continue
            if not held:
                if not done.is_set():
                    logger.info("%s: lease no longer held; renewals stop", what)
                return

    renewer = threading.Thread(target=keep, name=f"lease {what}"[:60], daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        # Bounded: a renewal stuck on the database must not hold up its holder. One that lands
        # after the lease was given back changes nothing (`renew` is conditional on the holder).
        renewer.join(timeout=JOIN_TIMEOUT_S)

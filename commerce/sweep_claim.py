"""How long the abandoned-cancellation sweep's claim on a part lasts, and the longest
marketplace read timeout and request deadline that fit in it.

A sweep renews its claim while it holds it, from a thread of its own, and before each
marketplace call (commerce.abandoned_cancellations); a claim older than SWEEP_CLAIM_DEAD_AFTER
is taken for a killed sweep's and taken over. A call that outlasted the claim let a second sweep
take the part over and send the cancel again. The read timeout's bound below (checked where
configuration is read: settings, marketplaces.toml, the adapter being built) could not prevent
that alone: httpx's read timeout is per socket read, so a marketplace trickling its answer one
byte at a time makes a call last as long as it likes. The renewal thread is what keeps the
claim; the bound still keeps each try's wait for an answer short. Each try also has a
whole-request deadline (adapters.request_deadline: connect, send and the whole answer), bounded
here so the calls one claim covers end inside it even when a marketplace trickles: a sweep's
worker is held for a bounded time, not forever.
Nothing here reads configuration or touches the database: adapters and settings import it.
"""

from __future__ import annotations

from datetime import timedelta

from adapters.marketplace_http import (
    MIN_READ_TIMEOUT_S,
    deadline_problem,
    longest_deadline_s,
    longest_read_timeout_s,
)

# A sweep's claim on a part older than this was left by a sweep that was killed.
SWEEP_CLAIM_DEAD_AFTER = timedelta(minutes=15)
# The most HTTP requests an adapter call the sweep makes between two renewals of its claim
# sends: Shopify's cancel is a mutation and a read of the order (one request each elsewhere).
HTTP_REQUESTS_PER_CLAIM = 2
# Whole milliseconds, rounded down, so the bound reads plainly in errors and docs.
MAX_MARKETPLACE_READ_TIMEOUT_S = (
    int(longest_read_timeout_s(SWEEP_CLAIM_DEAD_AFTER, requests=HTTP_REQUESTS_PER_CLAIM) * 1000)
    / 1000
)

# The longest request deadline (ONECART_MARKETPLACE_DEADLINE_S, option `deadline_s`): the calls
# one claim covers, each try ending by its deadline, fit in the claim. Whole milliseconds.
MAX_MARKETPLACE_DEADLINE_S = (
    int(longest_deadline_s(SWEEP_CLAIM_DEAD_AFTER, requests=HTTP_REQUESTS_PER_CLAIM) * 1000) / 1000
)


def request_deadline_problem(deadline_s: object) -> str | None:
    """Why a configured request deadline cannot be used; None when it fits (see above)."""
    problem = deadline_problem(deadline_s, longest=MAX_MARKETPLACE_DEADLINE_S)
    if problem and isinstance(deadline_s, int | float) and deadline_s > MAX_MARKETPLACE_DEADLINE_S:
        minutes = int(SWEEP_CLAIM_DEAD_AFTER.total_seconds() // 60)
        problem += (
            f": with its retries, a longer one lets a marketplace call outlast the "
            f"abandoned-cancellation sweep's {minutes}-minute claim on a part "
            "(docs/configuration.md)"
        )
    return problem


def read_timeout_problem(read_timeout_s: object) -> str | None:
    """Why a configured read timeout cannot be used: not a number of seconds, too short, or so
    long that a call could outlast the sweep's claim; None when it fits."""
    if isinstance(read_timeout_s, bool) or not isinstance(read_timeout_s, int | float):
        return f"must be a number of seconds, got {read_timeout_s!r}"
    if not read_timeout_s >= MIN_READ_TIMEOUT_S:  # NaN too
        return f"must be at least {MIN_READ_TIMEOUT_S} seconds, got {read_timeout_s!r}"
    if read_timeout_s <= MAX_MARKETPLACE_READ_TIMEOUT_S:
        return None
    minutes = int(SWEEP_CLAIM_DEAD_AFTER.total_seconds() // 60)
    return (
        f"at most {MAX_MARKETPLACE_READ_TIMEOUT_S} seconds, got {read_timeout_s!r}: with its "
        f"retries, a longer one lets a marketplace call outlast the abandoned-cancellation "
        f"sweep's {minutes}-minute claim on a part (docs/configuration.md)"
    )

"""The money soak's settling (bench/money_soak.py): the sweeper and the tracker run here, in
rounds, as the cron's jobs would, until nothing changes and no order job is left; then "a day
later": a few more rounds with the sweeper's operator thresholds reached (commerce.sweeper
SweepPolicy: a sub-order reconciling past `reconciling_flag_after`, a refund in doubt past
`refund_in_doubt_flag_after`, a cancellation job ended past `cancel_job_ended_after`), so that
what is still not settled then has been put before an operator, as it would be in production.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from datetime import timedelta
from typing import Protocol

from bench.checkout_world import World
from bench.stripe_fault_proxy import StripeFaultProxy
from onecart import processes

SETTLE_TIMEOUT_S = 240.0
SETTLE_QUIET_ROUNDS = 3
SETTLE_ROUND_S = 2.0
SETTLE_ARMED_ROUNDS = 5
# The rounds "a day later": one flags, the next ones show nothing moves after it.
DAY_LATER_ROUNDS = 2
WAIT_AT_REST_S = 20.0


class SettleLog(Protocol):
    settle_rounds: int
    settled_in_s: float


def _fingerprint(db_url: str, user_ids: list[int]) -> tuple:
    import sqlalchemy as sa

    from commerce.db import get_session_factory
    from commerce.order_models import MarketplaceOrder, Order, Payment, Refund

    with get_session_factory(db_url)() as session:
        subs = session.execute(
            sa.select(MarketplaceOrder.id, MarketplaceOrder.status)
            .join(Order, MarketplaceOrder.order_id == Order.id)
            .where(Order.user_id.in_(user_ids))
            .order_by(MarketplaceOrder.id)
        ).all()
        payments = session.execute(
            sa.select(Payment.id, Payment.status, Payment.captured_minor).order_by(Payment.id)
        ).all()
        refunds = session.execute(sa.select(Refund.id, Refund.status).order_by(Refund.id)).all()
        flags = session.execute(
            sa.select(Order.id, Order.attention_reason).where(Order.user_id.in_(user_ids))
        ).all()
    return tuple(subs), tuple(payments), tuple(refunds), tuple(flags)


def _unreachable_sub_orders(db_url: str, slugs: set[str]) -> set[int]:
    """Sub-orders at marketplaces kept down to the end: the sweeper asks them on and on."""
    if not slugs:
        return set()
    import sqlalchemy as sa

    from commerce.db import get_session_factory
    from commerce.models import Marketplace
    from commerce.order_models import MarketplaceOrder

    with get_session_factory(db_url)() as session:
        return set(
            session.scalars(
                sa.select(MarketplaceOrder.id)
                .join(Marketplace, MarketplaceOrder.marketplace_id == Marketplace.id)
                .where(Marketplace.slug.in_(slugs))
            )
        )


def _placing(db_url: str, sub_order_ids: set[int]) -> bool:
    """Whether one of the sub-orders is being placed (its attempt running) now."""
    if not sub_order_ids:
        return False
    import sqlalchemy as sa

    from commerce.db import get_session_factory
    from commerce.order_models import MarketplaceOrder, SubOrderStatus

    with get_session_factory(db_url)() as session:
        return bool(
            session.scalar(
                sa.select(sa.func.count()).where(
                    MarketplaceOrder.id.in_(sub_order_ids),
                    MarketplaceOrder.status == SubOrderStatus.PLACING,
                )
            )
        )


def _queue_work(world: World, ignored_sub_orders: set[int] = frozenset()) -> list[str]:
    """The order jobs (placements, cancellations) queued, running on a live worker or scheduled
    for a retry; the cron's own sweep and track jobs come and go and are not counted, nor is
    the job of a worker that was killed (RQ moves it to the failed jobs later on), nor the
    placements of `ignored_sub_orders` (their marketplace is down for good: asked on forever)."""
    import redis
    from rq import Queue, Worker

    prefix = f"onecart-place-{world.queue}-"

    def ignored(job_id: str) -> bool:
        head = job_id.removeprefix(prefix).split("-", 1)[0]
        return job_id.startswith(prefix) and head.isdigit() and int(head) in ignored_sub_orders

    connection = redis.Redis.from_url(world.redis_url)
    try:
        queue = Queue(world.queue, connection=connection)
        return [
            job_id
            for job_id in [
                *queue.job_ids,
                *[
                    worker.get_current_job_id() or ""
                    for worker in Worker.all(queue=queue)
                    if worker.pid and processes.pid_alive(worker.pid)
                ],
                *queue.scheduled_job_registry.get_job_ids(),
            ]
            if job_id.startswith(("onecart-place-", "onecart-cancel-")) and not ignored(job_id)
        ]
    finally:
        connection.close()


def settle(
    world: World,
    user_ids: list[int],
    log: SettleLog,
    proxy: StripeFaultProxy,
    down: set[str] = frozenset(),
) -> None:
    """Run the sweeper and the tracker here until nothing changes, then the rounds "a day
    later" (see the module docstring). The Stripe faults that did not fire during the load stay
    armed for the first SETTLE_ARMED_ROUNDS rounds: the sweeper's and the tracker's own Stripe
    writes (a refund after the marketplace cancelled, a capture after a reconciled placement)
    meet them. `down`: marketplaces kept down to the end (their placements never end)."""
    import redis

    from commerce.db import get_session_factory
    from commerce.sweeper import sweep
    from storefront.jobs import JobPolicy, enqueue_outbox_message, track_job

    policy = JobPolicy.from_dict(world.policy)
    # The load has stopped: nothing is mid-checkout, so no hold or refund needs its grace time.
    no_waits = replace(
        policy.sweep_policy,
        refund_processing_after=timedelta(0),
        reconcile_after=timedelta(0),
        hold_in_doubt_after=timedelta(0),
        unrecorded_hold_after=timedelta(0),
    )
    # A day on: every wait before an operator is told has run out. Reconciling sub-orders are
    # left to the cron's sweeps here: re-queued by this sweep, one would be `placing` again by
    # the time the same sweep looks for the long-reconciling ones.
    day_later = replace(
        no_waits,
        reconcile_after=timedelta(days=1),
        reconciling_flag_after=timedelta(0),
        refund_in_doubt_flag_after=timedelta(0),
        cancel_job_ended_after=timedelta(0),
    )
    factory = get_session_factory(world.db_url)
    connection = redis.Redis.from_url(world.redis_url)
    ignored = _unreachable_sub_orders(world.db_url, set(down))
    started = time.monotonic()
    previous, quiet_rounds = None, 0

    def one_round(sweep_policy: object) -> None:
        log.settle_rounds += 1
        sweep(
            factory,
            lambda message: enqueue_outbox_message(connection, policy, message),
            policy=sweep_policy,  # type: ignore[arg-type]
        )
        track_job(world.policy)
        time.sleep(SETTLE_ROUND_S)

    try:
        while time.monotonic() - started < SETTLE_TIMEOUT_S:
            if log.settle_rounds == SETTLE_ARMED_ROUNDS and (left := proxy.disarm()):
                print(f"{left} Stripe fault(s) never fired", file=sys.stderr)
            one_round(no_waits)
            current = _fingerprint(world.db_url, user_ids)
            busy = _queue_work(world, ignored)
            armed = proxy.armed and log.settle_rounds <= SETTLE_ARMED_ROUNDS
            if current == previous and not busy and not armed:
                quiet_rounds += 1
                if quiet_rounds >= SETTLE_QUIET_ROUNDS:
                    break
            else:
                quiet_rounds = 0
                changed = "state changed" if current != previous else "work queued"
                print(f"settling: {changed}; order jobs: {busy[:4]}", file=sys.stderr)
            previous = current
        print("settled; a day later:", file=sys.stderr)
        for _ in range(DAY_LATER_ROUNDS):
            # Between two attempts (the cron's sweeps keep re-queueing them), as most of the day.
            deadline = time.monotonic() + WAIT_AT_REST_S
            while time.monotonic() < deadline and _placing(world.db_url, ignored):
                time.sleep(0.1)
            one_round(day_later)
    finally:
        connection.close()
        log.settled_in_s = time.monotonic() - started

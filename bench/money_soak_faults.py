"""The money soak's faults: what one order's checkout meets, chosen by the seed, put in place
before its checkout and taken away once its placement has run its course.

Marketplace faults are the sandbox's knobs on one marketplace of the cart (docs/sandbox-and-
adapters.md); Stripe faults arm the fault proxy (bench/stripe_fault_proxy.py) so that one write
reaches localstripe but its answer never reaches OneCart; a worker kill SIGKILLs the `rq
worker-pool` worker busy with the order's placement (the pool starts another).
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.checkout_setup import CART_MARKETPLACES
from bench.checkout_world import World
from bench.stripe_fault_proxy import StripeFaultProxy

# The adapters' read timeout in the soak's processes: a reply delayed past it is unknown.
READ_TIMEOUT_S = 1.0
# Every knob a fault may turn, at its value when no fault is on (the sandbox's defaults, with
# the world's cancel_rate of 0: an order the marketplace cancels is a chosen fault here).
QUIET_KNOBS = {
    "fail_after_next_orders": 0,
    "cancel_next_orders": 0,
    "refuse_next_orders": 0,
    "order_reply_delay_ms": 0,
    "error_rate": 0,
    "burst_429": 0,
    "max_line_quantity": 0,
    "drop_unknown_lines": False,
    "delisted_products": [],
    "cancel_rate": 0,
    # Orders stay where placement left them (no shipping steps, no delays in transit): settling
    # waits for the money, not for deliveries.
    "order_step_seconds": 86_400,
    "delay_rate": 0,
}
# Fault kinds, and whether each leaves a call's outcome unknown to OneCart by design.
FAULTS: dict[str, bool] = {
    "none": False,
    "fail_after_order": True,  # 500 after the marketplace created the order
    "cancel_after_order": False,  # accepted, then cancelled by the marketplace
    "reply_past_timeout": True,  # the order is created, the reply comes after the timeout
    "random_503": False,
    "burst_429": False,
    "short_quantity": False,  # a line's quantity cut silently
    "dropped_line": False,  # a line dropped silently
    "stripe_authorize_unknown": True,
    "stripe_capture_unknown": True,
    "stripe_refund_unknown": True,
    "stripe_void_unknown": True,
    "kill_worker": False,
    # Killed while Stripe's capture answer is on its way: captured there, not recorded here.
    "kill_worker_mid_capture": True,
}
CARD_ONLY = {
    "kill_worker_mid_capture",
    "stripe_authorize_unknown",
    "stripe_capture_unknown",
    "stripe_refund_unknown",
    "stripe_void_unknown",
}
# Stores whose order status tracking reads (Fake Store keeps none).
TRACKED = ("shopwave", "kiondo")
STRIPE_PATHS = {
    "stripe_authorize_unknown": r"^/v1/payment_intents$",
    "stripe_capture_unknown": r"^/v1/payment_intents/[^/]+/capture$",
    "stripe_refund_unknown": r"^/v1/refunds$",
    "stripe_void_unknown": r"^/v1/payment_intents/[^/]+/cancel$",
}


@dataclass(frozen=True)
class OrderPlan:
    """One shopper's checkout: the cart's lines (slug, offer index, quantity), how it is paid,
    and the fault it meets on `target` (one marketplace of the cart)."""

    shopper: int
    lines: tuple[tuple[str, int, int], ...]
    payment: str
    fault: str
    target: str
    stripe_mode: str

    @property
    def slugs(self) -> list[str]:
        return sorted({slug for slug, _, _ in self.lines})


def plan_orders(
    rng: random.Random,
    count: int,
    shoppers: int,
    offers: int,
    kinds: list[str] | None = None,
) -> list[OrderPlan]:
    """`count` orders; the faults (`kinds`, default all of FAULTS) go round every kind once
    before repeating (shuffled by the seed), so a small run still meets each of them."""
    kinds = list(kinds or FAULTS)
    order_faults: list[str] = []
    while len(order_faults) < count:
        batch = kinds[:]
        rng.shuffle(batch)
        order_faults += batch
    plans = []
    for index, fault in enumerate(order_faults[:count]):
        slugs = rng.sample(CART_MARKETPLACES, rng.choice((2, 3)))
        target = rng.choice(slugs)
        if fault == "stripe_refund_unknown" and target not in TRACKED:
            # The refund follows a cancel that tracking sees: a store whose status it reads.
            target = rng.choice(TRACKED)
            slugs = sorted({*slugs, target})
        lines = [(slug, rng.randrange(offers // 2), rng.choice((1, 1, 2))) for slug in slugs]
        if fault == "short_quantity":
            lines = [(s, i, 2 if s == target else q) for s, i, q in lines]
        if fault == "dropped_line":
            # A second line at the target, the one its marketplace drops.
            lines.append((target, offers // 2 + rng.randrange(offers // 2), 1))
        payment = "stripe" if fault in CARD_ONLY else rng.choice(("stripe", "wallet"))
        plans.append(
            OrderPlan(
                shopper=index % shoppers,
                lines=tuple(lines),
                payment=payment,
                fault=fault,
                target=target,
                stripe_mode=rng.choice(("500", "reset")),
            )
        )
    return plans


def apply_fault(
    world: World, proxy: StripeFaultProxy, plan: OrderPlan, external_id: Callable[[str, int], str]
) -> None:
    """Turn the plan's fault on before its checkout."""
    fault, target = plan.fault, plan.target
    if fault == "fail_after_order":
        world.knobs(target, fail_after_next_orders=1)
    elif fault == "cancel_after_order":
        world.knobs(target, cancel_next_orders=1)
    elif fault == "reply_past_timeout":
        world.knobs(target, order_reply_delay_ms=int(READ_TIMEOUT_S * 1000) + 1500)
    elif fault == "random_503":
        world.knobs(target, error_rate=0.4)
    elif fault == "burst_429":
        world.knobs(target, burst_429=3)
    elif fault == "short_quantity":
        world.knobs(target, max_line_quantity=1)
    elif fault == "dropped_line":
        slug, index, _ = plan.lines[-1]
        world.knobs(slug, drop_unknown_lines=True, delisted_products=[external_id(slug, index)])
    elif fault == "stripe_refund_unknown":
        # A refund needs money back after capture: the marketplace cancels the order.
        world.knobs(target, cancel_next_orders=1)
        proxy.arm(STRIPE_PATHS[fault], plan.stripe_mode, fault)
    elif fault == "stripe_void_unknown":
        # A void needs every part refused: nothing placed, the whole hold released.
        for slug in plan.slugs:
            world.knobs(slug, refuse_next_orders=1)
        proxy.arm(STRIPE_PATHS[fault], plan.stripe_mode, fault)
    elif fault in STRIPE_PATHS:
        proxy.arm(STRIPE_PATHS[fault], plan.stripe_mode, fault)
    elif fault == "kill_worker_mid_capture":
        proxy.holding.clear()
        proxy.arm(STRIPE_PATHS["stripe_capture_unknown"], "hold", fault)
    elif fault == "kill_worker":
        # Slow (not past the timeout) so that the placement is still running when it dies.
        for slug in plan.slugs:
            world.knobs(slug, order_reply_delay_ms=int(READ_TIMEOUT_S * 700))


def quiet(world: World, plan: OrderPlan | None = None) -> None:
    """The fault knobs of the plan's marketplaces (of all, without a plan) off again; the
    Stripe proxy's unfired faults are the caller's."""
    for slug in plan.slugs if plan else ["all"]:
        world.knobs(slug, **QUIET_KNOBS)


def kill_busy_worker(world: World, timeout: float = 10.0) -> int | None:
    """SIGKILL the pool's worker that is running a job on the world's queue; its pid, or None
    when none was busy within `timeout`."""
    import redis
    from rq import Queue, Worker

    connection = redis.Redis.from_url(world.redis_url)
    try:
        queue = Queue(world.queue, connection=connection)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for worker in Worker.all(queue=queue):
                job = worker.get_current_job_id()
                if job and job.startswith("onecart-") and worker.pid:
                    try:
                        os.kill(worker.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        continue
                    return worker.pid
            time.sleep(0.05)
        return None
    finally:
        connection.close()

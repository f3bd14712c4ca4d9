"""The money soak's faults: what one order's checkout meets, chosen by the seed, put in place
before its checkout and taken away once its placement has run its course.

Marketplace faults are the sandbox's knobs on one marketplace of the cart (docs/sandbox-and-
adapters.md); Stripe faults arm the fault proxy (bench/stripe_fault_proxy.py) so that one write
reaches localstripe but its answer never reaches OneCart; a worker kill SIGKILLs the `rq
worker-pool` worker busy with the order's placement (the pool starts another). A shopper's
cancellation (SHOPPER_CANCELS) is asked through the order page once the order is placed and its
card captured, so that what is cancelled is refunded (the lost refund answer meets a refund
every time); the marketplace's own cancel knobs make that cancel's answer lost, late, or the
marketplace cancel the order itself first. A LASTING fault stays on to the end of the run (its
orders come last): the marketplace goes down after creating the order, so its sub-order is still
unknown once settled, and only an operator can end it.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from bench.checkout_setup import CART_MARKETPLACES
from bench.checkout_world import World
from bench.stripe_fault_proxy import StripeFaultProxy

_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_FLASH = re.compile(r'<p class="flash[^"]*">(.*?)</p>', re.S)
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
    "cancel_reply_delay_ms": 0,
    "fail_after_next_cancels": 0,
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
    # The shopper cancels once the order is placed (and its card captured).
    "shopper_cancel": False,
    # ... and the marketplace applies the cancel, then answers 500 / answers past the timeout.
    "cancel_reply_lost": True,
    "cancel_reply_past_timeout": True,
    # ... while the marketplace cancels the order itself (accepted, then declined).
    "cancel_by_both": False,
    # ... and the worker carrying the cancellation out is SIGKILLed while the cancel is sent.
    "kill_worker_mid_cancel": False,
    # The shopper cancels right after checkout, while the placements (slow) are running.
    "cancel_while_placing": False,
    # The order is created, its reply lost, then the marketplace is down to the end of the run.
    "marketplace_gone_after_order": True,
}
SHOPPER_CANCELS = {
    "shopper_cancel",
    "cancel_reply_lost",
    "cancel_reply_past_timeout",
    "cancel_by_both",
    "kill_worker_mid_cancel",
    "cancel_while_placing",
    "stripe_refund_unknown",
}
LASTING = {"marketplace_gone_after_order"}
CARD_ONLY = {
    "kill_worker_mid_capture",
    "stripe_authorize_unknown",
    "stripe_capture_unknown",
    "stripe_refund_unknown",
    "stripe_void_unknown",
}
from bench.money_soak_checks import TRACKED  # noqa: E402

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
    # A lasting fault's marketplace stays down: the orders after it would meet it too.
    order_faults = order_faults[:count]
    order_faults.sort(key=lambda kind: kind in LASTING)
    plans = []
    for index, fault in enumerate(order_faults):
        slugs = rng.sample(CART_MARKETPLACES, rng.choice((2, 3)))
        target = rng.choice(slugs)
        if (fault in SHOPPER_CANCELS or fault in LASTING) and target not in TRACKED:
            # A cancel the marketplace confirms (its status read after a lost answer), an
            # order found by reference once it answers again: a store OneCart can ask.
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
    """Turn the plan's fault on before its checkout (a lost refund answer is armed later, once
    the shopper cancels after the capture: arm_refund_fault)."""
    fault, target = plan.fault, plan.target
    if fault == "stripe_refund_unknown":
        return
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
    elif fault == "cancel_reply_lost":
        world.knobs(target, fail_after_next_cancels=1)
    elif fault == "cancel_reply_past_timeout":
        world.knobs(target, cancel_reply_delay_ms=int(READ_TIMEOUT_S * 1000) + 1500)
    elif fault == "kill_worker_mid_cancel":
        # Slow (not past the timeout) so that the cancellation job is still running when it dies.
        world.knobs(target, cancel_reply_delay_ms=int(READ_TIMEOUT_S * 700))
    elif fault == "cancel_while_placing":
        for slug in plan.slugs:
            world.knobs(slug, order_reply_delay_ms=int(READ_TIMEOUT_S * 700))
    elif fault == "cancel_by_both":
        world.knobs(target, cancel_next_orders=1)
    elif fault == "marketplace_gone_after_order":
        # Created, its reply late: the soak takes the marketplace down meanwhile (take_down).
        world.knobs(target, order_reply_delay_ms=int(READ_TIMEOUT_S * 1000) + 1500)
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


def arm_refund_fault(proxy: StripeFaultProxy, plan: OrderPlan) -> None:
    """The lost refund answer, armed once the order is captured: the shopper's cancel refunds."""
    if plan.fault == "stripe_refund_unknown":
        proxy.arm(STRIPE_PATHS[plan.fault], plan.stripe_mode, plan.fault)


def take_down(world: World, plan: OrderPlan) -> None:
    """A lasting fault's marketplace down (after its order was created) to the end of the run."""
    if plan.fault == "marketplace_gone_after_order":
        world.knobs(plan.target, down=True)


def cancel_as_shopper(client: httpx.Client, number: str) -> str:
    """The shopper cancels the order through its page (the confirmation step, then yes); the
    flash the order page shows."""
    page = client.get(f"/orders/{number}/cancel", follow_redirects=True)
    token = _CSRF.search(page.text)
    if token is None:
        return "not cancellable"
    answer = client.post(
        f"/orders/{number}/cancel",
        data={"csrf_token": token.group(1), "confirm": "yes"},
        follow_redirects=True,
    )
    answer.raise_for_status()
    flash = _FLASH.search(answer.text)
    return " ".join(flash.group(1).split()) if flash else "no message"


def quiet(world: World, plan: OrderPlan | None = None) -> None:
    """The fault knobs of the plan's marketplaces (of all, without a plan) off again; the
    Stripe proxy's unfired faults are the caller's."""
    for slug in plan.slugs if plan else ["all"]:
        world.knobs(slug, **QUIET_KNOBS)


def kill_busy_worker(
    world: World, timeout: float = 10.0, job_prefix: str = "onecart-"
) -> int | None:
    """SIGKILL the pool's worker that is running a job (whose id starts with `job_prefix`) on
    the world's queue; its pid, or None when none was busy within `timeout`."""
    import redis
    from rq import Queue, Worker

    connection = redis.Redis.from_url(world.redis_url)
    try:
        queue = Queue(world.queue, connection=connection)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for worker in Worker.all(queue=queue):
                job = worker.get_current_job_id()
                if job and job.startswith(job_prefix) and worker.pid:
                    try:
                        os.kill(worker.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        continue
                    return worker.pid
            time.sleep(0.05)
        return None
    finally:
        connection.close()

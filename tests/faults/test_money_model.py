"""A stateful, property-based exploration of the money path (Hypothesis' rule-based state
machines): interleavings of checkout, placement, the shopper's cancellation, the marketplaces'
own moves, tracking, the sweeper and Stripe's webhook events, with any call to Stripe or a
marketplace failing in any of the ways a real one can (refused; unknown with nothing done;
unknown after the other side acted; the worker dying right after the other side acted).

The plain services run on the test database (SQLite, or PostgreSQL when DATABASE_URL is set, as
in CI's second pass) against the fakes of money_fakes.py, which keep their own truth and answer
later questions truthfully (money_world.py wires them). No Flask, no RQ: the test plays the
placement and cancellation workers, the sweeper's cron and Stripe's webhook deliveries, and moves
time forward by moving every stored timestamp back.

After every step (money_world.MoneyWorld.problems_now): each order's books balance
(commerce.orders.order_books_problems) and agree with Stripe's intent once recorded settled; the
wallet ledger sums to the balance, never below zero; no refund or release of a part while its
marketplace keeps an order for it; no marketplace order made twice for one part; no capture of a
released hold; no refund beyond what was captured. At the end of each run, with the faults
disarmed, the sweeper, the placement worker, the cancellation job and tracking get their passes
(time moved on to a day later and more): every order is settled or flagged for an operator, and
for every unflagged order what the shopper is out of (Stripe's capture less its refunds, or the
wallet's ledger) is exactly what the marketplaces keep (money_world.problems_settled); a card
hold no order uses is released or before an operator.

Cost: derandomized (the same examples every run, no example database), MODEL_EXAMPLES runs of
up to MODEL_STEPS steps: about 30 s of CPU for the whole pytest process on SQLite (migration
included), about 45 s on PostgreSQL, on the 2-core CI machine. With `pytest -s` it prints what
the runs explored (steps, faults fired, how orders ended, webhook outcomes). A longer
exploration (`-o timeout=0`: it outlasts pytest-timeout's 300 s):

    ONECART_FUZZ_EXAMPLES=2000 ONECART_FUZZ_STEPS=30 ONECART_FUZZ_SEED=7 nice -n 10 \\
        .venv/bin/python -m pytest -q -s -p no:cacheprovider -o timeout=0 \\
        tests/faults/test_money_model.py

(ONECART_FUZZ_SEED set: random, not derandomized, examples from that seed; failures print the
shrunk sequence of steps, which a defect's example-based test then spells out.)
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from commerce.checkout import CheckoutBusy
from commerce.order_models import PaymentMethod, SubOrderStatus
from commerce.payments import providers
from tests.faults.money_fakes import (
    MARKETPLACE_CALLS,
    MARKETPLACE_MOVES,
    OUTCOMES,
    STRIPE_CALLS,
    FakeStripe,
    WorkerCrash,
)
from tests.faults.money_world import SLUGS, MoneyWorld, empty_database
from tests.storefront.conftest import storefront_db_url

__all__ = ["storefront_db_url"]

MODEL_EXAMPLES = int(os.environ.get("ONECART_FUZZ_EXAMPLES", "30"))
MODEL_STEPS = int(os.environ.get("ONECART_FUZZ_STEPS", "14"))
FUZZ_SEED = os.environ.get("ONECART_FUZZ_SEED")
# Checkouts per run: enough for orders to interleave, few enough to keep a step cheap.
MAX_CHECKOUTS = 3
FAULT_TARGETS = tuple(f"stripe.{verb}" for verb in STRIPE_CALLS) + tuple(
    f"market.{verb}" for verb in MARKETPLACE_CALLS
)
# How far time moves before a sweep: not at all, past the placement lease and the stale
# pending wait, past the abandoned-cancellation wait, past a day (operator thresholds).
LATER = (timedelta(0), timedelta(minutes=11), timedelta(hours=2), timedelta(hours=25))


def faults(*calls: str) -> st.SearchStrategy[tuple[str, str] | None]:
    """No fault, or one of `calls` failing one way (armed just before the step runs)."""
    return st.none() | st.tuples(st.sampled_from(calls), st.sampled_from(OUTCOMES))


# The calls each step makes (a settlement follows a placement, a cancellation, a sweep).
SETTLING_CALLS = ("stripe.capture", "stripe.void", "stripe.refund", "stripe.retrieve")
PLACING_CALLS = ("market.place_order", "market.find_order", *SETTLING_CALLS)
CHECKOUT_CALLS = ("stripe.authorize", *PLACING_CALLS)
CANCELLING_CALLS = ("market.cancel_order", "market.order_status", *SETTLING_CALLS)
SWEEPING_CALLS = (*PLACING_CALLS, *CANCELLING_CALLS[:2], "stripe.find_refund")
TRACKING_CALLS = ("market.order_status", *SETTLING_CALLS)
# What the runs of this process explored, counted (printed at the end of the test).
EXPLORED: Counter[str] = Counter()
UNSETTLED = (SubOrderStatus.PENDING, SubOrderStatus.PLACING, SubOrderStatus.RECONCILING)


class MoneyPath(RuleBasedStateMachine):
    """One shopper, three marketplaces, Stripe and the wallet (see the module docstring)."""

    database_url = ""
    # The run's world, for the code that finds the card gateway by itself (Stripe's webhook
    # events: commerce.payments.providers.card_gateway_from_settings, patched by the test).
    current: MoneyWorld | None = None

    def __init__(self) -> None:
        super().__init__()
        self.world = MoneyWorld(self.database_url)
        MoneyPath.current = self.world
        self.steps: list[str] = []

    @initialize(
        method=st.sampled_from([PaymentMethod.WALLET, PaymentMethod.STRIPE]),
        slugs=st.lists(st.sampled_from(SLUGS), min_size=1, max_size=3, unique=True),
    )
    def first_checkout(self, method: PaymentMethod, slugs: list[str]) -> None:
        self.world.checkout(method, [(slug, 0, 1) for slug in slugs])

    # --- The shopper -------------------------------------------------------------------------

    @precondition(lambda self: len(self.world.checkouts) < MAX_CHECKOUTS)
    @rule(
        method=st.sampled_from([PaymentMethod.WALLET, PaymentMethod.STRIPE]),
        lines=st.lists(
            st.tuples(st.sampled_from(SLUGS), st.integers(0, 1), st.integers(1, 2)),
            min_size=1,
            max_size=3,
            unique_by=lambda line: (line[0], line[1]),
        ),
        place_now=st.booleans(),
        fault=faults(*CHECKOUT_CALLS),
    )
    def checkout(
        self,
        method: PaymentMethod,
        lines: list[tuple[str, int, int]],
        place_now: bool,
        fault: tuple[str, str] | None,
    ) -> None:
        """The shopper checks out; the placement job's first attempts follow at once (as the
        checkout dispatches them), unless Redis lost them (`place_now` False: the sweeper's
        stale-pending pass finds them)."""
        self.steps.append("checkout")
        self._arm(fault)
        # CheckoutBusy: the shopper's earlier submit died holding the checkout lock.
        with contextlib.suppress(WorkerCrash, CheckoutBusy):
            made = self.world.checkout(method, lines)
            if place_now and made.outcome.order_id is not None:
                for sub_order_id in self.world.sub_order_ids(made.outcome.order_id):
                    with contextlib.suppress(WorkerCrash):
                        self.world.place(sub_order_id, final_attempt=False)

    def _arm(self, fault: tuple[str, str] | None) -> None:
        if fault is not None:
            self.world.faults.arm(*fault)

    @rule(
        which=st.integers(0, 7),
        carry_out=st.booleans(),
        final_attempt=st.booleans(),
        fault=faults(*CANCELLING_CALLS),
    )
    def cancel(
        self, which: int, carry_out: bool, final_attempt: bool, fault: tuple[str, str] | None
    ) -> None:
        self.steps.append("cancel")
        self._arm(fault)
        orders = self.world.order_ids()
        if not orders:
            return
        order_id = orders[which % len(orders)]
        self.world.request_cancel(order_id)
        if carry_out:
            with contextlib.suppress(WorkerCrash):
                self.world.carry_out_cancel(order_id, final_attempt=final_attempt)

    # --- The jobs ----------------------------------------------------------------------------

    @rule(
        which=st.integers(0, 7),
        part=st.integers(0, 2),
        final_attempt=st.booleans(),
        fault=faults(*PLACING_CALLS),
    )
    def place(
        self, which: int, part: int, final_attempt: bool, fault: tuple[str, str] | None
    ) -> None:
        self.steps.append("place")
        self._arm(fault)
        orders = self.world.order_ids()
        if not orders:
            return
        subs = self.world.sub_order_ids(orders[which % len(orders)])
        with contextlib.suppress(WorkerCrash):
            self.world.place(subs[part % len(subs)], final_attempt=final_attempt)

    @rule(fault=faults(*TRACKING_CALLS))
    def track(self, fault: tuple[str, str] | None) -> None:
        self.steps.append("track")
        self._arm(fault)
        with contextlib.suppress(WorkerCrash):
            self.world.track()

    @rule(later=st.sampled_from(LATER), fault=faults(*SWEEPING_CALLS))
    def sweep(self, later: timedelta, fault: tuple[str, str] | None) -> None:
        self.steps.append(f"sweep {later}")
        self._arm(fault)
        if later:
            self.world.advance(later)
        with contextlib.suppress(WorkerCrash):
            self.world.sweep()

    # --- The other sides ---------------------------------------------------------------------

    @rule(call=st.sampled_from(FAULT_TARGETS), outcome=st.sampled_from(OUTCOMES))
    def arm_fault(self, call: str, outcome: str) -> None:
        self.steps.append("arm_fault")
        self.world.faults.arm(call, outcome)

    @precondition(lambda self: bool(self.world.markets.orders))
    @rule(which=st.integers(0, 7), action=st.sampled_from(sorted(MARKETPLACE_MOVES)))
    def marketplace_moves(self, which: int, action: str) -> None:
        self.steps.append("marketplace_moves")
        orders = list(self.world.markets.orders.values())
        self.world.markets.move(orders[which % len(orders)], action)

    @precondition(lambda self: bool(self.world.stripe.events))
    @rule(which=st.integers(0, 15))
    def stripe_event(self, which: int) -> None:
        """Stripe delivers one of its events: any of them, again or out of order."""
        self.steps.append("stripe_event")
        events = self.world.stripe.events
        # A delivery whose handler dies is delivered again by Stripe (a later step may pick it).
        with contextlib.suppress(WorkerCrash):
            self.world.deliver_event(which % len(events))

    # --- What must hold ----------------------------------------------------------------------

    @invariant()
    def books_balance(self) -> None:
        problems = self.world.problems_now()
        assert not problems, "\n".join(problems)

    def teardown(self) -> None:
        settle(self.world)
        problems = self.world.problems_settled()
        # What the runs explored (printed at the end: pytest -s).
        EXPLORED["runs"] += 1
        EXPLORED.update(f"step {name}" for name in self.steps)
        EXPLORED.update(f"fault {fired}" for fired in self.world.faults.fired)
        EXPLORED.update(
            f"checkout {made.method} {made.outcome.kind}" for made in self.world.checkouts
        )
        EXPLORED.update(f"order ended {ending}" for ending in self.world.endings())
        EXPLORED.update(f"webhook {line.split(': ', 1)[1]}" for line in self.world.webhook_log)
        assert not problems, "\n".join(problems)


def settle(world: MoneyWorld) -> None:
    """With every fault disarmed: the workers, the cancellation jobs, tracking and the sweeper
    get their passes, time moving on, until a day and more has passed."""
    world.faults.clear()
    later = [timedelta(minutes=11)] * 2 + [timedelta(hours=2)] + [timedelta(hours=25)] * 2
    for round_number, step in enumerate(later):
        final = round_number >= 1
        world.advance(step)
        world.sweep()
        for sub_order_id in world.sub_orders_in(UNSETTLED):
            world.place(sub_order_id, final_attempt=final)
        for order_id in world.cancelling_orders():
            world.carry_out_cancel(order_id, final_attempt=final)
        world.track()
    world.sweep()


def _settings() -> settings:
    return settings(
        max_examples=MODEL_EXAMPLES,
        stateful_step_count=MODEL_STEPS,
        derandomize=FUZZ_SEED is None,
        database=None,
        deadline=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def _current_card_gateway() -> FakeStripe:
    assert MoneyPath.current is not None
    return MoneyPath.current.stripe


def test_the_money_path_keeps_its_books_under_any_interleaving_of_faults(
    storefront_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(providers, "card_gateway_from_settings", _current_card_gateway)
    MoneyPath.database_url = storefront_db_url
    machine = MoneyPath
    if FUZZ_SEED is not None:
        machine = seed(int(FUZZ_SEED))(MoneyPath)  # type: ignore[assignment]
    EXPLORED.clear()
    try:
        run_state_machine_as_test(machine, settings=_settings())
    finally:
        # The checkout suite's teardown checks every order it finds against localstripe.
        empty_database(storefront_db_url)
        print(
            "\nexplored:",
            *(f"{count:6} {what}" for what, count in sorted(EXPLORED.items())),
            sep="\n",
        )


pytestmark = pytest.mark.slow

"""The money path under faults, end to end: a randomized fault soak over the real parts.

    python -m bench.money_soak [--orders N] [--seed S] [--database-url URL] [--workers N]
        [--no-append] [--keep]

1. Starts the checkout benchmark's world (bench/checkout_world.py: its own sandbox, localstripe,
   a migrated storefront DB, the real site under uWSGI, `rq worker-pool`, `rq cron
   storefront.cron`), with a fault proxy between OneCart and localstripe
   (bench/stripe_fault_proxy.py: STRIPE_API_BASE of the site, the workers and the cron points at
   it) and a 1 s marketplace read timeout.
2. Shoppers (wallets topped up) check out through the real form, one order after another: carts
   of two or three marketplaces, paid by wallet or by a Stripe test card. Each order meets one
   fault chosen by the seed (bench/money_soak_faults.py: the sandbox's order knobs, a Stripe
   write whose answer is lost after localstripe did it, a SIGKILLed worker mid-placement or
   mid-cancel, a shopper's cancellation once the card is captured with the marketplace's answer
   lost or late, a marketplace down to the end of the run); every kind comes once before any
   repeats.
3. Settles: the sweeper (commerce.sweeper, as `rq cron` runs it, with no waiting thresholds once
   the load has stopped) and the tracker (storefront.jobs.track_job) run here, in rounds, while
   the workers keep working, until nothing changes and the queue is empty; then sweeps "a day
   later", the sweeper's operator thresholds reached (bench/money_soak_settle.py). Stripe
   faults that did not fire during the load stay armed for the first rounds, for the settling's
   own writes.
4. Checks every order against the other sides (bench/money_soak_checks.py): the marketplaces'
   own record, localstripe's, the wallet ledger; prints the summary and
   `RESULT bench=money_soak orders=… faults=… unknown_outcomes=… flagged=… violations=…`, and
   appends them to bench/RESULTS.md unless --no-append. Exit 1 on any violation.
"""

from __future__ import annotations

import argparse
import html
import os
import random
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.checkout_load import (  # noqa: E402
    CheckoutRefused,
    checkout_once,
    log_in,
    submit_checkout,
)
from bench.checkout_setup import make_shoppers  # noqa: E402
from bench.checkout_world import World, checkout_world  # noqa: E402
from bench.money_soak_checks import CheckReport, Localstripe, check_run  # noqa: E402
from bench.money_soak_faults import (  # noqa: E402
    CARD_ONLY,
    FAULTS,
    LASTING,
    READ_TIMEOUT_S,
    SHOPPER_CANCELS,
    OrderPlan,
    apply_fault,
    arm_refund_fault,
    cancel_as_shopper,
    kill_busy_worker,
    plan_orders,
    quiet,
    take_down,
)
from bench.money_soak_settle import settle  # noqa: E402
from bench.stripe_fault_proxy import StripeFaultProxy  # noqa: E402
from onecart.settings import get_settings  # noqa: E402

RESULTS_FILE = REPO_ROOT / "bench" / "RESULTS.md"
SHOPPERS = 3
WALLET_TOP_UPS = 5  # of 1,000 USD each
PLACEMENT_WAIT_S = 30.0
_MESSAGE = re.compile(
    r'<p class="flash[^"]*">(.*?)</p>|<div class="alert alert-[a-z]+[^"]*"[^>]*>(.*?)</div>', re.S
)


@dataclass
class SoakLog:
    """What happened during the load."""

    checkouts: int = 0
    refused_at_checkout: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    killed_workers: int = 0
    # What the order page said to each shopper's cancellation.
    cancellations: list[str] = field(default_factory=list)
    # Marketplaces a lasting fault took down to the end of the run.
    down: set[str] = field(default_factory=set)
    settle_rounds: int = 0
    settled_in_s: float = 0.0


def soak_policy(queue: str) -> dict[str, object]:
    """Short retries, leases and intervals, so that a soak settles in minutes."""
    return {
        "queue_name": queue,
        "placement_retry_intervals": [1, 1, 2],
        "cancel_retry_intervals": [1, 2, 2],
        "stuck_after_seconds": 6,
        "stale_pending_seconds": 20,
        "sweep_interval_seconds": 2,
        "track_interval_seconds": 2,
        "job_timeout_seconds": 60,
    }


def top_up_wallets(db_url: str, shoppers: list[tuple[int, str]]) -> None:
    from commerce.db import get_session_factory
    from commerce.models import User
    from commerce.wallet import top_up

    with get_session_factory(db_url)() as session, session.begin():
        for user_id, username in shoppers:
            user = session.get(User, user_id)
            assert user is not None
            for turn in range(WALLET_TOP_UPS):
                top_up(session, user, Decimal("1000"), reference=f"soak-{username}-{turn}")


def fill_cart(db_url: str, user_id: int, products: dict[str, list[int]], plan: OrderPlan) -> None:
    """The shopper's cart emptied, then holding the plan's lines."""
    import sqlalchemy as sa

    from commerce.db import get_session_factory
    from commerce.models import CartItem, Product

    with get_session_factory(db_url)() as session, session.begin():
        session.execute(sa.delete(CartItem).where(CartItem.user_id == user_id))
        for slug, index, quantity in plan.lines:
            product = session.get(Product, products[slug][index])
            assert product is not None
            session.add(
                CartItem(
                    user_id=user_id,
                    product_id=product.id,
                    quantity=quantity,
                    price_seen_minor=product.price_minor,
                    currency_seen=product.currency,
                )
            )


def external_ids(db_url: str, products: dict[str, list[int]]) -> dict[str, list[str]]:
    from commerce.db import get_session_factory
    from commerce.models import Product

    with get_session_factory(db_url)() as session:
        return {
            slug: [session.get(Product, pid).external_id for pid in ids]  # type: ignore[union-attr]
            for slug, ids in products.items()
        }


def placement_done(db_url: str, number: str) -> bool:
    """Whether every sub-order of the order has left pending and placing."""
    import sqlalchemy as sa

    from commerce.db import get_session_factory
    from commerce.order_models import MarketplaceOrder, Order, SubOrderStatus

    with get_session_factory(db_url)() as session:
        statuses = list(
            session.scalars(
                sa.select(MarketplaceOrder.status)
                .join(Order, MarketplaceOrder.order_id == Order.id)
                .where(Order.number == number)
            )
        )
    return bool(statuses) and all(
        status not in (SubOrderStatus.PENDING, SubOrderStatus.PLACING) for status in statuses
    )


def wait_for_placement(db_url: str, number: str, timeout: float = PLACEMENT_WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not placement_done(db_url, number):
        time.sleep(0.2)


def _order_state(db_url: str, number: str) -> tuple[dict[str, tuple[str, str | None]], str]:
    """Each sub-order's (status, cancel outcome) by marketplace slug, and the payment's status."""
    import sqlalchemy as sa

    from commerce.db import get_session_factory
    from commerce.order_models import Order

    with get_session_factory(db_url)() as session:
        order = session.scalar(sa.select(Order).where(Order.number == number))
        assert order is not None
        subs = {
            sub.marketplace.slug: (str(sub.status), sub.cancel_outcome)
            for sub in order.charged_sub_orders
        }
        return subs, str(order.payment.status) if order.payment else ""


def wait_until(done: Callable[[], bool], timeout: float = PLACEMENT_WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not done():
        time.sleep(0.2)


def cancellation_answered(db_url: str, number: str) -> bool:
    """No placed part of the order is left without its marketplace's answer to the cancel."""
    subs, _ = _order_state(db_url, number)
    return all(
        outcome is not None or status not in ("placed", "processing")
        for status, outcome in subs.values()
    )


def check_out(client: httpx.Client, payment: str) -> str:
    """Check out as a shopper would: when the page says prices or stock changed (the sandbox's
    stock runs down over a soak), review the new total and submit once more; when it says the
    card service did not answer, post the same page again, as it invites."""
    try:
        return checkout_once(client, payment)[0]
    except CheckoutRefused as refused:
        if "changed since you opened checkout" in refused.page:
            return checkout_once(client, payment)[0]
        if "could not get an answer from the card payment service" in refused.page:
            return submit_checkout(client, refused.form)[0]
        raise


def run_orders(
    world: World,
    proxy: StripeFaultProxy,
    plans: list[OrderPlan],
    log: SoakLog,
    parallel: int = 1,
) -> list[tuple[int, str]]:
    """Every planned checkout through the real site; the shoppers. With `parallel` > 1 that
    many shoppers check out at the same time, each its own share of the plans in turn (the
    knobs are per marketplace, so a fault then meets whichever order comes first)."""
    shoppers = make_shoppers(world.db_url, max(SHOPPERS, parallel), world.run_id)
    top_up_wallets(world.db_url, shoppers)
    ids = external_ids(world.db_url, world.products)
    lock = threading.Lock()
    numbered = list(enumerate(plans, 1))

    def shopper(lane: int) -> None:
        user_id, username = shoppers[lane]
        client = log_in(world.site_url, username)
        try:
            for number, plan in numbered[lane::parallel]:
                run_one(world, proxy, plan, number, len(plans), client, user_id, ids, log, lock)
        finally:
            client.close()

    if parallel == 1:
        # One after another, each shopper its plans' own.
        clients = {i: log_in(world.site_url, name) for i, (_, name) in enumerate(shoppers)}
        try:
            for number, plan in numbered:
                user_id, _ = shoppers[plan.shopper]
                client = clients[plan.shopper]
                run_one(world, proxy, plan, number, len(plans), client, user_id, ids, log, lock)
        finally:
            for client in clients.values():
                client.close()
        return shoppers
    threads = [threading.Thread(target=shopper, args=(lane,)) for lane in range(parallel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return shoppers


def run_one(
    world: World,
    proxy: StripeFaultProxy,
    plan: OrderPlan,
    number: int,
    total: int,
    client: httpx.Client,
    user_id: int,
    ids: dict[str, list[str]],
    log: SoakLog,
    lock: threading.Lock,
) -> None:
    """One shopper's checkout meeting its plan's fault, waited for until placement is over."""
    fill_cart(world.db_url, user_id, world.products, plan)
    apply_fault(world, proxy, plan, lambda slug, index: ids[slug][index])
    with lock:
        log.faults[plan.fault] = log.faults.get(plan.fault, 0) + 1
    print(
        f"order {number}/{total}: {plan.payment}, {'+'.join(plan.slugs)}, "
        f"fault {plan.fault} on {plan.target}",
        file=sys.stderr,
    )
    try:
        order_number = check_out(client, plan.payment)
    except (AssertionError, KeyError, httpx.HTTPError) as exc:
        # A refused checkout must leave nothing behind; the checks look for that.
        page = exc.page if isinstance(exc, CheckoutRefused) else str(exc)
        with lock:
            log.refused_at_checkout.append(f"{plan.fault}: {page_message(page)}")
        (world.home / f"refused-{number}.html").write_text(page)
        quiet(world, plan)
        return
    with lock:
        log.checkouts += 1
    if plan.fault in LASTING:
        # Down once its order is created, before the reply (held back) comes.
        wait_until(lambda: _order_state(world.db_url, order_number)[0][plan.target][0] != "pending")
        time.sleep(0.3)
        take_down(world, plan)
        with lock:
            log.down.add(plan.target)
    if plan.fault == "kill_worker_mid_capture":
        # Once the capture reached localstripe and its answer is held back.
        proxy.holding.wait(timeout=PLACEMENT_WAIT_S)
    if plan.fault in ("kill_worker", "kill_worker_mid_capture") and kill_busy_worker(world):
        with lock:
            log.killed_workers += 1
    if plan.fault == "cancel_while_placing":
        said = cancel_as_shopper(client, order_number)
        with lock:
            log.cancellations.append(f"{plan.fault}: {said}")
    wait_for_placement(world.db_url, order_number)
    if plan.fault in SHOPPER_CANCELS and plan.fault != "cancel_while_placing":
        # Once the card is captured: what the marketplace cancels is then refunded.
        wait_until(
            lambda: _order_state(world.db_url, order_number)[1] not in ("authorized", "capturing")
        )
        arm_refund_fault(proxy, plan)
        said = cancel_as_shopper(client, order_number)
        with lock:
            log.cancellations.append(f"{plan.fault}: {said}")
        if (
            plan.fault == "kill_worker_mid_cancel"
            and kill_busy_worker(world, job_prefix="onecart-cancel-") is not None
        ):
            with lock:
                log.killed_workers += 1
        wait_until(lambda: cancellation_answered(world.db_url, order_number))
    quiet(world, plan)


def page_message(text: str) -> str:
    """The messages a refused checkout's page shows (its flashes and form errors), else the
    start of the text."""
    found = [
        " ".join(html.unescape(re.sub(r"<[^>]+>", " ", "".join(match))).split())
        for match in _MESSAGE.findall(text)
    ]
    return "; ".join(m for m in found if m)[:300] or text[:200]


def summary(
    args: argparse.Namespace,
    log: SoakLog,
    proxy: StripeFaultProxy,
    report: CheckReport,
    database: str,
) -> tuple[str, str]:
    """(the Markdown section, the RESULT line)."""
    injected = sum(count for kind, count in log.faults.items() if kind != "none")
    unknown = len(proxy.log.fired) + sum(
        count for kind, count in log.faults.items() if FAULTS[kind] and kind not in CARD_ONLY
    )
    result = (
        f"RESULT bench=money_soak orders={report.orders} faults={injected} "
        f"unknown_outcomes={unknown} flagged={report.flagged} "
        f"violations={len(report.violations)} seed={args.seed} db={database.lower()}"
    )
    lines = [
        f"## Money soak — {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"`python -m bench.money_soak --orders {args.orders} --seed {args.seed} "
        f"--parallel {args.parallel}` on {database}, "
        f"`rq worker-pool -n {args.workers}`, marketplace read timeout {READ_TIMEOUT_S} s. "
        f"{log.checkouts} checkouts ({len(log.refused_at_checkout)} refused at checkout), "
        f"{report.orders} orders, {report.settled} settled, {report.flagged} flagged for an "
        f"operator; faults: "
        + ", ".join(f"{kind} {count}" for kind, count in sorted(log.faults.items()))
        + f"; Stripe answers lost after the work was done: {len(proxy.log.fired)} "
        f"({', '.join(label for label, _ in proxy.log.fired) or 'none'}), idempotent replays "
        f"served: {proxy.log.replays}; workers killed mid-job: {log.killed_workers}; "
        f"shopper cancellations: {len(log.cancellations)}; marketplaces down to the end: "
        f"{', '.join(sorted(log.down)) or 'none'}; "
        f"settled in {log.settled_in_s:.0f} s ({log.settle_rounds} sweeper rounds).",
        "",
    ]
    if report.violations:
        lines += ["Violations:", ""] + [f"- {v}" for v in report.violations[:30]] + [""]
    if report.flag_reasons:
        lines += ["Flagged:", ""] + [f"- {r}" for r in report.flag_reasons[:30]] + [""]
    if log.cancellations:
        lines += ["Shopper cancellations:", ""] + [f"- {c}" for c in log.cancellations] + [""]
    if log.refused_at_checkout:
        lines += ["Refused at checkout:", ""] + [f"- {r}" for r in log.refused_at_checkout] + [""]
    lines += [result, ""]
    return "\n".join(lines), result


@contextmanager
def own_schema(database_url: str | None, run_id: str, keep: bool) -> Iterator[str | None]:
    """On PostgreSQL, a schema of the run's own in `database_url` (dropped afterwards unless
    `keep`), so that a database used before is never seeded twice; other URLs as they are."""
    if not database_url or not database_url.startswith("postgres"):
        yield database_url
        return
    import sqlalchemy as sa

    from commerce.db import dispose_engines, normalize_database_url

    schema = f"money_soak_{run_id}"
    admin = sa.create_engine(normalize_database_url(database_url))
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in database_url else "?"
    try:
        yield f"{normalize_database_url(database_url)}{separator}options=-csearch_path%3D{schema}"
    finally:
        dispose_engines()
        if not keep:
            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@dataclass
class SoakOutcome:
    """A soak's checks, what it did, and its report (Markdown section and RESULT line)."""

    report: CheckReport
    log: SoakLog
    stripe_faults_fired: list[str]
    section: str
    result: str


def soak(args: argparse.Namespace) -> SoakOutcome:
    """The whole soak (see the module docstring)."""
    run_id = uuid.uuid4().hex[:8]
    rng = random.Random(args.seed)
    proxy = StripeFaultProxy()
    log = SoakLog()
    plans = plan_orders(rng, args.orders, SHOPPERS, offers=16, kinds=args.faults)
    saved = dict(os.environ)
    try:
        with (
            own_schema(args.database_url, run_id, args.keep) as database_url,
            checkout_world(
                run_id=run_id,
                database_url=database_url,
                workers=args.workers,
                latency_ms=0,
                policy=soak_policy(f"money-soak-{run_id}"),
                worker_env={"ONECART_MARKETPLACE_READ_TIMEOUT_S": str(READ_TIMEOUT_S)},
                stripe_front=proxy.start,
                keep=args.keep,
                name="money-soak",
            ) as world,
        ):
            # The settling sweeps and tracking passes run here, as the cron's jobs would.
            os.environ.update(world.env)
            get_settings.cache_clear()
            quiet(world)
            shoppers = run_orders(world, proxy, plans, log, parallel=args.parallel)
            user_ids = [user_id for user_id, _ in shoppers]
            settle(world, user_ids, log, proxy, down=log.down)
            stripe = Localstripe(world.stripe_url, get_settings().stripe_api_key)
            try:
                report = check_run(world.db_url, world.sandbox_url, stripe, user_ids)
            finally:
                stripe.close()
            database = "PostgreSQL" if world.db_url.startswith("postgres") else "SQLite"
            section, result = summary(args, log, proxy, report, database)
            fired = [label for label, _ in proxy.log.fired]
            return SoakOutcome(report, log, fired, section, result)
    finally:
        proxy.stop()
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line, checked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=len(FAULTS), help="orders to place")
    parser.add_argument("--seed", type=int, default=1, help="chooses carts, payments, faults")
    parser.add_argument("--database-url", default=None, help="storefront DB (default: SQLite)")
    parser.add_argument("--workers", type=int, default=2, help="RQ workers in the pool")
    parser.add_argument(
        "--parallel", type=int, default=1, help="shoppers checking out at the same time"
    )
    parser.add_argument(
        "--faults",
        type=lambda text: [kind.strip() for kind in text.split(",") if kind.strip()],
        default=None,
        help=f"comma-separated fault kinds to draw from (default all: {', '.join(FAULTS)})",
    )
    parser.add_argument("--no-append", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the soak's ONECART_HOME")
    args = parser.parse_args(argv)
    if not 1 <= args.orders <= 500:
        parser.error("--orders must be between 1 and 500")
    if not 1 <= args.parallel <= 16:
        parser.error("--parallel must be between 1 and 16")
    if not 1 <= args.workers <= 16:
        parser.error("--workers must be between 1 and 16")
    unknown = sorted(set(args.faults or ()) - set(FAULTS))
    if unknown:
        parser.error(f"unknown fault kinds: {', '.join(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (exit 1 on any invariant violation)."""
    args = parse_args(argv)
    outcome = soak(args)
    print(outcome.section)
    if not args.no_append:
        with RESULTS_FILE.open("a", encoding="utf-8") as handle:
            handle.write("\n" + outcome.section)
    print(outcome.result)
    return 1 if outcome.report.violations else 0


if __name__ == "__main__":
    sys.exit(main())

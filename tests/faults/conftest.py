"""The money path's fault suite: the checkout shop of tests/checkout (real sandbox over HTTP, real
Redis and `rq worker` processes, localstripe, SQLite or PostgreSQL) with short timeouts, and the
invariants every test asserts for every order it created:

- no marketplace holds a live order for a sub-order we refunded or failed, and no sub-order is
  placed twice (checked against what the sandbox itself holds: GET /_sandbox/orders);
- payment captured − refunds = what the marketplaces accepted for the placed sub-orders, the
  wallet balance is the sum of its ledger (commerce.orders' books, plus localstripe's record);
- nothing is left reconciling, placing or mid-capture after the sweeper's next pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
import redis
import sqlalchemy as sa

from commerce.models import User
from commerce.order_models import (
    PLACED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    Payment,
    PaymentStatus,
    SubOrderStatus,
)
from commerce.orders import order_books_problems, wallet_books_problems
from commerce.sweeper import SweepPolicy, sweep
from onecart import processes
from onecart.settings import Settings
from tests.checkout.conftest import (  # noqa: F401 - fixtures shared with the checkout tests
    localstripe_server,
    sandbox_catalog,
    shop,
    storefront_db_url,
)
from tests.checkout.shop import Shop, stripe_books_problems, wait_for
from tests.loopback_http import loopback_http

# Marketplaces whose orders the sandbox lists (every one with an order API).
ORDERING_MARKETPLACES = ("shopwave", "kiondo", "dummymart", "fakestore")
# The adapters' read timeout in the fault suite's workers: a reply delayed past it is unknown.
READ_TIMEOUT_S = 1.0
# What OneCart absorbs of an order billed above what was paid (5%).
TOLERANCE_BPS = 500

__all__ = ["check_invariants", "held_orders", "sweep_now"]


@pytest.fixture
def faults(shop: Shop) -> Iterator[Shop]:  # noqa: F811 - the shared fixture
    """The checkout shop with short leases and timeouts, for workers started by the test."""
    shop.policy = replace(
        shop.policy, stuck_after_seconds=6, stale_pending_seconds=20, sweep_interval_seconds=2
    )
    shop.app.config["ORDER_JOB_POLICY"] = shop.policy.as_dict()
    shop.worker_env.update(
        ONECART_MARKETPLACE_READ_TIMEOUT_S=str(READ_TIMEOUT_S),
        ONECART_OVERCHARGE_TOLERANCE_BPS=str(TOLERANCE_BPS),
    )
    yield shop


def held_orders(target: Shop, slug: str, sub_order: MarketplaceOrder, order: Order) -> list[dict]:
    """What the marketplace itself holds for this sub-order (by our reference, or by the
    idempotency key where the format carries no reference)."""
    response = loopback_http().get(
        f"{target.sandbox_url}/_sandbox/orders/{slug}",
        params={"reference": order.relation_token},
        timeout=10,
    )
    response.raise_for_status()
    held = response.json()["orders"]
    if slug in ("dummymart", "fakestore"):
        listing = loopback_http().get(f"{target.sandbox_url}/_sandbox/orders/{slug}", timeout=10)
        listing.raise_for_status()
        held = [
            found
            for found in listing.json()["orders"]
            if found.get("idempotency_key") == sub_order.idempotency_key
        ]
    return held


def sweep_now(target: Shop) -> None:
    """One sweeper pass in this process, as the cron would run it, with no waiting thresholds."""
    from storefront.jobs import enqueue_outbox_message

    connection = target.redis()
    try:
        sweep(
            target.session_factory,
            lambda message: enqueue_outbox_message(connection, target.policy, message),
            policy=SweepPolicy(
                stuck_after=timedelta(seconds=target.policy.stuck_after_seconds),
                stale_pending_after=timedelta(seconds=target.policy.stale_pending_seconds),
                refund_processing_after=timedelta(0),
                reconcile_after=timedelta(0),
            ),
        )
    finally:
        connection.close()


def check_invariants(target: Shop) -> None:
    """Assert the fault suite's invariants for every order in the database (see the module
    docstring). Call it once every service is back and the orders have settled."""
    problems: list[str] = []
    with target.session() as session:
        for payment in session.scalars(sa.select(Payment)):
            if payment.status in (PaymentStatus.CAPTURING, PaymentStatus.RECONCILING):
                problems.append(f"payment {payment.id} left {payment.status}")
        for order in session.scalars(sa.select(Order).order_by(Order.id)):
            problems += order_books_problems(session, order)
            problems += stripe_books_problems(order)
            for sub in order.charged_sub_orders:
                slug = sub.marketplace.slug
                where = f"order {order.number} {slug} (sub-order {sub.id}, {sub.status})"
                if sub.status in (
                    SubOrderStatus.PENDING,
                    SubOrderStatus.PLACING,
                    SubOrderStatus.RECONCILING,
                ):
                    problems.append(f"{where}: left in flight")
                if slug not in ORDERING_MARKETPLACES:
                    continue
                held = held_orders(target, slug, sub, order)
                live = [found for found in held if found.get("status") != "cancelled"]
                if sub.status in (SubOrderStatus.FAILED, SubOrderStatus.CANCELLED) and live:
                    problems.append(f"{where}: refunded, yet the marketplace holds {live}")
                if sub.status in PLACED_SUB_ORDER_STATUSES:
                    if len(held) != 1:
                        problems.append(f"{where}: the marketplace holds {len(held)} orders")
                    elif str(sub.marketplace_order_id).rsplit("/", 1)[-1] != str(held[0]["number"]):
                        problems.append(
                            f"{where}: recorded {sub.marketplace_order_id}, "
                            f"the marketplace holds {held[0]['number']}"
                        )
        for user in session.scalars(sa.select(User)):
            problems += wallet_books_problems(session, user)
    assert not problems, "invariants broken:\n" + "\n".join(problems)


class RedisServer:
    """A redis-server of the test's own on a free port, with no persistence: a restart comes back
    empty, as a Redis that lost its memory would."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = processes.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.pid: int | None = None

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no"]
        proc = processes.start_process(self.settings, f"redis-fault-{self.port}", argv)
        self.pid = proc.pid
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        try:
            wait_for(lambda: _pings(client), timeout=30, what="redis-server to answer")
        finally:
            client.close()

    def stop(self) -> None:
        if self.pid is not None:
            processes.stop_pid(self.pid, timeout=10)
            self.pid = None


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def own_redis(settings: Settings) -> Iterator[RedisServer]:
    """A Redis to restart (request it before `faults`, so it outlives the shop's teardown)."""
    server = RedisServer(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()

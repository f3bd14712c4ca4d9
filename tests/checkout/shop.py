"""The checkout tests' harness (tests/checkout/conftest.py's `shop` fixture builds it): a
storefront app on the test database with the sandbox's marketplaces and offers seeded, helpers to
make shoppers, fill carts, check out through the real form and start or kill `rq worker`
processes, and the books checks the fixture runs on every order a test created."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
import stripe
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from adapters.base import MarketplaceConfig, Offer
from commerce.accounts import register_user
from commerce.catalog_sync import seed_marketplaces
from commerce.checkout import CheckoutSubmission, ShippingDetails
from commerce.db import get_session_factory
from commerce.models import Base, CartItem, FxRate, Marketplace, Product, User
from commerce.order_models import (
    UNSETTLED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    PaymentMethod,
    PaymentStatus,
    RefundKind,
    RefundStatus,
)
from commerce.payments.gateway import to_stripe_amount
from commerce.wallet import top_up
from onecart import processes
from onecart.services import sandbox_credentials
from onecart.settings import Settings, get_settings
from storefront.jobs import JobPolicy
from tests.loopback_http import loopback_http
from tests.rq_forkserver import start_rq_process
from tests.storefront.conftest import DEFAULT_PASSWORD, log_in

# Placeholder keys for every marketplace marketplaces.toml serves from the sandbox.
SANDBOX_CREDENTIALS = sandbox_credentials(get_settings(), environ={})
# Units per 1 USD; exact decimals, as the pipeline publishes them.
TEST_FX_RATES = {"KES": "129.5", "EUR": "0.92", "NGN": "1550", "GBP": "0.79"}
WAIT_S = 90.0
RUN_ID = uuid.uuid4().hex[:8]
_counter = itertools.count(1)
_HIDDEN = re.compile(r'<input[^>]*name="(?P<name>[a-z_]+)"[^>]*value="(?P<value>[^"]*)"')
_HIDDEN_REVERSED = re.compile(r'<input[^>]*value="(?P<value>[^"]*)"[^>]*name="(?P<name>[a-z_]+)"')


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = WAIT_S, interval: float = 0.2, what: str = ""
) -> Any:
    """Poll until `predicate()` is truthy and return it; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what or predicate}")
        time.sleep(interval)


def stripe_client() -> stripe.StripeClient:
    """A client for localstripe, to look at what the provider recorded."""
    settings = get_settings()
    return stripe.StripeClient(
        settings.stripe_api_key, base_addresses={"api": str(settings.stripe_api_base)}
    )


@dataclass(frozen=True)
class SandboxCatalog:
    """Marketplace configs pointing at the test sandbox, and a few valid live offers of each."""

    configs: list[MarketplaceConfig]
    offers: dict[str, list[Offer]]


# --- Workers ------------------------------------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`, from /proc (children before grandchildren)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2 :].split()
        parents.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    frontier = [pid]
    while frontier:
        children = [child for parent in frontier for child in parents.get(parent, [])]
        found += children
        frontier = children
    return found


@dataclass
class WorkerProcess:
    """One `rq worker` subprocess (its own process group)."""

    name: str
    pid: int
    log_path: Path

    def kill(self) -> None:
        """SIGKILL the worker, its scheduler and its work-horse at once, as a crash would.

        RQ puts each work-horse in a process group of its own, so the worker's descendants are
        found through /proc rather than by group."""
        doomed = [self.pid, *_descendants(self.pid)]
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in doomed:
            wait_for(lambda pid=pid: not processes.pid_alive(pid), timeout=10, what=f"pid {pid}")

    def stop(self) -> None:
        processes.stop_pid(self.pid, timeout=10)


# --- The shop -----------------------------------------------------------------------------------


@dataclass
class Shop:
    """Everything one checkout test needs (see the module docstring)."""

    app: Flask
    db_url: str
    settings: Settings
    queue_name: str
    policy: JobPolicy
    sandbox_url: str
    catalog: SandboxCatalog
    marketplaces: dict[str, Marketplace] = field(default_factory=dict)
    products: dict[str, list[Product]] = field(default_factory=dict)
    workers: list[WorkerProcess] = field(default_factory=list)
    worker_env: dict[str, str] = field(default_factory=dict)
    cron: WorkerProcess | None = None
    # Workers, cron and app on another Redis (a test's own server, to restart it).
    redis_url_override: str | None = None
    # Orders a test knowingly leaves off balance (Stripe's books disagree with ours, the anomaly
    # an operator must resolve): the teardown check skips them, but only while they are flagged.
    unbalanced_orders: set[str] = field(default_factory=set)

    @property
    def redis_url(self) -> str:
        return self.redis_url_override or self.settings.redis_url

    def use_redis(self, url: str) -> None:
        """Point the site, and the workers and cron started from now on, at another Redis."""
        self.redis_url_override = url
        self.app.config["REDIS_URL"] = url
        self.worker_env["REDIS_URL"] = url

    @property
    def session_factory(self) -> sessionmaker[Session]:
        return get_session_factory(self.db_url)

    def session(self) -> Session:
        return self.session_factory()

    # Shoppers and carts ---------------------------------------------------------------------

    def make_user(self, *, wallet: Decimal | None = None, **columns: Any) -> User:
        """A committed shopper (password DEFAULT_PASSWORD), optionally with a wallet top-up."""
        number = next(_counter)
        username = f"buyer{number}x{RUN_ID}"
        with self.session() as session:
            user = register_user(
                session,
                username=username,
                email=f"{username}@example.com",
                password=DEFAULT_PASSWORD,
            )
            for name, value in columns.items():
                setattr(user, name, value)
            session.flush()
            if wallet is not None:
                top_up(session, user, wallet, reference=f"test-topup-{RUN_ID}-{number}")
            session.commit()
            session.expunge(user)
        return user

    def product(self, slug: str, index: int = 0) -> Product:
        return self.products[slug][index]

    def fill_cart(self, user: User, lines: list[tuple[str, int, int]]) -> None:
        """Put (marketplace slug, offer index, quantity) lines in the shopper's cart."""
        with self.session() as session, session.begin():
            for slug, index, quantity in lines:
                product = self.product(slug, index)
                session.add(
                    CartItem(
                        user_id=user.id,
                        product_id=product.id,
                        relation_token=product.relation_token,
                        quantity=quantity,
                        price_seen_minor=product.price_minor,
                        currency_seen=product.currency,
                    )
                )

    def client_for(self, user: User) -> FlaskClient:
        client = self.app.test_client()
        log_in(client, user)
        return client

    # The checkout form ------------------------------------------------------------------------

    @staticmethod
    def hidden_fields(html: str) -> dict[str, str]:
        fields = {m.group("name"): m.group("value") for m in _HIDDEN.finditer(html)}
        for m in _HIDDEN_REVERSED.finditer(html):
            fields.setdefault(m.group("name"), m.group("value"))
        return fields

    def checkout_form(self, client: FlaskClient) -> dict[str, str]:
        """GET /checkout and return the form fields to post (token and totals included)."""
        response = client.get("/checkout")
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
        html = response.get_data(as_text=True)
        hidden = self.hidden_fields(html)
        return {
            "validation_token": hidden["validation_token"],
            "total_seen": hidden.get("total_seen", ""),
            "wallet_total_seen": hidden.get("wallet_total_seen", ""),
            "cart_digest": hidden.get("cart_digest", ""),
            "currency_seen": hidden.get("currency_seen", ""),
            "payment_intent_id": "",
            "name": "Ada Lovelace",
            "line1": "12 Analytical Way",
            "line2": "",
            "city": "London",
            "postal_code": "N1 9GU",
            "country": "GB",
            "phone": "+44 20 7946 0000",
            "payment_method": "wallet",
            "test_card": "pm_card_visa",
        }

    @staticmethod
    def card_submission(user: User, form: dict[str, str]) -> CheckoutSubmission:
        """The service-level submission the checkout form makes for a card payment (for tests
        that call submit_checkout directly, around the web layer)."""
        return CheckoutSubmission(
            user_id=user.id,
            validation_token=form["validation_token"],
            payment_method=PaymentMethod.STRIPE,
            display_currency="USD",
            total_seen_minor=int(form["total_seen"]),
            cart_digest_seen=form["cart_digest"],
            shipping=ShippingDetails(
                name="Ada Lovelace", line1="12 Analytical Way", city="London", country="GB"
            ),
            card_payment_method="pm_card_visa",
        )

    def submit(self, client: FlaskClient, form: dict[str, str], **changes: str) -> TestResponse:
        return client.post("/checkout", data={**form, **changes})

    def checkout(self, client: FlaskClient, **changes: str) -> Order:
        """Check out through the real form and return the order it made."""
        response = self.submit(client, self.checkout_form(client), **changes)
        assert response.status_code == 303, response.get_data(as_text=True)[:2000]
        number = response.headers["Location"].rstrip("/").split("/")[-2]
        return self.order(number)

    def order(self, number: str) -> Order:
        with self.session() as session:
            order = session.scalar(sa.select(Order).where(Order.number == number))
            assert order is not None
            self._load(order)
            session.expunge_all()
            return order

    @staticmethod
    def _load(order: Order) -> None:
        for sub in order.sub_orders:
            _ = sub.marketplace, sub.items
        _ = order.items
        _ = order.payment and order.payment.refunds

    def orders(self) -> list[Order]:
        with self.session() as session:
            orders = list(session.scalars(sa.select(Order).order_by(Order.id)))
            for order in orders:
                self._load(order)
            session.expunge_all()
            return orders

    def sub_order(self, order: Order, slug: str) -> MarketplaceOrder:
        fresh = self.order(order.number)
        return next(sub for sub in fresh.sub_orders if sub.marketplace.slug == slug)

    def place_here(self, order: Order, slug: str) -> None:
        """Place `order`'s part on marketplace `slug` in this process, as the job's last attempt
        (the placing_shop fixture gives this process the marketplace keys)."""
        from commerce.marketplace_access import adapter_for_marketplace
        from commerce.placement import place_sub_order

        place_sub_order(
            self.session_factory,
            self.sub_order(order, slug).id,
            adapter_for=adapter_for_marketplace,
            final_attempt=True,
        )

    # Jobs ---------------------------------------------------------------------------------------

    def start_workers(
        self, count: int = 1, *, scheduler: bool = True, cron: bool = True
    ) -> list[WorkerProcess]:
        """Start `count` real `rq worker` processes on this test's queue; waits until they are
        registered in Redis. With `cron`, RQ's cron scheduler (storefront.cron) runs the sweeper
        and the tracker on this test's queue too, as `onecart up` does."""
        if cron:
            self.start_cron()
        started = []
        for _ in range(count):
            name = f"rq-{self.queue_name}-{len(self.workers)}"
            argv = [
                str(processes.VENV_BIN / "rq"),
                "worker",
                "-w",
                "storefront.jobs.OrderWorker",
                # As `onecart up` runs them: a worker waits out a Redis restart.
                "--connection-class",
                "storefront.redis_connection.PatientRedis",
                "--url",
                self.redis_url,
                "--name",
                name,
                "--worker-ttl",
                "30",
                self.queue_name,
            ]
            if scheduler:
                argv.insert(2, "--with-scheduler")
            proc = start_rq_process(self.settings, name, argv, env=self.worker_env)
            worker = WorkerProcess(name, proc.pid, proc.log_path)
            self.workers.append(worker)
            started.append(worker)
        connection = redis.Redis.from_url(self.redis_url)
        try:
            from rq import Worker

            wait_for(
                lambda: (
                    {w.name for w in Worker.all(connection=connection)} >= {w.name for w in started}
                ),
                timeout=60,
                what="rq workers to register",
            )
        finally:
            connection.close()
        return started

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def start_cron(self) -> WorkerProcess:
        """`rq cron storefront.cron` with this test's job policy (one per test; started again
        when it died)."""
        if self.cron is not None and processes.pid_alive(self.cron.pid):
            return self.cron
        import json

        from storefront.jobs import POLICY_ENV

        name = f"rq-cron-{self.queue_name}"
        argv = [
            str(processes.VENV_BIN / "rq"),
            "cron",
            "storefront.cron",
            "--connection-class",
            "storefront.redis_connection.PatientRedis",
            "--url",
            self.redis_url,
        ]
        env = {**self.worker_env, POLICY_ENV: json.dumps(self.policy.as_dict())}
        proc = start_rq_process(self.settings, name, argv, env=env)
        self.cron = WorkerProcess(name, proc.pid, proc.log_path)
        return self.cron

    def wait_until_settled(self, *, timeout: float = WAIT_S) -> None:
        """Wait until no sub-order is pending or placing and no card payment is mid-capture or
        reconciling a capture."""

        def settled() -> bool:
            from commerce.order_models import Payment, Refund

            def count(model: type, condition: sa.ColumnElement[bool]) -> sa.ScalarSelect[int]:
                return (
                    sa.select(sa.func.count()).select_from(model).where(condition).scalar_subquery()
                )

            # One statement, so every count reads the same snapshot: counted one by one, a
            # payment could be seen neither authorized (before its capture began) nor capturing
            # (after), and a capture still running was taken for settled.
            with self.session() as session:
                busy, capturing, authorized, refunding = session.execute(
                    sa.select(
                        count(
                            MarketplaceOrder,
                            MarketplaceOrder.status.in_(UNSETTLED_SUB_ORDER_STATUSES),
                        ),
                        # Reconciling: a capture whose outcome is unknown (a slow provider under
                        # load); it may give the claim back and capture again.
                        count(
                            Payment,
                            Payment.status.in_(
                                [PaymentStatus.CAPTURING, PaymentStatus.RECONCILING]
                            ),
                        ),
                        count(Payment, Payment.status == PaymentStatus.AUTHORIZED),
                        count(
                            Refund,
                            Refund.status.in_([RefundStatus.PENDING, RefundStatus.PROCESSING]),
                        ),
                    )
                ).one()
                return not busy and not capturing and not authorized and not refunding

        try:
            wait_for(settled, timeout=timeout, what="every sub-order to be placed or refunded")
        except pytest.fail.Exception:
            logs = "\n".join(
                f"--- {w.name}\n{processes.tail(w.log_path, 40)}" for w in self.workers
            )
            with self.session() as session:
                state = [
                    (sub.id, sub.status, sub.attempts, sub.last_error)
                    for sub in session.scalars(sa.select(MarketplaceOrder))
                ]
            pytest.fail(f"orders never settled: {state}\n{logs}")

    def make_unreachable(self, slug: str) -> None:
        """Point the marketplace at a closed port: every request is refused before it is sent
        (the sandbox's `down` knob answers 503 instead, which may follow an accepted write)."""
        with self.session() as session, session.begin():
            marketplace = session.scalar(sa.select(Marketplace).where(Marketplace.slug == slug))
            assert marketplace is not None
            marketplace.api_base_url = f"http://127.0.0.1:{processes.free_port()}/{slug}"

    def knobs(self, slug: str, **values: Any) -> None:
        response = loopback_http().post(
            f"{self.sandbox_url}/_sandbox/knobs/{slug}", json=values, timeout=10
        )
        assert response.status_code == 200, response.text

    def sandbox_orders_with_reference(self, slug: str, reference: str) -> list[dict[str, Any]]:
        """What the marketplace itself holds for a reference (Shopify GraphQL / WooCommerce)."""
        credentials = SANDBOX_CREDENTIALS
        if slug == "shopwave":
            response = loopback_http().post(
                f"{self.sandbox_url}/shopwave/admin/api/2024-10/graphql.json",
                headers={"X-Shopify-Access-Token": credentials["ONECART_MARKETPLACE_KEY_SHOPWAVE"]},
                json={
                    "query": "query orders($query: String) { orders(first: 50, query: $query) "
                    "{ nodes { id sourceIdentifier } } }",
                    "variables": {"query": f"source_identifier:{reference}"},
                },
                timeout=10,
            )
            response.raise_for_status()
            nodes = response.json()["data"]["orders"]["nodes"]
            return [node for node in nodes if node["sourceIdentifier"] == reference]
        if slug == "kiondo":
            key, secret = credentials["ONECART_MARKETPLACE_KEY_KIONDO"].split(":")
            response = loopback_http().get(
                f"{self.sandbox_url}/kiondo/wp-json/wc/v3/orders",
                params={"search": reference},
                auth=(key, secret),
                timeout=10,
            )
            response.raise_for_status()
            return [
                order
                for order in response.json()
                if any(
                    meta.get("key") == "_onecart_reference" and meta.get("value") == reference
                    for meta in order.get("meta_data", [])
                )
            ]
        raise ValueError(f"{slug} keeps no searchable reference")


def seed_shop(shop: Shop) -> None:
    """The sandbox's marketplaces, their offers as products and the test FX rates, into the
    shop's database."""
    with shop.session() as session, session.begin():
        seed_marketplaces(session, shop.catalog.configs)
        session.flush()
        for currency, rate in TEST_FX_RATES.items():
            session.add(
                FxRate(currency=currency, rate=Decimal(rate), as_of=date.today(), source="test")
            )
        markets = {m.slug: m for m in session.scalars(sa.select(Marketplace))}
        for slug, offers in shop.catalog.offers.items():
            rows = []
            for offer in offers:
                product = Product(
                    marketplace_id=markets[slug].id,
                    external_id=offer.external_id,
                    title=offer.title,
                    price_minor=offer.price_minor,
                    currency=offer.currency,
                    image_url=offer.image_url,
                    product_url=offer.product_url,
                    category=offer.category,
                    brand=offer.brand,
                    gtin=offer.gtin,
                    available=True,
                    relation_token=f"g-{slug}-{offer.external_id}"[:64],
                    match_method="single",
                    match_confidence=Decimal("1.00"),
                )
                session.add(product)
                rows.append(product)
            session.flush()
            shop.products[slug] = rows
        session.flush()
        # Every product's server-side defaults, read back in one query (a refresh each was
        # one query per product: 64 per test).
        session.scalars(sa.select(Product).execution_options(populate_existing=True)).all()
        shop.marketplaces = markets
        session.expunge_all()


def empty_tables(url: str) -> None:
    """Every row of the storefront database at `url`, deleted (children first)."""
    factory = get_session_factory(url)
    with factory() as session, session.begin():
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())


def stripe_books_problems(order: Order) -> list[str]:
    """What localstripe recorded agrees with our payment row and refunds."""
    payment = order.payment
    if payment is None or payment.method != PaymentMethod.STRIPE:
        return []
    intent = stripe_client().v1.payment_intents.retrieve(payment.provider_reference)
    problems = []
    where = f"order {order.number} ({payment.provider_reference})"
    # Stripe's units (ISK and UGX: ISO minor units × 100).
    if int(intent.amount) != to_stripe_amount(payment.amount_minor, payment.currency):
        problems.append(f"{where}: intent amount {intent.amount} != {payment.amount_minor}")
    released = sum(
        r.amount_minor
        for r in payment.refunds
        if r.kind == RefundKind.RELEASE and r.status == RefundStatus.SUCCEEDED
    )
    card_refunds = sum(
        r.amount_minor
        for r in payment.refunds
        if r.kind == RefundKind.CARD_REFUND and r.status == RefundStatus.SUCCEEDED
    )
    if payment.status == PaymentStatus.VOIDED:
        if intent.status != "canceled":
            problems.append(f"{where}: voided here, {intent.status} at Stripe")
    elif payment.status in (
        PaymentStatus.CAPTURED,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
    ):
        charge = intent.latest_charge
        if intent.status != "succeeded" or not charge.captured:
            problems.append(f"{where}: captured here, {intent.status} at Stripe")
        # localstripe (like Stripe) counts the uncaptured part of a partial capture as refunded.
        if int(charge.amount_refunded) != to_stripe_amount(
            released + card_refunds, payment.currency
        ):
            problems.append(
                f"{where}: Stripe refunded {charge.amount_refunded} != "
                f"released {released} + refunded {card_refunds}"
            )
    elif payment.status == PaymentStatus.AUTHORIZED and intent.status != "requires_capture":
        problems.append(f"{where}: authorized here, {intent.status} at Stripe")
    return problems

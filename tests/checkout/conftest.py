"""Fixtures for the checkout and order tests: the real sandbox marketplaces, a localstripe server,
real Redis and real `rq worker` processes, on the storefront test database (SQLite, or PostgreSQL
when DATABASE_URL is set).

- `localstripe_server` (session): localstripe on a free loopback port; STRIPE_API_BASE points at it.
- `sandbox_catalog` (session): the marketplace configs (API keys included) and a few live offers
  of every marketplace, read from the sandbox through the adapters.
- `shop` (function): a storefront app on the test DB with the marketplaces, offers and FX rates
  seeded, its own RQ queue name, and helpers (tests/checkout/shop.py) to make shoppers, fill carts, check out through the
  real form, and start/kill `rq worker` processes. At teardown it waits for in-flight
  placements, CHECKS THE BOOKS OF EVERY ORDER THE TEST CREATED (order, ledger and localstripe),
  stops the workers, deletes the queue's Redis keys and empties the tables.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.base import BadPayload, Offer
from adapters.registry import build_adapter, load_marketplaces
from commerce.db import normalize_database_url
from commerce.models import User
from commerce.order_models import Order
from commerce.orders import order_books_problems, wallet_books_problems
from onecart import processes
from onecart.settings import REPO_ROOT, Settings, get_settings
from storefront import create_app
from storefront.jobs import JobPolicy
from tests.checkout.shop import (
    RUN_ID,
    SANDBOX_CREDENTIALS,
    SandboxCatalog,
    Shop,
    empty_tables,
    seed_shop,
    stripe_books_problems,
)
from tests.loopback_http import loopback_http
from tests.storefront.conftest import storefront_db_url

__all__ = ["storefront_db_url"]

OFFERS_PER_MARKETPLACE = 8
_queue_numbers = itertools.count(1)


# --- localstripe --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def localstripe_server(settings: Settings) -> Iterator[str]:
    """localstripe on a free loopback port for the session (one instance per test run)."""
    port = processes.free_port()
    argv = processes.localstripe_argv("127.0.0.1", port, from_scratch=True)
    proc = processes.start_process(settings, f"localstripe-test-{RUN_ID}", argv)
    url = f"http://127.0.0.1:{port}"
    saved = os.environ.get("STRIPE_API_BASE")
    try:
        processes.wait_for_http(f"{url}/v1/customers", timeout=60, process=proc)
        os.environ["STRIPE_API_BASE"] = url
        get_settings.cache_clear()
        yield url
    finally:
        processes.stop_pid(proc.pid)
        if saved is None:
            os.environ.pop("STRIPE_API_BASE", None)
        else:
            os.environ["STRIPE_API_BASE"] = saved
        get_settings.cache_clear()


# --- The sandbox catalog ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox_catalog(sandbox_server: str) -> SandboxCatalog:
    env = {**os.environ, **SANDBOX_CREDENTIALS, "ONECART_SANDBOX_URL": sandbox_server}
    configs = load_marketplaces(REPO_ROOT / "marketplaces.toml", env)
    offers: dict[str, list[Offer]] = {}
    for config in configs:
        adapter = build_adapter(config)
        found: list[Offer] = []
        for page in adapter.fetch_catalog_pages():
            for record in page.records:
                try:
                    offer = adapter.normalize_record(record)
                except BadPayload:
                    continue
                if (
                    offer.available
                    and offer.currency == config.currency
                    and offer.external_id not in {o.external_id for o in found}
                    and "\ufffd" not in offer.title
                ):
                    found.append(offer)
                if len(found) >= OFFERS_PER_MARKETPLACE:
                    break
            if len(found) >= OFFERS_PER_MARKETPLACE:
                break
        getattr(adapter, "close", lambda: None)()
        offers[config.slug] = found
    return SandboxCatalog(configs=configs, offers=offers)


@pytest.fixture
def shop(
    storefront_db_url: str,
    settings: Settings,
    sandbox_server: str,
    sandbox_catalog: SandboxCatalog,
    localstripe_server: str,
) -> Iterator[Shop]:
    """See the module docstring."""
    queue_name = f"orders-test-{RUN_ID}-{next(_queue_numbers)}"
    policy = JobPolicy(
        queue_name=queue_name,
        placement_retry_intervals=(1, 1),
        cancel_retry_intervals=(1, 2, 2),
        stuck_after_seconds=15,
        stale_pending_seconds=60,
        sweep_interval_seconds=2,
        track_interval_seconds=1,
        job_timeout_seconds=120,
    )
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": storefront_db_url,
            "SECRET_KEY": f"checkout-test-{RUN_ID}",
            "WTF_CSRF_ENABLED": False,
            "REDIS_URL": settings.redis_url,
            "RATE_LIMIT_PREFIX": f"onecart-test:{queue_name}:",
            "MEILI_URL": f"http://127.0.0.1:{processes.free_port()}",
            "ORDER_JOB_POLICY": policy.as_dict(),
            "CHECKOUT_REVALIDATION_SECONDS": 8.0,
            "FX_CACHE_SECONDS": 0,
        }
    )
    current = get_settings()
    shop = Shop(
        app=app,
        db_url=storefront_db_url,
        settings=current,
        queue_name=queue_name,
        policy=policy,
        sandbox_url=sandbox_server,
        catalog=sandbox_catalog,
        worker_env={
            "DATABASE_URL": storefront_db_url,
            "REDIS_URL": current.redis_url,
            "STRIPE_API_BASE": str(current.stripe_api_base),
            "ONECART_HOME": str(current.home_dir),
            "ONECART_SANDBOX_URL": sandbox_server,
            **SANDBOX_CREDENTIALS,
        },
    )
    seed_shop(shop)
    try:
        yield shop
    finally:
        try:
            if shop.workers and all(processes.pid_alive(w.pid) for w in shop.workers):
                shop.wait_until_settled()
            problems: list[str] = []
            with shop.session() as session:
                for order in session.scalars(sa.select(Order)):
                    if order.number in shop.unbalanced_orders and order.attention_reason:
                        continue
                    problems += order_books_problems(session, order)
                    problems += stripe_books_problems(order)
                for user in session.scalars(sa.select(User)):
                    problems += wallet_books_problems(session, user)
            assert not problems, "the books do not balance:\n" + "\n".join(problems)
        finally:
            # Side by side: each takes a second or two to exit.
            processes.stop_pids(
                [worker.pid for worker in shop.workers]
                + ([shop.cron.pid] if shop.cron is not None else []),
                timeout=10,
            )
            loopback_http().post(f"{sandbox_server}/_sandbox/reset", timeout=10)
            connection = shop.redis()
            try:
                for key in connection.scan_iter(match=f"*{queue_name}*"):
                    connection.delete(key)
            finally:
                connection.close()
            empty_tables(storefront_db_url)


@pytest.fixture
def smtp_server(mailbox: tuple[int, list[Any]]) -> tuple[str, int, list[Any]]:
    """The local SMTP server of tests/conftest.py's `mailbox`, with its host: (host, port,
    messages)."""
    port, received = mailbox
    return "127.0.0.1", port, received


@pytest.fixture
def placing_shop(shop: Shop, monkeypatch: pytest.MonkeyPatch) -> Shop:
    """The shop with the marketplace keys in this process: placement (Shop.place_here) and
    tracking run here, no worker."""
    for name, value in SANDBOX_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return shop


@pytest.fixture
def tracked_shop(placing_shop: Shop) -> Shop:
    """The shop with marketplace keys in this process (tracking runs here) and ShopWave's and
    Kiondo's orders moving only when a test tells them to."""
    for slug in ("shopwave", "kiondo"):
        placing_shop.knobs(slug, order_step_seconds=3600, cancel_rate=0, delay_rate=0)
    return placing_shop


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema on the PostgreSQL the CI's second pass sets in DATABASE_URL, for tests that
    migrate a database of their own there (dropped afterwards); skipped on the SQLite pass."""
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        pytest.skip("DATABASE_URL is not PostgreSQL (the CI's second run sets it)")
    schema = f"mig_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(normalize_database_url(base))
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{normalize_database_url(base)}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

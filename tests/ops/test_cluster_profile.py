"""The cluster profile on one machine, against the local PostgreSQL: `onecart up --profile cluster
--ingest` runs dagster-webserver and dagster-daemon on PostgreSQL storage, the storefront on a
PostgreSQL database, several uWSGI worker processes and the `rq worker-pool`; a run queued through the
webserver is launched by the daemon, a checkout is placed by the pool, the site answers."""

from __future__ import annotations

import os
import re
import uuid
import warnings
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from onecart import processes
from onecart.settings import REPO_ROOT
from tests.ops.test_cli import (
    SANDBOX_AVAILABLE,
    onecart,
    running_pids,
    status_rows,
    supervisord_pid,
    wait_until,
)

PG_SERVER_URL = os.environ.get("PG_TEST_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSWORD = "correct-Horse-7-battery"
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
HIDDEN = re.compile(r'<input[^>]*name="(?P<name>[a-z_]+)"[^>]*value="(?P<value>[^"]*)"')

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1800),  # a whole first start of the cluster profile
    pytest.mark.skipif(not SANDBOX_AVAILABLE, reason="the sandbox package is not installed"),
]


def _server(database: str) -> str:
    return PG_SERVER_URL.rsplit("/", 1)[0] + f"/{database}"


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """Two fresh PostgreSQL databases (storefront, Dagster) on the test server, dropped after."""
    import psycopg

    admin_url = _server("postgres").replace("+psycopg", "")
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL does not answer at {admin_url}: {exc}")
    suffix = uuid.uuid4().hex[:8]
    names = (f"onecart_cluster_{suffix}_shop", f"onecart_cluster_{suffix}_dagster")
    with admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield names
        finally:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# The marketplaces this test ingests: the checkout's, and a second one so the daemon's queue
# runs partitions side by side. Every marketplace is a run of its own in the cluster profile (a
# process importing the pipeline, ~2.5 s of CPU each); the adapters of the others are the local
# profile's tests' (test_cli.py's `up --ingest`, tests/pipelines).
CLUSTER_MARKETPLACES = ("shopwave", "kiondo")


def _marketplaces_file(directory: Path) -> Path:
    """marketplaces.toml with only CLUSTER_MARKETPLACES, as they are configured there."""
    header, *blocks = (REPO_ROOT / "marketplaces.toml").read_text().split("[[marketplace]]\n")
    kept = [
        block
        for block in blocks
        if any(block.startswith(f'slug = "{slug}"\n') for slug in CLUSTER_MARKETPLACES)
    ]
    assert len(kept) == len(CLUSTER_MARKETPLACES), "marketplaces.toml lost a cluster marketplace"
    path = directory / "marketplaces.toml"
    path.write_text(header + "".join("[[marketplace]]\n" + block for block in kept))
    return path


@pytest.fixture
def cluster(
    environment: dict[str, str], home: Path, databases: tuple[str, str], tmp_path: Path
) -> Iterator[dict[str, str]]:
    shop, dagster = databases
    environment.update(
        ONECART_MARKETPLACES=str(_marketplaces_file(tmp_path)),
        DATABASE_URL=_server(shop),
        # A plain URL, as an operator writes it: OneCart names the psycopg2 driver itself.
        ONECART_DAGSTER_POSTGRES_URL=_server(dagster).replace("+psycopg", ""),
        ONECART_SITE_WORKERS="3",
        ONECART_RQ_WORKERS="2",
        ONECART_ASSISTANT_EMBEDDINGS="off",
    )
    yield environment
    onecart(environment, "down", timeout=300)
    supervisor = supervisord_pid(home)
    if supervisor is not None and processes.pid_alive(supervisor):
        processes.stop_pid(supervisor, timeout=5)


def _dagster_rows(env: dict[str, str], query: str) -> list[tuple]:
    engine = sa.create_engine(env["ONECART_DAGSTER_POSTGRES_URL"].replace("://", "+psycopg://"))
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(query))]
    finally:
        engine.dispose()


def test_the_cluster_profile_ingests_places_a_checkout_and_serves_the_site(
    cluster: dict[str, str], home: Path
) -> None:
    up = onecart(cluster, "up", "--profile", "cluster", "--ingest", timeout=1500)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert "(profile cluster)" in up.stdout

    # Both Dagster processes run as services of their own; later commands remember the profile.
    status = onecart(cluster, "status")
    assert "(profile cluster)" in status.stdout
    rows = status_rows(status.stdout)
    for name in ("dagster", "dagster-daemon", "site", "worker", "cron"):
        assert rows[name][1] == "running", rows[name]
    assert set(running_pids(cluster)) >= {"dagster", "dagster-daemon"}

    # Dagster's storage is the PostgreSQL database: the ingest's materializations are there, and
    # an embeddings run submitted through the webserver is queued there and launched by the
    # daemon (a run in a process of its own). With embeddings switched off the ingest submits
    # none, so the test submits it (the run itself skips: switched off).
    materialized = _dagster_rows(
        cluster,
        "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'",
    )
    assert materialized[0][0] > 0
    from dagster_graphql import DagsterGraphQLClient

    with warnings.catch_warnings():
        # dagster_graphql's client calls gql with arguments gql deprecates; not this test's.
        warnings.simplefilter("ignore", DeprecationWarning)
        DagsterGraphQLClient(
            "127.0.0.1", port_number=int(cluster["ONECART_DAGSTER_PORT"])
        ).submit_job_execution("offer_embeddings_job")
    wait_until(
        lambda: _dagster_rows(
            cluster,
            "SELECT status FROM runs WHERE pipeline_name = 'offer_embeddings_job' "
            "AND status = 'SUCCESS'",
        ),
        timeout=600,
        what="the daemon to run the queued embeddings run",
    )

    # The site answers with search results from several uWSGI worker processes.
    site = f"http://127.0.0.1:{cluster['ONECART_SITE_PORT']}"
    assert httpx.get(f"{site}/healthz", timeout=30).status_code == 200
    assert httpx.get(f"{site}/api/search", params={"q": ""}, timeout=30).json()["total_hits"] > 0
    site_pid = int(rows["site"][2])
    assert len(processes.group_members(site_pid)) >= 4  # the master and three workers

    order_number = _checkout_through_the_site(cluster, site)
    placed = wait_until(
        lambda: _sub_order_statuses(cluster, order_number) & {"placed", "processing", "shipped"},
        timeout=300,
        what="the worker pool to place the order",
    )
    assert placed


def _checkout_through_the_site(env: dict[str, str], site: str) -> str:
    """A shopper with a funded wallet and a ShopWave offer in the cart checks out over HTTP."""
    from commerce.accounts import register_user
    from commerce.models import CartItem, Marketplace, Product
    from commerce.wallet import top_up

    engine = sa.create_engine(env["DATABASE_URL"])
    username = f"cluster{uuid.uuid4().hex[:8]}"
    try:
        with sa.orm.Session(engine) as session:
            user = register_user(
                session, username=username, email=f"{username}@example.com", password=PASSWORD
            )
            session.flush()
            top_up(session, user, Decimal("5000"), reference=f"cluster-{username}")
            product = session.scalars(
                sa.select(Product)
                .join(Marketplace, Product.marketplace_id == Marketplace.id)
                .where(Marketplace.slug == "shopwave", Product.available.is_(True))
                .order_by(Product.price_minor)
                .limit(1)
            ).one()
            session.add(
                CartItem(
                    user_id=user.id,
                    product_id=product.id,
                    relation_token=product.relation_token,
                    quantity=1,
                    price_seen_minor=product.price_minor,
                    currency_seen=product.currency,
                )
            )
            session.commit()
    finally:
        engine.dispose()
    with httpx.Client(base_url=site, timeout=60, follow_redirects=False) as client:
        token = CSRF.search(client.get("/login").text)
        assert token, "the login form carries a CSRF token"
        login = client.post(
            "/login", data={"login": username, "password": PASSWORD, "csrf_token": token.group(1)}
        )
        assert login.status_code == 302, login.text[:500]
        page = client.get("/checkout")
        assert page.status_code == 200, page.text[:500]
        form = {m.group("name"): m.group("value") for m in HIDDEN.finditer(page.text)}
        form.update(
            payment_intent_id="",
            name="Ada Lovelace",
            line1="12 Analytical Way",
            line2="",
            city="London",
            postal_code="N1 9GU",
            country="GB",
            phone="+44 20 7946 0000",
            payment_method="wallet",
        )
        placed = client.post("/checkout", data=form)
        assert placed.status_code == 303, placed.text[:2000]
        return placed.headers["Location"].rstrip("/").split("/")[-2]


def _sub_order_statuses(env: dict[str, str], number: str) -> set[str]:
    from commerce.order_models import MarketplaceOrder, Order

    engine = sa.create_engine(env["DATABASE_URL"])
    try:
        with sa.orm.Session(engine) as session:
            statuses = session.scalars(
                sa.select(MarketplaceOrder.status)
                .join(Order, MarketplaceOrder.order_id == Order.id)
                .where(Order.number == number)
            ).all()
    finally:
        engine.dispose()
    return {str(status.value if hasattr(status, "value") else status) for status in statuses}

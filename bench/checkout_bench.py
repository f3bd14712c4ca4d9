"""Checkout and placement benchmark: concurrent shoppers paying for carts that span three
marketplaces, an RQ worker pool placing the sub-orders, against the sandbox's own order-API
latency measured in the same run.

    .venv/bin/python bench/checkout_bench.py [--shoppers 1,4,8] [--workers N] [--seconds 20]
        [--latency-ms 250]

What it does:
1. Starts its own sandbox (three order-capable marketplaces in every cart: ShopWave/Shopify,
   Kiondo/WooCommerce, Fake Store), localstripe, a migrated SQLite storefront DB (or
   --database-url), the real site under uWSGI (2 workers x 4 threads, onecart.site_server), `rq worker-pool -n --workers`
   (storefront.jobs.OrderWorker; default ONECART_RQ_WORKERS, as `onecart up` runs it) and
   `rq cron storefront.cron` on a queue of its own. Every sandbox request gets
   `--latency-ms` (the knob), so the marketplaces answer like real APIs do.
2. For each shopper count, shoppers loop for `--seconds`: GET /checkout, POST /checkout with a
   Stripe test card (the real form, CSRF included), then wait until every sub-order is placed,
   refill the cart, repeat. Submit-to-all-placed = from just before the POST to the last
   sub-order's `placed_at`.
3. In the same run a baseline thread makes exactly the marketplace calls one cart needs, directly
   through the adapters with no OneCart in between: the three live offer lookups in parallel
   (checkout's re-validation), then the three order placements in parallel. That is the
   sandbox's own order-API latency for a cart; overhead = OneCart p50 / baseline p50 − 1.
4. Checks that nothing was lost or duplicated: every sub-order placed, one marketplace order per
   sub-order (ShopWave and Kiondo searched by the order's reference, Fake Store carts counted),
   every card captured for exactly the order total.
5. Prints the table, appends it to bench/RESULTS.md, and stops everything it started (by pid).

Target (issues 4 and 8): overhead <= 25% at p50 at every level with no lost or duplicated
sub-orders. The last line printed is `RESULT key=value …` for machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from onecart import processes  # noqa: E402
from onecart.settings import get_settings  # noqa: E402
from onecart.site_server import site_server_argv  # noqa: E402

RESULTS_FILE = REPO_ROOT / "bench" / "RESULTS.md"
CART_MARKETPLACES = ("shopwave", "kiondo", "fakestore")
CREDENTIALS = {
    "ONECART_MARKETPLACE_KEY_SHOPWAVE": "shpat_bench",
    "ONECART_MARKETPLACE_KEY_KIONDO": "ck_bench:cs_bench",
    "ONECART_MARKETPLACE_KEY_BAZAAR": "bazaar-bench",
}
FX_RATES = {"KES": "129.5", "EUR": "0.92", "NGN": "1550", "GBP": "0.79"}
OFFERS_PER_MARKETPLACE = 40
PASSWORD = "bench-Password-42"
OVERHEAD_TARGET = 0.25
POLL_INTERVAL_S = 0.1
SETTLE_TIMEOUT_S = 60.0
_HIDDEN = re.compile(r'<input[^>]*name="(?P<name>[a-z_]+)"[^>]*value="(?P<value>[^"]*)"')
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (values in any order); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class LevelResult:
    """One shopper count's measurements (seconds)."""

    shoppers: int
    seconds: float
    checkouts: int
    onecart: list[float] = field(default_factory=list)
    direct_cart: list[float] = field(default_factory=list)
    direct_order: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # CPU seconds each component used during the level (site, workers, sandbox, ...).
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        """Completed checkouts per second."""
        return self.checkouts / self.seconds if self.seconds else 0.0

    @property
    def overhead(self) -> float:
        """OneCart p50 over the direct calls' p50, minus one."""
        return percentile(self.onecart, 50) / percentile(self.direct_cart, 50) - 1


# --- Setup ----------------------------------------------------------------------------------------


def seed_database(db_url: str, sandbox_url: str) -> dict[str, list[int]]:
    """Migrate, then seed marketplaces (with API keys), FX rates and live offers; returns the
    product ids per marketplace."""
    import sqlalchemy as sa

    from adapters.base import BadPayload
    from adapters.registry import build_adapter, load_marketplaces
    from commerce.catalog_sync import seed_marketplaces
    from commerce.db import get_session_factory
    from commerce.models import FxRate, Marketplace, Product
    from storefront.db_migrate import upgrade_database

    upgrade_database(db_url)
    env = {**os.environ, **CREDENTIALS, "ONECART_SANDBOX_URL": sandbox_url}
    configs = load_marketplaces(REPO_ROOT / "marketplaces.toml", env)
    products: dict[str, list[int]] = {}
    with get_session_factory(db_url)() as session, session.begin():
        seed_marketplaces(session, configs)
        for currency, rate in FX_RATES.items():
            session.merge(
                FxRate(currency=currency, rate=Decimal(rate), as_of=date.today(), source="bench")
            )
        markets = {m.slug: m for m in session.scalars(sa.select(Marketplace))}
        for config in configs:
            if config.slug not in CART_MARKETPLACES:
                continue
            adapter = build_adapter(config)
            rows: list[Product] = []
            for page in adapter.fetch_catalog_pages():
                for record in page.records:
                    try:
                        offer = adapter.normalize_record(record)
                    except BadPayload:
                        continue
                    if not offer.available or offer.currency != config.currency:
                        continue
                    if "\ufffd" in offer.title or any(
                        r.external_id == offer.external_id for r in rows
                    ):
                        continue
                    rows.append(
                        Product(
                            marketplace_id=markets[config.slug].id,
                            external_id=offer.external_id,
                            title=offer.title[:300],
                            price_minor=offer.price_minor,
                            currency=offer.currency,
                            product_url=offer.product_url,
                            available=True,
                        )
                    )
                    if len(rows) >= OFFERS_PER_MARKETPLACE:
                        break
                if len(rows) >= OFFERS_PER_MARKETPLACE:
                    break
            adapter.close()  # type: ignore[attr-defined]
            session.add_all(rows)
            session.flush()
            products[config.slug] = [row.id for row in rows]
    return products


def make_shoppers(db_url: str, count: int, run: str) -> list[tuple[int, str]]:
    """(user id, username) of `count` new shoppers."""
    from commerce.accounts import register_user
    from commerce.db import get_session_factory

    shoppers = []
    with get_session_factory(db_url)() as session, session.begin():
        for index in range(count):
            username = f"bench{run}x{index}"
            user = register_user(
                session, username=username, email=f"{username}@example.com", password=PASSWORD
            )
            session.flush()
            shoppers.append((user.id, username))
    return shoppers


def fill_cart(db_url: str, user_id: int, products: dict[str, list[int]], turn: int) -> None:
    """One line from each cart marketplace (a different offer each turn)."""
    from commerce.db import get_session_factory
    from commerce.models import CartItem, Product

    with get_session_factory(db_url)() as session, session.begin():
        for slug in CART_MARKETPLACES:
            ids = products[slug]
            product = session.get(Product, ids[(user_id * 7 + turn) % len(ids)])
            assert product is not None
            session.add(
                CartItem(
                    user_id=user_id,
                    product_id=product.id,
                    quantity=1,
                    price_seen_minor=product.price_minor,
                    currency_seen=product.currency,
                )
            )


# --- Shoppers ----------------------------------------------------------------------------------


def log_in(site: str, username: str) -> httpx.Client:
    """An HTTP client signed in through the real login form (CSRF token included)."""
    client = httpx.Client(base_url=site, timeout=60, follow_redirects=False)
    page = client.get("/login").text
    token = _CSRF.search(page)
    assert token, "no CSRF token on /login"
    response = client.post(
        "/login", data={"csrf_token": token.group(1), "login": username, "password": PASSWORD}
    )
    assert response.status_code == 302, response.text[:300]
    return client


def checkout_once(client: httpx.Client) -> tuple[str, float]:
    """GET and POST the checkout form; returns (order number, submit time as epoch seconds)."""
    page = client.get("/checkout")
    assert page.status_code == 200, page.text[:300]
    fields = {m.group("name"): m.group("value") for m in _HIDDEN.finditer(page.text)}
    csrf = _CSRF.search(page.text)
    assert csrf
    form = {
        "csrf_token": csrf.group(1),
        "validation_token": fields["validation_token"],
        "total_seen": fields["total_seen"],
        "wallet_total_seen": fields.get("wallet_total_seen", ""),
        "cart_digest": fields.get("cart_digest", ""),
        "payment_intent_id": "",
        "name": "Bench Shopper",
        "line1": "1 Load Street",
        "city": "Nairobi",
        "postal_code": "00100",
        "country": "KE",
        "phone": "",
        "payment_method": "stripe",
        "test_card": "pm_card_visa",
    }
    submitted = time.time()
    response = client.post("/checkout", data=form)
    assert response.status_code == 303, response.text[:1000]
    number = response.headers["Location"].rstrip("/").split("/")[-2]
    return number, submitted


def wait_until_placed(db_url: str, number: str, timeout: float = 120.0) -> float:
    """Poll until every sub-order of the order is placed; the last `placed_at` (epoch seconds).

    The measurement is the sub-orders' own `placed_at`, so the poll interval does not change it;
    it only has to be coarse enough that eight polling shoppers do not eat the CPU the site and
    the workers need (at 20 ms they took a large share of a 2-core machine).
    """
    import sqlalchemy as sa

    from commerce.db import get_session_factory
    from commerce.order_models import MarketplaceOrder, Order, SubOrderStatus

    deadline = time.monotonic() + timeout
    factory = get_session_factory(db_url)
    while time.monotonic() < deadline:
        with factory() as session:
            rows = session.execute(
                sa.select(MarketplaceOrder.status, MarketplaceOrder.placed_at)
                .join(Order, MarketplaceOrder.order_id == Order.id)
                .where(Order.number == number)
            ).all()
        if rows and all(
            status != SubOrderStatus.PENDING and status != SubOrderStatus.PLACING
            for status, _ in rows
        ):
            if any(status == SubOrderStatus.FAILED for status, _ in rows):
                raise RuntimeError(f"order {number}: a sub-order failed")
            return max(placed.timestamp() for _, placed in rows if placed is not None)
        time.sleep(POLL_INTERVAL_S)
    raise TimeoutError(f"order {number} was not placed within {timeout:.0f}s")


def shopper_loop(
    site: str,
    db_url: str,
    user_id: int,
    username: str,
    products: dict[str, list[int]],
    until: float,
    result: LevelResult,
    lock: threading.Lock,
    max_checkouts: int | None = None,
) -> None:
    """One shopper: refill the cart, check out, wait until placed, record; until time is up."""
    client = log_in(site, username)
    turn = 0
    try:
        while time.monotonic() < until and (max_checkouts is None or turn < max_checkouts):
            turn += 1
            fill_cart(db_url, user_id, products, turn)
            try:
                number, submitted = checkout_once(client)
                placed = wait_until_placed(db_url, number)
            except (AssertionError, RuntimeError, TimeoutError, httpx.HTTPError) as exc:
                with lock:
                    result.errors.append(f"{username}: {exc}")
                continue
            with lock:
                result.onecart.append(placed - submitted)
                result.checkouts += 1
    finally:
        client.close()


# --- The baseline: the same marketplace calls, directly --------------------------------------------


def direct_cart_loop(
    sandbox_url: str,
    offers: dict[str, list[str]],
    until: float,
    result: LevelResult,
    lock: threading.Lock,
) -> None:
    """Repeatedly: 3 live lookups in parallel, then 3 placements in parallel, through one adapter
    per marketplace kept for the whole run (as OneCart's processes keep theirs), timing the
    whole cart and each placement call."""
    from adapters.base import MarketplaceAdapter, Offer, OrderLine, OrderRequest, ShippingAddress
    from adapters.registry import build_adapter, load_marketplaces

    env = {**os.environ, **CREDENTIALS, "ONECART_SANDBOX_URL": sandbox_url}
    configs = {c.slug: c for c in load_marketplaces(REPO_ROOT / "marketplaces.toml", env)}
    shipping = ShippingAddress("Bench", "1 Load Street", "Nairobi", "KE", "00100")
    adapters = {slug: build_adapter(configs[slug]) for slug in CART_MARKETPLACES}

    def place(adapter: MarketplaceAdapter, offer: Offer, reference: str) -> float:
        """One direct placement; its duration in seconds."""
        line = OrderLine(offer.external_id, 1, offer.price_minor, offer.currency)
        started = time.perf_counter()
        adapter.place_order(
            OrderRequest(
                reference=reference,
                idempotency_key=f"{reference}-{offer.marketplace}",
                lines=[line],
                shipping=shipping,
                currency=offer.currency,
            )
        )
        return time.perf_counter() - started

    turn = 0
    try:
        with ThreadPoolExecutor(max_workers=len(CART_MARKETPLACES)) as pool:
            while time.monotonic() < until:
                turn += 1
                reference = f"direct-{uuid.uuid4().hex[:12]}"
                started = time.perf_counter()
                found = list(
                    pool.map(
                        lambda slug, turn=turn: adapters[slug].lookup_offer(
                            offers[slug][turn % len(offers[slug])]
                        ),
                        CART_MARKETPLACES,
                    )
                )
                placements = list(
                    pool.map(
                        lambda slug, offer, reference=reference: place(
                            adapters[slug], offer, reference
                        ),
                        CART_MARKETPLACES,
                        found,
                    )
                )
                elapsed = time.perf_counter() - started
                with lock:
                    result.direct_cart.append(elapsed)
                    result.direct_order.extend(placements)
                time.sleep(0.2)
    finally:
        for adapter in adapters.values():
            adapter.close()  # type: ignore[attr-defined]


# --- Checks ------------------------------------------------------------------------------------------


def wait_until_settled(db_url: str, timeout: float = SETTLE_TIMEOUT_S) -> None:
    """Wait (up to `timeout`) until no payment is still being captured: the last checkouts of a
    level are placed when it ends, but their capture runs right after, in the worker. Checking
    before it ends would report a capture in flight as a problem."""
    import sqlalchemy as sa

    from commerce.db import get_session_factory
    from commerce.order_models import Payment, PaymentStatus

    unsettled = (PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURING, PaymentStatus.RECONCILING)
    factory = get_session_factory(db_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with factory() as session:
            left = session.scalar(
                sa.select(sa.func.count()).select_from(Payment).where(Payment.status.in_(unsettled))
            )
        if not left:
            return
        time.sleep(0.5)


def process_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and all its descendants, live or
    reaped, read from /proc (Linux); 0.0 where /proc is not available."""
    stats: dict[int, tuple[int, float]] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = entry.joinpath("stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command: state ppid ... utime(12) stime(13) cutime(14) cstime(15), 0-based.
        stats[int(entry.name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]) / tick)
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, (0, 0.0))[1]
        todo += [child for child, (parent, _) in stats.items() if parent == current]
    return total


def verify_no_loss_or_duplicates(
    db_url: str, sandbox_url: str, direct_fakestore_carts: int
) -> list[str]:
    """Every sub-order placed once; every card captured for its order's total."""
    import sqlalchemy as sa

    from commerce.db import get_session_factory
    from commerce.order_models import MarketplaceOrder, Order, PaymentStatus, SubOrderStatus

    problems: list[str] = []
    with get_session_factory(db_url)() as session:
        orders = list(session.scalars(sa.select(Order)))
        subs = list(session.scalars(sa.select(MarketplaceOrder)))
        for order in orders:
            payment = order.payment
            if payment is None or payment.status != PaymentStatus.CAPTURED:
                problems.append(f"{order.number}: payment {payment and payment.status}")
            elif payment.captured_minor != order.total_minor:
                problems.append(f"{order.number}: captured {payment.captured_minor} != total")
        not_placed = [
            s.id
            for s in subs
            if s.status in (SubOrderStatus.PENDING, SubOrderStatus.PLACING, SubOrderStatus.FAILED)
        ]
        if not_placed:
            problems.append(f"sub-orders not placed: {not_placed}")
        by_market: dict[str, list[MarketplaceOrder]] = {}
        for sub in subs:
            by_market.setdefault(sub.marketplace.slug, []).append(sub)
        for slug, rows in by_market.items():
            ids = [row.marketplace_order_id for row in rows]
            if len(set(ids)) != len(ids):
                problems.append(f"{slug}: two sub-orders share a marketplace order id")
        references = {order.relation_token for order in orders}
    auth = {"X-Shopify-Access-Token": CREDENTIALS["ONECART_MARKETPLACE_KEY_SHOPWAVE"]}
    shop_orders = httpx.post(
        f"{sandbox_url}/shopwave/admin/api/2024-10/graphql.json",
        headers=auth,
        json={
            "query": "query orders { orders { nodes { id sourceIdentifier } } }",
            "variables": {},
        },
        timeout=60,
    ).json()["data"]["orders"]["nodes"]
    shop_refs = [
        node["sourceIdentifier"] for node in shop_orders if node["sourceIdentifier"] in references
    ]
    if sorted(shop_refs) != sorted(references):
        problems.append(f"shopwave: {len(shop_refs)} orders for {len(references)} references")
    key, secret = CREDENTIALS["ONECART_MARKETPLACE_KEY_KIONDO"].split(":")
    kiondo_refs: list[str] = []
    page = 1
    while True:
        batch = httpx.get(
            f"{sandbox_url}/kiondo/wp-json/wc/v3/orders",
            params={"per_page": 100, "page": page},
            auth=(key, secret),
            timeout=60,
        ).json()
        if not batch:
            break
        for order in batch:
            for meta in order.get("meta_data", []):
                if meta.get("key") == "_onecart_reference" and meta.get("value") in references:
                    kiondo_refs.append(meta["value"])
        page += 1
    if sorted(kiondo_refs) != sorted(references):
        problems.append(f"kiondo: {len(kiondo_refs)} orders for {len(references)} references")
    carts = httpx.get(f"{sandbox_url}/fakestore/carts", timeout=60).json()
    onecart_carts = len(carts) - direct_fakestore_carts
    if onecart_carts != len(by_market.get("fakestore", [])):
        problems.append(
            f"fakestore: {onecart_carts} carts for {len(by_market.get('fakestore', []))} sub-orders"
        )
    return problems


# --- Running -----------------------------------------------------------------------------------------


def results_section(
    levels: list[LevelResult], args: argparse.Namespace, problems: list[str], database: str
) -> str:
    """The Markdown section appended to bench/RESULTS.md."""

    def ms(value: float) -> str:
        """Seconds as whole milliseconds."""
        return f"{value * 1000:.0f}"

    lines = [
        f"## Checkout and placement — {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        f"`bench/checkout_bench.py --shoppers {args.shoppers} --seconds {args.seconds} "
        f"--latency-ms {args.latency_ms}` on {platform.node()} ({os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}), {database}, uWSGI 2 workers, "
        f"`rq worker-pool -n {args.workers}`, "
        f"card payments on localstripe, carts of 3 marketplaces ({', '.join(CART_MARKETPLACES)}), "
        f"sandbox latency knob {args.latency_ms} ms on every marketplace request. "
        f"Load average at the end: {os.getloadavg()[0]:.1f} (the machine may be shared with "
        "other test runs; timings on a loaded machine are noisy).",
        "",
        "| shoppers | checkouts | checkouts/s | OneCart submit→all placed p50 / p99 (ms) | "
        "same calls direct p50 / p99 (ms) | one order call p50 (ms) | overhead at p50 | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for level in levels:
        lines.append(
            f"| {level.shoppers} | {level.checkouts} | {level.throughput:.2f} | "
            f"{ms(percentile(level.onecart, 50))} / {ms(percentile(level.onecart, 99))} | "
            f"{ms(percentile(level.direct_cart, 50))} / {ms(percentile(level.direct_cart, 99))} | "
            f"{ms(percentile(level.direct_order, 50))} | {level.overhead:+.0%} | {len(level.errors)} |"
        )
    lines += [
        "",
        "CPU per checkout by component (ms; the same machine runs all of them): "
        + "; ".join(
            f"{level.shoppers} shopper(s): "
            + ", ".join(
                f"{name} {seconds / max(level.checkouts, 1) * 1000:.0f}"
                for name, seconds in level.cpu.items()
            )
            for level in levels
        )
        + ".",
    ]
    lines += [
        "",
        '"Same calls direct" is the sandbox\'s own latency for one cart: the three live offer '
        "lookups in parallel, then the three order placements in parallel, made straight through "
        "the adapters in the same run (ShopWave's placement includes its variant lookup, as in "
        "OneCart). Overhead = OneCart p50 / direct p50 − 1; target ≤ +25% at p50. The direct "
        "client has unlimited parallelism; OneCart places an order's sub-orders side by side "
        "in one job of its worker pool, so once more orders are in flight than there are "
        "workers, they queue for a worker and the checkouts/s column shows the pool's "
        "capacity: add workers to scale. The CPU line shows what each component costs per "
        "checkout: on a shared 2-core machine a busy neighbour slows every CPU-bound step of "
        "OneCart (the direct calls mostly wait on the sandbox and suffer less).",
        "",
        "No lost or duplicated sub-orders: "
        + (
            "yes (every sub-order placed exactly once; every card captured for its total)."
            if not problems
            else "NO — " + "; ".join(problems[:10])
        ),
        "",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Start everything, measure every shopper count, check, report, stop what was started."""
    settings = get_settings()
    run_id = uuid.uuid4().hex[:8]
    home = REPO_ROOT / "var" / f"bench-checkout-{run_id}"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["ONECART_HOME"] = str(home)
    get_settings.cache_clear()
    settings = get_settings()
    db_url = args.database_url or f"sqlite:///{home / 'storefront.db'}"
    queue = f"bench-checkout-{run_id}"
    started: list[int] = []
    try:
        sandbox_port = processes.free_port()
        sandbox = processes.start_process(
            settings,
            "bench-sandbox",
            [
                sys.executable,
                "-m",
                "sandbox",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(sandbox_port),
                "--offers",
                "6000",
                "--seed",
                "42",
            ],
        )
        started.append(sandbox.pid)
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        stripe_port = processes.free_port()
        stripe_proc = processes.start_process(
            settings,
            "bench-localstripe",
            [
                sys.executable,
                "-m",
                "onecart.cli",
                "localstripe",
                "--host",
                "127.0.0.1",
                "--port",
                str(stripe_port),
                "--from-scratch",
            ],
        )
        started.append(stripe_proc.pid)
        stripe_url = f"http://127.0.0.1:{stripe_port}"
        processes.wait_for_http(f"{sandbox_url}/_sandbox/health", timeout=120, process=sandbox)
        processes.wait_for_http(f"{stripe_url}/v1/customers", timeout=60, process=stripe_proc)
        os.environ["STRIPE_API_BASE"] = stripe_url
        get_settings.cache_clear()

        print("seeding the storefront DB", file=sys.stderr)
        products = seed_database(db_url, sandbox_url)
        policy = {
            "queue_name": queue,
            "placement_retry_intervals": [1, 2, 5],
            "sweep_interval_seconds": 5,
            "track_interval_seconds": 30,
        }
        env = {
            "DATABASE_URL": db_url,
            "REDIS_URL": settings.redis_url,
            "STRIPE_API_BASE": stripe_url,
            "ONECART_HOME": str(home),
            "ONECART_SANDBOX_URL": sandbox_url,
            **CREDENTIALS,
        }
        site_port = processes.free_port()
        app_config = {
            "ORDER_JOB_POLICY": policy,
            "RATE_LIMIT_PREFIX": f"bench:{run_id}:",
            "LOGIN_LIMIT_PER_IP": 100000,
            "LOGIN_LIMIT_PER_ACCOUNT": 100000,
        }
        site = processes.start_process(
            settings,
            "bench-site",
            site_server_argv(f"127.0.0.1:{site_port}", 2, 4),
            # The checkout never reaches the assistant: no embedding model per worker.
            env={
                **env,
                "ONECART_SITE_CONFIG": json.dumps(app_config),
                "ONECART_ASSISTANT_WARM_UP": "0",
            },
        )
        started.append(site.pid)
        pool = processes.start_process(
            settings,
            "bench-worker-pool",
            [
                str(processes.VENV_BIN / "rq"),
                "worker-pool",
                "-n",
                str(args.workers),
                "-w",
                "storefront.jobs.OrderWorker",
                "--url",
                settings.redis_url,
                queue,
            ],
            env=env,
        )
        started.append(pool.pid)
        cron = processes.start_process(
            settings,
            "bench-cron",
            [
                str(processes.VENV_BIN / "rq"),
                "cron",
                "storefront.cron",
                "--connection-class",
                "storefront.redis_connection.PatientRedis",
                "--url",
                settings.redis_url,
            ],
            env={**env, "ONECART_ORDER_JOB_POLICY": json.dumps(policy)},
        )
        started.append(cron.pid)
        components = {
            "site": site.pid,
            "workers": pool.pid,
            "cron": cron.pid,
            "sandbox": sandbox.pid,
            "localstripe": stripe_proc.pid,
        }
        site_url = f"http://127.0.0.1:{site_port}"
        # /healthz answers 503 here (no Meilisearch in this bench): the login page means "up".
        processes.wait_for_http(f"{site_url}/login", timeout=60, process=site)
        for slug in CART_MARKETPLACES:
            httpx.post(
                f"{sandbox_url}/_sandbox/knobs/{slug}",
                json={"latency_ms": args.latency_ms, "cancel_rate": 0},
                timeout=10,
            ).raise_for_status()

        from commerce.db import get_session_factory
        from commerce.models import Product

        with get_session_factory(db_url)() as session:
            offers = {
                slug: [session.get(Product, pid).external_id for pid in ids]
                for slug, ids in products.items()
            }  # type: ignore[union-attr]

        shopper_counts = [int(value) for value in args.shoppers.split(",")]
        shoppers = make_shoppers(db_url, max(shopper_counts), run_id)
        # Warm-up: one checkout, not measured.
        warm = LevelResult(shoppers=1, seconds=0, checkouts=0)
        shopper_loop(
            site_url, db_url, shoppers[0][0], shoppers[0][1], products,
            time.monotonic() + 120, warm, threading.Lock(), max_checkouts=1,
        )  # fmt: skip
        if warm.errors:
            raise RuntimeError(f"warm-up checkout failed: {warm.errors}")
        direct_fakestore = 0
        levels = []
        for count in shopper_counts:
            print(f"{count} shopper(s) for {args.seconds}s", file=sys.stderr)
            level = LevelResult(shoppers=count, seconds=args.seconds, checkouts=0)
            lock = threading.Lock()
            until = time.monotonic() + args.seconds
            began = time.monotonic()
            cpu_before = {name: process_tree_cpu(pid) for name, pid in components.items()}
            bench_before = sum(os.times()[:2])
            threads = [
                threading.Thread(
                    target=direct_cart_loop, args=(sandbox_url, offers, until, level, lock)
                )
            ]
            threads += [
                threading.Thread(
                    target=shopper_loop,
                    args=(site_url, db_url, user_id, username, products, until, level, lock),
                )
                for user_id, username in shoppers[:count]
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            level.seconds = time.monotonic() - began
            level.cpu = {
                name: process_tree_cpu(pid) - cpu_before[name] for name, pid in components.items()
            }
            level.cpu["bench"] = sum(os.times()[:2]) - bench_before
            direct_fakestore += len(level.direct_cart)
            levels.append(level)
            print(
                f"  {level.checkouts} checkouts, {level.throughput:.2f}/s; OneCart p50 {percentile(level.onecart, 50) * 1000:.0f} ms "
                f"p99 {percentile(level.onecart, 99) * 1000:.0f} ms; direct p50 {percentile(level.direct_cart, 50) * 1000:.0f} ms; "
                f"overhead {level.overhead:+.0%}; errors {len(level.errors)}",
                file=sys.stderr,
            )
            print(
                "  CPU per checkout (ms): "
                + ", ".join(
                    f"{name} {seconds / max(level.checkouts, 1) * 1000:.0f}"
                    for name, seconds in level.cpu.items()
                ),
                file=sys.stderr,
            )
            for error in level.errors[:5]:
                print(f"    {error}", file=sys.stderr)
        wait_until_settled(db_url)
        problems = verify_no_loss_or_duplicates(db_url, sandbox_url, direct_fakestore)
        database = "PostgreSQL" if db_url.startswith("postgres") else "SQLite"
        section = results_section(levels, args, problems, database)
        print(section)
        if not args.no_write:
            if not RESULTS_FILE.exists():
                RESULTS_FILE.write_text("# Benchmark results\n\nNewest runs at the bottom.\n\n")
            with RESULTS_FILE.open("a", encoding="utf-8") as handle:
                handle.write("\n" + section)
            print(f"appended to {RESULTS_FILE.relative_to(REPO_ROOT)}", file=sys.stderr)
        met = not problems and all(level.overhead <= OVERHEAD_TARGET for level in levels)
        print(
            "RESULT "
            + " ".join(f"overhead_p50_{level.shoppers}={level.overhead:.3f}" for level in levels)
            + f" workers={args.workers} lost_or_duplicated={len(problems)} target_met={met}"
        )
        return 0 if met else 1
    finally:
        for pid in reversed(started):
            processes.stop_pid(pid)
        import redis

        connection = redis.Redis.from_url(settings.redis_url)
        try:
            for key in connection.scan_iter(match=f"*{queue}*"):
                connection.delete(key)
        finally:
            connection.close()
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (exit 1 when the target is missed or anything was lost)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shoppers", default="1,4,8", help="shopper counts, comma-separated")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="RQ workers in the pool (default: ONECART_RQ_WORKERS, as `onecart up` runs)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds per shopper count")
    parser.add_argument("--latency-ms", type=int, default=250, help="sandbox latency knob")
    parser.add_argument("--database-url", default=None, help="storefront DB (default: SQLite)")
    parser.add_argument("--no-write", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the bench's ONECART_HOME")
    args = parser.parse_args(argv)
    if args.workers is None:
        args.workers = get_settings().rq_workers
    if not 1 <= args.workers <= 64:
        parser.error("--workers must be between 1 and 64")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

"""The checkout benchmark's load: shoppers checking out through the real site and waiting until
their sub-orders are placed, and the baseline making the same marketplace calls directly."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from bench.checkout_setup import CART_MARKETPLACES, PASSWORD, fill_cart, load_bench_marketplaces

POLL_INTERVAL_S = 0.1
_HIDDEN = re.compile(r'<input[^>]*name="(?P<name>[a-z_]+)"[^>]*value="(?P<value>[^"]*)"')
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (values in any order); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class CheckoutRefused(AssertionError):
    """The checkout form was answered with something other than the order (its page and the
    form that was posted kept, to post it again)."""

    def __init__(self, status: int, page: str, form: dict[str, str]) -> None:
        super().__init__(f"{status}: {page[:1000]}")
        self.page = page
        self.form = form


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


def checkout_once(client: httpx.Client, payment_method: str = "stripe") -> tuple[str, float]:
    """GET and POST the checkout form, paying by card (a Stripe test card) or from the wallet
    (`payment_method` "wallet"); returns (order number, submit time as epoch seconds)."""
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
        "payment_method": payment_method,
        "test_card": "pm_card_visa",
    }
    return submit_checkout(client, form)


def submit_checkout(client: httpx.Client, form: dict[str, str]) -> tuple[str, float]:
    """POST a checkout form; (order number, submit time as epoch seconds), or CheckoutRefused."""
    submitted = time.time()
    response = client.post("/checkout", data=form)
    if response.status_code != 303:
        raise CheckoutRefused(response.status_code, response.text, form)
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
    from adapters.registry import build_adapter

    configs = {c.slug: c for c in load_bench_marketplaces(sandbox_url)}
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

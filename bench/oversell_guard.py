"""Oversell guard stampede: many shoppers check out the last units of one DummyMart offer at
once, on SQLite and on PostgreSQL; exactly as many orders as there are units may be made.

    .venv/bin/python bench/oversell_guard.py [--shoppers 12] [--rounds 3]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/DB]

What it does:
1. Starts its own sandbox (small catalog) and migrates a fresh storefront DB: a SQLite file under
   a temporary ONECART_HOME, and with --database-url a schema of its own in that PostgreSQL
   database (dropped at the end).
2. Each round takes a DummyMart offer whose published stock S is 2..--shoppers-1 (DummyJSON's
   stock never moves with orders, so OneCart's own holds are all that stops an oversell), gives
   --shoppers shoppers a wallet and one unit of it in the cart, and lets them all submit the real
   checkout service (commerce.checkout.submit_checkout: the live re-check against the sandbox,
   the wallet debit, the order transaction with its compare-and-set hold) at the same moment.
3. Checks: orders made == S, units held == S, wallet debits == S, every other shopper refused
   with its wallet untouched. Reports the submit time (p50, max) of winners and losers.

The last line printed is `RESULT key=value …` for machines; the section in bench/RESULTS.md is
written by hand from the printed table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def _dummymart_offers(sandbox_url: str, low: int, high: int) -> list[tuple[str, int]]:
    """(external id, published stock) of DummyMart offers with low..high units, fewest first."""
    from adapters.base import BadPayload
    from adapters.registry import build_adapter
    from bench.checkout_setup import load_bench_marketplaces

    [config] = [c for c in load_bench_marketplaces(sandbox_url) if c.slug == "dummymart"]
    adapter = build_adapter(config)
    found: list[tuple[str, int]] = []
    try:
        for page in adapter.fetch_catalog_pages():
            for record in page.records:
                try:
                    offer = adapter.normalize_record(record)
                except BadPayload:
                    continue
                if offer.available and offer.stock is not None and low <= offer.stock <= high:
                    found.append((offer.external_id, offer.stock))
    finally:
        adapter.close()
    # One offer per stock figure, fewest units first: the rounds cover different stocks.
    by_stock: dict[int, tuple[str, int]] = {}
    for external_id, stock in sorted(found, key=lambda item: (item[1], int(item[0]))):
        by_stock.setdefault(stock, (external_id, stock))
    return list(by_stock.values())


def _seed(db_url: str, sandbox_url: str) -> None:
    from bench.checkout_setup import load_bench_marketplaces
    from commerce.catalog_sync import seed_marketplaces
    from commerce.db import get_session_factory
    from storefront.db_migrate import upgrade_database

    upgrade_database(db_url)
    with get_session_factory(db_url)() as session, session.begin():
        seed_marketplaces(session, load_bench_marketplaces(sandbox_url))


def _round(
    db_url: str, sandbox_url: str, external_id: str, stock: int, shoppers: int, run: str
) -> dict[str, object]:
    """One stampede for one offer; returns what happened."""
    import sqlalchemy as sa

    from commerce.accounts import register_user
    from commerce.checkout import CheckoutSubmission, OutcomeKind, submit_checkout
    from commerce.checkout_quote import build_quote
    from commerce.checkout_shipping import ShippingDetails
    from commerce.db import get_session_factory
    from commerce.fx import FxTable
    from commerce.marketplace_access import lookup_adapter_for_marketplace
    from commerce.models import CartItem, Marketplace, OfferStockHold, Product, User
    from commerce.order_models import Order, PaymentMethod, new_validation_token
    from commerce.wallet import top_up, wallet_balance

    factory = get_session_factory(db_url)
    fx = FxTable(per_usd={})
    with factory() as session, session.begin():
        market = session.scalar(sa.select(Marketplace).where(Marketplace.slug == "dummymart"))
        assert market is not None
        product = Product(
            marketplace_id=market.id,
            external_id=external_id,
            title=f"bench offer {external_id}",
            price_minor=100,
            currency="USD",
            available=True,
            stock=stock,
        )
        session.add(product)
        session.flush()
        product_id = product.id
        users: list[int] = []
        for index in range(shoppers):
            name = f"o{run}x{external_id}x{index}"
            user = register_user(
                session, username=name, email=f"{name}@example.com", password="bench-Password-42"
            )
            session.flush()
            top_up(session, user, Decimal("5000"), reference=f"bench-{name}")
            users.append(user.id)
    # The live re-check sets today's price and stock; the forms are made after it, as a shopper
    # who opened checkout would see them.
    submissions: list[CheckoutSubmission] = []
    with factory() as session, session.begin():
        for user_id in users:
            session.add(
                CartItem(
                    user_id=user_id,
                    product_id=product_id,
                    quantity=1,
                    price_seen_minor=100,
                    currency_seen="USD",
                )
            )
    with factory() as session:
        live = lookup_adapter_for_marketplace(session.get(Product, product_id).marketplace)
        offer = live.lookup_offer(external_id)
    with factory() as session, session.begin():
        row = session.get(Product, product_id)
        row.price_minor, row.stock = offer.price_minor, offer.stock
    with factory() as session:
        for user_id in users:
            user = session.get(User, user_id)
            quote = build_quote(session, user, currency="USD", fx=fx)
            submissions.append(
                CheckoutSubmission(
                    user_id=user_id,
                    validation_token=new_validation_token(),
                    payment_method=PaymentMethod.WALLET,
                    display_currency="USD",
                    total_seen_minor=quote.total_minor,
                    cart_digest_seen=quote.digest,
                    shipping=ShippingDetails(
                        name="Ada Lovelace", line1="12 Analytical Way", city="London", country="GB"
                    ),
                )
            )
    barrier = threading.Barrier(len(submissions))

    def submit(submission: CheckoutSubmission) -> tuple[str, float]:
        barrier.wait()
        started = time.perf_counter()
        outcome = submit_checkout(
            factory,
            submission,
            fx=fx,
            adapter_for=lookup_adapter_for_marketplace,
            card_gateway=None,
        )
        kind = outcome.kind.value
        if "while you were checking out" in (outcome.message or ""):
            kind = "hold"  # refused by the compare-and-set hold itself (StockShortfall)
        return kind, time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=len(submissions)) as executor:
        answers = list(executor.map(submit, submissions))
    created = [seconds for kind, seconds in answers if kind == OutcomeKind.CREATED.value]
    refused = [seconds for kind, seconds in answers if kind != OutcomeKind.CREATED.value]
    with factory() as session:
        orders = session.scalar(
            sa.select(sa.func.count()).select_from(Order).where(Order.user_id.in_(users))
        )
        held = session.scalar(
            sa.select(OfferStockHold.held_units).where(OfferStockHold.product_id == product_id)
        )
        untouched = sum(
            1
            for user_id in users
            if wallet_balance(session, session.get(User, user_id)).minor == 500_000
        )
    return {
        "stock": offer.stock,
        "created": len(created),
        "refused": len(refused),
        # How the others were refused: by the hold's compare-and-set, at the re-check
        # (changed), or finding nothing left to pay for at their first look (rejected).
        "hold": sum(1 for kind, _ in answers if kind == "hold"),
        "changed": sum(1 for kind, _ in answers if kind == OutcomeKind.CHANGED.value),
        "rejected": sum(1 for kind, _ in answers if kind == OutcomeKind.REJECTED.value),
        "orders": orders,
        "held": held,
        "untouched_wallets": untouched,
        "winner_p50_ms": statistics.median(created) * 1000 if created else 0.0,
        "loser_p50_ms": statistics.median(refused) * 1000 if refused else 0.0,
        "max_ms": max(seconds for _, seconds in answers) * 1000,
    }


def _run_backend(
    label: str,
    db_url: str,
    sandbox_url: str,
    offers: list[tuple[str, int]],
    args: argparse.Namespace,
) -> list[dict[str, object]]:
    _seed(db_url, sandbox_url)
    run = uuid.uuid4().hex[:6]
    results = []
    for external_id, stock in offers[: args.rounds]:
        result = _round(db_url, sandbox_url, external_id, stock, args.shoppers, run)
        result["backend"] = label
        results.append(result)
        print(label, result, file=sys.stderr)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shoppers", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default="", help="PostgreSQL server to run on as well")
    args = parser.parse_args(argv)
    if not 3 <= args.shoppers <= 64 or not 1 <= args.rounds <= 10:
        parser.error("--shoppers must be 3..64 and --rounds 1..10")

    home = Path(tempfile.mkdtemp(prefix="onecart-oversell-"))
    os.environ["ONECART_HOME"] = str(home)
    from onecart import processes
    from onecart.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    sandbox_port = processes.free_port()
    sandbox = processes.start_process(
        settings,
        "bench-sandbox",
        processes.sandbox_argv("127.0.0.1", sandbox_port, offers=600, seed=42),
    )
    results: list[dict[str, object]] = []
    schema = f"oversell_{uuid.uuid4().hex[:8]}"
    admin = None
    try:
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        processes.wait_for_http(f"{sandbox_url}/_sandbox/health", timeout=120, process=sandbox)
        offers = _dummymart_offers(sandbox_url, 2, args.shoppers - 1)
        if len(offers) < args.rounds:
            print(f"only {len(offers)} DummyMart offers with 2..{args.shoppers - 1} units")
            return 1
        results += _run_backend(
            "sqlite", f"sqlite:///{home / 'storefront.db'}", sandbox_url, offers, args
        )
        if args.database_url:
            import sqlalchemy as sa

            from commerce.db import normalize_database_url

            admin = sa.create_engine(normalize_database_url(args.database_url))
            with admin.begin() as connection:
                connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            base = normalize_database_url(args.database_url)
            separator = "&" if "?" in base else "?"
            pg_url = f"{base}{separator}options=-csearch_path%3D{schema}"
            # Other offers than SQLite's: each backend's first order of an offer holds afresh.
            results += _run_backend("postgresql", pg_url, sandbox_url, offers, args)
    finally:
        from commerce.db import dispose_engines

        dispose_engines()
        if admin is not None:
            import sqlalchemy as sa

            with admin.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
        processes.stop_pid(sandbox.pid)

    print("| backend | stock | shoppers | orders | held | refused (hold · re-check · nothing left) | "
          "wallets untouched | winner p50 ms | loser p50 ms | max ms |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    exact = True
    for r in results:
        exact &= r["orders"] == r["stock"] == r["held"] == r["created"]
        exact &= r["untouched_wallets"] == r["refused"]
        print(
            f"| {r['backend']} | {r['stock']} | {args.shoppers} | {r['orders']} | {r['held']} | "
            f"{r['refused']} ({r['hold']} · {r['changed']} · {r['rejected']}) | "
            f"{r['untouched_wallets']} | "
            f"{r['winner_p50_ms']:.0f} | "
            f"{r['loser_p50_ms']:.0f} | {r['max_ms']:.0f} |"
        )
    backends = sorted({str(r["backend"]) for r in results})
    print(
        f"RESULT bench=oversell_guard backends={','.join(backends)} rounds={len(results)} "
        f"shoppers={args.shoppers} oversold={sum(int(r['orders']) - int(r['stock']) for r in results)} "
        f"exact={str(exact).lower()}"
    )
    return 0 if exact else 1


if __name__ == "__main__":
    raise SystemExit(main())

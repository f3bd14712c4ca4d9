"""The checkout benchmark's checks: payments settled, CPU per component, and nothing lost or
duplicated (every sub-order placed once at its marketplace, every card captured for its total)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx

from bench.checkout_setup import CREDENTIALS

SETTLE_TIMEOUT_S = 60.0


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

"""The money soak's invariants, checked over every order of a run against the other sides: what
the marketplaces hold (the sandbox's own record, found by our reference or idempotency key), what
Stripe holds (localstripe itself, never through the soak's fault proxy) and the wallet ledger.

commerce.orders' books checks (`order_books_problems`, `wallet_books_problems`) are the base;
this adds what only the other sides can tell, and what a settled system owes an operator:

- no sub-order placed twice at a marketplace, and a placed one held there exactly once;
- a failed or cancelled sub-order holds no live order at its marketplace, and a placed one
  is not cancelled there (once settled, tracking has seen every cancel of a store it reads);
- every placed part of an order the shopper cancelled, at a marketplace that takes
  cancellations, has its marketplace's answer (or the order is flagged);
- money kept at Stripe (captured − refunded) equals what the placed sub-orders keep, once the
  order is settled; never a refund without a capture, never more refunded than captured;
- no PaymentIntent at Stripe that no order accounts for still holds or took money;
- an order not settled is on the operator's list with a reason (flagged, or each unsettled
  part a sub-order needing attention, which the attention page lists with its reason); a
  sub-order whose outcome is unknown was never refunded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa

from bench.checkout_setup import CART_MARKETPLACES

UNSETTLED_PAYMENTS = ("authorized", "capturing", "reconciling")
# Stores whose order status tracking reads (Fake Store keeps none: its cancels go unseen).
TRACKED = ("shopwave", "kiondo")


@dataclass
class CheckReport:
    """Invariant violations, and what the settled system looks like."""

    violations: list[str] = field(default_factory=list)
    orders: int = 0
    settled: int = 0
    flagged: int = 0
    flag_reasons: list[str] = field(default_factory=list)


def held_at_marketplace(
    sandbox_url: str, slug: str, reference: str, idempotency_key: str
) -> list[dict[str, Any]]:
    """What the marketplace itself holds for one sub-order (by our reference; Fake Store keeps
    no reference, so by the idempotency key there)."""
    if slug == "fakestore":
        listing = httpx.get(f"{sandbox_url}/_sandbox/orders/{slug}", timeout=30)
        listing.raise_for_status()
        return [o for o in listing.json()["orders"] if o.get("idempotency_key") == idempotency_key]
    response = httpx.get(
        f"{sandbox_url}/_sandbox/orders/{slug}", params={"reference": reference}, timeout=30
    )
    response.raise_for_status()
    return response.json()["orders"]


class Localstripe:
    """Read-only look at what localstripe holds."""

    def __init__(self, url: str, api_key: str) -> None:
        self.client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {api_key}"}, timeout=30
        )

    def intent(self, intent_id: str) -> dict[str, Any]:
        response = self.client.get(
            f"/v1/payment_intents/{intent_id}", params={"expand[]": "latest_charge"}
        )
        response.raise_for_status()
        intent = response.json()
        charge = intent.get("latest_charge")
        if isinstance(charge, str):
            got = self.client.get(f"/v1/charges/{charge}")
            got.raise_for_status()
            intent["latest_charge"] = got.json()
        return intent

    def all_intents(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if after:
                params["starting_after"] = after
            page = self.client.get("/v1/payment_intents", params=params).json()
            found += page["data"]
            if not page.get("has_more") or not page["data"]:
                return found
            after = page["data"][-1]["id"]

    def close(self) -> None:
        self.client.close()


def stripe_kept(intent: dict[str, Any]) -> tuple[int, int, bool]:
    """(charged, refunded, captured) of an intent's charge, in Stripe's units."""
    charge = intent.get("latest_charge") or {}
    if not charge:
        return 0, 0, False
    return (
        int(charge.get("amount") or 0),
        int(charge.get("amount_refunded") or 0),
        bool(charge.get("captured")),
    )


def check_run(
    db_url: str,
    sandbox_url: str,
    stripe: Localstripe,
    user_ids: Iterable[int],
) -> CheckReport:
    """Every invariant over every order of the run's shoppers (see the module docstring)."""
    from adapters.base import Capability
    from commerce.db import get_session_factory
    from commerce.marketplace_access import marketplace_can
    from commerce.models import User
    from commerce.order_models import (
        PLACED_SUB_ORDER_STATUSES,
        UNSETTLED_SUB_ORDER_STATUSES,
        Order,
        Payment,
        PaymentMethod,
        RefundStatus,
        SubOrderStatus,
    )
    from commerce.orders import order_books_problems, wallet_books_problems

    report = CheckReport()
    users = list(user_ids)
    with get_session_factory(db_url)() as session:
        orders = list(
            session.scalars(sa.select(Order).where(Order.user_id.in_(users)).order_by(Order.id))
        )
        report.orders = len(orders)
        for order in orders:
            where = f"order {order.number}"
            problems = order_books_problems(session, order)
            payment = order.payment
            # What is not settled, and what of it the operator's list does not show (the
            # attention page lists sub-orders needing attention with their reason, and orders
            # flagged with theirs).
            unsettled: list[str] = []
            unlisted: list[str] = []
            for sub in order.charged_sub_orders:
                slug = sub.marketplace.slug
                sub_where = f"{where} {slug} sub-order {sub.id} ({sub.status})"
                if sub.status in UNSETTLED_SUB_ORDER_STATUSES:
                    unsettled.append(f"sub-order {sub.id} {sub.status}")
                    if sub.status != SubOrderStatus.NEEDS_ATTENTION or not sub.last_error:
                        unlisted.append(unsettled[-1])
                    refunded = [
                        r.id
                        for r in (payment.refunds if payment else [])
                        if r.sub_order_id == sub.id and r.status != RefundStatus.FAILED
                    ]
                    if refunded:
                        problems.append(
                            f"{sub_where}: outcome unknown, yet refunds {refunded} were made"
                        )
                if slug not in CART_MARKETPLACES:
                    continue
                held = held_at_marketplace(
                    sandbox_url, slug, order.relation_token, sub.idempotency_key
                )
                live = [o for o in held if o.get("status") != "cancelled"]
                if len(held) > 1:
                    problems.append(f"{sub_where}: placed {len(held)} times at the marketplace")
                if sub.status in PLACED_SUB_ORDER_STATUSES and len(held) != 1:
                    problems.append(f"{sub_where}: the marketplace holds {len(held)} orders")
                if sub.status in (SubOrderStatus.FAILED, SubOrderStatus.CANCELLED) and live:
                    problems.append(f"{sub_where}: given up, yet the marketplace holds it live")
                if (
                    order.cancel_requested_at is not None
                    and sub.status in (SubOrderStatus.PLACED, SubOrderStatus.PROCESSING)
                    # One that takes no cancellations says so on the order page unasked.
                    and marketplace_can(sub.marketplace, Capability.CANCEL)
                    and sub.cancel_outcome is None
                    and not order.attention_reason
                ):
                    problems.append(f"{sub_where}: the shopper's cancellation never answered")
                if (
                    slug in TRACKED
                    and sub.status in PLACED_SUB_ORDER_STATUSES
                    and held
                    and not live
                ):
                    problems.append(f"{sub_where}: placed here, cancelled at the marketplace")
            if payment is not None:
                if payment.status in UNSETTLED_PAYMENTS:
                    unsettled.append(f"payment {payment.status}")
                    unlisted.append(unsettled[-1])
                pending = [
                    r.id
                    for r in payment.refunds
                    if r.status in (RefundStatus.PENDING, RefundStatus.PROCESSING)
                ]
                if pending:
                    unsettled.append(f"refunds {pending} pending")
                    unlisted.append(unsettled[-1])
                if payment.method == PaymentMethod.STRIPE:
                    problems += _stripe_problems(
                        where, order, payment, stripe, settled=not unsettled
                    )
            if unlisted and not order.attention_reason:
                problems.append(f"{where}: not settled ({', '.join(unlisted)}) and not flagged")
            if not unsettled:
                report.settled += 1
            reasons = [order.attention_reason or ""] + [
                f"sub-order {sub.id} needs attention: {sub.last_error}"
                for sub in order.charged_sub_orders
                if sub.status == SubOrderStatus.NEEDS_ATTENTION
            ]
            if any(reasons):
                report.flagged += 1
                report.flag_reasons.append(
                    f"{order.number}: {'; '.join(r for r in reasons if r)[:200]}"
                )
            report.violations += problems
        for user in session.scalars(sa.select(User).where(User.id.in_(users))):
            report.violations += wallet_books_problems(session, user)
        known = set(session.scalars(sa.select(Payment.provider_reference)))
    for intent in stripe.all_intents():
        if intent["id"] in known or intent.get("capture_method") != "manual":
            continue
        if intent.get("status") == "requires_capture":
            report.violations.append(f"Stripe {intent['id']}: a hold no order accounts for")
        elif intent.get("status") == "succeeded":
            charged, refunded, captured = stripe_kept(stripe.intent(intent["id"]))
            if captured and charged - refunded:
                report.violations.append(
                    f"Stripe {intent['id']}: {charged - refunded} taken for no order"
                )
    return report


def _stripe_problems(
    where: str, order: Any, payment: Any, stripe: Localstripe, *, settled: bool
) -> list[str]:
    """What Stripe's record of the order's PaymentIntent says against ours."""
    from commerce.order_models import PLACED_SUB_ORDER_STATUSES, RefundKind, RefundStatus
    from commerce.payments.gateway import to_stripe_amount

    problems: list[str] = []
    intent = stripe.intent(payment.provider_reference)
    charged, refunded, captured = stripe_kept(intent)
    currency = payment.currency
    if refunded and not captured:
        problems.append(f"{where}: Stripe refunded {refunded} of a charge never captured")
    if refunded > charged:
        problems.append(f"{where}: Stripe refunded {refunded}, more than captured {charged}")
    kept_here = payment.captured_minor - sum(
        r.amount_minor
        for r in payment.refunds
        if r.kind == RefundKind.CARD_REFUND and r.status == RefundStatus.SUCCEEDED
    )
    kept_there = charged - refunded if captured else 0
    done = ("captured", "partially_refunded", "refunded", "voided", "failed")
    if payment.status in done and to_stripe_amount(max(kept_here, 0), currency) != kept_there:
        problems.append(
            f"{where}: Stripe keeps {kept_there}, our books {kept_here} ({payment.status})"
        )
    if settled:
        placed = sum(
            sub.kept_charge_minor
            for sub in order.charged_sub_orders
            if sub.status in PLACED_SUB_ORDER_STATUSES
        )
        if to_stripe_amount(placed, currency) != kept_there:
            problems.append(f"{where}: Stripe keeps {kept_there}, placed shares are {placed}")
    return problems

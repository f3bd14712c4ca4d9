"""Orders as the shopper (and support) sees them: lookups that never cross accounts, the status
link's token, shopper cancellation, and the books check that proves no money was lost or doubled.
"""

from __future__ import annotations

import hmac
import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from commerce.attention_models import FlagResolution
from commerce.cancellation import (
    CancellationReport,
    OrderActionError,
    carry_out_cancellation,
    order_is_cancellable,
    request_cancellation,
)
from commerce.models import User, WalletEntry, WalletEntryKind
from commerce.order_models import (
    LIVE_SUB_ORDER_STATUSES,
    PLACED_SUB_ORDER_STATUSES,
    UNSETTLED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    Payment,
    PaymentMethod,
    PaymentStatus,
    RefundKind,
    RefundStatus,
    new_status_token,
)
from commerce.settlement import cancellation_unanswered

logger = logging.getLogger(__name__)

ORDERS_PAGE_SIZE = 50

# Shopper cancellation lives in commerce.cancellation; these names stay importable from here.
__all__ = [
    "CancellationReport",
    "OrderActionError",
    "carry_out_cancellation",
    "order_is_cancellable",
    "request_cancellation",
]


def _with_details(query: sa.Select[tuple[Order]]) -> sa.Select[tuple[Order]]:
    return query.options(
        selectinload(Order.sub_orders).selectinload(MarketplaceOrder.marketplace),
        selectinload(Order.sub_orders).selectinload(MarketplaceOrder.items),
        selectinload(Order.items),
        selectinload(Order.payment),
    )


def list_user_orders(
    session: Session, user_id: int, *, limit: int = ORDERS_PAGE_SIZE
) -> list[Order]:
    """The user's orders, newest first."""
    return list(
        session.scalars(
            _with_details(
                sa.select(Order)
                .where(Order.user_id == user_id)
                .order_by(Order.created_at.desc(), Order.id.desc())
                .limit(limit)
            )
        )
    )


def wallet_entry_orders(
    session: Session, user_id: int, entries: list[WalletEntry]
) -> dict[int, str]:
    """The order number each payment or refund line of the wallet history belongs to (by entry
    id): the ledger's references are the payment's own (a refund's is `<payment's>:<key>`),
    which a shopper cannot tell apart ("Refund $292.07": of which order?)."""
    wanted = {
        entry.id: entry.reference.split(":", 1)[0]
        for entry in entries
        if entry.kind in (WalletEntryKind.PAYMENT, WalletEntryKind.REFUND)
    }
    if not wanted:
        return {}
    rows = session.execute(
        sa.select(Payment.provider_reference, Order.number)
        .join(Order, Order.id == Payment.order_id)
        .where(
            Order.user_id == user_id,
            Payment.method == PaymentMethod.WALLET,
            Payment.provider_reference.in_(set(wanted.values())),
        )
    )
    numbers = {str(reference): str(number) for reference, number in rows}
    return {entry_id: numbers[ref] for entry_id, ref in wanted.items() if ref in numbers}


def get_user_order(session: Session, user_id: int, number: str) -> Order | None:
    """The order with this number if it belongs to the user, else None (never someone else's)."""
    return session.scalar(
        _with_details(sa.select(Order).where(Order.number == number, Order.user_id == user_id))
    )


def find_order_by_status_token(session: Session, token: str) -> Order | None:
    """The order whose status link carries `token`; None for any wrong or replaced token."""
    if not token or len(token) > 64:
        return None
    order = session.scalar(_with_details(sa.select(Order).where(Order.status_token == token)))
    if order is None or not hmac.compare_digest(order.status_token, token):
        return None
    return order


def rotate_status_token(session: Session, order: Order) -> str:
    """Replace the status link's token (the old link stops working at once)."""
    order.status_token = new_status_token()
    session.flush()
    return order.status_token


# --- The books ---------------------------------------------------------------------------------


def order_books_problems(session: Session, order: Order) -> list[str]:
    """Everything wrong with one order's money, as sentences (empty: the books balance).

    payment taken − refunds = what the live sub-orders keep (their share, less what a marketplace
    did not accept); once no sub-order is in flight (nor a cancellation answer awaited:
    commerce.settlement), the refunds are all done and a card payment
    captured exactly what the placed sub-orders keep. Shares add up to the total, items to their
    sub-order, a failed or cancelled sub-order's refunds give back its whole share, and the wallet
    ledger agrees with the payment. A card payment whose capture was refused for good took
    nothing and must be on the operator's list, or have been taken off it by an operator
    (commerce.flag_resolution records that).
    """
    problems: list[str] = []
    where = f"order {order.number}"
    charged = order.charged_sub_orders
    payment = order.payment
    if payment is None:
        return [f"{where}: no payment"]
    if sum(sub.charge_minor for sub in charged) != order.total_minor:
        problems.append(f"{where}: sub-order shares do not add up to the total")
    if payment.amount_minor != order.total_minor or payment.currency != order.currency:
        problems.append(f"{where}: payment {payment.amount_minor} != total {order.total_minor}")
    for sub in order.sub_orders:
        if sub.charge_currency != order.currency:
            problems.append(f"{where}: sub-order {sub.id} share in {sub.charge_currency}")
        items_total = sum(item.charge_minor for item in sub.items)
        if items_total != sub.charge_minor:
            problems.append(f"{where}: sub-order {sub.id} items {items_total} != share")
        if sub.is_handoff and sub.charge_minor != 0:
            problems.append(f"{where}: hand-off sub-order {sub.id} was charged")
    refunds = [r for r in payment.refunds if r.status != RefundStatus.FAILED]
    if payment.status == PaymentStatus.FAILED:
        if not order.attention_reason and not _flag_resolved(session, order.id):
            problems.append(f"{where}: payment failed but the order is not flagged")
        return problems
    refunded = sum(r.amount_minor for r in refunds)
    live = sum(sub.kept_charge_minor for sub in charged if sub.status in LIVE_SUB_ORDER_STATUSES)
    if payment.amount_minor - refunded != live:
        problems.append(
            f"{where}: taken {payment.amount_minor} − refunds {refunded} != live shares {live}"
        )
    by_sub: dict[int | None, int] = {}
    for refund in refunds:
        by_sub[refund.sub_order_id] = by_sub.get(refund.sub_order_id, 0) + refund.amount_minor
    for sub in charged:
        expected = (
            sub.charge_minor - sub.kept_charge_minor
            if sub.status in LIVE_SUB_ORDER_STATUSES
            else sub.charge_minor
        )
        if by_sub.get(sub.id, 0) != expected:
            problems.append(
                f"{where}: sub-order {sub.id} ({sub.status}) refunds {by_sub.get(sub.id, 0)} "
                f"!= {expected}"
            )
    # A card capture also waits for the answers the shopper's cancellation is waiting for.
    settled = not any(
        sub.status in UNSETTLED_SUB_ORDER_STATUSES for sub in charged
    ) and not cancellation_unanswered(order)
    if settled:
        pending = [r.id for r in refunds if r.status != RefundStatus.SUCCEEDED]
        if pending:
            problems.append(f"{where}: refunds {pending} not done")
        placed = sum(
            sub.kept_charge_minor for sub in charged if sub.status in PLACED_SUB_ORDER_STATUSES
        )
        if payment.method == PaymentMethod.STRIPE:
            if payment.status in (
                PaymentStatus.AUTHORIZED,
                PaymentStatus.CAPTURING,
                PaymentStatus.RECONCILING,
            ):
                problems.append(f"{where}: card payment still {payment.status}")
            released = sum(r.amount_minor for r in refunds if r.kind == RefundKind.RELEASE)
            if payment.captured_minor != payment.amount_minor - released:
                problems.append(f"{where}: captured {payment.captured_minor} != taken − released")
            card_refunds = sum(r.amount_minor for r in refunds if r.kind == RefundKind.CARD_REFUND)
            if payment.captured_minor - card_refunds != placed:
                problems.append(f"{where}: captured − card refunds != placed shares {placed}")
    if payment.method == PaymentMethod.WALLET:
        problems += _wallet_problems(session, order, payment.provider_reference, refunds)
    return problems


def _flag_resolved(session: Session, order_id: int) -> bool:
    """Whether an operator cleared the order's flag (a resolution, or a dispute acknowledged)."""
    return bool(session.scalar(sa.select(sa.exists().where(FlagResolution.order_id == order_id))))


def _wallet_problems(session: Session, order: Order, reference: str, refunds: list) -> list[str]:
    where = f"order {order.number}"
    problems: list[str] = []
    debit = session.scalar(
        sa.select(WalletEntry).where(
            WalletEntry.kind == WalletEntryKind.PAYMENT, WalletEntry.reference == reference
        )
    )
    if debit is None or -debit.amount_minor != order.total_minor:
        problems.append(f"{where}: wallet debit does not match the total")
    prefix = f"{reference}:"
    credits = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(WalletEntry.amount_minor), 0)).where(
            WalletEntry.kind == WalletEntryKind.REFUND,
            sa.func.substr(WalletEntry.reference, 1, len(prefix)) == prefix,
        )
    )
    succeeded = sum(r.amount_minor for r in refunds if r.status == RefundStatus.SUCCEEDED)
    if int(credits or 0) != succeeded:
        problems.append(f"{where}: wallet credits {credits} != refunds {succeeded}")
    return problems


def wallet_books_problems(session: Session, user: User) -> list[str]:
    """The wallet balance is the sum of the ledger and never negative."""
    total = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(WalletEntry.amount_minor), 0)).where(
            WalletEntry.user_id == user.id, WalletEntry.currency == user.wallet_currency
        )
    )
    from commerce.wallet import wallet_balance

    balance = wallet_balance(session, user)
    problems = []
    if balance.minor != int(total or 0):
        problems.append(f"user {user.id}: balance {balance.minor} != ledger {total}")
    if balance.minor < 0:
        problems.append(f"user {user.id}: negative wallet balance {balance.minor}")
    return problems

"""Orders as the shopper (and support) sees them: lookups that never cross accounts, the status
link's token, shopper cancellation, and the books check that proves no money was lost or doubled.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload, sessionmaker

from adapters.base import Capability, MarketplaceError, Rejected
from commerce.marketplace_access import AdapterProvider, marketplace_can
from commerce.models import User, WalletEntry, WalletEntryKind, utc_now
from commerce.notifications import notify
from commerce.order_locks import lock_order
from commerce.order_models import (
    LIVE_SUB_ORDER_STATUSES,
    PLACED_SUB_ORDER_STATUSES,
    UNSETTLED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    OrderStatus,
    OutboxMessage,
    OutboxTopic,
    PaymentMethod,
    PaymentStatus,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
    new_status_token,
)
from commerce.payments.providers import GatewayProvider, gateway_for_payment

logger = logging.getLogger(__name__)

ORDERS_PAGE_SIZE = 50
CANCELLABLE_ORDER_STATUSES = frozenset({OrderStatus.PENDING, OrderStatus.PROCESSING})


class OrderActionError(Exception):
    """An order action the shopper cannot take now; `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


# --- Shopper cancellation ---------------------------------------------------------------------


def order_is_cancellable(order: Order) -> bool:
    """Not shipped, not already cancelled or finished, and at least one sub-order still live."""
    return (
        order.status in CANCELLABLE_ORDER_STATUSES
        and order.cancel_requested_at is None
        and any(sub.status in LIVE_SUB_ORDER_STATUSES for sub in order.charged_sub_orders)
        and not any(
            sub.status in (SubOrderStatus.SHIPPED, SubOrderStatus.DELIVERED)
            for sub in order.charged_sub_orders
        )
    )


def request_cancellation(session: Session, user_id: int, number: str) -> Order:
    """Record the shopper's cancellation and queue the job that carries it out.

    Sub-orders not placed yet are cancelled here and now (their placement job then finds
    nothing to do); placed ones are cancelled through their marketplace by the job.
    """
    order = get_user_order(session, user_id, number)
    if order is None:
        raise OrderActionError("That order does not exist.")
    lock_order(session, order.id)
    session.refresh(order)
    for sub_order in order.sub_orders:
        session.refresh(sub_order)
    if not order_is_cancellable(order):
        raise OrderActionError(
            "This order can no longer be cancelled: part of it has shipped or it is already "
            "cancelled."
        )
    order.cancel_requested_at = utc_now()
    from commerce.placement import compensate_sub_order

    for sub_order in order.charged_sub_orders:
        if sub_order.status == SubOrderStatus.PENDING:
            compensate_sub_order(
                session,
                sub_order,
                status=SubOrderStatus.CANCELLED,
                reason="Cancelled by you before it was placed.",
            )
    session.add(OutboxMessage(topic=OutboxTopic.CANCEL_ORDER, order_id=order.id))
    notify(session, order, "cancellation_requested", f"We are cancelling order {order.number}.")
    session.flush()
    return order


@dataclass(frozen=True, slots=True)
class CancellationReport:
    """What the cancellation job did: sub-orders cancelled, refused, or still in flight."""

    cancelled: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    in_flight: tuple[str, ...] = ()


def carry_out_cancellation(
    session_factory: sessionmaker[Session],
    order_id: int,
    *,
    adapter_for: AdapterProvider,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> CancellationReport:
    """Cancel the order's placed sub-orders where the marketplace allows it, refund them, and
    settle the payment. Sub-orders still being placed are reported `in_flight` (the job retries)."""
    from commerce.placement import compensate_sub_order, process_refunds, settle_payment

    with session_factory() as session:
        order = session.get(Order, order_id)
        if order is None or order.cancel_requested_at is None:
            return CancellationReport()
        targets = [
            (sub.id, sub.marketplace, sub.marketplace_order_id, sub.status)
            for sub in order.charged_sub_orders
        ]
    cancelled: list[str] = []
    refused: list[str] = []
    in_flight: list[str] = []
    for sub_order_id, marketplace, marketplace_order_id, status in targets:
        if status in UNSETTLED_SUB_ORDER_STATUSES:
            in_flight.append(marketplace.name)
            continue
        if status not in PLACED_SUB_ORDER_STATUSES:
            continue
        if status in (SubOrderStatus.SHIPPED, SubOrderStatus.DELIVERED) or not marketplace_can(
            marketplace, Capability.CANCEL
        ):
            refused.append(marketplace.name)
            continue
        adapter = adapter_for(marketplace)
        try:
            adapter.cancel_order(marketplace_order_id or "")
        except Rejected:
            refused.append(marketplace.name)
            continue
        except MarketplaceError as exc:
            logger.warning("cancelling sub-order %s failed: %s", sub_order_id, exc)
            in_flight.append(marketplace.name)
            continue
        with session_factory() as session, session.begin():
            lock_order(session, order_id)
            sub_order = session.get(MarketplaceOrder, sub_order_id)
            assert sub_order is not None
            if sub_order.status in LIVE_SUB_ORDER_STATUSES:
                compensate_sub_order(
                    session,
                    sub_order,
                    status=SubOrderStatus.CANCELLED,
                    reason=f"Cancelled at your request; {marketplace.name} confirmed.",
                )
        cancelled.append(marketplace.name)
    if refused and not in_flight:
        with session_factory() as session, session.begin():
            lock_order(session, order_id)
            order = session.get(Order, order_id)
            assert order is not None
            notify(
                session,
                order,
                "cancellation_refused",
                "These marketplaces could not cancel their part of your order, so it goes "
                "ahead: " + ", ".join(refused) + ".",
            )
    process_refunds(session_factory, order_id, gateway_for=gateway_for)
    settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return CancellationReport(tuple(cancelled), tuple(refused), tuple(in_flight))


# --- The books ---------------------------------------------------------------------------------


def order_books_problems(session: Session, order: Order) -> list[str]:
    """Everything wrong with one order's money, as sentences (empty: the books balance).

    payment taken − refunds = the shares of the sub-orders still owed to marketplaces; once no
    sub-order is in flight, the refunds are all done and a card payment captured exactly the
    placed shares. Shares add up to the total, items to their sub-order, one refund per
    cancelled or failed sub-order, and the wallet ledger agrees with the payment.
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
    refunded = sum(r.amount_minor for r in refunds)
    live = sum(sub.charge_minor for sub in charged if sub.status in LIVE_SUB_ORDER_STATUSES)
    if payment.amount_minor - refunded != live:
        problems.append(
            f"{where}: taken {payment.amount_minor} − refunds {refunded} != live shares {live}"
        )
    by_sub: dict[int | None, int] = {}
    for refund in refunds:
        by_sub[refund.sub_order_id] = by_sub.get(refund.sub_order_id, 0) + 1
    for sub in charged:
        expected = 0 if sub.status in LIVE_SUB_ORDER_STATUSES or sub.charge_minor == 0 else 1
        if by_sub.get(sub.id, 0) != expected:
            problems.append(
                f"{where}: sub-order {sub.id} ({sub.status}) has {by_sub.get(sub.id, 0)} refunds"
            )
    settled = not any(sub.status in UNSETTLED_SUB_ORDER_STATUSES for sub in charged)
    if settled:
        pending = [r.id for r in refunds if r.status != RefundStatus.SUCCEEDED]
        if pending:
            problems.append(f"{where}: refunds {pending} not done")
        placed = sum(sub.charge_minor for sub in charged if sub.status in PLACED_SUB_ORDER_STATUSES)
        if payment.method == PaymentMethod.STRIPE:
            if payment.status in (PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURING):
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

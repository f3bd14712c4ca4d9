"""Serializing the changes to one order across web processes and RQ workers.

Every transaction that changes an order's sub-orders, payment or refunds starts by locking the
order's row, so the order status derived from its sub-orders, the capture amount and the refund
kinds are always computed from the latest committed state.

PostgreSQL: SELECT … FOR UPDATE. SQLite has no row locks and Python's sqlite3 starts a transaction
only at the first write, so a read-then-write transaction could act on stale data there: the lock
is a no-op UPDATE of the row as the transaction's first statement, which takes SQLite's write lock
(waiting up to the busy timeout) before anything is read.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.order_models import MarketplaceOrder, Order, Payment


def lock_order(session: Session, order_id: int) -> None:
    """Lock one order's row until the session's transaction ends (call it first)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(Order.id).where(Order.id == order_id).with_for_update())
    else:
        session.execute(
            sa.update(Order)
            .where(Order.id == order_id)
            # Naming the column keeps its onupdate default from firing: nothing changes.
            .values(updated_at=Order.updated_at)
            .execution_options(synchronize_session=False)
        )


def order_id_of_sub_order(session: Session, sub_order_id: int) -> int | None:
    """The order a sub-order belongs to (never changes, so it can be read before locking)."""
    return session.scalar(
        sa.select(MarketplaceOrder.order_id).where(MarketplaceOrder.id == sub_order_id)
    )


def locked_payment(session: Session, payment_id: int) -> Payment:
    """A payment read fresh after its order's row is locked (the order it belongs to never
    changes, so that is read first): what every change to a payment starts with."""
    order_id = session.scalar(sa.select(Payment.order_id).where(Payment.id == payment_id))
    if order_id is None:
        raise LookupError(f"no payment {payment_id}")
    lock_order(session, order_id)
    payment = session.get(Payment, payment_id)
    assert payment is not None  # a payment is never deleted
    session.refresh(payment)
    return payment

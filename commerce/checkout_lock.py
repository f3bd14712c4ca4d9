"""Serializing one shopper's checkouts: a row lock on PostgreSQL, a lease on SQLite.

The lease outlives the slowest checkout — the live re-check, then two worst-case Stripe calls (an
authorization and the release of a hold that cannot be used), plus a margin — so it is never lost
while its holder is still paying, and a crashed holder's lease simply runs out.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from commerce.models import utc_now
from commerce.order_models import (
    CheckoutLock,
)
from commerce.payments.stripe_gateway import STRIPE_WORST_CALL_S
from commerce.revalidation import REVALIDATION_DEADLINE_S

LOCK_WAIT_S = 60.0
LOCK_LEASE = timedelta(seconds=REVALIDATION_DEADLINE_S + 2 * STRIPE_WORST_CALL_S + 30)
LOCK_POLL_S = 0.05


class CheckoutError(Exception):
    """The checkout cannot go ahead; `message` is written for the shopper."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CheckoutBusy(CheckoutError):
    """Another checkout of the same shopper held the lock for too long."""


# --- The lock on a shopper's checkouts -------------------------------------------------------


@contextmanager
def checkout_lock(
    session_factory: sessionmaker[Session], user_id: int, *, wait_s: float = LOCK_WAIT_S
) -> Iterator[None]:
    """Serialize one shopper's checkouts (other shoppers never wait).

    PostgreSQL: SELECT … FOR UPDATE on the shopper's `checkout_locks` row, held by a connection of
    its own for the duration. SQLite locks the whole file for a write transaction, so there the
    row is a lease, taken with one conditional UPDATE and given back at the end (a holder that
    crashed loses it when the lease runs out).
    """
    engine = session_factory.kw["bind"]
    if engine.dialect.name == "postgresql":
        with _row_lock(engine, user_id, wait_s):
            yield
    else:
        with _lease_lock(session_factory, user_id, wait_s):
            yield


@contextmanager
def _row_lock(engine: sa.Engine, user_id: int, wait_s: float) -> Iterator[None]:
    """SELECT … FOR UPDATE SKIP LOCKED, retried until the row is ours: waiters hold no
    connection while they wait (twenty tabs cannot drain the pool), and a holder that dies
    releases the lock with its connection."""
    with engine.connect() as connection:
        connection.execute(
            postgresql_insert(CheckoutLock)
            .values(user_id=user_id)
            .on_conflict_do_nothing(index_elements=["user_id"])
        )
        connection.commit()
    deadline = time.monotonic() + wait_s
    while True:
        connection = engine.connect()
        try:
            locked = connection.execute(
                sa.select(CheckoutLock.user_id)
                .where(CheckoutLock.user_id == user_id)
                .with_for_update(skip_locked=True)
            ).first()
        except BaseException:
            connection.close()
            raise
        if locked is not None:
            break
        connection.rollback()
        connection.close()
        if time.monotonic() > deadline:
            raise CheckoutBusy(
                "Another checkout of yours is still running. Please try again in a moment."
            )
        time.sleep(LOCK_POLL_S)
    try:
        yield
    finally:
        connection.rollback()
        connection.close()


@contextmanager
def _lease_lock(
    session_factory: sessionmaker[Session], user_id: int, wait_s: float
) -> Iterator[None]:
    holder = secrets.token_hex(16)
    deadline = time.monotonic() + wait_s
    while not _take_lease(session_factory, user_id, holder):
        if time.monotonic() > deadline:
            raise CheckoutBusy(
                "Another checkout of yours is still running. Please try again in a moment."
            )
        time.sleep(LOCK_POLL_S * random.uniform(1.0, 3.0))
    try:
        yield
    finally:
        with session_factory() as session, session.begin():
            session.execute(
                sa.update(CheckoutLock)
                .where(CheckoutLock.user_id == user_id, CheckoutLock.holder == holder)
                .values(holder=None, expires_at=None)
            )


def _take_lease(session_factory: sessionmaker[Session], user_id: int, holder: str) -> bool:
    now = utc_now()
    try:
        with session_factory() as session:
            # A plain read first: under WAL it never waits, so shoppers' other tabs poll without
            # queueing for SQLite's single write lock (which the lease holder needs).
            current = session.execute(
                sa.select(CheckoutLock.holder, CheckoutLock.expires_at).where(
                    CheckoutLock.user_id == user_id
                )
            ).first()
            session.rollback()
            if current is not None and current.holder is not None and current.expires_at >= now:
                return False
            with session.begin():
                if current is None:
                    session.add(
                        CheckoutLock(user_id=user_id, holder=holder, expires_at=now + LOCK_LEASE)
                    )
                    session.flush()
                    return True
                taken = session.execute(
                    sa.update(CheckoutLock)
                    .where(
                        CheckoutLock.user_id == user_id,
                        sa.or_(CheckoutLock.holder.is_(None), CheckoutLock.expires_at < now),
                    )
                    .values(holder=holder, expires_at=now + LOCK_LEASE)
                ).rowcount  # type: ignore[attr-defined]
                return bool(taken)
    except (IntegrityError, OperationalError):
        # Another checkout inserted the row (or held the file) at the same moment: wait, retry.
        return False

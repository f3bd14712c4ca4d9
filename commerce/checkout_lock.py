"""Serializing one shopper's checkouts: a row lock on PostgreSQL, a lease on SQLite.

The lease is renewed by its holder while it runs (commerce.lease_renewal: a thread of the
holder's, several times per lease), so it is held for as long as the holder works, as a
PostgreSQL row lock is held for as long as its connection lives: however many slow Stripe calls
a submit makes (an authorization whose reply is lost, the look-up that finds the hold, the
release of a hold its order could not use: three worst-case calls), no second checkout of the
shopper enters meanwhile. A holder that crashed renews nothing, and its lease runs out.
"""

from __future__ import annotations

import logging
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

from commerce.exactly_once_models import CheckoutLock
from commerce.lease_renewal import renewed_while_held
from commerce.models import utc_now
from commerce.payments.stripe_gateway import STRIPE_WORST_CALL_S
from commerce.revalidation import REVALIDATION_DEADLINE_S

logger = logging.getLogger(__name__)

LOCK_WAIT_S = 60.0
# How long a lease lasts without renewal: a crashed holder's lock is free again after it. Its
# holder renews it several times per lease (commerce.lease_renewal), so renewals in a row may
# wait out SQLite's write lock (or fail) before the lease could run out.
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
        with renewed_while_held(
            lambda: _renew_lease(session_factory, user_id, holder),
            lease=LOCK_LEASE,
            what=f"checkout lock of user {user_id}",
        ):
            yield
    finally:
        with session_factory() as session, session.begin():
            session.execute(
                sa.update(CheckoutLock)
                .where(CheckoutLock.user_id == user_id, CheckoutLock.holder == holder)
                .values(holder=None, expires_at=None)
            )


def _renew_lease(session_factory: sessionmaker[Session], user_id: int, holder: str) -> bool:
    """Push the lease's end forward; False when it is not this holder's any more (taken over
    after it ran out, which only a holder stalled for a whole lease allows: said loudly)."""
    with session_factory() as session, session.begin():
        renewed = session.execute(
            sa.update(CheckoutLock)
            .where(CheckoutLock.user_id == user_id, CheckoutLock.holder == holder)
            .values(expires_at=utc_now() + LOCK_LEASE)
        ).rowcount  # type: ignore[attr-defined]
    if not renewed:
        logger.error(
            "checkout lease of user %s was lost while its holder still ran: another checkout "
            "of the shopper may run at the same time",
            user_id,
        )
    return bool(renewed)


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

"""Cancelling and capturing a PaymentIntent as numbered attempts, so a refusal is never replayed.

Stripe stores the first answer to an idempotency key, refusals included, and replays it to every
request with that key for a day (commerce.payments.stripe_gateway cites its documentation). One
key per intent (`void-<id>`) therefore let one refused cancel (the intent was processing, a
transient 4xx) answer every later release of the hold for a day: the sweeper's, the operator's,
a refused submit's. Here the key carries the attempt's number, kept in `provider_call_attempts`:

- a call whose answer is unknown (timeout, outage) is resent later as the same attempt, the same
  key, so Stripe recognises the resend;
- a call Stripe answered with its own failure (a 5xx, stored and replayed like a refusal:
  "including 500 errors") moves the number on as well, for a cancel or a capture only: Stripe
  cancels or captures an intent once, so a new key cannot release or take money twice. The
  caller still treats it as unknown and reads the intent before anything else. Not blind for a
  refund: a new key after an unknown outcome could refund twice, so a refund's 5xx moves the
  number on only once Stripe's list of the intent's refunds shows none of ours
  (commerce.refunds.reconcile_refund);
- a refused call moves the number on (compare-and-set from the number it sent: two workers
  refused by the same attempt move it once, and a worker still holding an older number moves
  nothing), so the next call is a new attempt that Stripe answers afresh.

Card refunds are numbered the same way (`refund_attempt_key`), and their number moves on only on
a definite answer: Stripe's `charge_disputed` (the refund is held and sent again once the dispute
is decided), or Stripe's own failure (5xx) once its list of the intent's refunds shows none
carrying the refund's reference (every attempt's refund carries it, so find_refund finds one
whichever attempt made it). Any other refusal fails the refund for the operator, so nothing
resends it; an outcome unknown without an answer (a timeout) is resent under the same key.

Three outcomes as ever: the gateway's PaymentError says refused (PaymentDeclined) or unknown
(PaymentUnavailable), and the caller resolves unknown from the intent's record.

Below the order lifecycle stack's callers (settlement, card holds, checkout): models and
payments only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.exactly_once_models import ProviderCallAttempt
from commerce.models import utc_now
from commerce.payments.gateway import PaymentDeclined, PaymentGateway, PaymentServiceFailed
from onecart.money import Money

logger = logging.getLogger(__name__)

REFUSAL_TEXT_LIMIT = 500
# Stripe prunes a key once it is "at least 24 hours old"; a row is kept a day past that. Only a
# cancel's or a capture's row is pruned: the next call starts again at attempt 0, a key Stripe
# forgot (if it still answers from it, that refusal moves the number on as any refusal does),
# and Stripe cancels or captures an intent once whatever the key. A refund's or an
# authorization's row is kept: its number may name an attempt whose outcome is still looked up
# by it (find_refund, the authorization's metadata), and a reset number would send a new key.
ATTEMPTS_KEPT_FOR = timedelta(hours=48)
PRUNE_BATCH_SIZE = 500
PRUNABLE_PREFIXES = ("void-", "capture-")


def void_call(provider_reference: str) -> str:
    """The attempts row of this PaymentIntent's cancel."""
    return f"void-{provider_reference}"


def capture_call(provider_reference: str, amount: Money) -> str:
    """The attempts row of this PaymentIntent's capture of `amount` (another amount is another
    call, as it was another key before)."""
    return f"capture-{provider_reference}-{amount.minor}"


def refund_call(refund_key: str) -> str:
    """The attempts row of the card refund whose own key (the refund row's) is `refund_key`."""
    return f"refund-call-{refund_key}"


def authorize_call(authorization_key: str) -> str:
    """The attempts row of a checkout's card authorization (its key without the attempt)."""
    return f"authorize-{authorization_key}"


def refund_attempt_key(refund_key: str, attempt: int) -> str:
    """The idempotency key of attempt `attempt` of a card refund (also in the refund's metadata,
    by which an unknown outcome is looked up). Attempt 0 is the refund row's own key, as sent
    before attempts were numbered, so a refund in flight across a deploy keeps its key."""
    return refund_key if attempt == 0 else f"{refund_key}-attempt-{attempt}"


def current_attempt(session_factory: sessionmaker[Session], call: str) -> int:
    """The attempt a call sends now: 0 until one is refused."""
    with session_factory() as session:
        attempt = session.scalar(
            sa.select(ProviderCallAttempt.attempt).where(ProviderCallAttempt.call == call)
        )
    return attempt or 0


def note_refused(
    session_factory: sessionmaker[Session], call: str, attempt: int, message: str
) -> bool:
    """Attempt `attempt` of `call` was refused: the next call is attempt `attempt + 1`.
    Compare-and-set: False when another worker moved it on already (or further)."""
    now = utc_now()
    refusal = message[:REFUSAL_TEXT_LIMIT]
    with session_factory() as session, session.begin():
        moved = session.execute(
            sa.update(ProviderCallAttempt)
            .where(ProviderCallAttempt.call == call, ProviderCallAttempt.attempt == attempt)
            .values(attempt=attempt + 1, refused_at=now, last_refusal=refusal)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    if moved or attempt != 0:
        return bool(moved)
    # The first refusal of this call: its row is made now. A worker that made it a moment ago
    # moved it on already, so the unique call refuses this one and nothing changes.
    try:
        with session_factory() as session, session.begin():
            session.add(
                ProviderCallAttempt(call=call, attempt=1, refused_at=now, last_refusal=refusal)
            )
    except sa.exc.IntegrityError:
        return False
    return True


def void_intent(
    session_factory: sessionmaker[Session], gateway: PaymentGateway, provider_reference: str
) -> None:
    """Release the hold with the current attempt; a refusal (or Stripe's 5xx) moves the attempt
    on, and every error is raised as it came: an unknown one with no answer from Stripe (a
    timeout) is resent later as this attempt."""
    call = void_call(provider_reference)
    attempt = _attempt_if_readable(session_factory, call)
    try:
        gateway.void(provider_reference, attempt=attempt)
    except (PaymentDeclined, PaymentServiceFailed) as exc:
        _note_refused_if_writable(session_factory, call, attempt, exc.message)
        raise


def capture_intent(
    session_factory: sessionmaker[Session],
    gateway: PaymentGateway,
    provider_reference: str,
    amount: Money,
) -> None:
    """Capture `amount` with the current attempt, as void_intent releases."""
    call = capture_call(provider_reference, amount)
    attempt = _attempt_if_readable(session_factory, call)
    try:
        gateway.capture(provider_reference, amount, attempt=attempt)
    except (PaymentDeclined, PaymentServiceFailed) as exc:
        _note_refused_if_writable(session_factory, call, attempt, exc.message)
        raise


def _attempt_if_readable(session_factory: sessionmaker[Session], call: str) -> int | None:
    """The current attempt, or None when the database cannot say (checkout releases a hold
    precisely when the database failed its order): the call then goes out as a one-off attempt
    with a key of its own (the gateway's), safe for a cancel or a capture since Stripe does
    either only once, and its refusal is stored under no key a later attempt sends."""
    try:
        return current_attempt(session_factory, call)
    except sa.exc.SQLAlchemyError:
        logger.warning("attempt of %s cannot be read; sent as a one-off attempt", call)
        return None


def _note_refused_if_writable(
    session_factory: sessionmaker[Session], call: str, attempt: int | None, message: str
) -> None:
    """Move the attempt on; a database that cannot take it is logged, not raised over the
    provider's answer (the next call then sends this attempt again and is refused again)."""
    if attempt is None:
        return
    try:
        note_refused(session_factory, call, attempt, message)
    except sa.exc.SQLAlchemyError:
        logger.warning("refusal of %s attempt %s could not be recorded", call, attempt)


def prune_attempts(
    session_factory: sessionmaker[Session],
    *,
    older_than: timedelta = ATTEMPTS_KEPT_FOR,
    candidates: Iterable[tuple[str, int]] | None = None,
) -> int:
    """Delete the cancel and capture rows last refused longer than `older_than` ago; how many.
    Each row is its own delete, compare-and-set on the attempt that was read and the age (a
    worker's refusal meanwhile moves the row on and keeps it), and its own failure: one that
    cannot be deleted is logged and left for the next sweep. `candidates`: the (call, attempt)
    rows read (by default those matching now)."""
    cutoff = utc_now() - older_than
    if candidates is None:
        with session_factory() as session:
            candidates = [
                (row.call, row.attempt)
                for row in session.execute(
                    sa.select(ProviderCallAttempt.call, ProviderCallAttempt.attempt)
                    .where(
                        ProviderCallAttempt.refused_at < cutoff,
                        sa.or_(
                            *(ProviderCallAttempt.call.startswith(p) for p in PRUNABLE_PREFIXES)
                        ),
                    )
                    .order_by(ProviderCallAttempt.refused_at)
                    .limit(PRUNE_BATCH_SIZE)
                )
            ]
    pruned = 0
    for call, attempt in candidates:
        if not call.startswith(PRUNABLE_PREFIXES):
            continue
        try:
            with session_factory() as session, session.begin():
                pruned += session.execute(
                    sa.delete(ProviderCallAttempt)
                    .where(
                        ProviderCallAttempt.call == call,
                        ProviderCallAttempt.attempt == attempt,
                        ProviderCallAttempt.refused_at < cutoff,
                    )
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
        except sa.exc.SQLAlchemyError:
            logger.exception("attempts row of %s could not be pruned; tried next sweep", call)
    return pruned

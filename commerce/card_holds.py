"""Card holds in doubt: an authorization whose outcome checkout could not learn is not a refusal.

When the card authorization at checkout ends in PaymentUnavailable (Stripe unreachable, or the
reply lost after the request was sent) Stripe may hold money on the card. Before the shopper is
told anything, Stripe is asked for the PaymentIntent: by its id when the browser confirmed it
(Stripe.js), else by the authorization's idempotency key, which the intent carries in its
metadata. Authorized → checkout goes on with it, as if the reply had arrived. Refused → declined.
Still unknown → a durable `CardHoldInDoubt` row, and the shopper is told the payment is being
checked (never "declined"); no order is written.

The sweeper then resolves every row from Stripe's record, under the shopper's checkout lock (so a
submit of the same form cannot be recording an order with that hold meanwhile): a hold an order
uses stays (a retried submit of the same form reuses the key, so Stripe returns the same intent);
any other hold is released. "No such intent" is trusted only long after the attempt, because
Stripe's search can lag its writes. A hold is therefore always either used or voided. Not when
Stripe answered the authorization with its own failure (a 5xx, stored under the key and replayed
to every resubmit of the form): an empty search then proves nothing and a new key could make a
second hold, so past the same bound the row goes before an operator (`flagged_at`, with its
reason on /admin/attention), is asked on at every sweep, and the shopper who submits the form
again is told that our team is checking (WITH_OPERATOR_MESSAGE).

A hold our database never recorded at all (it was down, or the browser confirmed an intent and
never submitted) is found at Stripe and recorded as a row here by commerce.unrecorded_card_holds,
then resolved like any other. Every checkout intent names its form and its shopper in its
metadata (`checkout_intent_metadata`), so such a row is resolved under that shopper's checkout
lock, and a resolution leaves alone an intent another checkout made.

Sits beside settlement in the order lifecycle stack (payments and models only; the checkout and
the sweeper call it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.checkout_lock import CheckoutBusy, checkout_lock
from commerce.exactly_once_models import CardHoldInDoubt
from commerce.models import utc_now
from commerce.order_models import Order, Payment
from commerce.payments.gateway import (
    Authorization,
    AuthorizationReleased,
    AuthorizationRequest,
    PaymentDeclined,
    PaymentError,
    PaymentGateway,
    PaymentNotFound,
    PaymentUnavailable,
    ProviderPaymentState,
    ProviderStatus,
    is_attempt_of,
)
from commerce.provider_attempts import void_intent

logger = logging.getLogger(__name__)

ERROR_TEXT_LIMIT = 500
# A checkout holds its shopper's lock for at most a few minutes; rows younger than this are left
# to it (a retried submit may still adopt the hold).
RESOLVE_AFTER = timedelta(minutes=2)
# Stripe's search can lag writes (about a minute, longer in an incident): "no intent with this
# key" is believed only this long after the attempt. An uncaptured hold lasts 7 days.
NOT_FOUND_TRUSTED_AFTER = timedelta(hours=1)
SWEEPER_LOCK_WAIT_S = 1.0
# A reopen that keeps meeting a row changed under it (compare-and-set) gives up after this many.
REOPEN_TRIES = 5
# A checkout PaymentIntent's metadata: the form's validation token and the shopper's user id.
CHECKOUT_TOKEN_METADATA = "onecart_validation_token"
CHECKOUT_USER_METADATA = "onecart_user_id"
# A row's resolution when Stripe knows no PaymentIntent of the id it names (404).
NO_SUCH_INTENT = "Stripe knows no such PaymentIntent, nothing to release"

CardGatewayFactory = Callable[[], PaymentGateway]

IN_DOUBT_MESSAGE = (
    "We could not get an answer from the card payment service, so we are checking your payment "
    "with it. No order was placed yet: try again in a few minutes with the same page (you will "
    "not be charged twice). If a hold shows on your card without an order, it is released."
)
# Said instead once the hold is before an operator: the same page can only meet Stripe's stored
# failure again, so it is not offered as the way on.
WITH_OPERATOR_MESSAGE = (
    "The card payment service failed on this payment and still cannot tell us whether it "
    "placed a hold on your card, so our team is checking it with them. No order was placed, "
    "and sending this page again will not change that. If a hold shows on your card without "
    "an order, it is released; you are never charged for it."
)


@dataclass(slots=True)
class HoldFailures:
    """How many holds a sweep's card-hold steps failed on for a reason that is not a payment
    error (a bug reading a reply, a write the database refused). Each such hold is its own
    failure: logged, noted on its row where it has one (the operator's list shows it), and the
    step goes on with the next hold; the hold is tried again at the next sweep."""

    count: int = 0


def in_doubt_message(*, with_operator: bool) -> str:
    """What the shopper is told after an authorization with no answer: checking, or, once the
    hold is before an operator, that our team is."""
    return WITH_OPERATOR_MESSAGE if with_operator else IN_DOUBT_MESSAGE


def hold_step_error(step: str, error: Exception) -> str:
    """What a hold's row says when its sweep step raised: the same words at every pass (the
    error's type, not its text)."""
    return (
        f"Sweeping this hold failed while {step} ({type(error).__name__}); nothing was released "
        "or kept on a guess, and it is tried again at every sweep: see the worker's log if this "
        "stays."
    )


def checkout_intent_metadata(user_id: int, validation_token: str) -> dict[str, str]:
    """What every checkout PaymentIntent carries: which form and which shopper made it (the
    sweeper finds the holds no record accounts for by it)."""
    return {CHECKOUT_TOKEN_METADATA: validation_token, CHECKOUT_USER_METADATA: str(user_id)}


def resolve_authorization_in_doubt(
    gateway: PaymentGateway, request: AuthorizationRequest
) -> tuple[Authorization | None, bool]:
    """What Stripe holds for an authorization whose reply was not an answer: (the authorization
    when a PaymentIntent is authorized for this amount, whether any other hold remains for the
    sweeper). PaymentDeclined when Stripe refused it, AuthorizationReleased when its hold was
    released by us since; (None, True) while it cannot be told."""
    if request.intent_id:
        # Adopting a browser-confirmed intent only reads it: asking again is the lookup.
        try:
            return gateway.authorize(request), False
        except PaymentUnavailable:
            return None, True
    try:
        states = gateway.find_authorizations(request.idempotency_key)
    except PaymentError as exc:
        logger.warning("authorization %s cannot be looked up: %s", request.idempotency_key, exc)
        return None, True
    usable = [
        state
        for state in states
        if state.status == ProviderStatus.AUTHORIZED
        and state.amount_minor == request.amount.minor
        and state.currency == request.amount.currency
    ]
    if usable:
        chosen = usable[0]
        authorization = Authorization(
            provider_reference=chosen.provider_reference,
            amount_minor=chosen.amount_minor,
            currency=chosen.currency,
            captured=False,
        )
        return authorization, any(
            state.status in (ProviderStatus.AUTHORIZED, ProviderStatus.PENDING)
            for state in states
            if state is not chosen
        )
    # Nothing held only when this attempt's own intent is seen holding nothing: an earlier
    # attempt's declined intent says nothing of this one, which search may not show yet.
    own = [state for state in states if is_attempt_of(state, request.attempt)]
    if own and all(
        state.status in (ProviderStatus.FAILED, ProviderStatus.CANCELED) for state in states
    ):
        if all(state.status == ProviderStatus.CANCELED for state in own):
            # Cancelled is our own doing (the sweeper released the hold in doubt, checkout gave
            # it back, or an intent needing a step we cannot show), never the bank's refusal:
            # the shopper is not told "declined", and checkout sends the next attempt.
            raise AuthorizationReleased()
        raise PaymentDeclined("Your card was declined.")
    return None, True


def record_hold_in_doubt(
    session_factory: sessionmaker[Session],
    user_id: int,
    validation_token: str,
    request: AuthorizationRequest,
    error: str,
    *,
    intent_id: str | None = None,
    stripe_failed: bool = False,
) -> bool:
    """Remember the authorization for the sweeper (once per key; a row already resolved is
    reopened, since the new attempt may have made a hold). `intent_id`: the PaymentIntent when
    it is known (else the request's browser-confirmed one, else found by the key).
    `stripe_failed`: the answer was Stripe's own failure (a 5xx it stores under the key), kept
    from its first time. Whether the hold is before an operator already (in_doubt_message).

    What a reopened row names (`reopened_intent`) is written compare-and-set on the row as read,
    so a sweep or an operator's answer in between is never written over with a stale intent."""
    intent_id = intent_id or request.intent_id
    for _ in range(REOPEN_TRIES):
        now = utc_now()
        with session_factory() as session, session.begin():
            row = session.scalar(
                sa.select(CardHoldInDoubt).where(
                    CardHoldInDoubt.idempotency_key == request.idempotency_key
                )
            )
            if row is None:
                session.add(
                    CardHoldInDoubt(
                        user_id=user_id,
                        validation_token=validation_token,
                        idempotency_key=request.idempotency_key,
                        intent_id=intent_id,
                        amount_minor=request.amount.minor,
                        currency=request.amount.currency,
                        last_error=error[:ERROR_TEXT_LIMIT],
                        stripe_failed_since=now if stripe_failed else None,
                    )
                )
                return False
            values: dict[str, object] = {
                "intent_id": reopened_intent(row, intent_id),
                "created_at": now,
                "resolved_at": None,
                "resolution": None,
            }
            if stripe_failed and row.stripe_failed_since is None:
                values["stripe_failed_since"] = now
            if row.flagged_at is None:
                # Once before an operator, the row keeps the operator's reason.
                values["last_error"] = error[:ERROR_TEXT_LIMIT]
            reopened = session.execute(
                sa.update(CardHoldInDoubt)
                .where(
                    CardHoldInDoubt.id == row.id,
                    CardHoldInDoubt.intent_id.is_not_distinct_from(row.intent_id),
                    CardHoldInDoubt.resolved_at.is_not_distinct_from(row.resolved_at),
                    CardHoldInDoubt.created_at == row.created_at,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if reopened:
                return row.flagged_at is not None
    raise RuntimeError(f"card hold in doubt {request.idempotency_key} kept changing; not reopened")


def reopened_intent(row: CardHoldInDoubt, intent_id: str | None) -> str | None:
    """The PaymentIntent a row names once a new attempt reopens it.

    - The attempt knows its intent: that one (an intent the row named before and no sweep
      settled yet is no row's any more, so the unrecorded-hold pass records it on its own, as
      commerce.unrecorded_card_holds does for every hold no row names).
    - It does not, and the row was resolved: none. The intent it named was settled (released,
      used, or found holding nothing), and the new attempt's hold is under the key: the sweep
      asks by the key, which lists every intent made under it. Keeping the settled one, the
      sweep asked about that intent only, found it holding nothing and resolved the row, while
      the new hold stayed on the card.
    - It does not, and the row is open: the intent it names is not settled yet (an operator's
      finding among them), so it stays; any other hold under the key is the unrecorded-hold
      pass's, since a row naming an intent covers no other."""
    if intent_id:
        return intent_id
    if row.resolved_at is not None:
        return None
    return row.intent_id


def resolve_holds_in_doubt(
    session_factory: sessionmaker[Session],
    gateway_factory: CardGatewayFactory,
    *,
    older_than: timedelta = RESOLVE_AFTER,
    not_found_after: timedelta = NOT_FOUND_TRUSTED_AFTER,
    failures: HoldFailures | None = None,
) -> int:
    """Resolve the open holds in doubt older than `older_than` from Stripe's record; returns how
    many were resolved. Each is handled under its shopper's checkout lock; a busy lock or an
    unreachable Stripe leaves the row for the next sweep. A row whose step raises anything else
    is its own failure (counted in `failures`, noted on the row): the other rows go on."""
    failures = failures if failures is not None else HoldFailures()
    with session_factory() as session:
        rows = session.execute(
            sa.select(CardHoldInDoubt.id, CardHoldInDoubt.user_id)
            .where(
                CardHoldInDoubt.resolved_at.is_(None),
                CardHoldInDoubt.created_at < utc_now() - older_than,
            )
            .order_by(CardHoldInDoubt.id)
        ).all()
    if not rows:
        return 0
    gateway = gateway_factory()
    resolved = 0
    for row_id, user_id in rows:
        try:
            with checkout_lock(session_factory, user_id, wait_s=SWEEPER_LOCK_WAIT_S):
                resolved += _resolve_one(session_factory, gateway, row_id, not_found_after)
        except CheckoutBusy:
            continue
        except Exception as exc:
            failures.count += 1
            logger.exception("card hold in doubt %s: resolving it failed; tried again", row_id)
            try:
                _note(session_factory, row_id, error=hold_step_error("resolving it", exc))
            except Exception:
                logger.exception("card hold in doubt %s: its failure could not be noted", row_id)
    return resolved


def _resolve_one(
    session_factory: sessionmaker[Session],
    gateway: PaymentGateway,
    row_id: int,
    not_found_after: timedelta,
) -> bool:
    with session_factory() as session:
        row = session.get(CardHoldInDoubt, row_id)
        if row is None or row.resolved_at is not None:
            return False
        intent_id, key, created_at = row.intent_id, row.idempotency_key, row.created_at
        validation_token = row.validation_token
        failed_since, flagged = row.stripe_failed_since, row.flagged_at is not None
    try:
        states = [gateway.retrieve(intent_id)] if intent_id else gateway.find_authorizations(key)
    except PaymentNotFound:
        if flagged:
            # Before an operator, the id is theirs (or a resubmit's) and Stripe failed under
            # the key: a wrong id says nothing of what the key holds. Back to the operator.
            _back_to_operator(
                session_factory, row_id, created_at, intent_id, f"Stripe knows no {intent_id}"
            )
            return False
        # A definite answer, not an outage (a forged form's id): nothing is held under it, so
        # the row is resolved with the reason (listed for operators among resolved holds)
        # rather than asked about again at every sweep for ever.
        return _resolve(session_factory, row_id, created_at, f"{NO_SUCH_INTENT}: {intent_id}")
    except PaymentError as exc:
        _note(session_factory, row_id, error=f"Stripe cannot be asked yet: {exc.message}")
        return False
    if not states:
        if failed_since is not None:
            # Stripe's own failure is stored under the key and replayed to every resubmit, and
            # its search shows no intent: an empty search is no answer here (the failed request
            # may have made an intent search never lists), and a new key could make a second
            # hold. Past the bound, an operator asks Stripe; the row is asked on meanwhile.
            if not flagged and failed_since < utc_now() - not_found_after:
                _flag_hold(session_factory, row_id, key)
            return False
        if created_at > utc_now() - not_found_after:
            return False
        return _resolve(session_factory, row_id, created_at, "Stripe holds no payment for it")
    if flagged and intent_id and all(_made_by_another(state, validation_token) for state in states):
        # The operator named another checkout's intent: left alone, and this key's is unknown.
        _back_to_operator(
            session_factory,
            row_id,
            created_at,
            intent_id,
            f"{intent_id} is another checkout's (left alone)",
        )
        return False
    outcomes: list[str] = []
    for state in states:
        outcome = (
            f"{state.provider_reference} is not this checkout's (left alone)"
            if _made_by_another(state, validation_token)
            else _settle_hold(session_factory, gateway, row_id, state)
        )
        if outcome is None:
            return False  # asked again at the next sweep (voids are idempotent)
        outcomes.append(outcome)
    return _resolve(session_factory, row_id, created_at, "; ".join(outcomes))


def _made_by_another(state: ProviderPaymentState, validation_token: str) -> bool:
    """Whether Stripe's record says another checkout (or a top-up) made this PaymentIntent. A
    row can name an intent nobody checked: the id a checkout form sent, when Stripe could not be
    asked about it at submit. Such an intent is left alone: it is its own checkout's (used by
    its order, or resolved as that checkout's hold), never released or reported for this one.
    An intent naming no checkout at all (made before intents named theirs) is taken as the
    row's, as before."""
    made_for = state.metadata.get(CHECKOUT_TOKEN_METADATA)
    if made_for is not None:
        # The row keeps the first 64 characters (the column's size).
        return made_for[:64] != validation_token[:64]
    # A wallet top-up's intent names its purpose (commerce.wallet_topup), never a checkout.
    return bool(state.metadata.get("onecart_purpose"))


def _settle_hold(
    session_factory: sessionmaker[Session],
    gateway: PaymentGateway,
    row_id: int,
    state: ProviderPaymentState,
) -> str | None:
    """Keep or release one PaymentIntent; what became of it, or None while it cannot be."""
    reference = state.provider_reference
    order_number = _order_using(session_factory, state)
    if order_number is not None:
        return f"{reference} used by order {order_number}"
    if state.status == ProviderStatus.AUTHORIZED:
        try:
            void_intent(session_factory, gateway, reference)
        except PaymentError as exc:
            _note(session_factory, row_id, error=f"release of {reference} failed: {exc.message}")
            return None
        return f"{reference} released"
    if state.status == ProviderStatus.PENDING:
        return None
    if state.status == ProviderStatus.CAPTURED:
        # Never made by checkout (manual capture, captured only for an order): an operator
        # refunds it in Stripe. Recorded (and logged) once, listed at /admin/attention; later
        # sweeps only look for the refund that resolves it.
        if state.captured_minor and state.refunded_minor >= state.captured_minor:
            return f"{reference} captured without an order, refunded in Stripe"
        _note_captured(session_factory, row_id, reference)
        return None
    return f"{reference} holds nothing (Stripe: {state.status.value})"


def _order_using(session_factory: sessionmaker[Session], state: ProviderPaymentState) -> str | None:
    with session_factory() as session:
        return session.scalar(
            sa.select(Order.number)
            .join(Payment, Payment.order_id == Order.id)
            .where(Payment.provider_reference == state.provider_reference)
        )


def _note_captured(session_factory: sessionmaker[Session], row_id: int, reference: str) -> None:
    """Mark the hold captured without an order, once (compare-and-set on the mark): the first
    sweep to find it logs it for an operator, the later ones say nothing."""
    now = utc_now()
    with session_factory() as session, session.begin():
        marked = session.execute(
            sa.update(CardHoldInDoubt)
            .where(
                CardHoldInDoubt.id == row_id,
                CardHoldInDoubt.captured_without_order_at.is_(None),
                CardHoldInDoubt.resolved_at.is_(None),
            )
            .values(
                captured_without_order_at=now,
                last_error=f"{reference} captured without an order: refund it in Stripe",
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    if marked:
        logger.error("card hold in doubt %s: %s captured without an order", row_id, reference)


def _flag_hold(session_factory: sessionmaker[Session], row_id: int, key: str) -> None:
    """Put a hold whose authorization Stripe failed, and which its search never shows, before an
    operator: once (compare-and-set on `flagged_at`), with the reason /admin/attention shows."""
    with session_factory() as session, session.begin():
        flagged = session.execute(
            sa.update(CardHoldInDoubt)
            .where(CardHoldInDoubt.id == row_id, CardHoldInDoubt.flagged_at.is_(None))
            .values(
                flagged_at=utc_now(),
                last_error=(
                    f"Stripe answered authorization {key} with its own error, which it replays "
                    "to every resubmit, and its search shows no PaymentIntent for it: ask Stripe "
                    "whether it holds money under this key, then record here what it shows (no "
                    "payment, or the PaymentIntent: the sweeper releases it unless an order uses "
                    "it). Nothing is retried under a new key; still asked at every sweep."
                )[:ERROR_TEXT_LIMIT],
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    if flagged:
        logger.error("card hold in doubt %s: Stripe failed it and shows no intent", row_id)


def _back_to_operator(
    session_factory: sessionmaker[Session],
    row_id: int,
    seen: datetime,
    intent_id: str,
    found: str,
) -> None:
    """A flagged row's intent says nothing of this key (Stripe knows no such intent, or another
    checkout made it): the row is not resolved on it, since whether Stripe holds money under the
    key is as unknown as before. The id is taken off (compare-and-set on the row as read, so a
    resubmit's is kept) and the operator's reason says what Stripe answered; it stays listed."""
    with session_factory() as session, session.begin():
        changed = session.execute(
            sa.update(CardHoldInDoubt)
            .where(
                CardHoldInDoubt.id == row_id,
                CardHoldInDoubt.resolved_at.is_(None),
                CardHoldInDoubt.created_at == seen,
                CardHoldInDoubt.intent_id == intent_id,
            )
            .values(
                intent_id=None,
                last_error=(
                    f"{found}, the PaymentIntent recorded for this key, so nothing was released "
                    "and whether Stripe holds money under the key is still unknown: look in "
                    "Stripe's request log again and record what it shows."
                )[:ERROR_TEXT_LIMIT],
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    if changed:
        logger.error("card hold in doubt %s: %s; back before an operator", row_id, found)


def _resolve(
    session_factory: sessionmaker[Session], row_id: int, seen: datetime, resolution: str
) -> bool:
    """Resolve the row as the sweep read it (compare-and-set on its last submit, `seen`): a
    resubmit that reopened it meanwhile (it may name another intent, or none) is left open for
    the next sweep, never resolved with what Stripe said of the earlier attempt."""
    with session_factory() as session, session.begin():
        resolved = session.execute(
            sa.update(CardHoldInDoubt)
            .where(
                CardHoldInDoubt.id == row_id,
                CardHoldInDoubt.resolved_at.is_(None),
                CardHoldInDoubt.created_at == seen,
            )
            .values(resolution=resolution[:200], resolved_at=utc_now())
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    if not resolved:
        logger.info("card hold in doubt %s changed while swept; left for the next sweep", row_id)
    return bool(resolved)


def _note(session_factory: sessionmaker[Session], row_id: int, *, error: str) -> None:
    with session_factory() as session, session.begin():
        row = session.get(CardHoldInDoubt, row_id)
        assert row is not None
        if row.flagged_at is None:
            row.last_error = error[:ERROR_TEXT_LIMIT]
        else:
            # Before an operator, the row keeps their reason (the one column /admin/attention
            # shows of it): a sweep's passing trouble goes to the log instead.
            logger.warning("card hold in doubt %s (before an operator): %s", row_id, error)

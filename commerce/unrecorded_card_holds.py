"""Card holds our database never recorded: the sweeper finds them at Stripe and records them as
holds in doubt (commerce.card_holds), so they are used or released like any other.

A hold can escape our records altogether: the database was down when checkout wanted to write
the row (or the order), or the shopper's browser confirmed an intent and never submitted. So the
sweeper also reconciles from Stripe's side: every checkout PaymentIntent still in
`requires_capture` long after it was made (`UNRECORDED_AFTER`) that no order's payment and no
row accounts for becomes a row (`record_unrecorded_holds`), resolved like any other. Each
checkout intent names its shopper in its metadata (commerce.card_holds.checkout_intent_metadata),
so the row is resolved under that shopper's checkout lock. A hold naming no account of this shop
cannot be resolved so: it is listed for an operator (`UnownedCardHold`, once per PaymentIntent,
shown on /admin/attention until Stripe no longer holds it). This assumes one Stripe account per
OneCart database: another shop's holds in the same account would look unrecorded here.

Beside commerce.card_holds in the order lifecycle stack (payments and models only; the sweeper
calls it, and commerce.form_holds keys its rows with `intent_row_key`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.card_holds import (
    CHECKOUT_TOKEN_METADATA,
    CHECKOUT_USER_METADATA,
    CardGatewayFactory,
    HoldFailures,
)
from commerce.dispute_models import UnownedCardHold
from commerce.exactly_once_models import CardHoldInDoubt
from commerce.models import User, utc_now
from commerce.order_models import Order, Payment
from commerce.payments.gateway import (
    AUTHORIZATION_KEY_METADATA,
    PaymentError,
    UncapturedAuthorization,
)

logger = logging.getLogger(__name__)

IDEMPOTENCY_KEY_LIMIT = 80  # card_holds_in_doubt.idempotency_key
# A hold still uncaptured this long after it was made, with no order or row for it, was never
# recorded. Over twice the longest a checkout can keep a hold it has not recorded yet (three
# worst-case Stripe calls, about thirteen minutes) plus Stripe's search lag, so no checkout is
# still at work.
UNRECORDED_AFTER = timedelta(minutes=30)
UNRECORDED_KEY_PREFIX = "unrecorded-"


def record_unrecorded_holds(
    session_factory: sessionmaker[Session],
    gateway_factory: CardGatewayFactory,
    *,
    older_than: timedelta = UNRECORDED_AFTER,
    failures: HoldFailures | None = None,
) -> int:
    """Record as holds in doubt the checkout holds Stripe keeps uncaptured (made more than
    `older_than` ago) that no order and no row accounts for; returns how many were recorded.
    Stripe unreachable: nothing changes (logged), the next sweep asks again. A hold whose
    record (or listing for an operator) raises anything else is its own failure (counted in
    `failures`, logged; Stripe lists it again at the next sweep): the other holds go on."""
    failures = failures if failures is not None else HoldFailures()
    try:
        found = gateway_factory().find_uncaptured_authorizations(utc_now() - older_than)
    except PaymentError as exc:
        logger.warning("uncaptured card holds cannot be listed: %s", exc.message)
        return 0
    _note_unowned_gone(session_factory, {hold.provider_reference for hold in found})
    # Ours: made by checkout (top-ups capture at once, so they are never held).
    holds = [hold for hold in found if hold.metadata.get(CHECKOUT_TOKEN_METADATA)]
    if not holds:
        return 0
    with session_factory() as session:
        holds = _unaccounted(session, holds)
        owners = _owners(session, holds)
    recorded = 0
    for hold in holds:
        user_id = owners.get(hold.provider_reference)
        try:
            if user_id is None:
                _list_unowned(session_factory, hold)
                continue
            recorded += _record_unrecorded(session_factory, hold, user_id)
        except Exception:
            failures.count += 1
            logger.exception(
                "card hold %s: recording it failed; tried again at the next sweep",
                hold.provider_reference,
            )
    return recorded


def _list_unowned(session_factory: sessionmaker[Session], hold: UncapturedAuthorization) -> None:
    """A hold naming no account of this shop cannot be resolved under a shopper's checkout
    lock: it goes on the operator's list (/admin/attention), once per PaymentIntent; a later
    sweep that sees it again only notes when it last did."""
    now = utc_now()
    with session_factory() as session, session.begin():
        updated = session.execute(
            sa.update(UnownedCardHold)
            .where(UnownedCardHold.intent_id == hold.provider_reference)
            .values(last_seen_at=now, gone_at=None)
        ).rowcount  # type: ignore[attr-defined]
    if updated:
        return
    row = UnownedCardHold(
        intent_id=hold.provider_reference,
        amount_minor=hold.amount_minor,
        currency=hold.currency,
        named_user=hold.metadata.get(CHECKOUT_USER_METADATA, "")[:40],
        hold_created_at=hold.created_at,
        first_seen_at=now,
        last_seen_at=now,
    )
    try:
        with session_factory() as session, session.begin():
            session.add(row)
    except sa.exc.IntegrityError:
        return  # another sweeper listed it a moment ago
    logger.error(
        "card hold %s (%s %s minor units) is uncaptured and unrecorded but names no account of "
        "this shop: listed for an operator (release it in Stripe's dashboard if no order uses it)",
        hold.provider_reference,
        hold.currency,
        hold.amount_minor,
    )


def _note_unowned_gone(session_factory: sessionmaker[Session], still_held: set[str]) -> None:
    """Listed holds Stripe no longer keeps uncaptured (released, captured or expired) leave the
    operator's list. `still_held`: every hold the complete listing returned."""
    with session_factory() as session, session.begin():
        session.execute(
            sa.update(UnownedCardHold)
            .where(
                UnownedCardHold.gone_at.is_(None),
                UnownedCardHold.intent_id.not_in(still_held),
            )
            .values(gone_at=utc_now())
        )


def _unaccounted(
    session: Session, holds: Sequence[UncapturedAuthorization]
) -> list[UncapturedAuthorization]:
    """The holds no order's payment uses and no row covers: a row of this intent made by the
    checkout the intent names (a resolved one too: it was resolved from Stripe's record of the
    intent itself, which search may lag), or an open row of the key it was made with that is
    resolved by that key. A row of another checkout naming the intent (a form's id, unchecked)
    left it alone as not its own (commerce.card_holds, `_made_by_another`), so it accounts for
    nothing: were it counted, a hold whose own checkout was abandoned would stay on the card until
    it lapses."""
    references = [hold.provider_reference for hold in holds]
    keys = [key for hold in holds if (key := _authorization_key(hold))]
    used = set(
        session.scalars(
            sa.select(Payment.provider_reference).where(Payment.provider_reference.in_(references))
        )
    )
    covered = {
        (intent_id, validation_token[:64])
        for intent_id, validation_token in session.execute(
            sa.select(CardHoldInDoubt.intent_id, CardHoldInDoubt.validation_token).where(
                CardHoldInDoubt.intent_id.in_(references)
            )
        )
    }
    open_keys = set(
        session.scalars(
            sa.select(CardHoldInDoubt.idempotency_key).where(
                CardHoldInDoubt.idempotency_key.in_(keys),
                CardHoldInDoubt.intent_id.is_(None),
                CardHoldInDoubt.resolved_at.is_(None),
            )
        )
    )
    return [
        hold
        for hold in holds
        if hold.provider_reference not in used
        and (hold.provider_reference, hold.metadata[CHECKOUT_TOKEN_METADATA][:64]) not in covered
        and _authorization_key(hold) not in open_keys
    ]


def _authorization_key(hold: UncapturedAuthorization) -> str | None:
    return hold.metadata.get(AUTHORIZATION_KEY_METADATA)


def _owners(session: Session, holds: Sequence[UncapturedAuthorization]) -> dict[str, int]:
    """The shopper each hold was made for: the user its metadata names (or, for an intent made
    before intents named one, the user of an order of the same form), who must have had an
    account when the hold was made."""
    claimed: dict[str, int] = {}
    tokens = {
        hold.metadata[CHECKOUT_TOKEN_METADATA]
        for hold in holds
        if not hold.metadata.get(CHECKOUT_USER_METADATA)
    }
    token_users: Mapping[str, int] = (
        {
            token: user_id
            for token, user_id in session.execute(
                sa.select(Order.validation_token, Order.user_id).where(
                    Order.validation_token.in_(tokens)
                )
            )
        }
        if tokens
        else {}
    )
    for hold in holds:
        named = hold.metadata.get(CHECKOUT_USER_METADATA, "")
        if named.isascii() and named.isdigit() and len(named) < 19:
            claimed[hold.provider_reference] = int(named)
        elif (user_id := token_users.get(hold.metadata[CHECKOUT_TOKEN_METADATA])) is not None:
            claimed[hold.provider_reference] = user_id
    joined = {
        user_id: date_joined
        for user_id, date_joined in session.execute(
            sa.select(User.id, User.date_joined).where(User.id.in_(set(claimed.values())))
        )
    }
    by_hold = {hold.provider_reference: hold for hold in holds}
    return {
        reference: user_id
        for reference, user_id in claimed.items()
        if user_id in joined
        # Stripe counts whole seconds; an account made after the hold is another shopper.
        and joined[user_id].replace(microsecond=0) <= by_hold[reference].created_at
    }


def _record_unrecorded(
    session_factory: sessionmaker[Session], hold: UncapturedAuthorization, user_id: int
) -> int:
    """One row for the hold, keyed by its intent: a second sweeper recording the same hold meets
    the unique key and records nothing."""
    reference = hold.provider_reference
    row = CardHoldInDoubt(
        user_id=user_id,
        validation_token=hold.metadata[CHECKOUT_TOKEN_METADATA][:64],
        idempotency_key=intent_row_key(reference),
        intent_id=hold.provider_reference,
        amount_minor=hold.amount_minor,
        currency=hold.currency,
        # When the hold was made: it is resolved at once, and listed with its age.
        created_at=hold.created_at,
        last_error="Stripe holds it uncaptured and no order or record of checkout has it",
    )
    try:
        with session_factory() as session, session.begin():
            session.add(row)
    except sa.exc.IntegrityError:
        return 0
    logger.warning("card hold %s was never recorded: now a hold in doubt", reference)
    return 1


def intent_row_key(reference: str, *, prefix: str = UNRECORDED_KEY_PREFIX) -> str:
    """The row's key: the intent's id (Stripe's are about 30 characters), or its digest when
    it would not fit the column whole (a cut id could name two intents)."""
    key = f"{prefix}{reference}"
    if len(key) <= IDEMPOTENCY_KEY_LIMIT:
        return key
    return f"{prefix}{hashlib.sha256(reference.encode()).hexdigest()}"

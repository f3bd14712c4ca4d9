"""An operator's answer for a card hold the sweeper put before them (commerce.card_holds): Stripe
answered the authorization with its own failure, which it replays to every resubmit under the
same key, and its search never showed a PaymentIntent for it, so OneCart cannot tell on its own
whether money is held. The operator looks in Stripe (the request log, by the idempotency key
/admin/attention shows) and records one of the two things they can establish there:

- Stripe holds no payment under the key: the row is resolved, with who said so;
- Stripe holds PaymentIntent `pi_…` under it: the intent is recorded on the row, and the sweeper,
  which retrieves it at its next pass, releases it unless an order uses it, exactly as for any
  hold (the web request moves no money). A wrong id is answered by Stripe ("no such intent", or
  another checkout's intent, left alone) and sends the row back to the operator with that
  answer, the id taken off: it says nothing of what the key holds (commerce.card_holds).

Each answer is a compare-and-set on the row as the operator's page showed it (open, flagged,
last submitted at the time the page read): a shopper's submit of the same form since then may
have reached Stripe after what the operator saw, so it is refused and the page shown again. It
is taken under the shopper's checkout lock, as the sweeper's resolution is, so no submit of the
form records an order with the hold meanwhile.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.card_holds import ERROR_TEXT_LIMIT, SWEEPER_LOCK_WAIT_S
from commerce.checkout_lock import CheckoutBusy, checkout_lock
from commerce.exactly_once_models import CardHoldInDoubt
from commerce.flag_resolution import OPERATOR_NAME_LIMIT
from commerce.models import utc_now

# Stripe's PaymentIntent ids: "pi_" and letters and digits (the column holds 255 characters).
_INTENT_ID = re.compile(r"pi_[A-Za-z0-9]{1,200}")


class HoldFinding(StrEnum):
    """What an operator established in Stripe about the key of a flagged hold."""

    NO_HOLD = "no_hold"
    INTENT = "intent"


@dataclass(frozen=True, slots=True)
class HoldAnswer:
    """Whether the operator's answer was recorded, and what to tell them."""

    done: bool
    message: str


def resolve_flagged_hold(
    session_factory: sessionmaker[Session],
    row_id: int,
    finding: HoldFinding,
    *,
    operator: str,
    seen: datetime,
    intent_id: str = "",
) -> HoldAnswer:
    """Record what `operator` found in Stripe for the flagged hold `row_id`, as their page showed
    it (`seen`: the row's `created_at`, its latest submit). LookupError for no such row."""
    with session_factory() as session:
        row = session.get(CardHoldInDoubt, row_id)
        if row is None:
            raise LookupError(row_id)
        user_id, key = row.user_id, row.idempotency_key
    intent_id = intent_id.strip()
    if finding == HoldFinding.INTENT and not _INTENT_ID.fullmatch(intent_id):
        return HoldAnswer(
            False, "Enter the PaymentIntent's id as Stripe shows it (pi_ then letters and digits)."
        )
    try:
        with checkout_lock(session_factory, user_id, wait_s=SWEEPER_LOCK_WAIT_S):
            return _record(session_factory, row_id, finding, operator, seen, intent_id, key)
    except CheckoutBusy:
        return HoldAnswer(
            False, "The shopper is checking out right now: nothing was changed; try again shortly."
        )


def _record(
    session_factory: sessionmaker[Session],
    row_id: int,
    finding: HoldFinding,
    operator: str,
    seen: datetime,
    intent_id: str,
    key: str,
) -> HoldAnswer:
    name = operator[:OPERATOR_NAME_LIMIT]
    now = utc_now()
    if finding == HoldFinding.NO_HOLD:
        values: dict[str, object] = {
            "resolved_at": now,
            "resolution": f"{name} found no payment in Stripe under this key"[:200],
        }
        said = f"The card hold under {key} is resolved: no payment held."
    else:
        values = {
            "intent_id": intent_id,
            "last_error": (
                f"{name} found {intent_id} in Stripe under this key: the sweeper releases it at "
                "its next pass unless an order uses it."
            )[:ERROR_TEXT_LIMIT],
        }
        said = f"{intent_id} is recorded; the sweeper releases it unless an order uses it."
    with session_factory() as session, session.begin():
        changed = session.execute(
            sa.update(CardHoldInDoubt)
            .where(
                CardHoldInDoubt.id == row_id,
                CardHoldInDoubt.resolved_at.is_(None),
                CardHoldInDoubt.flagged_at.is_not(None),
                CardHoldInDoubt.created_at == seen,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if changed:
            return HoldAnswer(True, said)
        row = session.get(CardHoldInDoubt, row_id)
        assert row is not None
        if row.resolved_at is not None:
            return HoldAnswer(False, "That card hold was resolved already: nothing was changed.")
        if row.flagged_at is None:
            return HoldAnswer(
                False, "That card hold is not before an operator: the sweeper resolves it."
            )
    return HoldAnswer(
        False,
        "The shopper sent the form again since this page was loaded, and that submit may have "
        "reached Stripe after what you saw: nothing was changed; look in Stripe again.",
    )

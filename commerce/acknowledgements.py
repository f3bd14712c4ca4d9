"""An operator's acknowledgement of an item on the attention list (/admin/attention) that needs
no action in OneCart: a dispute answered in Stripe, a card hold naming no account released there.
The item leaves the list; the record keeps who acknowledged it and when, and the order's and the
wallet's pages keep showing it. Each is set once (compare-and-set): a second acknowledgement,
from another tab or operator, changes nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.dispute_models import PaymentDispute, UnownedCardHold
from commerce.models import utc_now

OPERATOR_NAME_LIMIT = 120


def acknowledge_dispute(
    session_factory: sessionmaker[Session], dispute_row_id: int, operator: str
) -> bool:
    """Mark the dispute acknowledged by `operator`; False when it already was (or is unknown)."""
    return _acknowledge(session_factory, PaymentDispute, dispute_row_id, operator)


def acknowledge_unowned_hold(
    session_factory: sessionmaker[Session], hold_id: int, operator: str
) -> bool:
    """Mark the unowned card hold acknowledged by `operator`; False when it already was."""
    return _acknowledge(session_factory, UnownedCardHold, hold_id, operator)


def _acknowledge(
    session_factory: sessionmaker[Session],
    model: type[PaymentDispute] | type[UnownedCardHold],
    row_id: int,
    operator: str,
) -> bool:
    with session_factory() as session, session.begin():
        changed = session.execute(
            sa.update(model)
            .where(model.id == row_id, model.acknowledged_at.is_(None))
            .values(acknowledged_at=utc_now(), acknowledged_by=operator[:OPERATOR_NAME_LIMIT])
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    return bool(changed)

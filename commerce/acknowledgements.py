"""An operator's acknowledgement of an item on the attention list (/admin/attention) that needs
no action in OneCart: a dispute answered in Stripe, a card hold naming no account released there.
The item leaves the list; the record keeps who acknowledged it and when, and the order's and the
wallet's pages keep showing it. Each is set once (compare-and-set): a second acknowledgement,
from another tab or operator, changes nothing. Acknowledging an order's dispute also takes that
dispute's reason off the order's flag, in the same transaction, and keeps the order's other
reasons (commerce.flag_resolution).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.dispute_models import PaymentDispute, UnownedCardHold
from commerce.flag_resolution import OPERATOR_NAME_LIMIT, clear_dispute_reason
from commerce.models import utc_now


def acknowledge_dispute(
    session_factory: sessionmaker[Session], dispute_row_id: int, operator: str
) -> bool:
    """Mark the dispute acknowledged by `operator` and take its reason off its order's flag;
    False when it already was acknowledged (or is unknown)."""
    with session_factory() as session, session.begin():
        if not _acknowledge(session, PaymentDispute, dispute_row_id, operator):
            return False
        # The dispute's row is locked by the update above; the order's lock comes second, as
        # when the dispute flagged the order (commerce.disputes).
        dispute = session.get(PaymentDispute, dispute_row_id)
        assert dispute is not None
        if dispute.order_id is not None:
            clear_dispute_reason(session, dispute.order_id, dispute.dispute_id, operator)
    return True


def acknowledge_unowned_hold(
    session_factory: sessionmaker[Session], hold_id: int, operator: str
) -> bool:
    """Mark the unowned card hold acknowledged by `operator`; False when it already was."""
    with session_factory() as session, session.begin():
        return _acknowledge(session, UnownedCardHold, hold_id, operator)


def _acknowledge(
    session: Session,
    model: type[PaymentDispute] | type[UnownedCardHold],
    row_id: int,
    operator: str,
) -> bool:
    changed = session.execute(
        sa.update(model)
        .where(model.id == row_id, model.acknowledged_at.is_(None))
        .values(acknowledged_at=utc_now(), acknowledged_by=operator[:OPERATOR_NAME_LIMIT])
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return bool(changed)

"""Operator actions on sub-orders that need attention (a placement whose outcome stayed unknown on
a marketplace that cannot be asked): record the marketplace's order id once it is confirmed, or
refund the share once the marketplace confirms it holds no order; and, for a placed sub-order
whose cancellation nobody confirmed (an order billed beyond the tolerance that DummyMart cannot
cancel, a cancel that got no answer), record that the marketplace confirmed it cancelled. Used by
the admin area.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from commerce.exactly_once_models import OutboxMessage, OutboxTopic
from commerce.models import utc_now
from commerce.notifications import notify
from commerce.order_models import PLACED_SUB_ORDER_STATUSES, SubOrderStatus
from commerce.order_state import locked_sub_order, refresh_order_status
from commerce.order_timeline import TimelineStep, record_event
from commerce.payments.providers import GatewayProvider, gateway_for_payment
from commerce.settlement import compensate_sub_order, process_refunds, settle_payment


def mark_placed_by_operator(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    marketplace_order_id: str,
    *,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> bool:
    """The operator confirmed with the marketplace that it holds the order: needs_attention →
    placed with the marketplace's id (and, when the shopper asked to cancel meanwhile, the
    cancellation is queued again for it); then the payment is settled."""
    marketplace_order_id = marketplace_order_id.strip()[:120]
    if not marketplace_order_id:
        raise ValueError("Enter the marketplace's order id.")
    with session_factory() as session, session.begin():
        sub_order = locked_sub_order(session, sub_order_id)
        if sub_order.status != SubOrderStatus.NEEDS_ATTENTION:
            return False
        order_id = sub_order.order_id
        sub_order.status = SubOrderStatus.PLACED
        sub_order.marketplace_order_id = marketplace_order_id
        sub_order.placed_at = utc_now()
        sub_order.last_error = "marked placed by an operator"
        notify(
            session,
            sub_order.order,
            "sub_order_placed",
            f"{sub_order.marketplace.name} confirmed your order "
            f"(their order {sub_order.display_number}).",
            sub_order_id=sub_order.id,
        )
        if sub_order.order.cancel_requested_at is not None:
            # The shopper asked to cancel while this part's outcome was unknown, and the
            # cancellation job could only report it in flight: ask again now that there is an
            # order to cancel (as placement does for a placement found after a cancel).
            session.add(OutboxMessage(topic=OutboxTopic.CANCEL_ORDER, order_id=order_id))
        refresh_order_status(session, sub_order.order)
    settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return True


def refund_by_operator(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    *,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> bool:
    """The operator confirmed the marketplace holds no order: needs_attention → failed, its
    share refunded."""
    with session_factory() as session, session.begin():
        sub_order = locked_sub_order(session, sub_order_id)
        if sub_order.status != SubOrderStatus.NEEDS_ATTENTION:
            return False
        compensate_sub_order(
            session,
            sub_order,
            status=SubOrderStatus.FAILED,
            reason=f"{sub_order.marketplace.name} holds no order (confirmed by our team).",
        )
        order_id = sub_order.order_id
    process_refunds(session_factory, order_id, gateway_for=gateway_for)
    settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return True


def cancelled_by_operator(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    *,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> bool:
    """The operator confirmed with the marketplace that it cancelled this placed sub-order (its
    cancel was refused or never answered here, so OneCart could not know): placed → cancelled,
    what is left of its share refunded, and the units it held given back where OneCart holds
    the stock (commerce.offer_stock). Until then they stay held: an order whose cancel is
    unknown may still ship. Exactly once: the status is checked under the order's lock, and the
    units move only through `stock_held`'s compare-and-set, so a second confirmation, or one
    racing a cancellation the marketplace confirmed meanwhile, gives nothing back twice. False
    when the sub-order is not placed (pending, being placed, or already ended)."""
    with session_factory() as session, session.begin():
        sub_order = locked_sub_order(session, sub_order_id)
        if sub_order.status not in PLACED_SUB_ORDER_STATUSES:
            return False
        reason = f"{sub_order.marketplace.name} cancelled it (confirmed by our team)."
        compensate_sub_order(session, sub_order, status=SubOrderStatus.CANCELLED, reason=reason)
        record_event(session, sub_order, TimelineStep.CANCELLED, detail=reason)
        order_id = sub_order.order_id
    process_refunds(session_factory, order_id, gateway_for=gateway_for)
    settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return True

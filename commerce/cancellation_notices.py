"""What the shopper is told of their cancellation (commerce.cancellation carries it out): the
sentence of the parts it cancelled and where their money goes, the refusal notice of parts that
go ahead, and the answer the order page flashes right after the shopper asked.

Kept beside commerce.cancellation, which imports it (and re-exports its names): it reads the
order's state and tells the shopper, and changes nothing of the order itself.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from adapters.base import Capability
from commerce.marketplace_access import marketplace_can
from commerce.notifications import notify
from commerce.order_models import (
    PLACED_SUB_ORDER_STATUSES,
    UNSETTLED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    OrderStatus,
    Refund,
    SubOrderStatus,
)
from commerce.order_state import tell_order_status
from commerce.refund_progress import all_released
from commerce.refunds import refund_said
from commerce.sub_order_compensation import refund_key
from onecart.money import format_money

# The shopper's notice that a cancellation was refused for a part, so it goes ahead: one for the
# order from the cancellation job, one per part from the abandoned-cancellation sweep.
CANCELLATION_REFUSED = "cancellation_refused"
# Why a part the shopper cancelled before its placement claimed it was stopped (its last_error).
STOPPED_BEFORE_PLACEMENT = "Cancelled by you before it was placed."


def refusal_notice(names: list[str]) -> str:
    """The shopper's notice that the marketplaces `names` refused to cancel their parts, so
    they go ahead: one named as one ("DummyMart could not cancel its part …, so it goes
    ahead."), as the abandoned-cancellation sweep words it, several as several."""
    if len(names) == 1:
        return f"{names[0]} could not cancel its part of your order, so it goes ahead."
    listed = f"{', '.join(names[:-1])} and {names[-1]}"
    return f"{listed} could not cancel their parts of your order, so they go ahead."


def tell_parts_cancelled(
    session: Session, order: Order, sub_order_ids: list[int], *, lead: bool = False
) -> None:
    """Tell the shopper, in one sentence, that the shopper's cancellation went through for these
    parts (cancelled with `tell_shopper` False), and where their money goes; the order's own
    sentence alone when that ended the whole order. One cancellation is one message: a sentence
    per part, then the order's, said the same cancellation and refund two or three times."""
    session.refresh(order, attribute_names=["sub_orders", "status"])
    if order.status == OrderStatus.CANCELLED:
        tell_order_status(session, order)
        return
    parts = [sub for sub in order.sub_orders if sub.id in sub_order_ids]
    if not parts:
        return
    refund_for = {
        refund.idempotency_key: refund
        for refund in session.scalars(
            sa.select(Refund).where(Refund.idempotency_key.in_([refund_key(p) for p in parts]))
        )
    }
    markets = " and ".join(sorted({sub.marketplace.name for sub in parts}))
    notify(
        session,
        order,
        "sub_order_cancelled",
        f"Your {markets} items were cancelled; {_where_their_money_goes(parts, refund_for)}.",
        sub_order_id=parts[0].id if len(parts) == 1 else None,
        lead=lead,
    )


def _where_their_money_goes(parts: list[MarketplaceOrder], refund_for: dict[str, Refund]) -> str:
    """Where the cancelled parts' money goes, true for each part's: their sum when every share
    goes back the same way, else each way's sum and parts. Shares can go back two ways in one
    cancellation: a part cancelled before the capture is released from the hold (never charged),
    one whose marketplace confirmed on a retry after another worker captured is refunded."""
    ways: dict[str, list[tuple[MarketplaceOrder, Refund | None]]] = {}
    for part in parts:
        refund = refund_for.get(refund_key(part))
        # Grouped by the words refund_said has for it, so each group's sentence is its own.
        ways.setdefault(refund_said(refund, ""), []).append((part, refund))
    currency = parts[0].charge_currency
    said = []
    for shares in ways.values():
        amount = format_money(
            sum(refund.amount_minor for _, refund in shares if refund is not None), currency
        )
        if len(ways) == 1:
            return refund_said(shares[0][1], f"their {amount}")
        names = " and ".join(sorted({part.marketplace.name for part, _ in shares}))
        said.append((names, refund_said(shares[0][1], f"the {amount} for {names}")))
    return ", and ".join(money for _, money in sorted(said))


def cancellation_answer(order: Order) -> str:
    """What the shopper's cancellation really did to each part, read from the state the
    compare-and-set left (a placement may have claimed a part after the confirmation page was
    shown): parts stopped before they were placed, and parts their marketplace is asked to
    cancel."""
    stopped_parts = [
        sub
        for sub in order.charged_sub_orders
        if sub.status == SubOrderStatus.CANCELLED and sub.last_error == STOPPED_BEFORE_PLACEMENT
    ]
    stopped = sorted(sub.marketplace.name for sub in stopped_parts)
    placed = [sub for sub in order.charged_sub_orders if sub.status in PLACED_SUB_ORDER_STATUSES]
    asked = sorted(
        sub.marketplace.name
        for sub in placed
        if marketplace_can(sub.marketplace, Capability.CANCEL)
    )
    going_ahead = sorted(
        sub.marketplace.name
        for sub in placed
        if not marketplace_can(sub.marketplace, Capability.CANCEL)
    )
    placing = sorted(
        sub.marketplace.name
        for sub in order.charged_sub_orders
        if sub.status in UNSETTLED_SUB_ORDER_STATUSES
    )
    sentences = []
    if stopped:
        # Said from their shares' own refunds, not from where the card payment stands now: a
        # worker may have settled it (voided the hold, captured the other parts) since they
        # were stopped. Released from a card hold (left out of any capture), never charged.
        stopped_ids = {sub.id for sub in stopped_parts}
        refunds = [
            refund
            for refund in (order.payment.refunds if order.payment is not None else [])
            if refund.sub_order_id in stopped_ids
        ]
        money_back = "not charged to your card" if all_released(refunds) else "refunded in full"
        sentences.append(
            f"Your {' and '.join(stopped)} items had not been placed yet: stopped, and "
            f"{money_back}."
        )
    if asked:
        sentences.append(
            f"{' and '.join(asked)} already had your order: we are asking "
            f"{'it' if len(asked) == 1 else 'them'} to cancel. Each answer and your refund "
            "appear below as they come in."
        )
    if going_ahead:
        sentences.append(
            f"{' and '.join(going_ahead)} already had your order and does not accept "
            "cancellations: that part goes ahead."
        )
    if placing:
        sentences.append(
            f"Your {' and '.join(placing)} items were being placed as you cancelled: we ask to "
            "cancel them as soon as the marketplace has the order."
        )
    return " ".join(sentences) or "Cancellation requested."

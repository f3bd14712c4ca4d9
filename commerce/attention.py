"""Operator actions on sub-orders that need attention (a placement whose outcome stayed unknown on
a marketplace that cannot be asked): record the marketplace's order id once it is confirmed, or
refund the share once the marketplace confirms it holds no order; and, for a placed sub-order
whose cancellation nobody confirmed (an order billed beyond the tolerance that DummyMart cannot
cancel, a cancel that got no answer), record that the marketplace confirmed it cancelled. Used by
the admin area.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from sqlalchemy.orm import Session, sessionmaker

from commerce.exactly_once_models import OutboxMessage, OutboxTopic
from commerce.models import utc_now
from commerce.notifications import notify
from commerce.operator_actions import record_operator_action
from commerce.order_models import (
    MarketplaceOrder,
    Refund,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.order_state import locked_sub_order, refresh_order_status
from commerce.order_timeline import TimelineStep, record_event
from commerce.payments.providers import GatewayProvider, gateway_for_payment
from commerce.settlement import process_refunds, settle_payment
from commerce.sub_order_compensation import compensate_sub_order, refund_kind_for
from onecart.money import format_money


def mark_placed_by_operator(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    marketplace_order_id: str,
    *,
    operator: str,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> bool:
    """The operator confirmed with the marketplace that it holds the order: needs_attention →
    placed with the marketplace's id (and, when the shopper asked to cancel meanwhile, the
    cancellation is queued again for it); then the payment is settled. `operator` (the admin's
    username) is recorded with it (commerce.operator_actions)."""
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
        record_operator_action(
            session,
            operator=operator,
            action="sub_order_marked_placed",
            subject=_part_name(sub_order),
            detail=f"{sub_order.marketplace.name} holds it as its order {marketplace_order_id}; "
            f"the payment of {format_money(sub_order.amount_minor, sub_order.currency)} for it "
            "is settled",
            order_id=order_id,
        )
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


# Where an operator's refund of a part sends its share, by the refund it records (the payment's
# method and whether the card was captured yet): the action's label, the recorded reason (the
# shopper reads it as the part's "Why": a card refund is only asked for when it is recorded, so
# it says where the money goes, not that it arrived), and the confirmation's words.
OPERATOR_REFUND_LABELS = {
    RefundKind.WALLET_CREDIT: "Refund to the wallet",
    RefundKind.CARD_REFUND: "Refund to the card",
    RefundKind.RELEASE: "Release the card hold",
}
_RECORDED = {
    RefundKind.WALLET_CREDIT: "refunded to the OneCart wallet",
    RefundKind.CARD_REFUND: "going back to the card",
    RefundKind.RELEASE: "left out of the card payment (nothing of it is captured)",
}
_CONFIRMED = {
    RefundKind.WALLET_CREDIT: "is refunded to the shopper's OneCart wallet",
    RefundKind.CARD_REFUND: "is refunded on the shopper's card",
    RefundKind.RELEASE: "is left out of the card payment (the hold is released, nothing was "
    "captured)",
}


def operator_refund_label(sub_order: MarketplaceOrder) -> str:
    """The attention page's refund button for this part: where its share would go now."""
    payment = sub_order.order.payment
    if payment is None:
        return "Fail it (nothing was paid)"
    return OPERATOR_REFUND_LABELS[refund_kind_for(payment)]


@dataclass(frozen=True, slots=True)
class OperatorRefund:
    """What an operator's refund of a part did: the refund recorded and where its state stands
    once the card provider was asked (`refund` None: the order had no payment)."""

    market: str
    refund: Refund | None

    def said(self) -> str:
        """The operator's confirmation: "Fake Store holds no order: its share of $25.00 is
        refunded to the shopper's OneCart wallet." (or on the card, or left out of it)."""
        refund = self.refund
        if refund is None:
            return f"{self.market} holds no order: it failed; nothing had been paid for it."
        share = format_money(refund.amount_minor, refund.currency)
        where = _CONFIRMED[refund.kind]
        if refund.status == RefundStatus.FAILED:
            return (
                f"{self.market} holds no order, but the card refund of its share of {share} was "
                "refused: the order is flagged below."
            )
        if refund.status != RefundStatus.SUCCEEDED and refund.kind == RefundKind.CARD_REFUND:
            where = "is being refunded on the shopper's card (Stripe has not confirmed it yet)"
        elif refund.status != RefundStatus.SUCCEEDED and refund.kind == RefundKind.RELEASE:
            # Released with the rest of the hold by the capture or the cancel, not before.
            where = (
                "is left out of the card payment (nothing of it is captured; its hold is "
                "released when the payment is settled)"
            )
        return f"{self.market} holds no order: its share of {share} {where}."


def refund_by_operator(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    *,
    operator: str,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> OperatorRefund | None:
    """The operator confirmed the marketplace holds no order: needs_attention → failed, its
    share refunded where the payment came from (the wallet, the card, or left out of a card
    payment not captured yet), which the recorded reason and the wallet's ledger line say.
    Recorded with `operator` (commerce.operator_actions). None when it no longer needs
    attention."""
    with session_factory() as session, session.begin():
        sub_order = locked_sub_order(session, sub_order_id)
        if sub_order.status != SubOrderStatus.NEEDS_ATTENTION:
            return None
        market = sub_order.marketplace.name
        payment = sub_order.order.payment
        reason = f"{market} holds no order (confirmed by our team)"
        if payment is not None:
            reason += f"; its share is {_RECORDED[refund_kind_for(payment)]}"
        refund = compensate_sub_order(
            session,
            sub_order,
            status=SubOrderStatus.FAILED,
            reason=f"{reason}.",
            wallet_description=f"Refund: {reason}.",
        )
        order_id = sub_order.order_id
        refund_id = refund.id if refund is not None else None
        record_operator_action(
            session,
            operator=operator,
            action="sub_order_refunded",
            subject=_part_name(sub_order),
            detail=f"{reason}: {_refund_recorded(refund)}",
            order_id=order_id,
        )
    process_refunds(session_factory, order_id, gateway_for=gateway_for)
    settle_payment(session_factory, order_id, gateway_for=gateway_for)
    with session_factory() as session:
        # As it stands once the provider was asked (a card refund may have been made already).
        recorded = session.get(Refund, refund_id) if refund_id is not None else None
        if recorded is not None:
            session.expunge(recorded)
    return OperatorRefund(market=market, refund=recorded)


# The parts an operator may record cancelled by their marketplace: placed and not delivered.
# Delivered ends fulfilment (as tracking has it): money a marketplace gives back afterwards is a
# refund it made, passed on for its amount (commerce.marketplace_refunds), and the units are
# gone, so they are never put up for sale again nor the whole share refunded on a click.
OPERATOR_CANCELLABLE_STATUSES = frozenset(
    {SubOrderStatus.PLACED, SubOrderStatus.PROCESSING, SubOrderStatus.SHIPPED}
)


def cancel_under_way(sub_order: MarketplaceOrder) -> bool:
    """Whether the part is being cancelled on its marketplace this moment: placement keeps its
    claim on an order billed beyond the tolerance until the cancel has an answer, renewing the
    lease while it waits (commerce.placement_outcomes). A claim whose lease ran out belongs to
    a worker that died; the sweeper finishes that cancel, and the operator may record it."""
    if sub_order.claim_token is None:
        return False
    expires = sub_order.claim_expires_at
    if expires is None:
        return True
    if expires.tzinfo is None:  # SQLite hands back naive UTC
        expires = expires.replace(tzinfo=UTC)
    return expires > utc_now()


def cancelled_by_operator(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    *,
    operator: str,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> bool:
    """The operator confirmed with the marketplace that it cancelled this placed sub-order (its
    cancel was refused or never answered here, so OneCart could not know): placed → cancelled,
    what is left of its share refunded, and the units it held given back where OneCart holds
    the stock (commerce.offer_stock). Until then they stay held: an order whose cancel is
    unknown may still ship. Exactly once: the status is checked under the order's lock, and the
    units move only through `stock_held`'s compare-and-set, so a second confirmation, or one
    racing a cancellation the marketplace confirmed meanwhile, gives nothing back twice. False
    when the sub-order is not placed (pending, being placed, or already ended) or delivered
    (`OPERATOR_CANCELLABLE_STATUSES`), and while OneCart's own cancel of it waits for the
    marketplace's answer (`cancel_under_way`: the operator's word does not race the
    marketplace's; the answer, or the flag it raises, comes within minutes). Recorded with
    `operator` (commerce.operator_actions)."""
    with session_factory() as session, session.begin():
        sub_order = locked_sub_order(session, sub_order_id)
        if sub_order.status not in OPERATOR_CANCELLABLE_STATUSES or cancel_under_way(sub_order):
            return False
        reason = f"{sub_order.marketplace.name} cancelled it (confirmed by our team)."
        refund = compensate_sub_order(
            session, sub_order, status=SubOrderStatus.CANCELLED, reason=reason
        )
        record_event(session, sub_order, TimelineStep.CANCELLED, detail=reason)
        order_id = sub_order.order_id
        record_operator_action(
            session,
            operator=operator,
            action="sub_order_recorded_cancelled",
            subject=_part_name(sub_order),
            detail=f"{reason} {_refund_recorded(refund)}",
            order_id=order_id,
        )
    process_refunds(session_factory, order_id, gateway_for=gateway_for)
    settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return True


def _part_name(sub_order: MarketplaceOrder) -> str:
    """A part as the attention page names it: "OC-…: DummyMart"."""
    return f"{sub_order.order.number}: {sub_order.marketplace.name}"


_REFUND_KIND_WORDS = {
    RefundKind.WALLET_CREDIT: "wallet credit",
    RefundKind.CARD_REFUND: "card refund",
    RefundKind.RELEASE: "release of the card hold",
}


def _refund_recorded(refund: Refund | None) -> str:
    """What an operator's action recorded of the shopper's money, for the action's record."""
    if refund is None:
        return "nothing was paid for it, so no refund is recorded"
    return (
        f"a {_REFUND_KIND_WORDS[refund.kind]} of "
        f"{format_money(refund.amount_minor, refund.currency)} is recorded"
    )

"""Recording what a placement attempt learnt, under the order's lock and only while the attempt
still holds its claim: placed (with what the marketplace accepted verified against what was
asked), failed or cancelled before placing (the share refunded), or needing an operator.

- **placed**: what the marketplace accepted (lines, quantities, prices or total where its API
  returns them) is checked against what was asked (commerce.acceptance). Missing or short lines
  are a partial placement and a lower bill refunds the difference; a higher bill is absorbed up
  to `overcharge_tolerance_bps`, beyond that the order is cancelled on the marketplace and the
  share refunded. Shipping and tax the marketplace adds are paid by OneCart up to the
  marketplace's allowance (recorded on the sub-order as absorbed), beyond it the order cancels. The payment is settled once the last sub-order in flight is recorded.
- **not placed** (refused, or cancelled before it was sent): the share is refunded.
- **found cancelled** (the order the marketplace answers with is already cancelled, failed or
  refunded there): nothing will ship, so the share is refunded rather than captured.
- **needs attention**: the outcome stayed unknown on a marketplace that cannot be asked; nothing
  is refunded while it may hold the order.

Calls to marketplaces and payment providers never run inside an open DB transaction.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from adapters.base import (
    NO_SHIPPING_OR_TAX,
    MarketplaceAdapter,
    PlacedOrder,
    ShippingTaxAllowance,
)
from adapters.base import OrderStatus as MarketplaceStatus
from commerce.acceptance import DEFAULT_OVERCHARGE_TOLERANCE_BPS, verify_placement
from commerce.cancellation import CancelOutcome, cancel_on_marketplace
from commerce.exactly_once_models import OutboxMessage, OutboxTopic
from commerce.lease_renewal import renewed_while_held
from commerce.marketplace_access import AdapterProvider
from commerce.models import utc_now
from commerce.notifications import notify
from commerce.offer_stock import release_unaccepted_stock
from commerce.order_locks import lock_order
from commerce.order_models import (
    PLACED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    SubOrderStatus,
)
from commerce.order_state import (
    ERROR_TEXT_LIMIT,
    flag_order,
    locked_sub_order,
    placed_status_for,
    refresh_order_status,
    sub_order_status_for,
)
from commerce.order_timeline import STEP_OF_PLACED_STATUS, TimelineStep, record_event
from commerce.payments.providers import GatewayProvider, gateway_for_payment
from commerce.placement_claims import (
    Claim,
    PlacementResult,
    holds_claim,
    renew_claim,
    take_over_kept_claim,
)
from commerce.settlement import process_refunds, settle_payment
from commerce.sub_order_compensation import adjust_share, compensate_sub_order

logger = logging.getLogger(__name__)


def needs_attention(
    session_factory: sessionmaker[Session], sub_order_id: int, claim: Claim, reason: str
) -> PlacementResult:
    with session_factory() as session, session.begin():
        sub_order = locked_sub_order(session, sub_order_id)
        if not holds_claim(sub_order, claim):
            return PlacementResult.NOT_CLAIMED
        sub_order.status = SubOrderStatus.NEEDS_ATTENTION
        sub_order.attention_since = utc_now()
        # No longer placing or reconciling, for good: how long it waits is `attention_since`.
        sub_order.unresolved_since = None
        sub_order.claim_token = None
        sub_order.claim_expires_at = None
        sub_order.last_error = reason[:ERROR_TEXT_LIMIT]
        sub_order.updated_at = utc_now()
        notify(
            session,
            sub_order.order,
            "sub_order_needs_attention",
            f"We have not yet had a clear answer from {sub_order.marketplace.name} about your "
            "items. Our team is checking with them: you will either get their order number or "
            "a refund of their share; nothing is refunded while they may still ship it.",
            sub_order_id=sub_order.id,
        )
        refresh_order_status(session, sub_order.order)
    return PlacementResult.NEEDS_ATTENTION


def finish_without_placing(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    claim: Claim,
    status: SubOrderStatus,
    reason: str,
    *,
    gateway_for: GatewayProvider,
) -> bool:
    """placing → failed/cancelled with its share refunded (the marketplace holds no order)."""
    with session_factory() as session, session.begin():
        sub_order = locked_sub_order(session, sub_order_id)
        if not holds_claim(sub_order, claim):
            return False
        compensate_sub_order(session, sub_order, status=status, reason=reason)
        order_id = sub_order.order_id
    process_refunds(session_factory, order_id, gateway_for=gateway_for)
    settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return True


def record_placement(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    claim: Claim,
    placed: PlacedOrder,
    *,
    adapter: MarketplaceAdapter | None = None,
    gateway_for: GatewayProvider = gateway_for_payment,
    overcharge_tolerance_bps: int = DEFAULT_OVERCHARGE_TOLERANCE_BPS,
) -> PlacementResult | None:
    """placing → placed with the marketplace's order id, if this attempt still holds the claim
    (its token; a lease that ran out counts as long as nobody else claimed the sub-order). What
    was accepted is verified and the difference refunded; an order billed beyond the tolerance
    or accepting nothing is cancelled on the marketplace. Then the payment is settled if this
    was the last sub-order in flight. None when it was recorded as a plain placement."""
    if sub_order_status_for(placed.status) == SubOrderStatus.CANCELLED:
        return _found_cancelled(session_factory, sub_order_id, claim, placed, gateway_for)
    status = placed_status_for(placed.status)
    now = utc_now()
    with session_factory() as session, session.begin():
        sub_order = locked_sub_order(session, sub_order_id)
        items = list(sub_order.items)
        verdict = verify_placement(
            items,
            sub_order.charge_minor,
            sub_order.currency,
            placed,
            overcharge_tolerance_bps=overcharge_tolerance_bps,
            shipping_tax_allowance=shipping_tax_allowance_of(adapter),
        )
        recorded = session.execute(
            sa.update(MarketplaceOrder)
            .where(
                MarketplaceOrder.id == sub_order_id,
                MarketplaceOrder.status == SubOrderStatus.PLACING,
                MarketplaceOrder.claim_token == claim.token,
            )
            .values(
                status=status,
                marketplace_order_id=placed.marketplace_order_id,
                marketplace_order_number=(placed.display_number or "")[:60] or None,
                raw_status=placed.status.value,
                placed_at=now,
                # The outcome is known: nothing unresolved to flag or show any more.
                unresolved_since=None,
                last_error=None,
                accepted_amount_minor=verdict.accepted_amount_minor,
                absorbed_shipping_minor=verdict.absorbed_shipping_minor,
                absorbed_tax_minor=verdict.absorbed_tax_minor,
                updated_at=now,
                # A placement to be cancelled keeps its claim until the cancel has an answer:
                # settlement treats a placed sub-order under a live claim as still in flight,
                # so a sibling's capture cannot take this share meanwhile.
                **({} if verdict.cancel else {"claim_token": None, "claim_expires_at": None}),
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not recorded:
            logger.warning(
                "sub-order %s: claim lost before placement %s was recorded (another attempt "
                "owns it and reconciles by reference)",
                sub_order_id,
                placed.marketplace_order_id,
            )
            return PlacementResult.NOT_CLAIMED
        session.refresh(sub_order)
        if verdict.accepted_quantities:
            for item, accepted in zip(items, verdict.accepted_quantities, strict=True):
                # What the shopper gets of each line, for the order pages ("1 of 3 × …"):
                # recorded with the placement, under the claim that recorded it.
                item.accepted_quantity = accepted
            # The units the marketplace left out will never ship, whether or not the order is
            # to be cancelled and the cancel succeeds: for sale again now, where OneCart holds
            # the stock (commerce.offer_stock). The accepted ones stay held until the sub-order
            # ends (an order billed beyond the tolerance may still ship them).
            release_unaccepted_stock(
                session,
                sub_order,
                {
                    item.id: accepted
                    for item, accepted in zip(items, verdict.accepted_quantities, strict=True)
                },
            )
        reached = STEP_OF_PLACED_STATUS.get(status)
        if reached is not None:
            # A marketplace that answers a new order with "processing" (WooCommerce) moved it
            # there now: recorded like any tracked step, so the timeline keeps it once the
            # order moves on (tracking records only the steps it sees the order move to).
            record_event(session, sub_order, reached, occurred_at=now)
        order = sub_order.order
        market = sub_order.marketplace.name
        notify(
            session,
            order,
            "sub_order_placed",
            f"{market} accepted your order (their order {sub_order.display_number}).",
            sub_order_id=sub_order.id,
        )
        if not verdict.cancel and verdict.kept_charge_minor < sub_order.charge_minor:
            # Said as it happened: items left out, or every item accepted and billed for less
            # ("ShopWave billed $71.98, not the $79.98 paid."), not the one for the other.
            left_out = not verdict.accepted_quantities or any(
                accepted < item.quantity
                for item, accepted in zip(items, verdict.accepted_quantities, strict=True)
            )
            notes = "; ".join(verdict.notes)
            if left_out:
                # The notification names the items after the news, not in it: its first
                # sentence is the e-mail's subject (sub_order_compensation.adjustment_news).
                # Part of the refund may be a lower bill for the items it did accept: the news
                # says so too (the notes, the reason's, name it after the items').
                billed_less = " and billed less for the rest" if verdict.billed_less else ""
                adjust_share(
                    session,
                    sub_order,
                    verdict.kept_charge_minor,
                    reason=f"{market} did not accept all of your items: {notes}.",
                    news=f"{market} did not accept all of your items{billed_less}.",
                    details=f"It {notes}.",
                )
            else:
                adjust_share(
                    session, sub_order, verdict.kept_charge_minor, reason=f"{market} {notes}."
                )
        elif verdict.notes:
            sub_order.last_error = ("; ".join(verdict.notes))[:ERROR_TEXT_LIMIT]
        if order.cancel_requested_at is not None and not verdict.cancel:
            # The shopper asked to cancel while this part was being placed, and the cancellation
            # job may have given up on it already (it reports parts in flight and retries only a
            # few times): ask for the cancellation again now that there is an order to cancel.
            session.add(OutboxMessage(topic=OutboxTopic.CANCEL_ORDER, order_id=order.id))
        refresh_order_status(session, order)
        order_id = order.id
    if verdict.cancel:
        outcome = _cancel_kept(
            session_factory,
            sub_order_id,
            claim,
            order_id,
            adapter,
            # Said to the shopper (the order page's "Why", the order's notification): we
            # cancelled it, not the marketplace.
            reason=f"we cancelled it: {market} {'; '.join(verdict.notes)}",
            gateway_for=gateway_for,
        )
        return PlacementResult.CANCELLED if outcome == CancelOutcome.CANCELLED else None
    process_refunds(session_factory, order_id, gateway_for=gateway_for)
    settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return None


def _cancel_kept(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    claim: Claim,
    order_id: int,
    adapter: MarketplaceAdapter | None,
    *,
    reason: str,
    gateway_for: GatewayProvider,
) -> CancelOutcome:
    """Cancel a placed sub-order held under `claim` (billed beyond the tolerance), drop the
    claim, and settle: refunded once the marketplace confirms, else an operator is asked.

    A cancel without a clear answer is acted on only while this worker still holds the claim
    (compare-and-set, with the flag in the same transaction): a worker taken for dead whose
    answer comes late may find the part cancelled by an operator (who may have cleared the flag
    too) or its cancel taken over by the sweeper, and then leaves everything to them."""
    outcome = (
        cancel_on_marketplace(
            session_factory, sub_order_id, adapter, reason=reason, gateway_for=gateway_for
        )
        if adapter is not None
        else CancelOutcome.UNKNOWN
    )
    if outcome == CancelOutcome.CANCELLED:
        release_kept_claim(session_factory, sub_order_id, claim)
    elif not _give_up_kept_cancel(session_factory, sub_order_id, claim, reason, outcome):
        return outcome
    process_refunds(session_factory, order_id, gateway_for=gateway_for)
    settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return outcome


def _give_up_kept_cancel(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    claim: Claim,
    reason: str,
    outcome: CancelOutcome,
) -> bool:
    """The marketplace did not confirm the cancel: the claim is dropped, the share of a
    placement that accepted nothing refunded, and the operator asked. False, changing nothing,
    when the claim is no longer this worker's."""
    with session_factory() as session, session.begin():
        sub_order = locked_sub_order(session, sub_order_id)
        if not _released(session, sub_order_id, claim):
            logger.warning(
                "sub-order %s: cancel answered %s after its claim was lost; left to its owner",
                sub_order_id,
                outcome.value,
            )
            return False
        refunded = _refund_nothing_accepted(session, sub_order, reason)
        flag_order(
            sub_order.order,
            f"sub-order {sub_order_id}: {reason}; cancelling it on the marketplace: {outcome.value}"
            + (
                "; its share was refunded (nothing of it ships)"
                if refunded
                # Its units stay held and its share is captured while it may ship.
                else "; if the marketplace confirms to you that it is cancelled, record that "
                "here (its share is refunded, its units given back)"
            ),
        )
    return True


def _refund_nothing_accepted(session: Session, sub_order: MarketplaceOrder, reason: str) -> bool:
    """A placement the marketplace accepted none of the items of (its own answer: an empty
    order), which it did not confirm cancelled: nothing of it will ship whatever became of the
    cancel, so the whole share is refunded, as for a refusal, instead of being captured for an
    operator to give back by hand. An order billed beyond the tolerance is not touched here: its
    items may ship, and the operator decides. True when the share was refunded now."""
    if (
        sub_order.status not in PLACED_SUB_ORDER_STATUSES
        or sub_order.accepted_amount_minor != 0
        or sub_order.accepted_charge_minor == 0
    ):
        return False
    return adjust_share(session, sub_order, 0, reason=f"{reason}.") is not None


def find_abandoned_cancels(session: Session) -> list[int]:
    """Placed sub-orders under a kept claim whose lease ran out: the placement recorded an order
    billed beyond the tolerance and died before the marketplace answered its cancel."""
    return list(
        session.scalars(
            sa.select(MarketplaceOrder.id).where(
                MarketplaceOrder.status.in_(PLACED_SUB_ORDER_STATUSES),
                MarketplaceOrder.claim_token.is_not(None),
                MarketplaceOrder.claim_expires_at < utc_now(),
            )
        )
    )


def finish_abandoned_cancel(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    *,
    adapter_for: AdapterProvider,
    gateway_for: GatewayProvider = gateway_for_payment,
    lease: timedelta,
) -> CancelOutcome | None:
    """Take over an abandoned cancel (find_abandoned_cancels) and carry it out as its placement
    would have: the cancel is sent again (a first one that reached the marketplace makes it
    answer "already cancelled", which is read from the order's status there), the claim's lease
    renewed meanwhile. None when another sweeper took it first or it is no longer abandoned."""
    claim = take_over_kept_claim(session_factory, sub_order_id, lease=lease)
    if claim is None:
        return None
    with session_factory() as session:
        sub_order = session.get(MarketplaceOrder, sub_order_id)
        assert sub_order is not None
        order_id = sub_order.order_id
        market = sub_order.marketplace.name
        # What the placement found (its verdict's notes are kept as the sub-order's last error).
        reason = (
            f"we cancelled it: {market} {sub_order.last_error or 'billed beyond what was paid'}"
        )
        adapter = adapter_for(sub_order.marketplace)
    logger.warning(
        "sub-order %s: finishing the cancel its placement left (%s)", sub_order_id, reason
    )
    with renewed_while_held(
        partial(renew_claim, session_factory, sub_order_id, claim, lease=lease),
        lease=lease,
        what=f"cancel of sub-order {sub_order_id}",
    ):
        return _cancel_kept(
            session_factory,
            sub_order_id,
            claim,
            order_id,
            adapter,
            reason=reason,
            gateway_for=gateway_for,
        )


def shipping_tax_allowance_of(adapter: MarketplaceAdapter | None) -> ShippingTaxAllowance:
    """The shipping and tax the marketplace may add that OneCart pays (its configuration's
    allowance, read by HTTP adapters from marketplaces.toml); none for any other adapter."""
    allowance = getattr(adapter, "shipping_tax_allowance", None)
    return allowance if isinstance(allowance, ShippingTaxAllowance) else NO_SHIPPING_OR_TAX


# What the marketplace had done to an order it holds as nothing to ship (_found_cancelled).
_FOUND_DONE_IN_WORDS = {
    MarketplaceStatus.CANCELLED: "had already cancelled",
    MarketplaceStatus.FAILED: "could not fulfil",
    MarketplaceStatus.REFUNDED: "had already refunded",
}


def _found_cancelled(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    claim: Claim,
    placed: PlacedOrder,
    gateway_for: GatewayProvider,
) -> PlacementResult:
    """The marketplace's answer is an order it already cancelled, failed or refunded (found by
    reference after a lost reply, or so answered at once): nothing will ship, so the share is
    refunded instead of captured. The marketplace's id is kept for the operator."""
    with session_factory() as session, session.begin():
        sub_order = locked_sub_order(session, sub_order_id)
        if not holds_claim(sub_order, claim):
            return PlacementResult.NOT_CLAIMED
        sub_order.marketplace_order_id = placed.marketplace_order_id
        sub_order.raw_status = placed.status.value
        # The shopper reads this on the order page ("Why …"): their words, not our status value.
        done = _FOUND_DONE_IN_WORDS.get(placed.status, "had already closed")
        reason = f"{sub_order.marketplace.name} {done} the order, so nothing will ship."
        compensate_sub_order(session, sub_order, status=SubOrderStatus.CANCELLED, reason=reason)
        record_event(session, sub_order, TimelineStep.CANCELLED, detail=reason)
        order_id = sub_order.order_id
    process_refunds(session_factory, order_id, gateway_for=gateway_for)
    settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return PlacementResult.CANCELLED


def release_kept_claim(
    session_factory: sessionmaker[Session], sub_order_id: int, claim: Claim
) -> None:
    """Drop the claim a placement kept while it was being cancelled (a cancelled sub-order's
    claim is already gone)."""
    with session_factory() as session, session.begin():
        _released(session, sub_order_id, claim)


def _released(session: Session, sub_order_id: int, claim: Claim) -> bool:
    """Drop `claim` if the sub-order is still under it (compare-and-set on its token)."""
    return bool(
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == sub_order_id, MarketplaceOrder.claim_token == claim.token)
            .values(claim_token=None, claim_expires_at=None, updated_at=utc_now())
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
    )


def flag_for_operator(session_factory: sessionmaker[Session], order_id: int, reason: str) -> None:
    with session_factory() as session, session.begin():
        lock_order(session, order_id)
        order = session.get(Order, order_id)
        assert order is not None
        flag_order(order, reason)

"""Passing on a marketplace's refund of part of a placed sub-order (a line it could not ship):
the shopper gets back the part of the sub-order's share it covers, once.

Tracking reads the cumulative amount the marketplace has refunded on its order
(adapters.base.OrderState.refunded_minor: WooCommerce's `refunds[].total`, Shopify's
`totalRefundedSet`). When it grows beyond what OneCart already passed on
(MarketplaceOrder.marketplace_refunded_minor), the growth is converted into the payment currency
exactly as the share was (the share's own rate, `charge_minor` per `amount_minor`, as
commerce.acceptance converts a lower bill), rounded up (refunds round up, shares down, and what
is kept stays a whole card amount step), capped at what the shopper paid for the sub-order, and
refunded through commerce.sub_order_compensation.record_refund with a key that holds the cumulative amount:
a wallet credit at once, a card refund sent by process_refunds (an unknown outcome is looked up
by that key before anything is sent again). The column moves by compare-and-set, so repeated
polls, or two trackers at once, pass a refund on once. A refund reported in another currency
than the sub-order's has no exact basis: an operator decides, nothing is refunded automatically.
A later cancellation or full refund compensates only the rest of the share
(commerce.sub_order_compensation.compensate_sub_order counts these refunds).

After delivery (a return, a late goodwill refund; commerce.tracking_schedule keeps delivered
sub-orders watched through a return window) a refund is passed on exactly the same way. A full
refund then arrives as the marketplace's status `refunded` (WooCommerce sets it once the refunds
reach the order total; Shopify's displayFinancialStatus REFUNDED), which before delivery means
"cancelled, compensate". After delivery it does not: delivered is the end of the fulfilment
order, a status never moves back along it, and the shopper had the items, so the sub-order stays
delivered (it is not cancelled, the order is not reopened or re-derived as refunded, nothing is
placed again) and the full refund is passed on as a cumulative refund of the marketplace's whole
order: the rest of the share, once, with the same compare-and-set and key. A delivered order the
marketplace reports `cancelled` or `failed` gives back only what it reports refunded; whatever
that does not cover goes to an operator (the shopper has the items: no automatic refund on a
status word alone).
"""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.orm import Session

from adapters.base import OrderState, OrderStatus
from commerce.models import utc_now
from commerce.notifications import notify
from commerce.order_models import MARKETPLACE_REFUND_KEY_INFIX, MarketplaceOrder, Refund
from commerce.order_state import flag_order
from commerce.payments.gateway import floor_card_amount
from commerce.refunds import refund_said
from commerce.sub_order_compensation import record_refund
from onecart.money import MoneyError, format_money


def marketplace_refund_key(sub_order_id: int, cumulative_minor: int) -> str:
    """The one refund passing on the marketplace's refunds up to `cumulative_minor`."""
    return f"refund-sub-{sub_order_id}{MARKETPLACE_REFUND_KEY_INFIX}{cumulative_minor}"


def share_refunded_for(sub_order: MarketplaceOrder, marketplace_refunded_minor: int) -> int:
    """What of the sub-order's share (payment currency) a cumulative marketplace refund gives
    back: converted at the share's own rate, rounded up, capped at the share the shopper paid
    for what the marketplace accepted, and such that what is kept stays a whole card step."""
    paid = sub_order.accepted_share_minor
    if sub_order.amount_minor <= 0:
        return 0
    converted = -(-sub_order.charge_minor * marketplace_refunded_minor // sub_order.amount_minor)
    kept = floor_card_amount(max(0, paid - converted), sub_order.charge_currency)
    return paid - kept


def pass_on_marketplace_refund(
    session: Session, sub_order: MarketplaceOrder, state: OrderState
) -> Refund | None:
    """Refund the shopper what the marketplace refunded since the last time (the caller locked
    the order and holds the transaction; the sub-order is live and not being cancelled by this
    state). Returns the refund recorded, None when there is nothing (new) to pass on."""
    reported = state.refunded_minor
    already = sub_order.marketplace_refunded_minor or 0
    if reported is None or reported <= already:
        # Not reported, or nothing new. A smaller figure (a refund the store deleted) takes
        # nothing back from the shopper.
        return None
    market = sub_order.marketplace.name
    currency = (state.refunded_currency or "").upper()
    if currency != sub_order.currency.upper():
        flag_order(
            sub_order.order,
            f"{market} sub-order {sub_order.id}: {market} reports refunding "
            f"{_shown(reported, currency)} in all, not in the sub-order's {sub_order.currency}: "
            "no exact basis to convert it, nothing was refunded. Refund the shopper by hand.",
        )
        return None
    target = share_refunded_for(sub_order, reported)
    passed_on = sub_order.passed_on_charge_minor or 0
    moved = session.execute(
        sa.update(MarketplaceOrder)
        .where(
            MarketplaceOrder.id == sub_order.id,
            MarketplaceOrder.marketplace_refunded_minor == already,
        )
        .values(
            marketplace_refunded_minor=reported,
            passed_on_charge_minor=max(target, passed_on),
            updated_at=utc_now(),
        )
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    session.refresh(
        sub_order, attribute_names=["marketplace_refunded_minor", "passed_on_charge_minor"]
    )
    difference = target - passed_on
    if not moved or difference <= 0:
        return None
    refunded_now = _shown(reported - already, sub_order.currency)
    reason = f"{market} refunded {refunded_now} of its order."
    refund = record_refund(
        session,
        sub_order,
        difference,
        key=marketplace_refund_key(sub_order.id, reported),
        reason=reason,
    )
    number = sub_order.display_number
    items = f"your {market} items" + (f" (order {number})" if number else "")
    notify(
        session,
        sub_order.order,
        "sub_order_partly_refunded",
        f"{market} refunded {refunded_now} of {items}; "
        + refund_said(refund, f"you {format_money(difference, sub_order.charge_currency)}")
        + ".",
        sub_order_id=sub_order.id,
    )
    return refund


def pass_on_refund_after_delivery(
    session: Session, sub_order: MarketplaceOrder, state: OrderState, *, newly_reported: bool
) -> Refund | None:
    """A delivered sub-order the marketplace now reports refunded, cancelled or failed (the
    caller locked the order and holds the transaction): it stays delivered, and the refund is
    passed on as any other. `refunded` is a refund of the whole order, whatever figure comes
    with it; `cancelled` or `failed` pass on only the figure reported, and what it leaves
    uncovered goes to an operator, once (`newly_reported`: the marketplace's status word changed
    with this answer; the daily polls after it must not list the order again once an operator
    cleared it). Returns the refund recorded, None when nothing (new)."""
    if state.status == OrderStatus.REFUNDED:
        # At least the sub-order's whole amount: converted, that is its whole share.
        whole = max(sub_order.amount_minor, sub_order.accepted_amount_minor or 0)
        in_full = replace(
            state,
            refunded_minor=max(state.refunded_minor or 0, whole),
            refunded_currency=state.refunded_currency or sub_order.currency,
        )
        return pass_on_marketplace_refund(session, sub_order, in_full)
    refund = pass_on_marketplace_refund(session, sub_order, state)
    if state.refunded_minor is not None and (
        (state.refunded_currency or "").upper() != sub_order.currency.upper()
        or share_refunded_for(sub_order, state.refunded_minor) >= sub_order.accepted_share_minor
    ):
        return refund  # the whole share passed on, or flagged already (another currency)
    if newly_reported:
        market = sub_order.marketplace.name
        reported = (
            _shown(state.refunded_minor, state.refunded_currency or sub_order.currency)
            if state.refunded_minor is not None
            else "nothing it reports"
        )
        flag_order(
            sub_order.order,
            f"{market} sub-order {sub_order.id}: {market} reports the delivered order "
            f"{state.raw_status or state.status.value}, having refunded {reported} of it; the "
            f"shopper has the items, nothing more was refunded. Ask {market} whether it "
            "refunds the rest.",
        )
    return refund


def _shown(amount_minor: int, currency: str) -> str:
    try:
        return format_money(amount_minor, currency)
    except MoneyError:
        return f"{amount_minor} minor units of {currency or 'an unnamed currency'}"

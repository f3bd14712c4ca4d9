"""The order lifecycle's vocabulary, written once: how a marketplace's status maps onto a
sub-order's, the forward order of fulfilment, how an order's status is derived from its
sub-orders, the messages that go with each, and reading a sub-order under its order's lock.

The bottom of the lifecycle stack: order state → settlement (capture, refunds) → placement,
tracking, cancellation → sweeper. Nothing here calls a marketplace or a payment provider.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from adapters.base import Capability
from adapters.base import OrderStatus as MarketplaceStatus
from commerce.marketplace_access import marketplace_can
from commerce.models import utc_now
from commerce.notifications import has_transaction_note, notify
from commerce.order_locks import lock_order, order_id_of_sub_order
from commerce.order_models import (
    LIVE_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    OrderStatus,
    PaymentMethod,
    Refund,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from onecart.money import format_money

ERROR_TEXT_LIMIT = 500
# Between the reasons an order is flagged for (Order.attention_reason).
REASON_SEPARATOR = " | "
# All of an order's open reasons together (Order.attention_reason): room for every reason a
# money problem brings (a lost chargeback alone brings four of up to ERROR_TEXT_LIMIT each), so
# none is cut while an operator still has to act on it; only a runaway flag is cut, oldest first.
FLAG_TEXT_LIMIT = 5000

# adapters.base.OrderStatus -> our sub-order status.
SUB_ORDER_STATUS_BY_MARKETPLACE_STATUS: dict[MarketplaceStatus, SubOrderStatus] = {
    MarketplaceStatus.PENDING: SubOrderStatus.PLACED,
    MarketplaceStatus.PROCESSING: SubOrderStatus.PROCESSING,
    MarketplaceStatus.SHIPPED: SubOrderStatus.SHIPPED,
    MarketplaceStatus.DELIVERED: SubOrderStatus.DELIVERED,
    MarketplaceStatus.CANCELLED: SubOrderStatus.CANCELLED,
    # A marketplace that fails or refunds an order it accepted did not deliver it: we refund.
    MarketplaceStatus.FAILED: SubOrderStatus.CANCELLED,
    MarketplaceStatus.REFUNDED: SubOrderStatus.CANCELLED,
}
# Forward order of fulfilment; a status never moves back along it.
FULFILMENT_RANK = {
    SubOrderStatus.PLACED: 1,
    SubOrderStatus.PROCESSING: 2,
    SubOrderStatus.SHIPPED: 3,
    SubOrderStatus.DELIVERED: 4,
}
TRACKED_STATUSES = (SubOrderStatus.PLACED, SubOrderStatus.PROCESSING, SubOrderStatus.SHIPPED)

ORDER_STATUS_MESSAGES = {
    OrderStatus.PROCESSING: "Your order {number} is being processed.",
    OrderStatus.PARTIALLY_SHIPPED: "Part of your order {number} has shipped.",
    OrderStatus.SHIPPED: "Your order {number} has shipped.",
    OrderStatus.PARTIALLY_DELIVERED: "Part of your order {number} has been delivered.",
    OrderStatus.DELIVERED: "Your order {number} has been delivered.",
    # {to}: where the money goes (" to your OneCart wallet"), said here alone when the order was
    # one part (sub_order_compensation.compensate_sub_order leaves that part's own sentence out).
    OrderStatus.CANCELLED: "Your order {number} was cancelled and refunded{to}.",
    # Names where ({failed}): the failed parts' own sentences are left out when the order fails
    # with them (sub_order_compensation.compensate_sub_order), so this one alone tells which
    # marketplace.
    OrderStatus.FAILED: "We could not place order {number} at {failed}; "
    "you have been refunded in full.",
    OrderStatus.REFUNDED: "Your order {number} has been refunded in full.",
}
# The same while some placed part is at a marketplace that reports no shipping or delivery
# (DummyMart): the order counts as shipped or delivered without it (reports_delivery), but the
# shopper is not told all of it is; the order page asks them to confirm those items arrived.
# An order whose every part was cancelled at its marketplace ({cancelled_by}), the shopper not
# asking: by the marketplace, or by OneCart (billed more than allowed). "ShopWave cancelled your
# order" was untrue for the second, so the sentence says where and, from each part's reason
# ({why}, the order page's "Why"), who and why.
MARKETPLACE_CANCELLED_MESSAGE = (
    "Your order {number} was cancelled at {cancelled_by} ({why}); "
    "you have been refunded in full{to}."
)
MARKETPLACE_CANCELLED_UNDER_WAY_MESSAGE = (
    "Your order {number} was cancelled at {cancelled_by} ({why}); we are refunding you in full{to}."
)
UNREPORTED_PART_MESSAGES = {
    OrderStatus.SHIPPED: "Everything we can track in your order {number} has shipped; "
    "{unreported} {verb} not report shipping or delivery.",
    # Named as the order's badge names them ("Delivered (DummyMart not confirmed)"), in the first
    # sentence, which alone is the e-mail's subject; "everything we can track" was no news when
    # the shopper's own confirmation of one untracked part completed the order.
    OrderStatus.DELIVERED: "Your order {number} has been delivered, but {parts} not confirmed. "
    "{unreported} {verb} not report delivery: tell us on the order page when those items arrive.",
}
# The same, while a refund of the order is not confirmed yet (a card refund or release waits for
# the provider): the shopper is never told "refunded" before it is done (commerce.refunds tells
# them when the card refund is made).
REFUND_UNDER_WAY_MESSAGES = {
    OrderStatus.CANCELLED: "Your order {number} was cancelled; we are refunding you in full{to}.",
    OrderStatus.FAILED: "We could not place order {number} at {failed}; "
    "we are refunding you in full.",
    OrderStatus.REFUNDED: "Your order {number} is being refunded in full.",
}
# The same when every share was left out of a card payment never captured (releases): nothing
# was charged, so nothing is refunded, and no "refunded" message follows (commerce.refunds
# tells only of card refunds made).
NOTHING_CHARGED_MESSAGES = {
    OrderStatus.CANCELLED: "Your order {number} was cancelled; nothing is charged to your card.",
    OrderStatus.FAILED: "We could not place order {number} at {failed}; "
    "nothing is charged to your card.",
    OrderStatus.REFUNDED: "Your order {number} was cancelled; nothing is charged to your card.",
}
MARKETPLACE_CANCELLED_NOTHING_CHARGED_MESSAGE = (
    "Your order {number} was cancelled at {cancelled_by} ({why}); nothing is charged to your card."
)
# The same when the card was charged for some shares (refunded to it: {refunded}, "is being"
# or "was" as {being}) and others were left out of the capture ({released}: never charged). "We
# are refunding you in full" had the shopper look for a refund of the whole order on the
# statement, and never find the part that was never taken.
PART_CHARGED_MONEY = (
    "{refunded} {being} refunded to your card; the other {released} is not charged."
)
PART_CHARGED_MESSAGES = {
    OrderStatus.CANCELLED: "Your order {number} was cancelled: " + PART_CHARGED_MONEY,
    OrderStatus.FAILED: "We could not place order {number} at {failed}: " + PART_CHARGED_MONEY,
    OrderStatus.REFUNDED: "Your order {number} was cancelled: " + PART_CHARGED_MONEY,
}
MARKETPLACE_CANCELLED_PART_CHARGED_MESSAGE = (
    "Your order {number} was cancelled at {cancelled_by} ({why}): " + PART_CHARGED_MONEY
)


def sub_order_status_for(state: MarketplaceStatus) -> SubOrderStatus:
    """Our sub-order status for a marketplace's (already adapter-normalized) status."""
    return SUB_ORDER_STATUS_BY_MARKETPLACE_STATUS[state]


def placed_status_for(state: MarketplaceStatus) -> SubOrderStatus:
    """The status of a sub-order the marketplace just accepted (placed at least)."""
    status = SUB_ORDER_STATUS_BY_MARKETPLACE_STATUS.get(state, SubOrderStatus.PLACED)
    return status if status in FULFILMENT_RANK else SubOrderStatus.PLACED


def reports_delivery(sub_order: MarketplaceOrder) -> bool:
    """Whether the sub-order counts toward the order's completion: its marketplace reports where
    it is (a status API), or the shopper confirmed receipt. A sub-order placed at a marketplace
    that reports nothing would otherwise hold the order at "partially delivered" for good."""
    if sub_order.status not in (SubOrderStatus.PLACED, SubOrderStatus.PROCESSING):
        return True
    return marketplace_can(sub_order.marketplace, Capability.TRACK)


def derive_order_status(
    sub_order_statuses: Sequence[SubOrderStatus],
    *,
    cancel_requested: bool = False,
    unreported: int = 0,
) -> OrderStatus:
    """The shopper's order status from its charged sub-orders (hand-offs are not counted).

    Live sub-orders decide while there are any: all delivered → delivered, some → partially
    delivered; all shipped or delivered → shipped, some → partially shipped; else processing.
    With none live: all failed → failed; otherwise cancelled when the shopper asked for it, else
    refunded (the marketplaces cancelled). `unreported` placed sub-orders whose marketplace
    reports no delivery are left out of `sub_order_statuses`: they keep the order processing
    only while nothing else is live.
    """
    charged = [status for status in sub_order_statuses if status != SubOrderStatus.HANDOFF]
    if not charged:
        return OrderStatus.PROCESSING
    live = [status for status in charged if status in LIVE_SUB_ORDER_STATUSES]
    if not live and unreported:
        return OrderStatus.PROCESSING
    if not live:
        if all(status == SubOrderStatus.FAILED for status in charged):
            return OrderStatus.FAILED
        return OrderStatus.CANCELLED if cancel_requested else OrderStatus.REFUNDED
    delivered = sum(1 for status in live if status == SubOrderStatus.DELIVERED)
    shipped = sum(
        1 for status in live if status in (SubOrderStatus.SHIPPED, SubOrderStatus.DELIVERED)
    )
    if delivered == len(live):
        return OrderStatus.DELIVERED
    if delivered:
        return OrderStatus.PARTIALLY_DELIVERED
    if shipped == len(live):
        return OrderStatus.SHIPPED
    if shipped:
        return OrderStatus.PARTIALLY_SHIPPED
    return OrderStatus.PROCESSING


def refresh_order_status(session: Session, order: Order, *, tell: bool = True) -> bool:
    """Re-derive the order's status (the caller locked the order); notify when it changed.

    With `tell` False the status changes silently: a caller cancelling several parts in one go
    (commerce.cancellation) tells the shopper once, with tell_order_status, when it is done."""
    session.flush()
    session.refresh(order, attribute_names=["sub_orders"])
    counted = [sub for sub in order.sub_orders if reports_delivery(sub)]
    status = derive_order_status(
        [sub.status for sub in counted],
        cancel_requested=order.cancel_requested_at is not None,
        unreported=len(order.sub_orders) - len(counted),
    )
    if status == order.status:
        return False
    order.status = status
    order.updated_at = utc_now()
    # A partial status says nothing the sub-order's own notification did not (merged into it).
    partial = status in (OrderStatus.PARTIALLY_SHIPPED, OrderStatus.PARTIALLY_DELIVERED)
    if tell and not (partial and has_transaction_note(session, order.id)):
        tell_order_status(session, order)
    return True


def tell_order_status(session: Session, order: Order) -> None:
    """Tell the shopper the order's current status, once per status (nothing for processing)."""
    status = order.status
    if status == OrderStatus.PROCESSING:
        return
    message = ORDER_STATUS_MESSAGES[status]
    charged = [sub for sub in order.sub_orders if sub.status != SubOrderStatus.HANDOFF]
    cancelled_by = sorted({sub.marketplace.name for sub in charged})
    if status == OrderStatus.REFUNDED and all(
        sub.status == SubOrderStatus.CANCELLED for sub in charged
    ):
        # Every part cancelled by its marketplace (not by the shopper): the part's own sentence
        # is left out (sub_order_compensation), so this one says who cancelled and where the
        # money goes.
        message = MARKETPLACE_CANCELLED_MESSAGE
    part_charged = (
        _released_and_refunded(session, order) if status in PART_CHARGED_MESSAGES else None
    )
    if part_charged is not None:
        message = (
            MARKETPLACE_CANCELLED_PART_CHARGED_MESSAGE
            if message == MARKETPLACE_CANCELLED_MESSAGE
            else PART_CHARGED_MESSAGES[status]
        )
    elif status in NOTHING_CHARGED_MESSAGES and _only_released(session, order):
        message = (
            MARKETPLACE_CANCELLED_NOTHING_CHARGED_MESSAGE
            if message == MARKETPLACE_CANCELLED_MESSAGE
            else NOTHING_CHARGED_MESSAGES[status]
        )
    elif status in REFUND_UNDER_WAY_MESSAGES and _refund_unconfirmed(session, order):
        message = (
            MARKETPLACE_CANCELLED_UNDER_WAY_MESSAGE
            if message == MARKETPLACE_CANCELLED_MESSAGE
            else REFUND_UNDER_WAY_MESSAGES[status]
        )
    # Refunds are in the payment's currency.
    money_currency = order.payment.currency if order.payment is not None else order.currency
    unreported = sorted(
        {sub.marketplace.name for sub in order.sub_orders if not reports_delivery(sub)}
    )
    failed = sorted(
        {sub.marketplace.name for sub in order.sub_orders if sub.status == SubOrderStatus.FAILED}
    )
    # Naming parts nobody confirmed, the order's sentence leads a notification merged with a
    # part's ("Your ShopWave items … have been delivered."): it, not the part's, is the
    # e-mail's subject then.
    lead = status in UNREPORTED_PART_MESSAGES and bool(unreported)
    if lead:
        message = UNREPORTED_PART_MESSAGES[status]
    if status == OrderStatus.FAILED:
        message += _failure_reasons(order)
    notify(
        session,
        order,
        f"order_{status.value}",
        message.format(
            number=order.number,
            failed=" and ".join(failed),
            cancelled_by=" and ".join(cancelled_by),
            why="; ".join(_cancel_reasons(charged)),
            unreported=" and ".join(unreported),
            verb="does" if len(unreported) == 1 else "do",
            to=_refunded_to(order),
            released=format_money(part_charged[0], money_currency) if part_charged else "",
            refunded=format_money(part_charged[1], money_currency) if part_charged else "",
            being="is being" if part_charged and _refund_unconfirmed(session, order) else "was",
            parts=f"the {' and '.join(unreported)} "
            + ("part is" if len(unreported) == 1 else "parts are"),
        ),
        once=True,
        lead=lead,
    )


def _cancel_reasons(parts: list[MarketplaceOrder]) -> list[str]:
    """Each cancelled part's reason once, as a clause ("ShopWave cancelled the order")."""
    reasons: list[str] = []
    for sub in parts:
        reason = (sub.last_error or f"{sub.marketplace.name} cancelled it").strip().rstrip(".")
        if reason and reason not in reasons:
            reasons.append(reason)
    return reasons


def _failure_reasons(order: Order) -> str:
    """Why the order's parts were not placed, as sentences after the news (" ShopWave refused
    the order."): each failed part's reason, the order page's "Why"
    (sub_order_compensation.compensate_sub_order keeps it in last_error), which is already in the
    shopper's words, never the connection error.
    Braces are doubled: the message is formatted afterwards."""
    reasons: list[str] = []
    for sub in sorted(order.sub_orders, key=lambda part: part.marketplace.name):
        reason = " ".join((sub.last_error or "").split())
        if sub.status != SubOrderStatus.FAILED or not reason:
            continue
        if reason[-1] not in ".!?":
            reason += "."
        if reason not in reasons:
            reasons.append(reason)
    return "".join(" " + r.replace("{", "{{").replace("}", "}}") for r in reasons)


def _refunded_to(order: Order) -> str:
    """Where the order's refunds go, as the end of a sentence ("" when it has no payment)."""
    if order.payment is None:
        return ""
    if order.payment.method == PaymentMethod.WALLET:
        return " to your OneCart wallet"
    return " to your card"


def _only_released(session: Session, order: Order) -> bool:
    """Whether the order's card payment gives everything back by releases alone (none failed):
    it was never captured, so nothing was charged (asked of the database, as below)."""
    if order.payment is None or order.payment.method == PaymentMethod.WALLET:
        return False
    kinds = session.execute(
        sa.select(Refund.kind, Refund.status).where(Refund.payment_id == order.payment.id)
    ).all()
    return bool(kinds) and all(
        kind == RefundKind.RELEASE and status != RefundStatus.FAILED for kind, status in kinds
    )


def _released_and_refunded(session: Session, order: Order) -> tuple[int, int] | None:
    """What the order's card payment gives back by releases (left out of the capture, never
    charged) and by card refunds (charged, then refunded), when it gives back both ways; None
    otherwise (failed refunds, which an operator pays another way, left out)."""
    if order.payment is None or order.payment.method == PaymentMethod.WALLET:
        return None
    rows = session.execute(
        sa.select(Refund.kind, Refund.amount_minor).where(
            Refund.payment_id == order.payment.id, Refund.status != RefundStatus.FAILED
        )
    ).all()
    released = sum(amount for kind, amount in rows if kind == RefundKind.RELEASE)
    refunded = sum(amount for kind, amount in rows if kind != RefundKind.RELEASE)
    return (released, refunded) if released and refunded else None


def _refund_unconfirmed(session: Session, order: Order) -> bool:
    """Whether a refund of the order is still to be made or confirmed (asked of the database: a
    refund recorded in this transaction may not be in the payment's loaded collection)."""
    if order.payment is None:
        return False
    return bool(
        session.scalar(
            sa.select(
                sa.exists().where(
                    Refund.payment_id == order.payment.id,
                    Refund.status != RefundStatus.SUCCEEDED,
                )
            )
        )
    )


def locked_sub_order(session: Session, sub_order_id: int) -> MarketplaceOrder:
    """The sub-order, read after locking its order (see commerce.order_locks)."""
    order_id = order_id_of_sub_order(session, sub_order_id)
    if order_id is None:
        raise LookupError(f"sub-order {sub_order_id} does not exist")
    lock_order(session, order_id)
    sub_order = session.get(MarketplaceOrder, sub_order_id)
    assert sub_order is not None
    session.refresh(sub_order)
    return sub_order


def flag_order(order: Order, reason: str) -> None:
    """Put the order on the operator's list, or add a new reason to the ones it is listed for.

    An order stays listed until an operator clears its flag (commerce.flag_resolution), so a
    later problem must not be dropped behind the first: a refund refused for good, say, needs its
    own action; flagged again after it was cleared, it is listed with the new reason only. A reason
    already there is not repeated. Every reason is kept whole (each up to ERROR_TEXT_LIMIT, all
    together up to FLAG_TEXT_LIMIT, which real orders do not reach: past it the older ones are
    cut, the newest kept whole)."""
    reason = reason[:ERROR_TEXT_LIMIT]
    earlier = order.attention_reason
    if not earlier:
        order.attention_reason = reason
        order.flagged_at = utc_now()
        return
    if reason in earlier:
        return
    joined = f"{earlier}{REASON_SEPARATOR}{reason}"
    if len(joined) > FLAG_TEXT_LIMIT:
        room = max(0, FLAG_TEXT_LIMIT - len(reason) - 4)
        joined = f"{earlier[:room]}…{REASON_SEPARATOR}{reason}"[-FLAG_TEXT_LIMIT:]
    order.attention_reason = joined


def reasons_without(flag: str, marker: str) -> tuple[str | None, str]:
    """The order's flag (`attention_reason`) less the reasons that contain `marker`, None when
    none is left; and the reasons taken out (joined, empty for none). The others are kept
    exactly as they were."""
    reasons = flag.split(REASON_SEPARATOR)
    kept = [reason for reason in reasons if marker not in reason]
    removed = [reason for reason in reasons if marker in reason]
    return REASON_SEPARATOR.join(kept) or None, REASON_SEPARATOR.join(removed)

"""What the shopper sees of an order's progress: each step recorded once (OrderEvent rows), and
the order page built from them — one timeline per marketplace, one merged delivery timeline for
the whole order, each sub-order's honest state, and the outcome of a cancellation per
marketplace with its refund (the words for one part's state and cancellation are
commerce.order_part_states').

Pure reading and formatting, plus `record_event` (the one writer, used by tracking); nothing here
calls a marketplace or a payment provider.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from adapters.base import ShipmentStatus
from commerce.models import utc_now
from commerce.order_models import (
    LIVE_SUB_ORDER_STATUSES,
    MARKETPLACE_REFUND_KEY_INFIX,
    MarketplaceOrder,
    Order,
    OrderEvent,
    OrderStatus,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.order_part_states import (
    CancelLine,
    amount_still_charged,
    cancel_line,
    marketplace_home,
    sub_order_state,
)
from commerce.order_state import reports_delivery
from commerce.refund_progress import (
    adjusted_heading_amount,
    adjustment_heading_note,
    adjustment_refund_label,
    adjustment_refund_reason,
    card_hold_released,
    card_only_held,
)
from onecart.money import format_money

DETAIL_LIMIT = 300


class TimelineStep(enum.StrEnum):
    """A step of a sub-order's story, in the order they usually come."""

    PROCESSING = "processing"
    SHIPPED = "shipped"
    IN_TRANSIT = "in_transit"
    DELAYED = "delayed"
    OUT_FOR_DELIVERY = "out_for_delivery"
    ATTEMPTED_DELIVERY = "attempted_delivery"
    DELIVERY_FAILED = "delivery_failed"
    DELIVERED = "delivered"
    RECEIPT_CONFIRMED = "receipt_confirmed"
    CANCELLED = "cancelled"


# A shipment's step (adapters.base.ShipmentStatus) as a timeline step; "confirmed" is the
# shipped step itself.
SHIPMENT_TIMELINE_STEPS: dict[ShipmentStatus, TimelineStep] = {
    ShipmentStatus.IN_TRANSIT: TimelineStep.IN_TRANSIT,
    ShipmentStatus.DELAYED: TimelineStep.DELAYED,
    ShipmentStatus.OUT_FOR_DELIVERY: TimelineStep.OUT_FOR_DELIVERY,
    ShipmentStatus.ATTEMPTED_DELIVERY: TimelineStep.ATTEMPTED_DELIVERY,
    ShipmentStatus.FAILURE: TimelineStep.DELIVERY_FAILED,
    ShipmentStatus.DELIVERED: TimelineStep.DELIVERED,
}

STEP_LABELS = {
    TimelineStep.PROCESSING: "Being prepared",
    TimelineStep.SHIPPED: "Shipped",
    TimelineStep.IN_TRANSIT: "In transit",
    TimelineStep.DELAYED: "Delayed in transit",
    TimelineStep.OUT_FOR_DELIVERY: "Out for delivery",
    TimelineStep.ATTEMPTED_DELIVERY: "Delivery attempted",
    TimelineStep.DELIVERY_FAILED: "Delivery failed",
    TimelineStep.DELIVERED: "Delivered",
    TimelineStep.RECEIPT_CONFIRMED: "You confirmed you received it",
    TimelineStep.CANCELLED: "Cancelled",
}
# A status a marketplace can answer a new order with (commerce.order_state.placed_status_for):
# placement records its step (commerce.placement_outcomes); a sub-order placed before it did
# has none, so its timeline shows the status reached at placement.
STEP_OF_PLACED_STATUS = {
    SubOrderStatus.PROCESSING: TimelineStep.PROCESSING,
    SubOrderStatus.SHIPPED: TimelineStep.SHIPPED,
}
# The usual path of a tracked sub-order: what is still to come is shown greyed.
EXPECTED_PATH = (
    TimelineStep.PROCESSING,
    TimelineStep.SHIPPED,
    TimelineStep.IN_TRANSIT,
    TimelineStep.DELIVERED,
)
ORDER_STATUS_LABELS = {
    OrderStatus.PENDING: "Pending",
    OrderStatus.PROCESSING: "Processing",
    OrderStatus.PARTIALLY_SHIPPED: "Partially shipped",
    OrderStatus.SHIPPED: "Shipped",
    OrderStatus.PARTIALLY_DELIVERED: "Partially delivered",
    OrderStatus.DELIVERED: "Delivered",
    OrderStatus.CANCELLED: "Cancelled",
    OrderStatus.FAILED: "Failed",
    OrderStatus.REFUNDED: "Refunded",
}


# Where the order's one payment stands, as the order page says it (the states themselves, such
# as "reconciling" or "voided", are the payment code's words, not the shopper's).
PAYMENT_STATE_WORDS = {
    PaymentStatus.AUTHORIZED: "amount held on your card, taken as each marketplace accepts",
    PaymentStatus.CAPTURING: "being charged",
    PaymentStatus.RECONCILING: "being confirmed with the card processor",
    PaymentStatus.CAPTURED: "charged",
    PaymentStatus.PARTIALLY_REFUNDED: "charged, part refunded",
    PaymentStatus.REFUNDED: "refunded in full",
    PaymentStatus.VOIDED: "hold released, nothing charged",
    PaymentStatus.FAILED: "payment failed",
}
WALLET_PAYMENT_WORDS = {
    PaymentStatus.CAPTURED: "paid from your wallet",
    PaymentStatus.PARTIALLY_REFUNDED: "paid from your wallet, part refunded",
    PaymentStatus.REFUNDED: "refunded in full to your wallet",
}


def payment_words(order: Order) -> str:
    """ "Card: charged", "Wallet: paid from your wallet": how the order was paid and where that
    payment stands."""
    wallet = order.payment_method == PaymentMethod.WALLET
    method = "Wallet" if wallet else "Card"
    payment = order.payment
    if payment is None:
        return method
    words = (
        WALLET_PAYMENT_WORDS.get(payment.status) if wallet else None
    ) or PAYMENT_STATE_WORDS.get(payment.status, payment.status.value.replace("_", " "))
    return f"{method}: {words}"


def record_event(
    session: Session,
    sub_order: MarketplaceOrder,
    step: TimelineStep,
    *,
    detail: str = "",
    occurred_at: datetime | None = None,
) -> bool:
    """Record one step of a sub-order once (the caller locked its order); False when it was
    recorded before. `occurred_at` is when the marketplace says it happened (default: now)."""
    exists = session.scalar(
        sa.select(OrderEvent.id).where(
            OrderEvent.sub_order_id == sub_order.id, OrderEvent.step == step.value
        )
    )
    if exists is not None:
        return False
    now = utc_now()
    moment = min(occurred_at, now) if occurred_at is not None else now
    # Steps are recorded in the order they happen; a marketplace's clock (whole seconds) must
    # not put a step before the one recorded ahead of it.
    latest = session.scalar(
        sa.select(sa.func.max(OrderEvent.occurred_at)).where(
            OrderEvent.sub_order_id == sub_order.id
        )
    )
    if latest is not None:
        latest = latest if latest.tzinfo else latest.replace(tzinfo=UTC)
        moment = max(moment, latest)
    session.add(
        OrderEvent(
            order_id=sub_order.order_id,
            sub_order_id=sub_order.id,
            step=step.value,
            detail=detail[:DETAIL_LIMIT],
            occurred_at=moment,
            recorded_at=now,
        )
    )
    session.flush()
    return True


# --- The order page -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of a timeline; `done` False for a step still to come."""

    step: str
    label: str
    at: datetime | None = None
    detail: str = ""
    marketplace: str | None = None
    done: bool = True
    link: str | None = None


@dataclass(slots=True)
class SubOrderView:
    """One marketplace's part of the order as the page shows it."""

    sub_order: MarketplaceOrder
    state: str
    state_key: str
    reports_delivery: bool
    can_confirm_receipt: bool
    timeline: list[TimelineEntry] = field(default_factory=list)
    refunded_minor: int = 0
    # The heading of what the marketplace did not accept, by where its refund stands, and why.
    accepted_refund_label: str | None = None
    accepted_refund_why: str = ""
    # The part's heading when it is charged less than its share: what it is charged (in its own
    # currency when converted), then "(of $620.82 paid; the rest refunded)", or "($229.32 of
    # $620.82 paid; …)" for a converted part (refund_progress.adjustment_heading_note).
    charged_amount: str | None = None
    charged_note: str | None = None
    # What the shopper still pays for it (the cancel page's preview).
    amount_still_charged: str = ""
    cancel: CancelLine | None = None
    marketplace_link: str | None = None


@dataclass(slots=True)
class OrderView:
    """The order page: status, per-marketplace parts and the merged delivery timeline."""

    order: Order
    status_label: str
    sub_orders: list[SubOrderView]
    merged: list[TimelineEntry]
    cancellation: list[tuple[str, CancelLine]] = field(default_factory=list)
    cancellation_unknown: bool = False
    # Given back (card refunds, wallet credits): what the shopper was charged and got back.
    refunded_minor: int = 0
    # Left out of the card payment (releases, not failed): held, never charged.
    released_minor: int = 0
    # Whether all of that is released already, not waiting for the payment to be settled.
    released_all_done: bool = True
    # The card is only held, not charged yet (card_only_held): a share stopped now is released
    # from the hold, never "refunded".
    card_held: bool = False

    @property
    def last_update(self) -> datetime:
        """The latest change of the order or any of its parts (a part placed, shipped or given
        its marketplace's number changes its own row, not the order's)."""
        return max(
            [self.order.updated_at, *(part.sub_order.updated_at for part in self.sub_orders)]
        )


def order_status_label(order: Order) -> str:
    """The order's status in words. When the shopper cancelled and some marketplaces went ahead:
    "Partly cancelled" while those parts are on their way to shipping, then where they stand
    and how many were cancelled ("Delivered, 1 part cancelled"), so an order that ended does
    not read as one still being cancelled."""
    charged = order.charged_sub_orders
    if order.cancel_requested_at is not None:
        cancelled = [s for s in charged if s.status == SubOrderStatus.CANCELLED]
        live = [s for s in charged if s.status in LIVE_SUB_ORDER_STATUSES]
        if cancelled and live:
            if order.status in (OrderStatus.PENDING, OrderStatus.PROCESSING):
                return "Partly cancelled"
            parts = "1 part" if len(cancelled) == 1 else f"{len(cancelled)} parts"
            return f"{_plain_status_label(order, charged)}, {parts} cancelled"
        if live and order.status in (OrderStatus.PENDING, OrderStatus.PROCESSING):
            return "Cancelling"
    return _plain_status_label(order, charged)


def _plain_status_label(order: Order, charged: list[MarketplaceOrder]) -> str:
    """The order's status in words, naming delivered orders' parts nobody confirmed."""
    if order.status == OrderStatus.DELIVERED:
        # Parts at marketplaces that report no delivery do not hold the order up, but nobody
        # saw them arrive: named until the shopper confirms receipt.
        unconfirmed = [s.marketplace.name for s in charged if not reports_delivery(s)]
        if unconfirmed:
            return f"Delivered ({', '.join(unconfirmed)} not confirmed)"
    if order.status == OrderStatus.REFUNDED and card_hold_released(order):
        # Cancelled by its marketplaces before the card was charged: nothing to refund.
        return "Cancelled (not charged)"
    return ORDER_STATUS_LABELS.get(order.status, order.status.value.replace("_", " ").capitalize())


def build_order_view(session: Session, order: Order) -> OrderView:
    """Everything the order page shows, from the order, its events and its refunds."""
    events = list(
        session.scalars(
            sa.select(OrderEvent)
            .where(OrderEvent.order_id == order.id)
            .order_by(OrderEvent.occurred_at, OrderEvent.id)
        )
    )
    by_sub: dict[int | None, list[OrderEvent]] = {}
    for event in events:
        by_sub.setdefault(event.sub_order_id, []).append(event)
    refunds = list(order.payment.refunds) if order.payment is not None else []
    views: list[SubOrderView] = []
    merged: list[TimelineEntry] = [
        TimelineEntry("ordered", f"Order {order.number} received", order.created_at)
    ]
    for sub in order.charged_sub_orders:
        reports = reports_delivery(sub)
        sub_refunds = [r for r in refunds if r.sub_order_id == sub.id]
        label, key = sub_order_state(sub, reports, sub_refunds)
        refunded = sum(r.amount_minor for r in sub_refunds if _given_back(r))
        timeline = _sub_timeline(sub, by_sub.get(sub.id, []), sub_refunds, reports)
        note = adjustment_heading_note(sub, sub_refunds)
        view = SubOrderView(
            sub_order=sub,
            state=label,
            state_key=key,
            reports_delivery=reports,
            can_confirm_receipt=key == "unreported",
            timeline=timeline,
            refunded_minor=refunded,
            accepted_refund_label=adjustment_refund_label(sub, sub_refunds),
            accepted_refund_why=adjustment_refund_reason(sub, sub_refunds),
            charged_note=note,
            charged_amount=adjusted_heading_amount(sub) if note is not None else None,
            amount_still_charged=amount_still_charged(sub),
            marketplace_link=marketplace_home(sub),
        )
        if order.cancel_requested_at is not None:
            view.cancel = cancel_line(sub, sub_refunds)
        views.append(view)
        merged += [
            TimelineEntry(
                e.step, e.label, e.at, e.detail, marketplace=sub.marketplace.name, link=e.link
            )
            for e in timeline
            if e.done and e.step != "ordered"
        ]
    merged.sort(key=lambda entry: (entry.at is None, entry.at or order.created_at))
    # Parts whose marketplace reports nothing are not waited for (the shopper confirms them).
    tracked = [
        v
        for v in views
        if v.sub_order.status in LIVE_SUB_ORDER_STATUSES and v.state_key != "unreported"
    ]
    if order.status == OrderStatus.DELIVERED:
        last = max((e.at for e in merged if e.at is not None), default=None)
        # Parts nobody reports on did not hold the order up, but nobody saw them arrive either.
        unreported = [v.sub_order.marketplace.name for v in views if v.state_key == "unreported"]
        if unreported:
            verb = "does" if len(unreported) == 1 else "do"
            merged.append(
                TimelineEntry(
                    "complete",
                    "Everything tracked has arrived",
                    last,
                    detail=f"{', '.join(unreported)} {verb} not report delivery",
                )
            )
        else:
            merged.append(TimelineEntry("complete", "Everything has arrived", last))
    elif tracked:
        waiting = [v.sub_order.marketplace.name for v in tracked if v.state_key != "delivered"]
        if waiting:
            merged.append(
                TimelineEntry(
                    "complete",
                    "Everything delivered",
                    detail="waiting for " + ", ".join(waiting),
                    done=False,
                )
            )
    cancellation = [(v.sub_order.marketplace.name, v.cancel) for v in views if v.cancel]
    releases = [
        r for r in refunds if r.kind == RefundKind.RELEASE and r.status != RefundStatus.FAILED
    ]
    return OrderView(
        order=order,
        status_label=order_status_label(order),
        sub_orders=views,
        merged=merged,
        cancellation=cancellation,
        cancellation_unknown=any(line.outcome == "unknown" for _, line in cancellation),
        refunded_minor=sum(r.amount_minor for r in refunds if _given_back(r)),
        released_minor=sum(r.amount_minor for r in releases),
        released_all_done=all(r.status == RefundStatus.SUCCEEDED for r in releases),
        card_held=card_only_held(order),
    )


def _given_back(refund: Refund) -> bool:
    """A refund made (not a release: the card was never charged what a release leaves out)."""
    return refund.status == RefundStatus.SUCCEEDED and refund.kind != RefundKind.RELEASE


def _sub_timeline(
    sub: MarketplaceOrder, events: list[OrderEvent], refunds: list[Refund], reports: bool
) -> list[TimelineEntry]:
    """One marketplace's steps so far, then (while it is live and tracked) the usual steps to
    come, greyed."""
    market = sub.marketplace.name
    entries = [TimelineEntry("ordered", "Ordered", sub.created_at)]
    if sub.placed_at is not None:
        number = sub.display_number
        entries.append(
            TimelineEntry(
                "placed",
                f"Placed with {market}",
                sub.placed_at,
                detail=f"order {number}" if number else "",
            )
        )
    seen = set()
    for event in events:
        step = TimelineStep(event.step)
        seen.add(step)
        detail = event.detail
        link = None
        if step == TimelineStep.SHIPPED and sub.tracking_number:
            detail = f"{sub.carrier or 'Carrier'} · tracking {sub.tracking_number}"
            link = sub.tracking_url
        entries.append(
            TimelineEntry(step.value, STEP_LABELS[step], event.occurred_at, detail, link=link)
        )
    current = STEP_OF_PLACED_STATUS.get(sub.status)
    if current is not None and current not in seen:
        # Tracking records every step it moves a sub-order to; a status without its step is the
        # one the marketplace answered the placement with.
        entries.append(
            TimelineEntry(current.value, STEP_LABELS[current], sub.placed_at or sub.updated_at)
        )
    if sub.status in (SubOrderStatus.CANCELLED, SubOrderStatus.FAILED) and (
        TimelineStep.CANCELLED not in seen
    ):
        label = "Cancelled" if sub.status == SubOrderStatus.CANCELLED else "Could not be placed"
        entries.append(TimelineEntry(sub.status.value, label, sub.updated_at, sub.last_error or ""))
    # A wallet refund is made inside the cancellation's transaction, a moment before its step is
    # written: a refund is never told before the cancellation (or failure) it follows. A
    # marketplace's refund of part of the order keeps its own time (it may come days before).
    ended_at = max(
        (
            entry.at
            for entry in entries
            if entry.step in (TimelineStep.CANCELLED.value, SubOrderStatus.FAILED.value)
            and entry.at
        ),
        default=None,
    )

    def after_end(moment: datetime, refund: Refund) -> datetime:
        if ended_at is None or MARKETPLACE_REFUND_KEY_INFIX in refund.idempotency_key:
            return moment
        return max(moment, ended_at)

    for refund in refunds:
        amount = format_money(refund.amount_minor, refund.currency)
        # A marketplace's refund of part of a live order says what the marketplace refunded.
        why = refund.reason if MARKETPLACE_REFUND_KEY_INFIX in refund.idempotency_key else ""
        if refund.kind == RefundKind.RELEASE:
            done = refund.status == RefundStatus.SUCCEEDED
            moment = (refund.completed_at or refund.created_at) if done else refund.created_at
            entries.append(_release_entry(refund, amount, after_end(moment, refund)))
        elif refund.status == RefundStatus.SUCCEEDED:
            entries.append(
                TimelineEntry(
                    "refunded",
                    f"Refunded {amount}",
                    after_end(refund.completed_at or refund.created_at, refund),
                    detail=why,
                )
            )
        elif refund.status != RefundStatus.FAILED:
            entries.append(
                TimelineEntry(
                    "refunding",
                    f"Refund of {amount} on its way",
                    after_end(refund.created_at, refund),
                    detail=why,
                )
            )
        else:
            # Refused (or held back after a chargeback): told, not dropped from the story.
            entries.append(
                TimelineEntry(
                    "refund-unconfirmed",
                    f"Refund of {amount} not confirmed: our team is looking into it",
                    after_end(refund.created_at, refund),
                    detail=why,
                )
            )
    entries.sort(key=lambda entry: (entry.at is None, entry.at or sub.created_at))
    if sub.status in LIVE_SUB_ORDER_STATUSES and reports and sub.status != SubOrderStatus.DELIVERED:
        reached = {entry.step for entry in entries}
        for step in EXPECTED_PATH:
            if step.value in reached:
                continue
            # Steps before the current status were skipped by the marketplace, not still to come.
            if _rank(step) <= _rank_of_status(sub.status):
                continue
            entries.append(TimelineEntry(step.value, STEP_LABELS[step], done=False))
    return entries


def _release_entry(refund: Refund, amount: str, at: datetime) -> TimelineEntry:
    """A share left out of the card payment: held on the card, never charged, so told as not
    charged (its hold released, or to be at the capture), never as a refund."""
    if refund.status == RefundStatus.SUCCEEDED:
        return TimelineEntry(
            "released",
            f"{amount} not charged",
            at,
            detail="released from your card hold",
        )
    if refund.status == RefundStatus.FAILED:
        return TimelineEntry(
            "refund-unconfirmed",
            f"Release of {amount} from your card hold not confirmed: our team is looking into it",
            at,
        )
    return TimelineEntry(
        "releasing",
        f"{amount} not charged",
        at,
        detail="left out of the charge; released from your card hold when the payment is settled",
    )


def _rank(step: TimelineStep) -> int:
    return EXPECTED_PATH.index(step) + 2 if step in EXPECTED_PATH else 0


def _rank_of_status(status: SubOrderStatus) -> int:
    return {
        SubOrderStatus.PLACED: 1,
        SubOrderStatus.PROCESSING: 2,
        SubOrderStatus.SHIPPED: 3,
        SubOrderStatus.DELIVERED: 5,
    }.get(status, 0)

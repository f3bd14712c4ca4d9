"""Following placed sub-orders: each marketplace's status words mapped onto ours, tracking numbers
and the marketplace's own order number stored, every step recorded for the order's timelines,
the order's status derived from its sub-orders, and one notification per real change; and the
shopper's confirmation of receipt where the marketplace reports no delivery.

The adapters already translate their format's vocabulary into adapters.base.OrderStatus
(Shopify displayFulfillmentStatus + shipment displayStatus + cancelledAt; WooCommerce pending /
processing / on-hold / completed / delivered / cancelled / refunded / failed; the sandbox's
stages). Here those become sub-order states, which only move forward; a cancellation (or a
refund or failure reported by the marketplace) after placement is compensated like any other,
and a refund of part of the order is passed on to the shopper (commerce.marketplace_refunds).
Delivered sub-orders stay watched for the marketplace's refunds through a return window, less
often than open ones (commerce.tracking_schedule); a refund reported then, whole or in part, is
passed on the same way and the sub-order stays delivered. A marketplace whose polls fail backs
off without holding up the others', and an order whose polls fail while its marketplace answers
the others backs off alone (commerce.tracking_health); a failed poll never refunds. A
delivery the carrier could not make is a shipment's step, not a failure of the order: nothing is
refunded, the order goes to an operator (the marketplace may ship again).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from adapters.base import (
    Capability,
    MarketplaceError,
    NotFound,
    OrderState,
    ShipmentStatus,
    Unsupported,
)
from commerce.marketplace_access import AdapterProvider, marketplace_can
from commerce.marketplace_refunds import (
    pass_on_marketplace_refund,
    pass_on_refund_after_delivery,
)
from commerce.models import Marketplace, utc_now
from commerce.notifications import notify
from commerce.order_locks import lock_order, order_id_of_sub_order
from commerce.order_models import MarketplaceOrder, SubOrderStatus
from commerce.order_state import (
    FULFILMENT_RANK,
    ORDER_STATUS_MESSAGES,
    SUB_ORDER_STATUS_BY_MARKETPLACE_STATUS,
    derive_order_status,
    flag_order,
    refresh_order_status,
    sub_order_status_for,
)
from commerce.order_timeline import SHIPMENT_TIMELINE_STEPS, TimelineStep, record_event
from commerce.payments.providers import GatewayProvider, gateway_for_payment
from commerce.settlement import process_refunds, settle_payment
from commerce.sub_order_compensation import compensate_sub_order
from commerce.tracking_health import (
    MARKETPLACE_FAILURES_IN_A_ROW,
    fails_marketplace_wide,
    outage_without_answers,
    record_order_failure,
    record_poll_attempt,
    record_tracking_answer,
    record_tracking_failure,
)
from commerce.tracking_schedule import (
    TRACK_BATCH_SIZE,
    SubOrderToPoll,
    TrackingPolicy,
    sub_orders_to_poll,
)

logger = logging.getLogger(__name__)

TRACK_CONCURRENCY = 4

# Importable from here as before; defined once in commerce.order_state.
__all__ = [
    "ORDER_STATUS_MESSAGES",
    "SUB_ORDER_STATUS_BY_MARKETPLACE_STATUS",
    "TrackingReport",
    "apply_marketplace_state",
    "confirm_receipt",
    "derive_order_status",
    "refresh_order_status",
    "sub_order_status_for",
    "track_open_sub_orders",
]


@dataclass(frozen=True, slots=True)
class TrackingReport:
    """What one tracking pass did."""

    polled: int = 0
    changed: int = 0
    errors: int = 0


def apply_marketplace_state(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    state: OrderState,
    *,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> bool:
    """Store what the marketplace says about a sub-order; True when anything the shopper sees
    changed (its status, or its shipment's step).

    Tracking details and the marketplace's order number are kept whenever they appear; every
    step is recorded once as an OrderEvent (the order page's timelines). Status only moves
    forward; a cancellation compensates the sub-order (what is left of its share refunded), and
    a refund of part of it by the marketplace is passed on to the shopper once
    (commerce.marketplace_refunds), after delivery as well: a delivered sub-order the
    marketplace reports refunded stays delivered and the shopper gets the rest of its share
    back. The shopper is notified once per real change: shipped (with carrier and tracking
    number), delayed, out for delivery, delivered, cancelled — not for "processing" or "in
    transit", which only the timeline shows.
    """
    new_status = sub_order_status_for(state.status)
    refunds_due = False
    with session_factory() as session, session.begin():
        order_id = order_id_of_sub_order(session, sub_order_id)
        if order_id is None:
            return False
        lock_order(session, order_id)
        sub_order = session.get(MarketplaceOrder, sub_order_id)
        assert sub_order is not None
        sub_order.last_polled_at = sub_order.last_poll_attempt_at = utc_now()
        if sub_order.poll_failures:
            # Answered: its own failures, if any, are over (commerce.tracking_health).
            sub_order.poll_failures = 0
            sub_order.poll_failing_since = sub_order.poll_retry_at = None
            sub_order.poll_last_error = None
            sub_order.poll_flagged_at = None
        if sub_order.status not in FULFILMENT_RANK:
            return False
        if state.display_number and not sub_order.marketplace_order_number:
            sub_order.marketplace_order_number = state.display_number[:60]
        if state.tracking_number and state.tracking_number != sub_order.tracking_number:
            sub_order.tracking_number = state.tracking_number[:120]
            sub_order.carrier = (state.carrier or "")[:120] or None
            sub_order.tracking_url = state.tracking_url
        raw_status = (state.raw_status or state.status.value)[:80]
        newly_reported = raw_status != sub_order.raw_status
        sub_order.raw_status = raw_status
        market = sub_order.marketplace.name
        if new_status == SubOrderStatus.CANCELLED and sub_order.status == SubOrderStatus.DELIVERED:
            # Delivered ends fulfilment: a return or a refund of the whole order after it is
            # money passed on, not a cancellation (commerce.marketplace_refunds).
            refunds_due = (
                pass_on_refund_after_delivery(
                    session, sub_order, state, newly_reported=newly_reported
                )
                is not None
            )
            changed = refunds_due
        elif new_status == SubOrderStatus.CANCELLED:
            compensate_sub_order(
                session,
                sub_order,
                status=SubOrderStatus.CANCELLED,
                # Said to the shopper: the marketplace's own status code ("CANCELLED
                # (UNFULFILLED)") is kept for operators in raw_status, not put in the sentence.
                reason=f"{market} cancelled the order.",
            )
            record_event(
                session, sub_order, TimelineStep.CANCELLED, detail=sub_order.last_error or ""
            )
            changed = True
        else:
            passed_on = pass_on_marketplace_refund(session, sub_order, state)
            refunds_due = passed_on is not None
            changed = _move_forward(session, sub_order, new_status, state) or refunds_due
    if refunds_due or (changed and new_status == SubOrderStatus.CANCELLED):
        process_refunds(session_factory, order_id, gateway_for=gateway_for)
        settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return changed


def _move_forward(
    session: Session, sub_order: MarketplaceOrder, new_status: SubOrderStatus, state: OrderState
) -> bool:
    """Advance the sub-order's status and shipment step, record each new step and notify once."""
    happened = {event.status: event.happened_at for event in state.shipment_events}
    forward = FULFILMENT_RANK[new_status] > FULFILMENT_RANK[sub_order.status]
    if forward:
        if new_status in (SubOrderStatus.SHIPPED, SubOrderStatus.DELIVERED):
            # A marketplace that jumps straight to delivered still shipped first.
            if sub_order.status != SubOrderStatus.SHIPPED:
                first = state.shipment_events[0].happened_at if state.shipment_events else None
                record_event(
                    session,
                    sub_order,
                    TimelineStep.SHIPPED,
                    detail=_tracking_text(sub_order),
                    occurred_at=first,
                )
        elif new_status == SubOrderStatus.PROCESSING:
            record_event(session, sub_order, TimelineStep.PROCESSING)
    # The shipment's own steps (Shopify's fulfillment events), each once, in their order.
    shipment_changed = False
    if new_status in (SubOrderStatus.SHIPPED, SubOrderStatus.DELIVERED):
        steps = [event.status for event in state.shipment_events]
        if state.shipment_status is not None and state.shipment_status not in steps:
            steps.append(state.shipment_status)
        for shipment in steps:
            step = SHIPMENT_TIMELINE_STEPS.get(shipment)
            if step is None or step == TimelineStep.DELIVERED:
                continue
            if record_event(session, sub_order, step, occurred_at=happened.get(shipment)):
                shipment_changed = True
        latest = state.shipment_status.value if state.shipment_status else None
        if latest and latest != sub_order.shipment_status:
            sub_order.shipment_status = latest
            shipment_changed = True
            if latest == ShipmentStatus.FAILURE.value:
                _flag_failed_delivery(sub_order, state)
    if new_status == SubOrderStatus.DELIVERED and forward:
        record_event(
            session,
            sub_order,
            TimelineStep.DELIVERED,
            occurred_at=happened.get(ShipmentStatus.DELIVERED),
        )
    if not forward and not shipment_changed:
        return False
    sub_order.updated_at = utc_now()
    if forward:
        sub_order.status = new_status
    message = _sub_order_message(sub_order, new_status if forward else None)
    if message is not None:
        kind = (
            f"sub_order_{new_status.value}"
            if forward
            else f"sub_order_{sub_order.shipment_status or 'shipment'}"
        )
        notify(
            session,
            sub_order.order,
            kind,
            message,
            sub_order_id=sub_order.id,
            once=True,
            in_order_news=_shipped_in_order_news(sub_order)
            if forward and new_status == SubOrderStatus.SHIPPED
            else None,
        )
    if forward:
        refresh_order_status(session, sub_order.order)
    return True


def _flag_failed_delivery(sub_order: MarketplaceOrder, state: OrderState) -> None:
    """The carrier could not deliver: not a cancellation (the marketplace may ship again, and
    it has the money), so nothing is refunded; an operator asks the marketplace. Its refund or
    cancellation, once reported, refunds the shopper as any other (the caller holds the lock)."""
    market = sub_order.marketplace.name
    flag_order(
        sub_order.order,
        f"{market} sub-order {sub_order.id}: the carrier could not deliver it "
        f"({state.raw_status or 'failure'}); nothing was refunded. Ask {market} whether it "
        "ships again or refunds.",
    )


def _tracking_text(sub_order: MarketplaceOrder) -> str:
    if not sub_order.tracking_number:
        return ""
    return f"{sub_order.carrier or 'Carrier'} {sub_order.tracking_number}"


def _items(sub_order: MarketplaceOrder) -> str:
    """ "Your ShopWave items (order #1001)": the part as its messages name it."""
    number = sub_order.display_number
    return f"Your {sub_order.marketplace.name} items" + (f" (order {number})" if number else "")


def _tracking_words(sub_order: MarketplaceOrder) -> str:
    """ "with UPS, tracking number 1Z999" ("" until the part has a tracking number).

    Never in a message's first sentence: that sentence is the e-mail's subject
    (commerce.notifications.email_subject), cut at SUBJECT_HEADLINE_LIMIT, and a carrier's name
    and tracking number (120 characters each) cut there left half a number in the subject."""
    if not sub_order.tracking_number:
        return ""
    return f"with {sub_order.carrier or 'the carrier'}, tracking number {sub_order.tracking_number}"


def _shipped_in_order_news(sub_order: MarketplaceOrder) -> str | None:
    """What the order's "has shipped" carries when this part's shipping completes it: the part
    and its tracking number, a sentence of its own after the order's ("Your ShopWave items
    (order #1001) are with UPS, tracking number 1Z999."); None without a tracking number, when
    the order's sentence says all of it."""
    tracking = _tracking_words(sub_order)
    if not tracking:
        return None
    return f"{_items(sub_order)} are {tracking}."


def _sub_order_message(
    sub_order: MarketplaceOrder, new_status: SubOrderStatus | None
) -> str | None:
    """What the shopper is told about this change; None when it is not news (processing, in
    transit): the order page's timeline shows those."""
    market = sub_order.marketplace.name
    items = _items(sub_order)
    if new_status == SubOrderStatus.DELIVERED:
        return f"{items} have been delivered."
    if new_status == SubOrderStatus.SHIPPED:
        tracking = _tracking_words(sub_order)
        return f"{items} have shipped." + (f" They are {tracking}." if tracking else "")
    if new_status is None:
        shipment = sub_order.shipment_status
        if shipment == ShipmentStatus.DELAYED:
            return f"{items} are delayed in transit; {market}'s carrier says they are still coming."
        if shipment == ShipmentStatus.OUT_FOR_DELIVERY:
            return f"{items} are out for delivery today."
        if shipment == ShipmentStatus.ATTEMPTED_DELIVERY:
            return (
                f"The carrier tried to deliver {items[0].lower() + items[1:]} and will try again."
            )
        if shipment == ShipmentStatus.FAILURE:
            return (
                f"The carrier could not deliver {items[0].lower() + items[1:]}; {market} is on it."
            )
    return None


def confirm_receipt(session: Session, user_id: int, number: str, sub_order_id: int) -> bool:
    """The shopper says a sub-order arrived, for a marketplace that reports no delivery: it
    becomes delivered (recorded on its timeline) and counts toward the order's completion.
    False when it is not theirs or not waiting for such a confirmation."""
    order_id = order_id_of_sub_order(session, sub_order_id)
    if order_id is None:
        return False
    lock_order(session, order_id)
    sub_order = session.get(MarketplaceOrder, sub_order_id)
    if sub_order is not None:
        session.refresh(sub_order)  # read under the lock, not from an earlier load
    if (
        sub_order is None
        or sub_order.order.user_id != user_id
        or sub_order.order.number != number
        or sub_order.status not in (SubOrderStatus.PLACED, SubOrderStatus.PROCESSING)
        or marketplace_can(sub_order.marketplace, Capability.TRACK)
    ):
        return False
    now = utc_now()
    sub_order.receipt_confirmed_at = now
    sub_order.status = SubOrderStatus.DELIVERED
    sub_order.updated_at = now
    record_event(session, sub_order, TimelineStep.RECEIPT_CONFIRMED, occurred_at=now)
    refresh_order_status(session, sub_order.order)
    return True


def track_open_sub_orders(
    session_factory: sessionmaker[Session],
    *,
    adapter_for: AdapterProvider,
    gateway_for: GatewayProvider = gateway_for_payment,
    batch_size: int = TRACK_BATCH_SIZE,
    concurrency: int = TRACK_CONCURRENCY,
    policy: TrackingPolicy | None = None,
) -> TrackingReport:
    """Poll every open sub-order on marketplaces that can be tracked (least recently asked
    first), then the delivered ones still watched for refunds (commerce.tracking_schedule); one
    adapter per marketplace, marketplaces in parallel, each marketplace's open sub-orders before
    its delivered ones, and those failing on their own after the rest. A poll that fails is
    recorded as an attempt and blamed on its order or on the marketplace
    (commerce.tracking_health): an order's failure backs off that order while the marketplace's
    others are asked as usual; the marketplace's backs it off, and the rest of its share of this
    pass waits. `policy` sets the batches, the return window and the backoff (its defaults with
    `batch_size` open sub-orders when not given)."""
    policy = policy or TrackingPolicy(batch_size=batch_size)
    pass_started = utc_now()
    with session_factory() as session:
        by_market: dict[int, tuple[Marketplace, list[SubOrderToPoll]]] = {}
        for due in sub_orders_to_poll(session, policy, now=pass_started):
            by_market.setdefault(due.marketplace.id, (due.marketplace, []))[1].append(due)
        adapters = {market_id: adapter_for(market) for market_id, (market, _) in by_market.items()}
    if not by_market:
        return TrackingReport()

    def poll(market_id: int) -> tuple[int, int, int]:
        """Poll one marketplace's sub-orders in order: (polled, changed, errors)."""
        adapter = adapters[market_id]
        market, due = by_market[market_id]
        # Those failing on their own last, so that the others' answers come first and tell
        # whose failure theirs is (stable: each group keeps its least recently asked first).
        due = sorted(due, key=lambda sub: sub.failing_alone)
        polled = changed = errors = 0
        answered = False
        # Failures since the marketplace's last answer in this pass, not yet blamed on anyone:
        # (sub-order, error, whether it was already failing on its own).
        unblamed: list[tuple[int, MarketplaceError, bool]] = []

        def marketplace_failed(exc: MarketplaceError) -> tuple[int, int, int]:
            record_tracking_failure(
                session_factory, market, exc, pass_started=pass_started, policy=policy
            )
            return polled, changed, errors

        for sub in due:
            try:
                state = adapter.order_status(sub.marketplace_order_id)
            except Unsupported:
                return polled, changed, errors
            except NotFound as exc:
                # An answer about this one order, not a failing marketplace.
                logger.warning("tracking sub-order %s: %s", sub.sub_order_id, exc)
                record_poll_attempt(session_factory, sub.sub_order_id, utc_now())
                errors += 1
            except MarketplaceError as exc:
                record_poll_attempt(session_factory, sub.sub_order_id, utc_now())
                errors += 1
                if fails_marketplace_wide(exc):
                    return marketplace_failed(exc)
                # Whose failure it is is decided by what the marketplace does next: an answer
                # to another order of this pass makes it the order's, failures in a row make
                # it an outage, and a pass that ends with no answer asks the order API itself.
                unblamed.append((sub.sub_order_id, exc, sub.failing_alone))
                if len(unblamed) >= MARKETPLACE_FAILURES_IN_A_ROW:
                    return marketplace_failed(exc)
                continue
            else:
                try:
                    applied = apply_marketplace_state(
                        session_factory, sub.sub_order_id, state, gateway_for=gateway_for
                    )
                except Exception as exc:
                    # The marketplace answered; our side could not apply it (a write the
                    # database refused, a deadlock). That order's own failed poll: raised, it
                    # ended the marketplace's pass and, rolled back, stayed first in line, so
                    # every later pass died on it and the others were never applied again.
                    logger.exception(
                        "tracking sub-order %s: its answer could not be applied", sub.sub_order_id
                    )
                    errors += 1
                    record_poll_attempt(session_factory, sub.sub_order_id, utc_now())
                    record_order_failure(
                        session_factory,
                        sub.sub_order_id,
                        exc,
                        pass_started=pass_started,
                        policy=policy,
                    )
                else:
                    polled += 1
                    if applied:
                        changed += 1
            if not answered:
                answered = True
                record_tracking_answer(session_factory, market_id)
            blame_orders(unblamed)
        if unblamed and not answered:
            # No order of this pass answered to tell (the marketplace's only open order, or
            # its backoff's single probe): commerce.tracking_health decides.
            outage, checked = outage_without_answers(adapter, unblamed)
            if outage is not None:
                return marketplace_failed(outage)
            if checked:
                record_tracking_answer(session_factory, market_id)
        # Failures left at the end: after an answer, or while the order API answers.
        blame_orders(unblamed)
        return polled, changed, errors

    def blame_orders(unblamed: list[tuple[int, MarketplaceError, bool]]) -> None:
        for sub_order_id, exc, _ in unblamed:
            record_order_failure(
                session_factory, sub_order_id, exc, pass_started=pass_started, policy=policy
            )
        unblamed.clear()

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(by_market)))) as executor:
        results = list(executor.map(poll, list(by_market)))
    return TrackingReport(
        polled=sum(r[0] for r in results),
        changed=sum(r[1] for r in results),
        errors=sum(r[2] for r in results),
    )

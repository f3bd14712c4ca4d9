"""Cancelling orders: the shopper's request, carrying it out on the marketplaces, and cancelling one
placed sub-order on its marketplace (also used by placement for an order billed beyond the
tolerance).

A share is refunded only when the marketplace confirms the cancellation (the order its cancel
call returns, or else its order status, says cancelled; a 2xx alone is not a confirmation).
Sub-orders not placed yet are cancelled with a conditional update from `pending`, the same row
change a placement claim makes, so exactly one of the two wins; sub-orders being placed (or
reconciled) are left to their placement and the cancellation job retries. What the shopper is
told of it is worded in commerce.cancellation_notices.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload, sessionmaker

from adapters.base import (
    Capability,
    MarketplaceAdapter,
    MarketplaceError,
    NotFound,
    Rejected,
    Unsupported,
)
from commerce.cancellation_notices import (
    CANCELLATION_REFUSED,
    STOPPED_BEFORE_PLACEMENT,
    cancellation_answer,
    refusal_notice,
    tell_parts_cancelled,
)
from commerce.exactly_once_models import OutboxMessage, OutboxTopic
from commerce.marketplace_access import AdapterProvider, marketplace_can
from commerce.models import utc_now
from commerce.notifications import notify
from commerce.order_locks import lock_order
from commerce.order_models import (
    LIVE_SUB_ORDER_STATUSES,
    PLACED_SUB_ORDER_STATUSES,
    UNSETTLED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    OrderStatus,
    SubOrderStatus,
)
from commerce.order_state import (
    flag_order,
    locked_sub_order,
    sub_order_status_for,
)
from commerce.order_timeline import TimelineStep, record_event
from commerce.payments.providers import GatewayProvider, gateway_for_payment
from commerce.settlement import process_refunds, settle_payment
from commerce.sub_order_compensation import compensate_sub_order

logger = logging.getLogger(__name__)

CANCELLABLE_ORDER_STATUSES = frozenset({OrderStatus.PENDING, OrderStatus.PROCESSING})

# What the shopper is told lives in commerce.cancellation_notices; these names stay importable
# from here.
__all__ = [
    "CANCELLATION_REFUSED",
    "STOPPED_BEFORE_PLACEMENT",
    "cancellation_answer",
    "refusal_notice",
    "tell_parts_cancelled",
]


class OrderActionError(Exception):
    """An order action the shopper cannot take now; `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def order_is_cancellable(order: Order) -> bool:
    """Not shipped, not already cancelled or finished, and at least one sub-order still live."""
    return (
        order.status in CANCELLABLE_ORDER_STATUSES
        and order.cancel_requested_at is None
        and any(sub.status in LIVE_SUB_ORDER_STATUSES for sub in order.charged_sub_orders)
        and not any(
            sub.status in (SubOrderStatus.SHIPPED, SubOrderStatus.DELIVERED)
            for sub in order.charged_sub_orders
        )
    )


def cancel_pending_sub_order(
    session: Session, sub_order: MarketplaceOrder, *, reason: str, tell_shopper: bool = True
) -> bool:
    """pending → cancelled (compare-and-set; its share refunded). False when a placement claimed it
    first. The caller locked the order (and, with `tell_shopper` False, tells the shopper)."""
    changed = session.execute(
        sa.update(MarketplaceOrder)
        .where(
            MarketplaceOrder.id == sub_order.id,
            MarketplaceOrder.status == SubOrderStatus.PENDING,
        )
        .values(updated_at=utc_now())
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    session.refresh(sub_order)
    if not changed or sub_order.status != SubOrderStatus.PENDING:
        return False
    compensate_sub_order(
        session,
        sub_order,
        status=SubOrderStatus.CANCELLED,
        reason=reason,
        tell_shopper=tell_shopper,
    )
    record_event(session, sub_order, TimelineStep.CANCELLED, detail=reason)
    return True


def request_cancellation(session: Session, user_id: int, number: str) -> Order:
    """Record the shopper's cancellation and queue the job that carries it out.

    Sub-orders not placed yet are cancelled here and now; placed ones are cancelled through their
    marketplace by the job.
    """
    order = session.scalar(
        sa.select(Order)
        .where(Order.number == number, Order.user_id == user_id)
        .options(selectinload(Order.sub_orders))
    )
    if order is None:
        raise OrderActionError("That order does not exist.")
    lock_order(session, order.id)
    session.refresh(order)
    for sub_order in order.sub_orders:
        session.refresh(sub_order)
    if not order_is_cancellable(order):
        raise OrderActionError(
            "This order can no longer be cancelled: part of it has shipped or it is already "
            "cancelled."
        )
    order.cancel_requested_at = utc_now()
    session.flush()
    cancelled_now = [
        sub_order.id
        for sub_order in order.charged_sub_orders
        if sub_order.status == SubOrderStatus.PENDING
        and cancel_pending_sub_order(
            session,
            sub_order,
            reason=STOPPED_BEFORE_PLACEMENT,
            tell_shopper=False,
        )
    ]
    session.refresh(order, attribute_names=["status"])
    if order.status != OrderStatus.CANCELLED:
        # Parts placed already are cancelled by the job: said first, the parts cancelled now
        # merged into it. An order cancelled whole here is said by its own sentence alone.
        notify(session, order, "cancellation_requested", f"We are cancelling order {order.number}.")
    tell_parts_cancelled(session, order, cancelled_now)
    session.add(OutboxMessage(topic=OutboxTopic.CANCEL_ORDER, order_id=order.id))
    session.flush()
    return order


class CancelOutcome(enum.StrEnum):
    """What cancelling one placed sub-order on its marketplace came to."""

    CANCELLED = "cancelled"
    REFUSED = "refused"
    UNKNOWN = "unknown"


def cancel_on_marketplace(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    adapter: MarketplaceAdapter,
    *,
    reason: str,
    gateway_for: GatewayProvider = gateway_for_payment,
    tell_shopper: bool = True,
    before_read_back: Callable[[], bool] | None = None,
) -> CancelOutcome:
    """Cancel a placed sub-order on its marketplace and, once the marketplace confirms, refund
    its share. An unknown outcome is resolved by reading the order's status there. With
    `tell_shopper` False the caller tells the shopper (tell_parts_cancelled).
    `before_read_back`: run before that read (the abandoned-cancellation sweep renews its claim);
    False leaves the outcome unknown, the order not read."""
    outcome, _recorded_here = _cancel_on_marketplace(
        session_factory,
        sub_order_id,
        adapter,
        reason=reason,
        gateway_for=gateway_for,
        tell_shopper=tell_shopper,
        before_read_back=before_read_back,
    )
    return outcome


def _cancel_on_marketplace(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    adapter: MarketplaceAdapter,
    *,
    reason: str,
    gateway_for: GatewayProvider,
    tell_shopper: bool,
    before_read_back: Callable[[], bool] | None = None,
) -> tuple[CancelOutcome, bool]:
    """cancel_on_marketplace, and whether this call recorded the cancellation (moved the part
    from a placed status, its share refunded): a part cancelled meanwhile by another (a second
    run of the cancellation job, tracking) is CANCELLED too, but it is not this call's to tell
    the shopper of."""
    with session_factory() as session:
        sub_order = session.get(MarketplaceOrder, sub_order_id)
        if sub_order is not None and sub_order.status == SubOrderStatus.CANCELLED:
            # Cancelled (and refunded) since the caller read it, by tracking or another job.
            return CancelOutcome.CANCELLED, False
        if sub_order is None or sub_order.status not in PLACED_SUB_ORDER_STATUSES:
            return CancelOutcome.REFUSED, False
        marketplace_order_id = sub_order.marketplace_order_id or ""
    try:
        state = adapter.cancel_order(marketplace_order_id)
    except Unsupported:
        return CancelOutcome.REFUSED, False
    except (Rejected, NotFound):
        # The refusal may be about the order being cancelled already (an earlier cancel call of
        # this job whose reply was lost took effect, or the store cancelled it): ask. Only an
        # order the marketplace shows not cancelled makes the refusal one; an order it cannot
        # show now leaves the outcome unknown (asked again; never captured as "it ships").
        there = _cancelled_there(adapter, marketplace_order_id, before_read_back)
        if there is None:
            logger.warning(
                "cancelling sub-order %s: refused, and the order cannot be read", sub_order_id
            )
            return CancelOutcome.UNKNOWN, False
        if not there:
            return CancelOutcome.REFUSED, False
    except MarketplaceError as exc:
        logger.warning("cancelling sub-order %s: %s; asking the marketplace", sub_order_id, exc)
        if not _cancelled_there(adapter, marketplace_order_id, before_read_back):
            return CancelOutcome.UNKNOWN, False
    else:
        # A 2xx is not a confirmation: the order it returns must say cancelled (a store may
        # refuse the transition in the body, or cancel later in the background). Otherwise ask
        # once more; still not cancelled, the outcome is unknown and nothing is refunded (the
        # cancellation job retries, tracking refunds once the marketplace reports it).
        if sub_order_status_for(state.status) != SubOrderStatus.CANCELLED and not (
            _cancelled_there(adapter, marketplace_order_id, before_read_back)
        ):
            logger.warning(
                "cancelling sub-order %s: the marketplace answered %s, not cancelled",
                sub_order_id,
                state.raw_status,
            )
            return CancelOutcome.UNKNOWN, False
    with session_factory() as session, session.begin():
        sub_order = locked_sub_order(session, sub_order_id)
        recorded_here = sub_order.status in PLACED_SUB_ORDER_STATUSES
        if recorded_here:
            compensate_sub_order(
                session,
                sub_order,
                status=SubOrderStatus.CANCELLED,
                reason=reason,
                tell_shopper=tell_shopper,
            )
            record_event(session, sub_order, TimelineStep.CANCELLED, detail=reason)
        order_id = sub_order.order_id
    if tell_shopper:
        # Otherwise the caller refunds and settles once it told the shopper: a card refund made
        # first would be confirmed ("We refunded …") before the cancellation itself was said.
        process_refunds(session_factory, order_id, gateway_for=gateway_for)
        settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return CancelOutcome.CANCELLED, recorded_here


def _cancelled_there(
    adapter: MarketplaceAdapter,
    marketplace_order_id: str,
    before_read_back: Callable[[], bool] | None = None,
) -> bool | None:
    """After a cancel call that failed: does the marketplace report the order cancelled? None
    when it cannot be asked now (or `before_read_back` said not to ask)."""
    if before_read_back is not None and not before_read_back():
        return None
    try:
        state = adapter.order_status(marketplace_order_id)
    except MarketplaceError:
        return None
    return sub_order_status_for(state.status) == SubOrderStatus.CANCELLED


def _record_outcomes(
    session_factory: sessionmaker[Session], order_id: int, outcomes: dict[int, str]
) -> None:
    """Keep each marketplace's answer on its sub-order (a later, clearer answer replaces an
    unknown one)."""
    if not outcomes:
        return
    with session_factory() as session, session.begin():
        lock_order(session, order_id)
        for sub_order_id, outcome in outcomes.items():
            sub_order = session.get(MarketplaceOrder, sub_order_id)
            # A confirmed cancellation stands: a second job that asked again (and was refused,
            # the order being cancelled already) does not overwrite it.
            if sub_order is None or (
                sub_order.status == SubOrderStatus.CANCELLED
                and outcome != CancelOutcome.CANCELLED.value
            ):
                continue
            sub_order.cancel_outcome = outcome


def claim_refusals_to_tell(session: Session, sub_order_ids: list[int]) -> set[int]:
    """Of these refused parts, the ones this caller is to tell the shopper go ahead: each still
    placed and never told, marked told by a compare-and-set from NULL (the caller holds the
    order's lock and writes the notice in the same transaction). Whichever run of the
    cancellation job or sweep finds a refusal, it is told once; a part refused after the
    order's notice was sent (that notice names only the parts refused then) is told too."""
    now = utc_now()
    told: set[int] = set()
    for sub_order_id in sub_order_ids:
        result = session.execute(
            sa.update(MarketplaceOrder)
            .where(
                MarketplaceOrder.id == sub_order_id,
                MarketplaceOrder.cancel_refusal_told_at.is_(None),
                MarketplaceOrder.status.in_(PLACED_SUB_ORDER_STATUSES),
            )
            .values(cancel_refusal_told_at=now, updated_at=MarketplaceOrder.updated_at)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            told.add(sub_order_id)
    return told


@dataclass(frozen=True, slots=True)
class CancellationReport:
    """What the cancellation job did: sub-orders cancelled, refused, or still in flight."""

    cancelled: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()
    in_flight: tuple[str, ...] = ()


def carry_out_cancellation(
    session_factory: sessionmaker[Session],
    order_id: int,
    *,
    adapter_for: AdapterProvider,
    gateway_for: GatewayProvider = gateway_for_payment,
    final_attempt: bool = False,
) -> CancellationReport:
    """Cancel the order's placed sub-orders where the marketplace allows it, refund them, and
    settle the payment. Sub-orders still being placed are reported `in_flight` (the job retries).

    Each marketplace's answer is kept on its sub-order (`cancel_outcome`) for the order page. On
    the `final_attempt`, marketplaces whose answer is still unknown are named to the shopper
    honestly (they may still cancel or ship; the sweeper and an operator follow them up)."""
    with session_factory() as session:
        order = session.get(Order, order_id)
        if order is None or order.cancel_requested_at is None:
            return CancellationReport()
        targets = [(sub.id, sub.marketplace, sub.status) for sub in order.charged_sub_orders]
    cancelled: list[str] = []
    refused: list[str] = []
    # The refused parts (as `refused` names them), told the shopper once at the end.
    refused_ids: list[int] = []
    in_flight: list[str] = []
    outcomes: dict[int, str] = {}
    # Parts this attempt cancelled, told to the shopper together at the end.
    cancelled_ids: list[int] = []
    # Placed parts whose marketplace gave no clear answer to the cancel call.
    unanswered: list[str] = []
    for sub_order_id, marketplace, status in targets:
        if status == SubOrderStatus.PENDING:
            with session_factory() as session, session.begin():
                sub_order = locked_sub_order(session, sub_order_id)
                done = cancel_pending_sub_order(
                    session,
                    sub_order,
                    reason=STOPPED_BEFORE_PLACEMENT,
                    tell_shopper=False,
                )
            (cancelled if done else in_flight).append(marketplace.name)
            if done:
                cancelled_ids.append(sub_order_id)
            continue
        if status in UNSETTLED_SUB_ORDER_STATUSES:
            in_flight.append(marketplace.name)
            continue
        if status not in PLACED_SUB_ORDER_STATUSES:
            continue
        if status in (SubOrderStatus.SHIPPED, SubOrderStatus.DELIVERED) or not marketplace_can(
            marketplace, Capability.CANCEL
        ):
            refused.append(marketplace.name)
            refused_ids.append(sub_order_id)
            continue
        outcome, recorded_here = _cancel_on_marketplace(
            session_factory,
            sub_order_id,
            adapter_for(marketplace),
            reason=f"Cancelled at your request; {marketplace.name} confirmed.",
            gateway_for=gateway_for,
            tell_shopper=False,
        )
        if recorded_here:
            # Told by the run that recorded it: a second run of the job at the same time (one
            # outbox row dispatched twice) finds it cancelled too, and says nothing of it.
            cancelled_ids.append(sub_order_id)
        {
            CancelOutcome.CANCELLED: cancelled,
            CancelOutcome.REFUSED: refused,
            CancelOutcome.UNKNOWN: in_flight,
        }[outcome].append(marketplace.name)
        if outcome == CancelOutcome.REFUSED:
            refused_ids.append(sub_order_id)
        if outcome == CancelOutcome.UNKNOWN:
            unanswered.append(marketplace.name)
            # Not kept before the last attempt: RQ asks again, and the card capture waits for
            # this part's answer (settlement.cancellation_unanswered) so that a cancel confirmed
            # by a retry releases the hold instead of refunding a capture. The last attempt
            # keeps "unknown" below; a job that dies first is answered by the abandoned-
            # cancellation sweep, which finds the part by this NULL.
            continue
        outcomes[sub_order_id] = outcome.value
    for sub_order_id, marketplace, status in targets:
        if status in (SubOrderStatus.SHIPPED, SubOrderStatus.DELIVERED) or (
            status in PLACED_SUB_ORDER_STATUSES
            and not marketplace_can(marketplace, Capability.CANCEL)
        ):
            outcomes.setdefault(sub_order_id, CancelOutcome.REFUSED.value)
        elif final_attempt and marketplace.name in in_flight:
            outcomes.setdefault(sub_order_id, CancelOutcome.UNKNOWN.value)
    _record_outcomes(session_factory, order_id, outcomes)
    # One message for what this attempt came to (parts cancelled, refused, unanswered), written
    # in one transaction so that it is merged into one notification.
    with session_factory() as session, session.begin():
        lock_order(session, order_id)
        order = session.get(Order, order_id)
        assert order is not None
        goes_ahead = None
        # Only the refused parts no run or sweep told yet (each marked told here, compare-and-
        # set): a part an earlier run or the sweep told is not told again, and one refused
        # since the order's notice was sent is told now (a `once` notice for the order would
        # have returned that earlier notice, which does not name it).
        to_tell = set() if in_flight else claim_refusals_to_tell(session, refused_ids)
        untold = [
            name for name, sub_id in zip(refused, refused_ids, strict=True) if sub_id in to_tell
        ]
        if untold:
            goes_ahead = notify(
                session,
                order,
                CANCELLATION_REFUSED,
                refusal_notice(untold),
            )
        if in_flight and final_attempt:
            goes_ahead = notify(
                session,
                order,
                "cancellation_unknown",
                "We have no clear answer yet from " + ", ".join(in_flight) + " about cancelling "
                "their part of your order. We keep checking: if it is cancelled you are refunded "
                "in full for it; if not, it ships as ordered.",
                once=True,
            )
            if unanswered:
                # No job asks these marketplaces again (tracking refunds only if one reports
                # the order cancelled): an operator follows the cancellation up with them.
                flag_order(
                    order,
                    "The shopper's cancellation got no clear answer from "
                    + ", ".join(unanswered)
                    + " after the last attempt: ask them to cancel, or let it ship.",
                )
        # The parts cancelled lead the one message; its kind stays the part that goes ahead (or
        # is unanswered), the news the shopper may have to act on, and it stays the order's
        # notice (no part): merging a single cancelled part's sentence gave it that part's id,
        # and a second run of the job (its `once` asks for the order's notice) or the
        # abandoned-cancellation sweep (which looks for the order's notice or the refused
        # part's) then did not find it and told the shopper again.
        said = (goes_ahead.kind, goes_ahead.sub_order_id) if goes_ahead is not None else None
        tell_parts_cancelled(session, order, cancelled_ids, lead=True)
        if goes_ahead is not None and said is not None:
            goes_ahead.kind, goes_ahead.sub_order_id = said
    process_refunds(session_factory, order_id, gateway_for=gateway_for)
    settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return CancellationReport(tuple(cancelled), tuple(refused), tuple(in_flight))

"""The sweeper: the repeating job that makes sure nothing an order needs is forgotten.

- outbox rows that never reached Redis (it was down at checkout) are enqueued;
- sub-orders stuck in `placing` past their claim's lease (their worker died mid-placement), and
  sub-orders `reconciling` (a placement whose outcome is unknown) that no job is working on, are
  enqueued again; the next attempt asks the marketplace for an order with the order's reference
  before placing anything; one whose outcome is still unresolved (`reconciling`, or `placing`
  while an attempt asks again) a day after it first became so (the marketplace keeps failing
  when asked) puts its order on the operator's list, once, and is asked on;
- sub-orders left `pending` with no job in sight for too long (Redis lost its queue) likewise;
- placed sub-orders whose placement died while cancelling them (billed beyond the tolerance; the
  claim kept for the cancel ran out) have that cancel carried out, before any capture;
- placed parts of a shopper's cancellation whose job ended with no answer for them (killed on
  its last attempt) are resolved by asking their marketplace (commerce.abandoned_cancellations);
- payments whose capture or void has an unknown outcome are resolved from the provider's record;
- card holds whose authorization at checkout had an unknown outcome are resolved from Stripe's
  record: kept when an order uses them, released otherwise (commerce.card_holds); checkout
  holds Stripe still keeps uncaptured that no order and no such record accounts for (the
  database was down when checkout would have written one) are recorded first
  (commerce.unrecorded_card_holds), so they are too;
  card refunds whose provider call started long ago and never ended are looked up by their key;
- card payments whose sub-orders are all settled but were never captured are settled; pending
  refunds are retried; notification e-mails that failed are retried.

Each order's step is its own failure: one that raises (not a payment error, which each step
handles itself) is logged, counted (`SweepReport.order_failures`) and its order flagged for an
operator, and the sweep goes on with the other orders. A card hold's step is its own failure
the same way (`SweepReport.hold_failures`, noted on the hold's row, which /admin/attention
lists), and so is a card-hold step as a whole: settlement still runs after it.

Dispatching is a callable handed in by the job layer (storefront.jobs), so this module never
imports RQ and is tested with the real queue and without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.abandoned_cancellations import (
    SWEEP_CLAIM_DEAD_AFTER,
    find_abandoned_cancellations,
    resolve_abandoned_cancellation,
)
from commerce.card_holds import CardGatewayFactory, HoldFailures, resolve_holds_in_doubt
from commerce.exactly_once_models import OutboxMessage, OutboxTopic
from commerce.marketplace_access import AdapterProvider, adapter_for_marketplace
from commerce.models import utc_now
from commerce.order_models import (
    UNSETTLED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundStatus,
    SubOrderStatus,
)
from commerce.payments.providers import (
    GatewayProvider,
    card_gateway_from_settings,
    gateway_for_payment,
)
from commerce.placement_outcomes import (
    find_abandoned_cancels,
    finish_abandoned_cancel,
    flag_for_operator,
)
from commerce.provider_attempts import ATTEMPTS_KEPT_FOR, prune_attempts
from commerce.refunds import (
    REFUND_IN_DOUBT_FLAG_AFTER,
    RefundsTold,
    find_refunds_to_reconcile,
    reconcile_refund,
    refund_orders,
)
from commerce.settlement import (
    find_payments_to_reconcile,
    process_refunds,
    reconcile_payment,
    settle_payment,
)
from commerce.sweep_steps import OrderSteps, flag_long_reconciling
from commerce.unrecorded_card_holds import UNRECORDED_AFTER, record_unrecorded_holds

logger = logging.getLogger(__name__)

SWEEP_BATCH_SIZE = 500
ERROR_TEXT_LIMIT = 500

# Enqueue one outbox row; returns the job id. Raises when the queue is unreachable.
Dispatcher = Callable[[OutboxMessage], str]


@dataclass(frozen=True, slots=True)
class SweepPolicy:
    """How long things may sit before the sweeper steps in."""

    stuck_after: timedelta = timedelta(minutes=5)
    stale_pending_after: timedelta = timedelta(minutes=10)
    refund_processing_after: timedelta = timedelta(minutes=10)
    # A refund whose outcome Stripe still cannot tell this long after its call goes before an
    # operator (commerce.refunds.reconcile_refund).
    refund_in_doubt_flag_after: timedelta = REFUND_IN_DOUBT_FLAG_AFTER
    # A reconciling sub-order no job touched for this long gets a new placement job.
    reconcile_after: timedelta = timedelta(minutes=1)
    # A sub-order whose outcome is still unresolved this long after it first became so goes
    # before an operator: the marketplace may have shipped meanwhile, and a card hold lapses
    # after about 7 days.
    reconciling_flag_after: timedelta = timedelta(hours=24)
    # A card hold in doubt is left to its checkout this long (commerce.card_holds).
    hold_in_doubt_after: timedelta = timedelta(minutes=2)
    # A checkout hold Stripe keeps this long with no record of it was never recorded.
    unrecorded_hold_after: timedelta = UNRECORDED_AFTER
    # An order's last cancellation job was enqueued this long ago: all its attempts have ended,
    # so a placed part it left with no answer was abandoned (commerce.abandoned_cancellations).
    cancel_job_ended_after: timedelta = timedelta(hours=1)
    # A sweep's claim on such a part older than this was left by a killed sweep: taken over.
    cancel_sweep_dead_after: timedelta = SWEEP_CLAIM_DEAD_AFTER
    # A cancel's or capture's attempt number outlives Stripe's 24 h keys by this much
    # (commerce.provider_attempts).
    attempts_kept_for: timedelta = ATTEMPTS_KEPT_FOR


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did."""

    dispatched: int = 0
    dispatch_failures: int = 0
    requeued_stuck: int = 0
    requeued_stale: int = 0
    requeued_reconciling: int = 0
    payments_reconciled: int = 0
    refunds_reconciled: int = 0
    settled: int = 0
    refunds: int = 0
    holds_resolved: int = 0
    unrecorded_holds: int = 0
    reconciling_flagged: int = 0
    cancels_finished: int = 0
    cancellations_resolved: int = 0
    # Orders whose step raised something other than a payment error (logged and flagged; the
    # rest of the sweep went on without them).
    order_failures: int = 0
    # Card holds (and the card-hold steps themselves) that raised something other than a
    # payment error: logged, noted on the hold's row, the rest of the sweep went on.
    hold_failures: int = 0
    # provider_call_attempts rows deleted (older than Stripe's keys).
    attempts_pruned: int = 0


def dispatch_outbox(
    session_factory: sessionmaker[Session],
    dispatch: Dispatcher,
    *,
    order_id: int | None = None,
    limit: int = SWEEP_BATCH_SIZE,
) -> tuple[int, int]:
    """Enqueue undispatched outbox rows (of one order, or all); returns (dispatched, failed).

    Each row is marked right after its job is in Redis; a crash in between only means the job is
    enqueued twice, which placement's claim makes harmless.
    """
    now = utc_now()
    with session_factory() as session:
        query = (
            sa.select(OutboxMessage)
            .where(OutboxMessage.dispatched_at.is_(None), OutboxMessage.available_at <= now)
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        if order_id is not None:
            query = query.where(OutboxMessage.order_id == order_id)
        messages = list(session.scalars(query))
        session.expunge_all()
    dispatched = failed = 0
    for message in messages:
        try:
            job_id = dispatch(message)
        except Exception as exc:  # the queue is unreachable: leave the row for the next sweep
            failed += 1
            _record_dispatch(session_factory, message.id, job_id=None, error=str(exc))
            logger.warning("outbox %s not dispatched: %s", message.id, exc)
            # One failure usually means Redis is down: do not hammer it for every row.
            break
        dispatched += 1
        _record_dispatch(session_factory, message.id, job_id=job_id, error=None)
    return dispatched, failed


def _record_dispatch(
    session_factory: sessionmaker[Session],
    message_id: int,
    *,
    job_id: str | None,
    error: str | None,
) -> None:
    values: dict[str, object] = {"dispatch_attempts": OutboxMessage.dispatch_attempts + 1}
    if job_id is not None:
        values.update(dispatched_at=utc_now(), job_id=job_id, last_error=None)
    else:
        values.update(last_error=(error or "")[:ERROR_TEXT_LIMIT])
    with session_factory() as session, session.begin():
        session.execute(
            sa.update(OutboxMessage).where(OutboxMessage.id == message_id).values(**values)
        )


def _requeue(session_factory: sessionmaker[Session], sub_order_ids: list[int]) -> int:
    """New outbox rows for sub-orders that need another placement attempt."""
    if not sub_order_ids:
        return 0
    with session_factory() as session, session.begin():
        rows = session.execute(
            sa.select(MarketplaceOrder.id, MarketplaceOrder.order_id).where(
                MarketplaceOrder.id.in_(sub_order_ids)
            )
        ).all()
        for sub_order_id, order_id in rows:
            session.add(
                OutboxMessage(
                    topic=OutboxTopic.PLACE_SUB_ORDER, order_id=order_id, sub_order_id=sub_order_id
                )
            )
    return len(rows)


def _requeued_since(cutoff: object) -> sa.ColumnElement[bool]:
    return (
        sa.select(OutboxMessage.id)
        .where(
            OutboxMessage.sub_order_id == MarketplaceOrder.id,
            OutboxMessage.created_at >= cutoff,
        )
        .exists()
    )


def find_stuck_placements(session: Session, *, stuck_after: timedelta) -> list[int]:
    """Sub-orders `placing` whose claim's lease ran out (their worker presumably died) and not
    already re-queued within `stuck_after`."""
    now = utc_now()
    return list(
        session.scalars(
            sa.select(MarketplaceOrder.id).where(
                MarketplaceOrder.status == SubOrderStatus.PLACING,
                sa.or_(
                    MarketplaceOrder.claim_expires_at < now,
                    sa.and_(
                        MarketplaceOrder.claim_expires_at.is_(None),
                        MarketplaceOrder.placing_started_at < now - stuck_after,
                    ),
                ),
                ~_requeued_since(now - stuck_after),
            )
        )
    )


def find_reconciling(session: Session, *, idle_after: timedelta, max_idle: timedelta) -> list[int]:
    """Sub-orders `reconciling` that no job is working on: untouched (and not re-queued) for
    `idle_after` × their attempts so far, at most `max_idle` — a marketplace that keeps failing
    is asked less and less often, and one that is back is asked within one interval."""
    now = utc_now()
    rows = session.execute(
        sa.select(
            MarketplaceOrder.id, MarketplaceOrder.attempts, MarketplaceOrder.updated_at
        ).where(
            MarketplaceOrder.status == SubOrderStatus.RECONCILING,
            MarketplaceOrder.updated_at <= now - idle_after,
            ~_requeued_since(now - idle_after),
        )
    ).all()
    due = []
    for sub_order_id, attempts, updated_at in rows:
        wait = min(idle_after * max(1, attempts), max(max_idle, idle_after))
        if updated_at <= now - wait:
            due.append(sub_order_id)
    return due


def find_stale_pending(session: Session, *, stale_after: timedelta) -> list[int]:
    """Pending sub-orders untouched for `stale_after` whose every outbox row was dispatched
    (so the job was lost, not merely waiting for Redis or for its retry)."""
    undispatched = (
        sa.select(OutboxMessage.id)
        .where(
            OutboxMessage.sub_order_id == MarketplaceOrder.id,
            OutboxMessage.dispatched_at.is_(None),
        )
        .exists()
    )
    recent = (
        sa.select(OutboxMessage.id)
        .where(
            OutboxMessage.sub_order_id == MarketplaceOrder.id,
            OutboxMessage.created_at >= utc_now() - stale_after,
        )
        .exists()
    )
    return list(
        session.scalars(
            sa.select(MarketplaceOrder.id).where(
                MarketplaceOrder.status == SubOrderStatus.PENDING,
                MarketplaceOrder.updated_at < utc_now() - stale_after,
                ~undispatched,
                ~recent,
            )
        )
    )


def find_unsettled_payments(session: Session) -> list[int]:
    """Orders with an authorized card payment and no sub-order left in flight."""
    in_flight = (
        sa.select(MarketplaceOrder.id)
        .where(
            MarketplaceOrder.order_id == Payment.order_id,
            MarketplaceOrder.status.in_(UNSETTLED_SUB_ORDER_STATUSES),
        )
        .exists()
    )
    return list(
        session.scalars(
            sa.select(Payment.order_id)
            .where(
                Payment.method == PaymentMethod.STRIPE,
                Payment.status == PaymentStatus.AUTHORIZED,
                ~in_flight,
            )
            .order_by(Payment.order_id)
        )
    )


def _flag_sub_orders_order(
    session_factory: sessionmaker[Session], sub_order_id: int, reason: str
) -> None:
    """Put the order of a sub-order a sweep step failed on before an operator; a failure here
    is logged, never raised: the rest of the sweep still runs."""
    try:
        with session_factory() as session:
            order_id = session.scalar(
                sa.select(MarketplaceOrder.order_id).where(MarketplaceOrder.id == sub_order_id)
            )
        if order_id is not None:
            flag_for_operator(session_factory, order_id, reason)
    except Exception:
        logger.exception("sub-order %s: its order could not be flagged", sub_order_id)


def _finish_abandoned_cancel(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    policy: SweepPolicy,
    adapter_for: AdapterProvider,
    gateway_for: GatewayProvider,
) -> int:
    """1 when the cancel a dead placement left was carried out now. One that raises (its
    marketplace's adapter cannot be built, the database went away) is logged, its order put on
    the operator's list (the capture waits for that cancel), and it is tried again at a later
    pass (its claim runs out again); it never stops the rest of the sweep."""
    try:
        finished = finish_abandoned_cancel(
            session_factory,
            sub_order_id,
            adapter_for=adapter_for,
            gateway_for=gateway_for,
            # Never a zero lease (a test's policy): renewed every quarter of it.
            lease=max(policy.stuck_after, timedelta(seconds=1)),
        )
    except Exception as exc:
        logger.exception(
            "sub-order %s: the cancel its placement left failed; retried", sub_order_id
        )
        _flag_sub_orders_order(
            session_factory,
            sub_order_id,
            f"sub-order {sub_order_id}: the cancel of an order billed beyond what was "
            f"paid could not be carried out ({type(exc).__name__}); the capture waits "
            "for it: cancel it with the marketplace.",
        )
        return 0
    return 0 if finished is None else 1


def _resolve_abandoned_cancellation(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    adapter_for: AdapterProvider,
    gateway_for: GatewayProvider,
    *,
    claim_dead_after: timedelta,
) -> int:
    """1 when a part an ended cancellation job left was resolved (cancelled, refused or put
    before an operator). One that raises is logged and, its claim possibly taken, flagged so
    that an operator looks; it never stops the rest of the sweep."""
    try:
        outcome = resolve_abandoned_cancellation(
            session_factory,
            sub_order_id,
            adapter_for=adapter_for,
            gateway_for=gateway_for,
            claim_dead_after=claim_dead_after,
        )
    except Exception as exc:
        logger.exception("sub-order %s: its abandoned cancellation failed", sub_order_id)
        _flag_sub_orders_order(
            session_factory,
            sub_order_id,
            f"sub-order {sub_order_id}: the shopper's cancellation job ended without an "
            f"answer for it, and resolving it failed ({type(exc).__name__}); nothing "
            "was refunded: ask the marketplace whether it is cancelled.",
        )
        return 0
    return 0 if outcome is None else 1


def sweep(
    session_factory: sessionmaker[Session],
    dispatch: Dispatcher,
    *,
    policy: SweepPolicy = SweepPolicy(),
    gateway_for: GatewayProvider = gateway_for_payment,
    card_gateway: CardGatewayFactory = card_gateway_from_settings,
    adapter_for: AdapterProvider = adapter_for_marketplace,
) -> SweepReport:
    """One pass of every repair above; safe to run any number of times, anywhere."""
    with session_factory() as session:
        abandoned_cancels = find_abandoned_cancels(session)
    cancels_finished = sum(
        _finish_abandoned_cancel(session_factory, sub_order_id, policy, adapter_for, gateway_for)
        for sub_order_id in abandoned_cancels
    )
    with session_factory() as session:
        abandoned_cancellations = find_abandoned_cancellations(
            session,
            job_ended_before=policy.cancel_job_ended_after,
            claim_dead_after=policy.cancel_sweep_dead_after,
        )
    cancellations_resolved = sum(
        _resolve_abandoned_cancellation(
            session_factory,
            sub_order_id,
            adapter_for,
            gateway_for,
            claim_dead_after=policy.cancel_sweep_dead_after,
        )
        for sub_order_id in abandoned_cancellations
    )
    with session_factory() as session:
        stuck = find_stuck_placements(session, stuck_after=policy.stuck_after)
        stale = find_stale_pending(session, stale_after=policy.stale_pending_after)
        reconciling = find_reconciling(
            session, idle_after=policy.reconcile_after, max_idle=policy.stuck_after
        )
    requeued_stuck = _requeue(session_factory, stuck)
    requeued_stale = _requeue(session_factory, stale)
    requeued_reconciling = _requeue(session_factory, reconciling)
    dispatched, failures = dispatch_outbox(session_factory, dispatch)
    reconciling_flagged = flag_long_reconciling(
        session_factory, older_than=policy.reconciling_flag_after
    )

    steps = OrderSteps(session_factory)
    with session_factory() as session:
        payments_in_doubt = find_payments_to_reconcile(session, older_than=policy.stuck_after)
        refunds_in_doubt = find_refunds_to_reconcile(
            session, older_than=policy.refund_processing_after
        )
        refund_order = refund_orders(session, refunds_in_doubt)
    # The refunds of one order that this sweep finds made are told in one message.
    refunds_told: dict[int, RefundsTold] = {}
    payments_reconciled = sum(
        steps.run(
            "reconciling its payment",
            sa.select(Payment.order_id).where(Payment.id == payment_id),
            partial(reconcile_payment, session_factory, payment_id, gateway_for=gateway_for),
        )
        for payment_id in payments_in_doubt
    )
    refunds_reconciled = sum(
        steps.run(
            "reconciling a refund",
            refund_order.get(refund_id, _order_of_refund(refund_id)),
            partial(
                reconcile_refund,
                session_factory,
                refund_id,
                gateway_for=gateway_for,
                flag_after=policy.refund_in_doubt_flag_after,
                told=refunds_told.setdefault(
                    refund_order.get(refund_id, -refund_id), RefundsTold()
                ),
            ),
        )
        for refund_id in refunds_in_doubt
    )
    hold_failures = HoldFailures()
    unrecorded_holds = _hold_step(
        "recording unrecorded card holds",
        hold_failures,
        partial(
            record_unrecorded_holds,
            session_factory,
            card_gateway,
            older_than=policy.unrecorded_hold_after,
            failures=hold_failures,
        ),
    )
    holds_resolved = _hold_step(
        "resolving card holds in doubt",
        hold_failures,
        partial(
            resolve_holds_in_doubt,
            session_factory,
            card_gateway,
            older_than=policy.hold_in_doubt_after,
            failures=hold_failures,
        ),
    )
    # Its own step: a failure to prune is logged and the sweep goes on to settle orders.
    attempts_pruned = _hold_step(
        "pruning provider call attempts",
        hold_failures,
        partial(prune_attempts, session_factory, older_than=policy.attempts_kept_for),
    )
    with session_factory() as session:
        unsettled = find_unsettled_payments(session)
        pending_refund_orders = list(
            session.scalars(
                sa.select(Payment.order_id)
                .join(Refund, Refund.payment_id == Payment.id)
                .where(Refund.status == RefundStatus.PENDING)
                .distinct()
                .order_by(Payment.order_id)
            )
        )
    settled = sum(
        steps.run(
            "settling its payment",
            order_id,
            partial(settle_payment, session_factory, order_id, gateway_for=gateway_for),
        )
        for order_id in unsettled
    )
    refunds = sum(
        steps.run(
            "sending its pending refunds",
            order_id,
            partial(process_refunds, session_factory, order_id, gateway_for=gateway_for),
        )
        for order_id in pending_refund_orders
    )
    return SweepReport(
        dispatched=dispatched,
        dispatch_failures=failures,
        requeued_stuck=requeued_stuck,
        requeued_stale=requeued_stale,
        requeued_reconciling=requeued_reconciling,
        payments_reconciled=payments_reconciled,
        refunds_reconciled=refunds_reconciled,
        settled=settled,
        refunds=refunds,
        holds_resolved=holds_resolved,
        unrecorded_holds=unrecorded_holds,
        reconciling_flagged=reconciling_flagged,
        cancels_finished=cancels_finished,
        cancellations_resolved=cancellations_resolved,
        order_failures=steps.failures,
        hold_failures=hold_failures.count,
        attempts_pruned=attempts_pruned,
    )


def _order_of_refund(refund_id: int) -> sa.Select[tuple[int]]:
    return (
        sa.select(Payment.order_id)
        .join(Refund, Refund.payment_id == Payment.id)
        .where(Refund.id == refund_id)
    )


def _hold_step(step: str, failures: HoldFailures, call: Callable[[], int]) -> int:
    """A card-hold step as a whole: each hold is already its own failure inside it; what is
    left (the query matching Stripe's holds with our records, the gateway's construction) is
    counted and logged, and the sweep goes on to settle orders. 0 when it raised."""
    try:
        return call()
    except Exception:
        failures.count += 1
        logger.exception("sweep: %s failed; tried again next sweep", step)
        return 0

"""Placing sub-orders on their marketplaces, and the money that follows: capture what was placed,
refund (or release) the share of what was not.

A placement is claimed with one conditional UPDATE (pending → placing), so two jobs for the same
sub-order never both talk to the marketplace. Each attempt sends the sub-order's idempotency key
and the order's relation token as the external reference; an attempt after an earlier one that
may have reached the marketplace first asks the marketplace for an order with that reference
(`find_order`) and adopts it instead of placing again. Failures:

- refused (Rejected, NotFound, Unsupported): final at once;
- transient (Transient, RateLimited, a malformed answer): the job retries with backoff, and the
  last attempt gives up;

and a sub-order that finally fails is compensated (Medusa-style): its share is refunded, the
shopper is told, the other sub-orders go on. When no sub-order is pending or placing any more the
card payment is captured for exactly the placed shares (Stripe releases the rest of the hold).

Calls to marketplaces and payment providers never run inside an open DB transaction.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from adapters.base import (
    BadPayload,
    MarketplaceError,
    NotFound,
    OrderLine,
    OrderRequest,
    PlacedOrder,
    RateLimited,
    Rejected,
    ShippingAddress,
    Transient,
    Unsupported,
)
from adapters.base import OrderStatus as MarketplaceStatus
from commerce.marketplace_access import AdapterProvider
from commerce.models import utc_now
from commerce.notifications import notify
from commerce.order_locks import lock_order, order_id_of_sub_order
from commerce.order_models import (
    LIVE_SUB_ORDER_STATUSES,
    PLACED_SUB_ORDER_STATUSES,
    UNSETTLED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.payments.gateway import PaymentError
from commerce.payments.providers import GatewayProvider, gateway_for_payment
from onecart.money import Money, from_minor_units

logger = logging.getLogger(__name__)

# A placement that has been "placing" this long is presumed dead (its worker was killed).
DEFAULT_STUCK_AFTER = timedelta(minutes=5)
ERROR_TEXT_LIMIT = 500

# A marketplace's word for a freshly placed order, in ours.
PLACED_STATUS_BY_MARKETPLACE_STATUS = {
    MarketplaceStatus.PENDING: SubOrderStatus.PLACED,
    MarketplaceStatus.PROCESSING: SubOrderStatus.PROCESSING,
    MarketplaceStatus.SHIPPED: SubOrderStatus.SHIPPED,
    MarketplaceStatus.DELIVERED: SubOrderStatus.DELIVERED,
}


class PlacementResult(enum.StrEnum):
    """What one placement attempt did."""

    PLACED = "placed"
    RECONCILED = "reconciled"
    NOT_CLAIMED = "not_claimed"
    RETRY = "retry"
    FAILED = "failed"


def money_text(minor: int, currency: str) -> str:
    """`1,234.50 USD` for messages (exact, no float)."""
    return f"{from_minor_units(minor, currency):,} {currency}"


# --- Scheduling -------------------------------------------------------------------------------

# How many recent placements per marketplace estimate its placement time.
PLACEMENT_HISTORY = 50


def expected_placement_seconds(session: Session, marketplace_ids: list[int]) -> dict[int, float]:
    """Each marketplace's average placement time over its recent placements (seconds; 0 when
    it has none yet).

    Checkout enqueues the slowest sub-orders first (longest-processing-time-first), so with
    fewer workers than sub-orders the slow marketplace is not left waiting behind fast ones.
    """
    durations: dict[int, list[float]] = {marketplace_id: [] for marketplace_id in marketplace_ids}
    if not marketplace_ids:
        return {}
    rows = session.execute(
        sa.select(
            MarketplaceOrder.marketplace_id,
            MarketplaceOrder.placing_started_at,
            MarketplaceOrder.placed_at,
        )
        .where(
            MarketplaceOrder.marketplace_id.in_(marketplace_ids),
            MarketplaceOrder.placed_at.is_not(None),
            MarketplaceOrder.placing_started_at.is_not(None),
        )
        .order_by(MarketplaceOrder.id.desc())
        .limit(PLACEMENT_HISTORY * len(marketplace_ids))
    ).all()
    for marketplace_id, started, placed in rows:
        samples = durations[marketplace_id]
        if len(samples) < PLACEMENT_HISTORY and placed >= started:
            samples.append((placed - started).total_seconds())
    return {
        marketplace_id: (sum(samples) / len(samples) if samples else 0.0)
        for marketplace_id, samples in durations.items()
    }


# --- Claiming ---------------------------------------------------------------------------------


def claim_sub_order(
    session_factory: sessionmaker[Session], sub_order_id: int, *, stuck_after: timedelta
) -> bool:
    """pending → placing (or re-claim a placing one presumed dead); True when this caller won."""
    now = utc_now()
    with session_factory() as session, session.begin():
        claimed = session.execute(
            sa.update(MarketplaceOrder)
            .where(
                MarketplaceOrder.id == sub_order_id,
                sa.or_(
                    MarketplaceOrder.status == SubOrderStatus.PENDING,
                    sa.and_(
                        MarketplaceOrder.status == SubOrderStatus.PLACING,
                        MarketplaceOrder.placing_started_at < now - stuck_after,
                    ),
                ),
            )
            .values(
                status=SubOrderStatus.PLACING,
                placing_started_at=now,
                attempts=MarketplaceOrder.attempts + 1,
                updated_at=now,
            )
        ).rowcount  # type: ignore[attr-defined]
    return bool(claimed)


@dataclass(frozen=True, slots=True)
class _PlacementPlan:
    request: OrderRequest
    reconcile_first: bool
    marketplace_name: str


def _placement_plan(session: Session, sub_order: MarketplaceOrder) -> _PlacementPlan:
    order = sub_order.order
    shipping = ShippingAddress(
        name=order.ship_name,
        line1=order.ship_line1,
        line2=order.ship_line2,
        city=order.ship_city,
        postal_code=order.ship_postal_code,
        country=order.ship_country,
        phone=order.phone,
        email=order.email,
    )
    lines = [
        OrderLine(
            external_id=item.external_id,
            quantity=item.quantity,
            unit_price_minor=item.unit_price_minor,
            currency=item.currency,
        )
        for item in sub_order.items
    ]
    return _PlacementPlan(
        request=OrderRequest(
            reference=order.relation_token,
            idempotency_key=sub_order.idempotency_key,
            lines=lines,
            shipping=shipping,
            currency=sub_order.currency,
        ),
        # Any attempt after the first may follow one that reached the marketplace.
        reconcile_first=sub_order.attempts > 1,
        marketplace_name=sub_order.marketplace.name,
    )


# --- Placing ----------------------------------------------------------------------------------


def place_sub_order(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    *,
    adapter_for: AdapterProvider,
    final_attempt: bool,
    stuck_after: timedelta = DEFAULT_STUCK_AFTER,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> PlacementResult:
    """One placement attempt of one sub-order (see the module docstring).

    RETRY means: put back to pending, try again later (the job raises so RQ retries it).
    """
    if not claim_sub_order(session_factory, sub_order_id, stuck_after=stuck_after):
        return PlacementResult.NOT_CLAIMED
    with session_factory() as session:
        sub_order = session.get(MarketplaceOrder, sub_order_id)
        assert sub_order is not None
        plan = _placement_plan(session, sub_order)
        adapter = adapter_for(sub_order.marketplace)
    try:
        placed: PlacedOrder | None = None
        result = PlacementResult.PLACED
        if plan.reconcile_first:
            placed = _find_earlier_placement(adapter, plan.request.reference)
            if placed is not None:
                result = PlacementResult.RECONCILED
        if placed is None:
            placed = adapter.place_order(plan.request)
    except (Rejected, NotFound, Unsupported) as exc:
        fail_sub_order(
            session_factory,
            sub_order_id,
            reason=f"{plan.marketplace_name} refused the order: {exc}",
            gateway_for=gateway_for,
        )
        return PlacementResult.FAILED
    except (Transient, RateLimited, BadPayload, MarketplaceError) as exc:
        if final_attempt:
            fail_sub_order(
                session_factory,
                sub_order_id,
                reason=f"{plan.marketplace_name} could not be reached: {exc}",
                gateway_for=gateway_for,
            )
            return PlacementResult.FAILED
        release_claim(session_factory, sub_order_id, error=str(exc))
        return PlacementResult.RETRY
    record_placement(session_factory, sub_order_id, placed, gateway_for=gateway_for)
    return result


def _find_earlier_placement(adapter: object, reference: str) -> PlacedOrder | None:
    """The order an earlier attempt created, if the marketplace can tell; None otherwise (then
    the same idempotency key still protects the placement that follows)."""
    find_order = getattr(adapter, "find_order", None)
    if find_order is None:
        return None
    try:
        return find_order(reference)
    except Unsupported:
        return None
    except MarketplaceError as exc:
        logger.warning("reconciling %s failed (%s); placing with the same key", reference, exc)
        return None


def release_claim(session_factory: sessionmaker[Session], sub_order_id: int, *, error: str) -> None:
    """placing → pending after a transient failure, keeping the error for the order page."""
    with session_factory() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder)
            .where(
                MarketplaceOrder.id == sub_order_id,
                MarketplaceOrder.status == SubOrderStatus.PLACING,
            )
            .values(
                status=SubOrderStatus.PENDING,
                last_error=error[:ERROR_TEXT_LIMIT],
                updated_at=utc_now(),
            )
        )


def record_placement(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    placed: PlacedOrder,
    *,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> bool:
    """placing → placed with the marketplace's order id; then settle the payment if this was the
    last sub-order in flight. False when the sub-order had moved on (nothing changed)."""
    status = PLACED_STATUS_BY_MARKETPLACE_STATUS.get(placed.status, SubOrderStatus.PLACED)
    with session_factory() as session, session.begin():
        sub_order = _locked_sub_order(session, sub_order_id)
        if sub_order.status != SubOrderStatus.PLACING:
            logger.warning(
                "sub-order %s was %s when its placement %s returned",
                sub_order_id,
                sub_order.status,
                placed.marketplace_order_id,
            )
            return False
        sub_order.status = status
        sub_order.marketplace_order_id = placed.marketplace_order_id
        sub_order.raw_status = placed.status.value
        sub_order.placed_at = utc_now()
        sub_order.last_error = None
        order = sub_order.order
        notify(
            session,
            order,
            "sub_order_placed",
            f"{sub_order.marketplace.name} accepted your order "
            f"(their order {placed.marketplace_order_id}).",
            sub_order_id=sub_order.id,
        )
        from commerce.tracking import refresh_order_status

        refresh_order_status(session, order)
        order_id = order.id
    settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return True


# --- Compensation -----------------------------------------------------------------------------


def fail_sub_order(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    *,
    reason: str,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> bool:
    """pending/placing → failed, its share refunded and the shopper told; the rest goes on."""
    with session_factory() as session, session.begin():
        sub_order = _locked_sub_order(session, sub_order_id)
        if sub_order.status not in UNSETTLED_SUB_ORDER_STATUSES:
            return False
        compensate_sub_order(session, sub_order, status=SubOrderStatus.FAILED, reason=reason)
        order_id = sub_order.order_id
    process_refunds(session_factory, order_id, gateway_for=gateway_for)
    settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return True


def _locked_sub_order(session: Session, sub_order_id: int) -> MarketplaceOrder:
    """The sub-order, read after locking its order (see commerce.order_locks)."""
    order_id = order_id_of_sub_order(session, sub_order_id)
    if order_id is None:
        raise LookupError(f"sub-order {sub_order_id} does not exist")
    lock_order(session, order_id)
    sub_order = session.get(MarketplaceOrder, sub_order_id)
    assert sub_order is not None
    return sub_order


def compensate_sub_order(
    session: Session,
    sub_order: MarketplaceOrder,
    *,
    status: SubOrderStatus,
    reason: str,
) -> Refund | None:
    """Mark a sub-order failed or cancelled, record the refund of its share (pending until the
    provider did it) and tell the shopper. The caller holds the transaction, has locked the
    order (commerce.order_locks) and checked that the sub-order was live; the refund itself
    runs in :func:`process_refunds`."""
    assert status in (SubOrderStatus.FAILED, SubOrderStatus.CANCELLED)
    order = sub_order.order
    sub_order.status = status
    sub_order.last_error = reason[:ERROR_TEXT_LIMIT]
    sub_order.updated_at = utc_now()
    payment = order.payment
    refund = None
    if payment is not None and sub_order.charge_minor > 0:
        refund = session.scalar(
            sa.select(Refund).where(Refund.idempotency_key == refund_key(sub_order))
        )
        if refund is None:
            refund = Refund(
                payment_id=payment.id,
                sub_order_id=sub_order.id,
                kind=_refund_kind(payment),
                status=RefundStatus.PENDING,
                amount_minor=sub_order.charge_minor,
                currency=sub_order.charge_currency,
                reason=reason[:200],
                idempotency_key=refund_key(sub_order),
            )
            session.add(refund)
            if payment.method == PaymentMethod.WALLET:
                # The wallet is our own ledger: credit it in this same transaction, so a failed
                # or cancelled sub-order and its refund can never be seen one without the other.
                from commerce.payments.wallet_gateway import WalletGateway

                session.flush()
                refund.provider_reference = WalletGateway(session, order.user).refund(
                    payment.provider_reference,
                    Money(refund.amount_minor, refund.currency),
                    idempotency_key=refund.idempotency_key,
                )
                _complete_refund(refund, RefundKind.WALLET_CREDIT)
                _refresh_payment_status(payment)
    market = sub_order.marketplace.name
    share = money_text(sub_order.charge_minor, sub_order.charge_currency)
    if status == SubOrderStatus.FAILED:
        message = (
            f"We could not place your {market} items, so we are refunding their {share}. "
            "The rest of your order goes ahead."
        )
    else:
        message = f"Your {market} items were cancelled; we are refunding their {share}."
    notify(session, order, f"sub_order_{status.value}", message, sub_order_id=sub_order.id)
    from commerce.tracking import refresh_order_status

    refresh_order_status(session, order)
    session.flush()
    return refund


def refund_key(sub_order: MarketplaceOrder) -> str:
    """The one refund a sub-order can ever get."""
    return f"refund-sub-{sub_order.id}"


def _refund_kind(payment: Payment) -> RefundKind:
    if payment.method == PaymentMethod.WALLET:
        return RefundKind.WALLET_CREDIT
    # Before the capture is claimed, the share is simply left out of it; afterwards it was (or
    # is being) captured and must be refunded on the card.
    if payment.status == PaymentStatus.AUTHORIZED:
        return RefundKind.RELEASE
    return RefundKind.CARD_REFUND


def process_refunds(
    session_factory: sessionmaker[Session],
    order_id: int,
    *,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> int:
    """Carry out the order's pending refunds that can run now; returns how many succeeded.

    Wallet credits are ledger lines in the same transaction. Card refunds need a captured
    payment; before capture the share is simply not captured (see :func:`settle_payment`).
    Each card refund is claimed first (pending → processing), so two workers never send it twice.
    """
    done = 0
    with session_factory() as session:
        refund_ids = list(
            session.scalars(
                sa.select(Refund.id)
                .join(Payment, Refund.payment_id == Payment.id)
                .where(Payment.order_id == order_id, Refund.status == RefundStatus.PENDING)
                .order_by(Refund.id)
            )
        )
    for refund_id in refund_ids:
        if _process_refund(session_factory, refund_id, gateway_for=gateway_for):
            done += 1
    return done


def _order_id_of_refund(session: Session, refund_id: int) -> int:
    order_id = session.scalar(
        sa.select(Payment.order_id)
        .join(Refund, Refund.payment_id == Payment.id)
        .where(Refund.id == refund_id)
    )
    if order_id is None:
        raise LookupError(f"refund {refund_id} does not exist")
    return order_id


def _process_refund(
    session_factory: sessionmaker[Session], refund_id: int, *, gateway_for: GatewayProvider
) -> bool:
    with session_factory() as session, session.begin():
        lock_order(session, _order_id_of_refund(session, refund_id))
        refund = session.get(Refund, refund_id)
        assert refund is not None
        payment = refund.payment
        if refund.status != RefundStatus.PENDING:
            return False
        if payment.method == PaymentMethod.WALLET:
            gateway = gateway_for(session, payment)
            refund.provider_reference = gateway.refund(
                payment.provider_reference,
                Money(refund.amount_minor, refund.currency),
                idempotency_key=refund.idempotency_key,
            )
            _complete_refund(refund, RefundKind.WALLET_CREDIT)
            _refresh_payment_status(payment)
            return True
        if payment.status == PaymentStatus.VOIDED or (
            refund.kind == RefundKind.RELEASE
            and payment.status
            in (PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED, PaymentStatus.REFUNDED)
        ):
            # Voided: nothing was ever taken. A release on a captured payment was left out of
            # the capture (finish_settlement normally completes these).
            _complete_refund(refund, RefundKind.RELEASE)
            _refresh_payment_status(payment)
            return True
        if payment.status not in (PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED):
            return False  # released at capture time
        refund.status = RefundStatus.PROCESSING
        provider_reference = payment.provider_reference
        amount = Money(refund.amount_minor, refund.currency)
        key = refund.idempotency_key
    with session_factory() as session:
        payment = session.get(Refund, refund_id).payment  # type: ignore[union-attr]
        gateway = gateway_for(session, payment)
    try:
        reference = gateway.refund(provider_reference, amount, idempotency_key=key)
    except PaymentError as exc:
        logger.warning("refund %s failed, will retry: %s", refund_id, exc)
        with session_factory() as session, session.begin():
            session.execute(
                sa.update(Refund)
                .where(Refund.id == refund_id, Refund.status == RefundStatus.PROCESSING)
                .values(status=RefundStatus.PENDING)
            )
        return False
    with session_factory() as session, session.begin():
        lock_order(session, _order_id_of_refund(session, refund_id))
        refund = session.get(Refund, refund_id)
        assert refund is not None
        refund.provider_reference = reference
        _complete_refund(refund, RefundKind.CARD_REFUND)
        _refresh_payment_status(refund.payment)
    return True


def _complete_refund(refund: Refund, kind: RefundKind) -> None:
    refund.kind = kind
    refund.status = RefundStatus.SUCCEEDED
    refund.completed_at = utc_now()


def _refresh_payment_status(payment: Payment) -> None:
    """captured / partially_refunded / refunded from the succeeded refunds."""
    if payment.status in (
        PaymentStatus.AUTHORIZED,
        PaymentStatus.CAPTURING,
        PaymentStatus.FAILED,
    ):
        return
    # Releases were never captured, so they do not make a captured payment "refunded".
    refunded = sum(
        refund.amount_minor
        for refund in payment.refunds
        if refund.status == RefundStatus.SUCCEEDED and refund.kind != RefundKind.RELEASE
    )
    if payment.status == PaymentStatus.VOIDED:
        return
    if refunded and refunded >= payment.captured_minor:
        payment.status = PaymentStatus.REFUNDED
    elif refunded > 0:
        payment.status = PaymentStatus.PARTIALLY_REFUNDED
    else:
        payment.status = PaymentStatus.CAPTURED


# --- Settling the card payment ----------------------------------------------------------------


def settle_payment(
    session_factory: sessionmaker[Session],
    order_id: int,
    *,
    gateway_for: GatewayProvider = gateway_for_payment,
) -> bool:
    """Capture exactly the placed shares once no sub-order is in flight (void when none was
    placed); the other shares' pending refunds become releases. True when it captured/voided.

    Claimed with a conditional UPDATE (authorized → capturing), so only one worker calls the
    provider. A provider failure puts it back to authorized for the sweeper to retry.
    """
    with session_factory() as session, session.begin():
        lock_order(session, order_id)
        order = session.get(Order, order_id)
        assert order is not None
        payment = order.payment
        if payment is None or payment.status != PaymentStatus.AUTHORIZED:
            return False
        charged = order.charged_sub_orders
        if any(sub.status in UNSETTLED_SUB_ORDER_STATUSES for sub in charged):
            return False
        capture_minor = sum(
            sub.charge_minor for sub in charged if sub.status in PLACED_SUB_ORDER_STATUSES
        )
        claimed = session.execute(
            sa.update(Payment)
            .where(Payment.id == payment.id, Payment.status == PaymentStatus.AUTHORIZED)
            .values(status=PaymentStatus.CAPTURING, captured_minor=capture_minor)
        ).rowcount  # type: ignore[attr-defined]
        if not claimed:
            return False
        payment_id = payment.id
        provider_reference = payment.provider_reference
        currency = payment.currency
    with session_factory() as session:
        payment = session.get(Payment, payment_id)
        assert payment is not None
        gateway = gateway_for(session, payment)
    try:
        if capture_minor > 0:
            gateway.capture(provider_reference, Money(capture_minor, currency))
        else:
            gateway.void(provider_reference)
    except PaymentError as exc:
        logger.warning("settling payment %s failed, will retry: %s", payment_id, exc)
        with session_factory() as session, session.begin():
            lock_order(session, order_id)
            session.execute(
                sa.update(Payment)
                .where(Payment.id == payment_id, Payment.status == PaymentStatus.CAPTURING)
                .values(status=PaymentStatus.AUTHORIZED, captured_minor=0)
            )
        return False
    finish_settlement(session_factory, payment_id, captured=capture_minor > 0)
    process_refunds(session_factory, order_id, gateway_for=gateway_for)
    return True


def finish_settlement(
    session_factory: sessionmaker[Session], payment_id: int, *, captured: bool
) -> None:
    """capturing → captured (or voided); the shares left out of the capture count as released."""
    with session_factory() as session, session.begin():
        order_id = session.scalar(sa.select(Payment.order_id).where(Payment.id == payment_id))
        assert order_id is not None
        lock_order(session, order_id)
        payment = session.get(Payment, payment_id)
        assert payment is not None
        if payment.status != PaymentStatus.CAPTURING:
            return
        payment.status = PaymentStatus.CAPTURED if captured else PaymentStatus.VOIDED
        if not captured:
            payment.captured_minor = 0
        for refund in payment.refunds:
            # Releases were recorded before the capture was claimed, so their shares were left
            # out of it; card refunds recorded since then are sent by process_refunds.
            if refund.status == RefundStatus.PENDING and refund.kind == RefundKind.RELEASE:
                _complete_refund(refund, RefundKind.RELEASE)
                refund.provider_reference = payment.provider_reference
        _refresh_payment_status(payment)


def live_share_minor(order: Order) -> int:
    """The shares still owed to marketplaces (placed or about to be)."""
    return sum(
        sub.charge_minor
        for sub in order.charged_sub_orders
        if sub.status in LIVE_SUB_ORDER_STATUSES
    )

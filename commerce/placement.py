"""Placing sub-orders on their marketplaces, and verifying what each one accepted.

Every placement call has three outcomes, and only a refusal is final:

- **succeeded**: what the marketplace accepted (lines, quantities, prices or total where its API
  returns them) is checked against what was asked (:func:`verify_placement`). Missing or short
  lines are a partial placement and a lower bill refunds the difference; a higher bill is
  absorbed up to `overcharge_tolerance_bps`, beyond that the order is cancelled on the
  marketplace and the share refunded.
- **refused** (Rejected, NotFound, Unsupported): the sub-order fails and its share is refunded.
- **unknown** (OutcomeUnknown: a timeout, reset or 5xx after the request was sent; or a reply we
  cannot read): the sub-order goes to `reconciling`. Before anything else, the next attempt asks
  the marketplace for an order with our reference (`find_order`) and adopts it, or places again
  with the same idempotency key when the marketplace confirms it holds none. A marketplace that
  cannot be asked gets its retries with the same key only; still unknown, the sub-order goes to
  `needs_attention` for an operator. Nothing is refunded while the marketplace may hold the order.

A transient failure before the request was sent (connection refused, 429) is a plain retry.

A placement is claimed with one conditional UPDATE that sets a claim token and a lease; every
later write of the attempt is conditional on that token, so a worker whose lease was taken over
never overwrites the new owner's result. A pending sub-order of an order the shopper asked to
cancel is never claimed.

Calls to marketplaces and payment providers never run inside an open DB transaction.
"""

from __future__ import annotations

import enum
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from adapters.base import (
    BadPayload,
    MarketplaceAdapter,
    MarketplaceError,
    NotFound,
    OrderLine,
    OrderRequest,
    OutcomeUnknown,
    PlacedOrder,
    RateLimited,
    Rejected,
    ShippingAddress,
    Transient,
    Unsupported,
)
from commerce.acceptance import DEFAULT_OVERCHARGE_TOLERANCE_BPS, Verdict, verify_placement
from commerce.cancellation import CancelOutcome, cancel_on_marketplace
from commerce.marketplace_access import AdapterProvider
from commerce.models import utc_now
from commerce.notifications import notify
from commerce.order_locks import lock_order
from commerce.order_models import (
    MarketplaceOrder,
    Order,
    SubOrderStatus,
)
from commerce.order_state import (
    ERROR_TEXT_LIMIT,
    flag_order,
    locked_sub_order,
    money_text,
    placed_status_for,
    refresh_order_status,
)
from commerce.payments.providers import GatewayProvider, gateway_for_payment
from commerce.settlement import (
    adjust_share,
    compensate_sub_order,
    process_refunds,
    settle_payment,
)

logger = logging.getLogger(__name__)

# A claim's lease: a placement that has been "placing" this long is presumed dead (its worker
# was killed) and may be claimed again, after asking the marketplace what it holds.
DEFAULT_STUCK_AFTER = timedelta(minutes=5)

__all__ = [
    "DEFAULT_STUCK_AFTER",
    "PlacementResult",
    "Verdict",
    "claim_sub_order",
    "money_text",
    "place_sub_order",
    "verify_placement",
]


class PlacementResult(enum.StrEnum):
    """What one placement attempt did."""

    PLACED = "placed"
    RECONCILED = "reconciled"
    NOT_CLAIMED = "not_claimed"
    RETRY = "retry"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Unknown outcome after the last attempt: the sweeper asks the marketplace again later.
    RECONCILING = "reconciling"
    NEEDS_ATTENTION = "needs_attention"


# --- Claiming ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """This attempt's hold on a sub-order. `in_doubt`: an earlier attempt may have reached the
    marketplace (its outcome was unknown, or its worker died mid-call)."""

    token: str
    in_doubt: bool


def _cancel_requested(order_id_column: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
    return (
        sa.select(Order.id)
        .where(Order.id == order_id_column, Order.cancel_requested_at.is_not(None))
        .exists()
    )


def claim_sub_order(
    session_factory: sessionmaker[Session], sub_order_id: int, *, lease: timedelta
) -> Claim | None:
    """Take the sub-order for one attempt (a conditional UPDATE); None when someone else holds
    it or there is nothing to place.

    In doubt first: `reconciling`, or `placing` whose lease ran out. Then `pending`, unless the
    shopper asked to cancel the order (the cancellation and the claim both change the row only
    from `pending`, so exactly one of them wins)."""
    now = utc_now()
    token = secrets.token_hex(16)
    values = {
        "status": SubOrderStatus.PLACING,
        "claim_token": token,
        "claim_expires_at": now + lease,
        "placing_started_at": now,
        "attempts": MarketplaceOrder.attempts + 1,
        "updated_at": now,
    }
    candidates = (
        (
            True,
            sa.or_(
                MarketplaceOrder.status == SubOrderStatus.RECONCILING,
                sa.and_(
                    MarketplaceOrder.status == SubOrderStatus.PLACING,
                    sa.or_(
                        MarketplaceOrder.claim_expires_at.is_(None),
                        MarketplaceOrder.claim_expires_at < now,
                    ),
                ),
            ),
        ),
        (
            False,
            sa.and_(
                MarketplaceOrder.status == SubOrderStatus.PENDING,
                ~_cancel_requested(MarketplaceOrder.order_id),
            ),
        ),
    )
    for in_doubt, condition in candidates:
        with session_factory() as session, session.begin():
            claimed = session.execute(
                sa.update(MarketplaceOrder)
                .where(MarketplaceOrder.id == sub_order_id, condition)
                .values(**values)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
        if claimed:
            return Claim(token=token, in_doubt=in_doubt)
    return None


def _holds_claim(sub_order: MarketplaceOrder, claim: Claim) -> bool:
    return sub_order.status == SubOrderStatus.PLACING and sub_order.claim_token == claim.token


# --- The attempt ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    request: OrderRequest
    marketplace_name: str
    cancel_requested: bool


def _plan(sub_order: MarketplaceOrder) -> _Plan:
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
    return _Plan(
        request=OrderRequest(
            reference=order.relation_token,
            idempotency_key=sub_order.idempotency_key,
            lines=lines,
            shipping=shipping,
            currency=sub_order.currency,
        ),
        marketplace_name=sub_order.marketplace.name,
        cancel_requested=order.cancel_requested_at is not None,
    )


class _Unaskable:
    """The marketplace cannot be asked for an order by our reference."""


UNASKABLE = _Unaskable()


def _ask_marketplace(
    adapter: MarketplaceAdapter, reference: str
) -> PlacedOrder | _Unaskable | None:
    """find_order: the order, None (the marketplace confirms it holds none) or UNASKABLE.
    MarketplaceError (it could not answer) propagates: the outcome stays unknown."""
    try:
        return adapter.find_order(reference)
    except Unsupported:
        return UNASKABLE


def place_sub_order(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    *,
    adapter_for: AdapterProvider,
    final_attempt: bool,
    stuck_after: timedelta = DEFAULT_STUCK_AFTER,
    gateway_for: GatewayProvider = gateway_for_payment,
    overcharge_tolerance_bps: int = DEFAULT_OVERCHARGE_TOLERANCE_BPS,
) -> PlacementResult:
    """One placement attempt of one sub-order (see the module docstring).

    RETRY means: try again later (the job raises so RQ retries it); the sub-order is `pending`
    again, or `reconciling` when the attempt may have reached the marketplace.
    """
    claim = claim_sub_order(session_factory, sub_order_id, lease=stuck_after)
    if claim is None:
        return PlacementResult.NOT_CLAIMED
    with session_factory() as session:
        sub_order = session.get(MarketplaceOrder, sub_order_id)
        assert sub_order is not None
        plan = _plan(sub_order)
        adapter = adapter_for(sub_order.marketplace)
    reference = plan.request.reference
    placed: PlacedOrder | None = None
    result = PlacementResult.PLACED
    in_doubt = claim.in_doubt
    if in_doubt:
        try:
            found = _ask_marketplace(adapter, reference)
        except MarketplaceError as exc:
            # The marketplace cannot answer yet; nothing is placed or refunded meanwhile.
            return _unknown(
                session_factory,
                sub_order_id,
                claim,
                f"asking {plan.marketplace_name}: {exc}",
                final_attempt=final_attempt,
                adapter=adapter,
                reference=reference,
                gateway_for=gateway_for,
                probe=False,
            )
        if isinstance(found, PlacedOrder):
            placed, result = found, PlacementResult.RECONCILED
        elif found is None:
            in_doubt = False  # confirmed: the marketplace holds no order with our reference
        elif plan.cancel_requested:
            return _needs_attention(
                session_factory,
                sub_order_id,
                claim,
                f"{plan.marketplace_name} may hold the order and cannot be asked; "
                "the shopper asked to cancel",
            )
    if placed is None and plan.cancel_requested and not in_doubt:
        _finish_without_placing(
            session_factory,
            sub_order_id,
            claim,
            SubOrderStatus.CANCELLED,
            "Cancelled by you before it was placed.",
            gateway_for=gateway_for,
        )
        return PlacementResult.CANCELLED
    if placed is None:
        try:
            placed = adapter.place_order(plan.request)
        except (Rejected, NotFound, Unsupported) as exc:
            _finish_without_placing(
                session_factory,
                sub_order_id,
                claim,
                SubOrderStatus.FAILED,
                f"{plan.marketplace_name} refused the order: {exc}",
                gateway_for=gateway_for,
            )
            return PlacementResult.FAILED
        except (OutcomeUnknown, BadPayload) as exc:
            return _unknown(
                session_factory,
                sub_order_id,
                claim,
                f"{plan.marketplace_name} may have accepted the order: {exc}",
                final_attempt=final_attempt,
                adapter=adapter,
                reference=reference,
                gateway_for=gateway_for,
                probe=True,
            )
        except (Transient, RateLimited, MarketplaceError) as exc:
            # Not sent (connection refused, 429): only as doubtful as before this attempt.
            if in_doubt:
                return _unknown(
                    session_factory,
                    sub_order_id,
                    claim,
                    str(exc),
                    final_attempt=final_attempt,
                    adapter=adapter,
                    reference=reference,
                    gateway_for=gateway_for,
                    probe=False,
                )
            if final_attempt:
                _finish_without_placing(
                    session_factory,
                    sub_order_id,
                    claim,
                    SubOrderStatus.FAILED,
                    f"{plan.marketplace_name} could not be reached: {exc}",
                    gateway_for=gateway_for,
                )
                return PlacementResult.FAILED
            _release(session_factory, sub_order_id, claim, SubOrderStatus.PENDING, str(exc))
            return PlacementResult.RETRY
    recorded = record_placement(
        session_factory,
        sub_order_id,
        claim,
        placed,
        adapter=adapter,
        gateway_for=gateway_for,
        overcharge_tolerance_bps=overcharge_tolerance_bps,
    )
    if recorded is None and plan.cancel_requested:
        # Found placed after the shopper asked to cancel (an attempt in doubt): cancel it there
        # now, as the cancellation job would have; refunded once the marketplace confirms.
        cancel_on_marketplace(
            session_factory,
            sub_order_id,
            adapter,
            reason=f"Cancelled at your request; {plan.marketplace_name} confirmed.",
            gateway_for=gateway_for,
        )
    return recorded or result


def _release(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    claim: Claim,
    status: SubOrderStatus,
    error: str,
) -> bool:
    """placing → `status` (pending or reconciling) if this attempt still holds the claim."""
    with session_factory() as session, session.begin():
        released = session.execute(
            sa.update(MarketplaceOrder)
            .where(
                MarketplaceOrder.id == sub_order_id,
                MarketplaceOrder.status == SubOrderStatus.PLACING,
                MarketplaceOrder.claim_token == claim.token,
            )
            .values(
                status=status,
                claim_token=None,
                claim_expires_at=None,
                last_error=error[:ERROR_TEXT_LIMIT],
                updated_at=utc_now(),
            )
        ).rowcount  # type: ignore[attr-defined]
    return bool(released)


def _unknown(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    claim: Claim,
    error: str,
    *,
    final_attempt: bool,
    adapter: MarketplaceAdapter,
    reference: str,
    gateway_for: GatewayProvider,
    probe: bool,
) -> PlacementResult:
    """The attempt may have reached the marketplace: `reconciling`, retried after asking. On the
    last attempt, ask once more; a marketplace that cannot be asked → needs attention."""
    if final_attempt:
        found: PlacedOrder | _Unaskable | MarketplaceError | None
        try:
            found = _ask_marketplace(adapter, reference) if probe else None
        except MarketplaceError as exc:
            found = exc
        if isinstance(found, PlacedOrder):
            recorded = record_placement(
                session_factory,
                sub_order_id,
                claim,
                found,
                adapter=adapter,
                gateway_for=gateway_for,
            )
            return recorded or PlacementResult.RECONCILED
        if isinstance(found, _Unaskable):
            return _needs_attention(
                session_factory,
                sub_order_id,
                claim,
                f"{error} — the marketplace cannot be asked whether it holds the order",
            )
        _release(session_factory, sub_order_id, claim, SubOrderStatus.RECONCILING, error)
        return PlacementResult.RECONCILING
    _release(session_factory, sub_order_id, claim, SubOrderStatus.RECONCILING, error)
    return PlacementResult.RETRY


def _needs_attention(
    session_factory: sessionmaker[Session], sub_order_id: int, claim: Claim, reason: str
) -> PlacementResult:
    with session_factory() as session, session.begin():
        sub_order = locked_sub_order(session, sub_order_id)
        if not _holds_claim(sub_order, claim):
            return PlacementResult.NOT_CLAIMED
        sub_order.status = SubOrderStatus.NEEDS_ATTENTION
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


def _finish_without_placing(
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
        if not _holds_claim(sub_order, claim):
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
    status = placed_status_for(placed.status)
    now = utc_now()
    with session_factory() as session, session.begin():
        sub_order = locked_sub_order(session, sub_order_id)
        verdict = verify_placement(
            list(sub_order.items),
            sub_order.charge_minor,
            sub_order.currency,
            placed,
            overcharge_tolerance_bps=overcharge_tolerance_bps,
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
                last_error=None,
                claim_token=None,
                claim_expires_at=None,
                accepted_amount_minor=verdict.accepted_amount_minor,
                updated_at=now,
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
            adjust_share(
                session,
                sub_order,
                verdict.kept_charge_minor,
                reason=f"{market} did not accept all of your items at the prices paid "
                f"({'; '.join(verdict.notes)}).",
            )
        elif verdict.notes:
            sub_order.last_error = ("; ".join(verdict.notes))[:ERROR_TEXT_LIMIT]
        refresh_order_status(session, order)
        order_id = order.id
    if verdict.cancel:
        reason = f"{market} {'; '.join(verdict.notes)}"
        outcome = (
            cancel_on_marketplace(
                session_factory, sub_order_id, adapter, reason=reason, gateway_for=gateway_for
            )
            if adapter is not None
            else CancelOutcome.UNKNOWN
        )
        if outcome != CancelOutcome.CANCELLED:
            _flag_for_operator(
                session_factory,
                order_id,
                f"sub-order {sub_order_id}: {reason}; "
                f"cancelling it on the marketplace: {outcome.value}",
            )
        process_refunds(session_factory, order_id, gateway_for=gateway_for)
        settle_payment(session_factory, order_id, gateway_for=gateway_for)
        return PlacementResult.CANCELLED if outcome == CancelOutcome.CANCELLED else None
    process_refunds(session_factory, order_id, gateway_for=gateway_for)
    settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return None


def _flag_for_operator(session_factory: sessionmaker[Session], order_id: int, reason: str) -> None:
    with session_factory() as session, session.begin():
        lock_order(session, order_id)
        order = session.get(Order, order_id)
        assert order is not None
        flag_order(order, reason)

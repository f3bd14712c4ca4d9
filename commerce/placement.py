"""Placing a sub-order on its marketplace: one attempt, and what its outcome means.

Every placement call has three outcomes, and only a refusal is final:

- **succeeded**: recorded and verified against what was asked (commerce.placement_outcomes).
- **refused** (Rejected, NotFound, Unsupported): the sub-order fails and its share is refunded.
- **unknown** (OutcomeUnknown: a timeout, reset or 5xx after the request was sent; or a reply we
  cannot read): the sub-order goes to `reconciling`. Before anything else, the next attempt asks
  the marketplace for an order with our reference (`find_order`) and adopts it, or places again
  with the same idempotency key when the marketplace confirms it holds none. A marketplace that
  cannot be asked gets its retries with the same key only, and none at all when it ignores
  idempotency keys (`retry_unknown_writes = false`) or may have forgotten the key (the first
  send is older than its `idempotency_key_retention`); still unknown, the sub-order goes to
  `needs_attention` for an operator. Nothing is refunded while the marketplace may hold the order.

A transient failure before the request was sent (connection refused, 429) is a plain retry.

Each attempt first claims the sub-order (commerce.placement_claims: a token and a lease that
every later write checks, renewed while the attempt runs). The modules depend one way: placement_claims → placement_outcomes →
placement (this one). Calls to marketplaces and payment providers never run inside an open DB
transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

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
from adapters.fields import marketplace_message
from commerce.acceptance import DEFAULT_OVERCHARGE_TOLERANCE_BPS, Verdict, verify_placement
from commerce.cancellation import cancel_on_marketplace
from commerce.lease_renewal import renewed_while_held
from commerce.marketplace_access import AdapterProvider
from commerce.models import utc_now
from commerce.order_models import MarketplaceOrder, SubOrderStatus
from commerce.payments.providers import GatewayProvider, gateway_for_payment
from commerce.placement_claims import (
    DEFAULT_STUCK_AFTER,
    Claim,
    PlacementResult,
    claim_sub_order,
    is_superseded,
    release_claim,
    renew_claim,
)
from commerce.placement_outcomes import (
    finish_without_placing,
    needs_attention,
    record_placement,
)

__all__ = [
    "DEFAULT_STUCK_AFTER",
    "PlacementResult",
    "Verdict",
    "claim_sub_order",
    "place_sub_order",
    "record_placement",
    "verify_placement",
]

logger = logging.getLogger(__name__)


def refusal_reason(marketplace_name: str, exc: MarketplaceError) -> str:
    """Why a refused part was not placed, for its order page: the marketplace's own message
    ("… does not have enough stock: 1 left, 2 ordered."), not the request that carried it
    ("kiondo refused POST wp-json/wc/v3/orders: …"); a refusal without one (raised by the
    adapter itself, such as a missing key) is said without detail."""
    detail = " ".join(marketplace_message(exc.response_text).split())
    if not detail:
        return f"{marketplace_name} refused the order."
    return f"{marketplace_name} refused the order: {detail}"


@dataclass(frozen=True, slots=True)
class _Plan:
    request: OrderRequest
    marketplace_name: str
    cancel_requested: bool
    # No attempt can have been sent before the sub-order existed: a marketplace that can only
    # search a window of recent orders must cover this moment to say "no such order".
    sent_since: datetime


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
        sent_since=sub_order.created_at,
    )


def key_may_be_forgotten(
    adapter: MarketplaceAdapter, first_sent_at: datetime, moment: datetime
) -> bool:
    """True when the first send (no earlier than `first_sent_at`, the sub-order's creation)
    may be older than the marketplace's idempotency-key retention: a resend with the same key
    would then not be recognised as the same order. Naive moments are UTC."""
    first = first_sent_at if first_sent_at.tzinfo else first_sent_at.replace(tzinfo=UTC)
    current = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return current - first >= adapter.idempotency_key_retention


class _Unaskable:
    """The marketplace cannot be asked for an order by our reference."""


UNASKABLE = _Unaskable()


def _ask_marketplace(
    adapter: MarketplaceAdapter, reference: str, sent_since: datetime
) -> PlacedOrder | _Unaskable | None:
    """find_order: the order, None (the marketplace confirms it holds none) or UNASKABLE.
    MarketplaceError (it could not answer) propagates: the outcome stays unknown."""
    try:
        return adapter.find_order(reference, sent_since=sent_since)
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
    now: Callable[[], datetime] = utc_now,
    outbox_id: int | None = None,
) -> PlacementResult:
    """One placement attempt of one sub-order (see the module docstring).

    RETRY means: try again later (the job raises so RQ retries it); the sub-order is `pending`
    again, or `reconciling` when the attempt may have reached the marketplace, or (a job's
    attempt, `outbox_id`) an earlier job's attempt still holds the part. SUPERSEDED: the
    job's outbox row (`outbox_id`) is no longer the sub-order's newest, so a re-queued job works
    it and this one ends without asking or placing (commerce.placement_claims).
    """
    claim = claim_sub_order(session_factory, sub_order_id, lease=stuck_after, outbox_id=outbox_id)
    if claim is None:
        with session_factory() as session:
            superseded = is_superseded(session, sub_order_id, outbox_id)
            held = (
                session.scalar(
                    sa.select(MarketplaceOrder.status).where(MarketplaceOrder.id == sub_order_id)
                )
                == SubOrderStatus.PLACING
            )
        if superseded:
            logger.info(
                "sub-order %s: the placement job of outbox row %s was superseded by a newer "
                "one; it ends without asking the marketplace",
                sub_order_id,
                outbox_id,
            )
            return PlacementResult.SUPERSEDED
        if held and outbox_id is not None and not final_attempt:
            # An older job's attempt is still at work (the sweeper re-queued the part under
            # it): its retries will find this job's row newer and end, so this job, not they,
            # comes back for the part; ending now would leave it to the sweeper's next re-queue.
            logger.info(
                "sub-order %s: an earlier job's attempt holds it; the job of outbox row %s "
                "tries again later",
                sub_order_id,
                outbox_id,
            )
            return PlacementResult.RETRY
        return PlacementResult.NOT_CLAIMED
    with renewed_while_held(
        partial(renew_claim, session_factory, sub_order_id, claim, lease=stuck_after),
        lease=stuck_after,
        what=f"placement of sub-order {sub_order_id}",
    ):
        return _attempt(
            session_factory,
            sub_order_id,
            claim,
            adapter_for=adapter_for,
            final_attempt=final_attempt,
            gateway_for=gateway_for,
            overcharge_tolerance_bps=overcharge_tolerance_bps,
            now=now,
        )


def _attempt(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    claim: Claim,
    *,
    adapter_for: AdapterProvider,
    final_attempt: bool,
    gateway_for: GatewayProvider,
    overcharge_tolerance_bps: int,
    now: Callable[[], datetime],
) -> PlacementResult:
    """The attempt under `claim` (its lease renewed meanwhile by place_sub_order)."""
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
            found = _ask_marketplace(adapter, reference, plan.sent_since)
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
                sent_since=plan.sent_since,
                gateway_for=gateway_for,
                overcharge_tolerance_bps=overcharge_tolerance_bps,
                probe=False,
            )
        if isinstance(found, PlacedOrder):
            placed, result = found, PlacementResult.RECONCILED
        elif found is None:
            in_doubt = False  # confirmed: the marketplace holds no order with our reference
        elif plan.cancel_requested:
            return needs_attention(
                session_factory,
                sub_order_id,
                claim,
                f"{plan.marketplace_name} may hold the order and cannot be asked; "
                "the shopper asked to cancel",
            )
        elif adapter.honours_idempotency_keys is not True:
            # Resending would not be recognised as the same order: a second one would be made.
            # Only a stated True counts (every adapter states it; see MarketplaceAdapter).
            return needs_attention(
                session_factory,
                sub_order_id,
                claim,
                f"{plan.marketplace_name} may hold the order, cannot be asked and ignores "
                "idempotency keys, so it is not sent again",
            )
        elif key_may_be_forgotten(adapter, plan.sent_since, now()):
            # The marketplace no longer remembers the key: the resend would be a new order.
            return needs_attention(
                session_factory,
                sub_order_id,
                claim,
                f"{plan.marketplace_name} may hold the order and cannot be asked; it was first "
                f"sent at {plan.sent_since:%Y-%m-%d %H:%M} UTC, longer ago than the "
                f"{adapter.idempotency_key_retention.total_seconds() / 3600:g} hours the "
                "marketplace remembers idempotency keys, so it is not sent again",
            )
    if placed is None and plan.cancel_requested and not in_doubt:
        finish_without_placing(
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
            logger.warning(
                "sub-order %s refused by %s: %s", sub_order_id, plan.marketplace_name, exc
            )
            finish_without_placing(
                session_factory,
                sub_order_id,
                claim,
                SubOrderStatus.FAILED,
                refusal_reason(plan.marketplace_name, exc),
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
                sent_since=plan.sent_since,
                gateway_for=gateway_for,
                overcharge_tolerance_bps=overcharge_tolerance_bps,
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
                    sent_since=plan.sent_since,
                    gateway_for=gateway_for,
                    overcharge_tolerance_bps=overcharge_tolerance_bps,
                    probe=False,
                )
            if final_attempt:
                # The reason is the order page's "Why" and timeline: the shopper's words. The
                # request and the socket's error ("POST wp-json/…: [Errno 111]") go to the log.
                logger.warning(
                    "sub-order %s not placed, %s unreachable: %s",
                    sub_order_id,
                    plan.marketplace_name,
                    exc,
                )
                finish_without_placing(
                    session_factory,
                    sub_order_id,
                    claim,
                    SubOrderStatus.FAILED,
                    f"{plan.marketplace_name} could not be reached, so your items there were "
                    "not ordered.",
                    gateway_for=gateway_for,
                )
                return PlacementResult.FAILED
            release_claim(session_factory, sub_order_id, claim, SubOrderStatus.PENDING, str(exc))
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


def _unknown(
    session_factory: sessionmaker[Session],
    sub_order_id: int,
    claim: Claim,
    error: str,
    *,
    final_attempt: bool,
    adapter: MarketplaceAdapter,
    reference: str,
    sent_since: datetime,
    gateway_for: GatewayProvider,
    overcharge_tolerance_bps: int,
    probe: bool,
) -> PlacementResult:
    """The attempt may have reached the marketplace: `reconciling`, retried after asking. On the
    last attempt, ask once more; a marketplace that cannot be asked → needs attention."""
    if final_attempt:
        found: PlacedOrder | _Unaskable | MarketplaceError | None
        try:
            found = _ask_marketplace(adapter, reference, sent_since) if probe else None
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
                overcharge_tolerance_bps=overcharge_tolerance_bps,
            )
            return recorded or PlacementResult.RECONCILED
        if isinstance(found, _Unaskable):
            return needs_attention(
                session_factory,
                sub_order_id,
                claim,
                f"{error} — the marketplace cannot be asked whether it holds the order",
            )
        release_claim(session_factory, sub_order_id, claim, SubOrderStatus.RECONCILING, error)
        return PlacementResult.RECONCILING
    release_claim(session_factory, sub_order_id, claim, SubOrderStatus.RECONCILING, error)
    return PlacementResult.RETRY

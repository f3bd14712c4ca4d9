"""Following placed sub-orders: each marketplace's status words mapped onto ours, tracking numbers
stored, the order's status derived from its sub-orders, and a notification on every change.

The adapters already translate their format's vocabulary into adapters.base.OrderStatus
(Shopify displayFulfillmentStatus + shipment displayStatus + cancelledAt; WooCommerce pending /
processing / on-hold / completed / delivered / cancelled / refunded / failed; the sandbox's
stages). Here those become sub-order states, which only move forward; a cancellation (or a
refund or failure reported by the marketplace) after placement is compensated like any other.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from adapters.base import Capability, MarketplaceError, OrderState, Unsupported
from commerce.marketplace_access import AdapterProvider, marketplace_can
from commerce.models import Marketplace, utc_now
from commerce.notifications import notify
from commerce.order_locks import lock_order, order_id_of_sub_order
from commerce.order_models import MarketplaceOrder, SubOrderStatus
from commerce.order_state import (
    FULFILMENT_RANK,
    ORDER_STATUS_MESSAGES,
    SUB_ORDER_STATUS_BY_MARKETPLACE_STATUS,
    TRACKED_STATUSES,
    derive_order_status,
    refresh_order_status,
    sub_order_status_for,
)
from commerce.payments.providers import GatewayProvider, gateway_for_payment
from commerce.settlement import compensate_sub_order, process_refunds, settle_payment

logger = logging.getLogger(__name__)

TRACK_BATCH_SIZE = 200
TRACK_CONCURRENCY = 4

# Importable from here as before; defined once in commerce.order_state.
__all__ = [
    "ORDER_STATUS_MESSAGES",
    "SUB_ORDER_STATUS_BY_MARKETPLACE_STATUS",
    "TrackingReport",
    "apply_marketplace_state",
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
    """Store what the marketplace says about a sub-order; True when its status changed.

    Tracking details are kept whenever they appear. Status only moves forward; a cancellation
    compensates the sub-order (its share refunded).
    """
    new_status = sub_order_status_for(state.status)
    with session_factory() as session, session.begin():
        order_id = order_id_of_sub_order(session, sub_order_id)
        if order_id is None:
            return False
        lock_order(session, order_id)
        sub_order = session.get(MarketplaceOrder, sub_order_id)
        assert sub_order is not None
        sub_order.last_polled_at = utc_now()
        if sub_order.status not in FULFILMENT_RANK:
            return False
        if state.tracking_number and state.tracking_number != sub_order.tracking_number:
            sub_order.tracking_number = state.tracking_number[:120]
            sub_order.carrier = (state.carrier or "")[:120] or None
            sub_order.tracking_url = state.tracking_url
        sub_order.raw_status = (state.raw_status or state.status.value)[:80]
        market = sub_order.marketplace.name
        if new_status == SubOrderStatus.CANCELLED:
            compensate_sub_order(
                session,
                sub_order,
                status=SubOrderStatus.CANCELLED,
                reason=f"{market} cancelled the order ({state.raw_status or 'cancelled'}).",
            )
            changed = True
        elif FULFILMENT_RANK[new_status] > FULFILMENT_RANK[sub_order.status]:
            sub_order.status = new_status
            sub_order.updated_at = utc_now()
            notify(
                session,
                sub_order.order,
                f"sub_order_{new_status.value}",
                _sub_order_message(sub_order, market),
                sub_order_id=sub_order.id,
            )
            refresh_order_status(session, sub_order.order)
            changed = True
        else:
            changed = False
    if changed and new_status == SubOrderStatus.CANCELLED:
        process_refunds(session_factory, order_id, gateway_for=gateway_for)
        settle_payment(session_factory, order_id, gateway_for=gateway_for)
    return changed


def _sub_order_message(sub_order: MarketplaceOrder, market: str) -> str:
    if sub_order.status == SubOrderStatus.SHIPPED:
        tracking = (
            f" with {sub_order.carrier}, tracking number {sub_order.tracking_number}"
            if sub_order.tracking_number
            else ""
        )
        return f"Your {market} items have shipped{tracking}."
    if sub_order.status == SubOrderStatus.DELIVERED:
        return f"Your {market} items have been delivered."
    return f"{market} is preparing your items."


def track_open_sub_orders(
    session_factory: sessionmaker[Session],
    *,
    adapter_for: AdapterProvider,
    gateway_for: GatewayProvider = gateway_for_payment,
    batch_size: int = TRACK_BATCH_SIZE,
    concurrency: int = TRACK_CONCURRENCY,
) -> TrackingReport:
    """Poll every open sub-order on marketplaces that can be tracked (least recently polled
    first), one adapter per marketplace, marketplaces in parallel."""
    with session_factory() as session:
        rows = session.execute(
            sa.select(MarketplaceOrder.id, MarketplaceOrder.marketplace_order_id, Marketplace)
            .join(Marketplace, MarketplaceOrder.marketplace_id == Marketplace.id)
            .where(
                MarketplaceOrder.status.in_(TRACKED_STATUSES),
                MarketplaceOrder.marketplace_order_id.is_not(None),
            )
            .order_by(MarketplaceOrder.last_polled_at.is_not(None), MarketplaceOrder.last_polled_at)
            .limit(batch_size)
        ).all()
        by_market: dict[int, tuple[Marketplace, list[tuple[int, str]]]] = {}
        for sub_order_id, marketplace_order_id, marketplace in rows:
            if not marketplace_can(marketplace, Capability.TRACK):
                continue
            by_market.setdefault(marketplace.id, (marketplace, []))[1].append(
                (sub_order_id, marketplace_order_id)
            )
        adapters = {market_id: adapter_for(market) for market_id, (market, _) in by_market.items()}
    if not by_market:
        return TrackingReport()

    def poll(market_id: int) -> tuple[int, int, int]:
        """Poll one marketplace's sub-orders in order: (polled, changed, errors)."""
        adapter = adapters[market_id]
        polled = changed = errors = 0
        for sub_order_id, marketplace_order_id in by_market[market_id][1]:
            try:
                state = adapter.order_status(marketplace_order_id)
            except Unsupported:
                return polled, changed, errors
            except MarketplaceError as exc:
                logger.warning("tracking sub-order %s failed: %s", sub_order_id, exc)
                errors += 1
                continue
            polled += 1
            if apply_marketplace_state(
                session_factory, sub_order_id, state, gateway_for=gateway_for
            ):
                changed += 1
        return polled, changed, errors

    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(by_market)))) as executor:
        results = list(executor.map(poll, list(by_market)))
    return TrackingReport(
        polled=sum(r[0] for r in results),
        changed=sum(r[1] for r in results),
        errors=sum(r[2] for r in results),
    )

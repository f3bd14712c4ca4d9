"""Fake marketplaces for the tracking tests (tests/checkout/test_tracking_*.py): ShopWave and
Kiondo answering status polls as a test sets them (down, an order unknown, an order failing),
every question written down; and helpers to place, deliver and read sub-orders on the real
database."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa

from adapters.base import (
    Capability,
    MarketplaceAdapter,
    MarketplaceError,
    NotFound,
    OrderState,
    OrderStatus,
    Transient,
    Unsupported,
)
from commerce.models import Marketplace, utc_now
from commerce.order_models import MarketplaceOrder, SubOrderStatus
from commerce.tracking import apply_marketplace_state, track_open_sub_orders
from commerce.tracking_schedule import TrackingPolicy
from tests.checkout.shop import Shop

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
# Small batches, so that a handful of orders is enough to fill them.
POLICY = TrackingPolicy(
    batch_size=2,
    delivered_batch_size=1,
    failure_backoff_first=MINUTE,
    failure_backoff_cap=4 * MINUTE,
)
# Every open sub-order of a test fits one pass.
WHOLE = replace(POLICY, batch_size=20)


@dataclass
class FakeMarketplaces:
    """ShopWave and Kiondo answering "pending" to every status poll, every question written
    down in order; a marketplace in `down` fails with Transient, an order id in `unknown` is
    answered NotFound, one in `failing` fails with its error. Their order API as a whole
    (check_orders_api) answers unless the marketplace is down or in `check_failing`; one in
    `no_check` has no such question (Unsupported)."""

    down: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    # Order ids whose every poll fails with this error while the rest answer.
    failing: dict[str, MarketplaceError] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)
    check_failing: dict[str, MarketplaceError] = field(default_factory=dict)
    no_check: set[str] = field(default_factory=set)
    # The marketplaces whose order API was checked, in order.
    checked: list[str] = field(default_factory=list)

    def adapter_for(self, marketplace: Marketplace) -> MarketplaceAdapter:
        fake = self

        class Answering:
            slug = marketplace.slug
            capabilities = frozenset({Capability.TRACK})

            def order_status(self, marketplace_order_id: str) -> OrderState:
                fake.asked.append(marketplace_order_id)
                if self.slug in fake.down:
                    raise Transient("503 Service Unavailable", marketplace=self.slug, status=503)
                if marketplace_order_id in fake.unknown:
                    raise NotFound("no such order", marketplace=self.slug, status=404)
                if marketplace_order_id in fake.failing:
                    raise fake.failing[marketplace_order_id]
                status = OrderStatus.PENDING
                return OrderState(marketplace_order_id, status, status.value)

            def check_orders_api(self) -> None:
                if self.slug in fake.no_check:
                    raise Unsupported("no such question", marketplace=self.slug)
                fake.checked.append(self.slug)
                if self.slug in fake.down:
                    raise Transient("503 Service Unavailable", marketplace=self.slug, status=503)
                if self.slug in fake.check_failing:
                    raise fake.check_failing[self.slug]

        return Answering()  # type: ignore[return-value]

    def track(self, shop: Shop, policy: TrackingPolicy = POLICY) -> list[str]:
        """One pass; returns the ids it asked about."""
        self.asked.clear()
        self.checked.clear()
        track_open_sub_orders(shop.session_factory, adapter_for=self.adapter_for, policy=policy)
        return list(self.asked)


def set_columns(shop: Shop, sub_order_id: int, **values: object) -> None:
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(MarketplaceOrder).where(MarketplaceOrder.id == sub_order_id).values(**values)
        )


def placed_orders(shop: Shop, count: int) -> list[dict[str, MarketplaceOrder]]:
    """`count` orders of one ShopWave and one Kiondo item each, placed two days ago, never
    polled; each order's sub-orders by marketplace slug."""
    user = shop.make_user(wallet=Decimal("5000"))
    orders: list[dict[str, MarketplaceOrder]] = []
    for number in range(count):
        shop.fill_cart(user, [("shopwave", number, 1), ("kiondo", number, 1)])
        order = shop.checkout(shop.client_for(user), payment_method="wallet")
        subs = {}
        for sub in shop.order(order.number).charged_sub_orders:
            set_columns(
                shop,
                sub.id,
                status=SubOrderStatus.PLACED,
                placed_at=utc_now() - 2 * DAY,
                marketplace_order_id=f"{sub.marketplace.slug}-{sub.id}",
            )
            subs[sub.marketplace.slug] = shop.sub_order(order, sub.marketplace.slug)
        orders.append(subs)
    return orders


def deliver(shop: Shop, sub: MarketplaceOrder, *, answered: datetime) -> None:
    """Tracking recorded the sub-order delivered; its last answer (and question) `answered`."""
    assert sub.marketplace_order_id is not None
    state = OrderState(sub.marketplace_order_id, OrderStatus.DELIVERED, "delivered")
    apply_marketplace_state(shop.session_factory, sub.id, state)
    set_columns(shop, sub.id, last_polled_at=answered, last_poll_attempt_at=answered)


def marketplace_row(shop: Shop, slug: str) -> Marketplace:
    with shop.session() as session:
        market = session.scalar(sa.select(Marketplace).where(Marketplace.slug == slug))
        assert market is not None
        session.expunge(market)
        return market


def backoff_over(shop: Shop, slug: str) -> None:
    """Time passes: the marketplace's backoff is over."""
    with shop.session() as session, session.begin():
        session.execute(
            sa.update(Marketplace)
            .where(Marketplace.slug == slug)
            .values(tracking_retry_at=utc_now() - MINUTE)
        )


def sub_orders(shop: Shop, slug: str) -> list[MarketplaceOrder]:
    with shop.session() as session:
        subs = list(
            session.scalars(
                sa.select(MarketplaceOrder)
                .join(Marketplace)
                .where(Marketplace.slug == slug)
                .order_by(MarketplaceOrder.id)
            )
        )
        session.expunge_all()
        return subs


def server_error() -> Transient:
    """ShopWave's 500 for one order's status poll."""
    return Transient("500 Internal Server Error", marketplace="shopwave", status=500)


def stored_sub_order(shop: Shop, sub_order_id: int) -> MarketplaceOrder:
    """The sub-order as the database holds it now (detached)."""
    with shop.session() as session:
        sub = session.get(MarketplaceOrder, sub_order_id)
        assert sub is not None
        session.expunge(sub)
        return sub


def ids(subs: list[MarketplaceOrder]) -> list[str]:
    return [sub.marketplace_order_id or "" for sub in subs]

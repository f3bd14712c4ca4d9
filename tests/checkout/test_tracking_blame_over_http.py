"""Whose failure a failing status poll is, over real HTTP to the sandbox through the real
adapters: a store's only open order that its store cannot serve (the `failing_order_reads`
knob: that order's read answers 500 while the store answers everything else) is blamed on the
order, because the order API answers the tracker's one question about no order in particular
(Shopify `orders(first: 1)`, WooCommerce `GET /orders?per_page=1`); the store down (503) is the
store's failure and blames no order. Real workers place the orders; the sandbox's step is an
hour, so orders stay open."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from commerce.marketplace_access import adapter_for_marketplace
from commerce.models import Marketplace, utc_now
from commerce.order_models import MarketplaceOrder
from commerce.order_state import TRACKED_STATUSES
from commerce.tracking import track_open_sub_orders
from tests.checkout.shop import Shop
from tests.checkout.tracking_fakes import MINUTE, marketplace_row, set_columns

pytestmark = pytest.mark.slow


def _track(shop: Shop) -> None:
    track_open_sub_orders(shop.session_factory, adapter_for=adapter_for_marketplace)


def _fresh(shop: Shop, sub_order_id: int) -> MarketplaceOrder:
    with shop.session() as session:
        sub = session.get(MarketplaceOrder, sub_order_id)
        assert sub is not None
        session.expunge(sub)
        return sub


def test_a_stores_only_open_order_it_cannot_serve_is_that_orders_failure_not_an_outage(
    tracked_shop: Shop,
) -> None:
    shop = tracked_shop
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 5, 1), ("kiondo", 5, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    shop.start_workers(1, cron=False)
    shop.wait_until_settled()
    order = shop.order(order.number)
    subs = {sub.marketplace.slug: sub for sub in order.charged_sub_orders}
    assert all(sub.status in TRACKED_STATUSES for sub in subs.values()), subs
    with shop.session() as session:
        open_at = dict(
            session.execute(
                sa.select(Marketplace.slug, sa.func.count())
                .join(MarketplaceOrder)
                .where(MarketplaceOrder.status.in_(TRACKED_STATUSES))
                .group_by(Marketplace.slug)
            ).all()
        )
    assert open_at == {"shopwave": 1, "kiondo": 1}  # each store's only open order

    for slug in ("kiondo", "shopwave"):
        sub = subs[slug]
        assert sub.marketplace_order_id is not None
        number = sub.marketplace_order_id.rsplit("/", 1)[-1]
        shop.knobs(slug, failing_order_reads=[number])
        for failures in (1, 2):
            _track(shop)
            failing = _fresh(shop, sub.id)
            assert failing.poll_failures == failures, slug
            assert failing.poll_last_error is not None and "500" in failing.poll_last_error
            assert failing.status == sub.status
            market = marketplace_row(shop, slug)
            assert market.tracking_failures == 0, (slug, market.tracking_last_error)
            set_columns(shop, sub.id, poll_retry_at=utc_now() - MINUTE)
        if slug == "kiondo":
            shop.knobs(slug, failing_order_reads=[])  # ShopWave's turn; Kiondo serves it again

    # The store down altogether (503): the store's failure, no order blamed for it.
    shop.knobs("shopwave", down=True)
    _track(shop)
    assert marketplace_row(shop, "shopwave").tracking_failures == 1
    assert _fresh(shop, subs["shopwave"].id).poll_failures == 2
    assert _fresh(shop, subs["kiondo"].id).poll_failures == 0  # answered meanwhile

    # ShopWave serves its order again: answered, every failure cleared.
    shop.knobs("shopwave", down=False, failing_order_reads=[])
    with shop.session() as session, session.begin():
        session.execute(sa.update(Marketplace).values(tracking_retry_at=utc_now() - MINUTE))
    _track(shop)
    for sub in subs.values():
        answered = _fresh(shop, sub.id)
        assert (answered.poll_failures, answered.last_polled_at is not None) == (0, True)
    assert marketplace_row(shop, "shopwave").tracking_failures == 0

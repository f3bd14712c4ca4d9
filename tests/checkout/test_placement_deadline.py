"""A placement whose answer is trickled past the request's deadline is in doubt, not refused.

httpx's timeouts are per socket operation, so a marketplace trickling its answer one byte at a
time held the placing worker for as long as it liked. The request now has a whole-request
deadline (adapters.request_deadline); a write that passes it may have been made, so the part
goes to `reconciling` (the marketplace is asked later), never `failed` and never refunded.

A real loopback server speaks WooCommerce's REST v3 (the shop's Kiondo part is placed there)
and trickles its answer for many times the configured deadline. Nothing asserts on the wall
clock: the outcome (the part's state, the server seeing the client hang up) tells.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa

from adapters.woocommerce import WooCommerceAdapter
from commerce.models import Marketplace
from commerce.order_models import Refund, SubOrderStatus
from commerce.placement import PlacementResult, place_sub_order
from tests.adapters.configs import marketplace_config
from tests.adapters.test_request_deadline import (
    DEADLINE_S,
    READ_TIMEOUT_S,
    TricklingMarketplace,
    trickling,
)
from tests.checkout.shop import Shop


@pytest.fixture
def trickled_order() -> Iterator[TricklingMarketplace]:
    yield from trickling({"id": 4242, "status": "processing", "meta_data": []})


def test_a_placement_trickled_past_its_deadline_is_reconciling_not_failed(
    shop: Shop, trickled_order: TricklingMarketplace
) -> None:
    """Kiondo (a WooCommerce store that ignores idempotency keys, so the write is not resent)
    trickles its answer to the order: the attempt gives up at the deadline, the part is
    `reconciling` (asked by reference, which is trickled too, so asked again later), nothing
    refunded."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 4, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    [sub] = order.charged_sub_orders
    adapters: list[WooCommerceAdapter] = []

    def adapter_for(marketplace: Marketplace) -> WooCommerceAdapter:
        config = marketplace_config(
            "woocommerce",
            slug=marketplace.slug,
            currency=marketplace.currency,
            base_url=trickled_order.base_url,
            api_key="ck_test:cs_test",
            options={
                "read_timeout_s": READ_TIMEOUT_S,
                "deadline_s": DEADLINE_S,
                "retry_unknown_writes": False,
            },
        )
        adapters.append(WooCommerceAdapter(config, sleep=lambda _seconds: None))
        return adapters[-1]

    try:
        result = place_sub_order(
            shop.session_factory, sub.id, adapter_for=adapter_for, final_attempt=True
        )
    finally:
        for adapter in adapters:
            adapter.close()

    # The order sent once; then asked about by reference (trickled too, so still unknown).
    assert trickled_order.requests[0] == "POST /wp-json/wc/v3/orders"
    assert set(trickled_order.requests[1:]) == {"GET /wp-json/wc/v3/orders"}
    assert trickled_order.answered_in_full == 0
    assert result == PlacementResult.RECONCILING
    placed = shop.sub_order(order, "kiondo")
    assert placed.status == SubOrderStatus.RECONCILING
    assert not placed.marketplace_order_id
    with shop.session() as session:
        assert session.scalars(sa.select(Refund).where(Refund.sub_order_id == sub.id)).all() == []

"""Shipping and tax a store adds to a paid order, over real HTTP against the sandbox (WooCommerce
REST v3 `shipping_total`/`total_tax`, Shopify `totalShippingPriceSet`/`totalTaxSet`): within the
marketplace's allowance OneCart pays them and records what it absorbed, beyond it the part is
cancelled on the marketplace and refunded, with a note naming shipping and tax."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.base import MarketplaceAdapter
from adapters.registry import build_adapter
from commerce.marketplace_access import marketplace_config
from commerce.models import Marketplace
from commerce.order_models import PLACED_SUB_ORDER_STATUSES, Refund, SubOrderStatus
from commerce.placement import PlacementResult, place_sub_order
from tests.checkout.shop import Shop
from tests.faults.conftest import check_invariants, held_orders

pytestmark = pytest.mark.slow


def _adapters(options: dict[str, Any]) -> Any:
    """An adapter provider whose marketplaces carry `options` (as marketplaces.toml would)."""
    built: dict[int, MarketplaceAdapter] = {}

    def adapter_for(marketplace: Marketplace) -> MarketplaceAdapter:
        if marketplace.id not in built:
            built[marketplace.id] = build_adapter(marketplace_config(marketplace, options))
        return built[marketplace.id]

    return adapter_for


def _refunds(shop: Shop, sub_order_id: int) -> list[Refund]:
    with shop.session() as session:
        return list(session.scalars(sa.select(Refund).where(Refund.sub_order_id == sub_order_id)))


def test_shipping_and_tax_within_the_allowance_are_paid_by_onecart(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    shop.knobs("kiondo", order_shipping_minor=25_000, order_tax_bps=1_600)  # KES 250, VAT 16%
    [sub] = order.charged_sub_orders
    tax = (sub.amount_minor + 25_000) * 1_600 // 10_000

    result = place_sub_order(
        shop.session_factory,
        sub.id,
        adapter_for=_adapters(
            {"shipping_tax_allowance_minor": 25_000, "shipping_tax_allowance_bps": 2_000}
        ),
        final_attempt=True,
    )

    sub = shop.sub_order(order, "kiondo")
    assert result == PlacementResult.PLACED
    assert sub.status in PLACED_SUB_ORDER_STATUSES
    assert (sub.absorbed_shipping_minor, sub.absorbed_tax_minor) == (25_000, tax)
    assert sub.accepted_amount_minor == sub.amount_minor + 25_000 + tax
    assert sub.accepted_charge_minor in (None, sub.charge_minor)
    assert _refunds(shop, sub.id) == []
    page = (
        shop.client_for(shop.make_user(is_admin=True))
        .get("/admin/marketplaces")
        .get_data(as_text=True)
    )
    cell = page[page.index('data-testid="absorbed-kiondo"') :].split("</td>", 1)[0]
    assert "KES250.00" in cell and "1 sub-order" in cell
    check_invariants(shop)


@pytest.mark.parametrize("slug", ["shopwave", "kiondo"])
def test_shipping_and_tax_beyond_the_allowance_cancel_the_part(shop: Shop, slug: str) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [(slug, 3, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    shop.knobs(slug, order_shipping_minor=500, order_tax_bps=800)
    [sub] = order.charged_sub_orders

    result = place_sub_order(
        shop.session_factory, sub.id, adapter_for=_adapters({}), final_attempt=True
    )

    sub = shop.sub_order(order, slug)
    assert result == PlacementResult.CANCELLED
    assert sub.status == SubOrderStatus.CANCELLED
    assert "added shipping" in (sub.last_error or "") and "allowance" in (sub.last_error or "")
    assert [r.amount_minor for r in _refunds(shop, sub.id)] == [sub.charge_minor]
    [held] = held_orders(shop, slug, sub, order)
    assert held["status"] == "cancelled"
    check_invariants(shop)

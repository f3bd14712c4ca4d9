"""Stock at checkout and placement, on the real sandbox marketplaces: a live offer with fewer
units left than the cart holds is a change the shopper sees and confirms (never charged
silently), so is a catalog stock below the cart when the marketplace cannot be asked. Someone
else buying the last units at the marketplace (its orders draw the stock down) makes the next
shopper's checkout show the offer out of stock; units bought elsewhere between checkout and
placement make the marketplace refuse that sub-order, shown with its reason and its share
refunded, the rest of the order going ahead. (`shop` checks every order's books.)"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
import sqlalchemy as sa

from adapters.base import OrderLine, OrderRequest, ShippingAddress
from adapters.registry import build_adapter
from commerce.models import CartItem, Product, User
from commerce.order_models import Order, RefundStatus, SubOrderStatus
from commerce.wallet import wallet_balance
from tests.checkout.shop import Shop


def _count_orders(shop: Shop) -> int:
    with shop.session() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(Order)) or 0)


def _cart_quantity(shop: Shop, user: User, product: Product) -> int:
    with shop.session() as session:
        return session.scalars(
            sa.select(CartItem.quantity).where(
                CartItem.user_id == user.id, CartItem.product_id == product.id
            )
        ).one()


def _set_catalog_stock(shop: Shop, product: Product, stock: int) -> None:
    with shop.session() as session, session.begin():
        session.get(Product, product.id).stock = stock


def _least_stocked_shopwave_offer(shop: Shop) -> tuple[int, int]:
    """(index in the shop's ShopWave products, live stock) of the offer with the fewest units."""
    stocked = [
        (offer.stock, index)
        for index, offer in enumerate(shop.catalog.offers["shopwave"])
        if offer.stock is not None and 1 <= offer.stock <= 90
    ]
    assert stocked, "the test sandbox's first ShopWave offers publish their stock"
    stock, index = min(stocked)
    return index, stock


def test_a_live_stock_below_the_cart_is_a_change_the_shopper_confirms(shop: Shop) -> None:
    index, left = _least_stocked_shopwave_offer(shop)
    product = shop.product("shopwave", index)
    # The catalog said enough were left when the shopper filled the cart.
    _set_catalog_stock(shop, product, left + 2)
    user = shop.make_user(wallet=Decimal("10000"))
    shop.fill_cart(user, [("shopwave", index, left + 2)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)

    response = shop.submit(client, form, payment_method="wallet")

    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert f"only {left} left, so your order now has <strong>{left}</strong>" in html
    assert f"Only {left} left</span>" in html
    assert _count_orders(shop) == 0
    assert _cart_quantity(shop, user, product) == left
    with shop.session() as session:
        assert wallet_balance(session, session.get(User, user.id)).minor == 1_000_000
        assert session.get(Product, product.id).stock == left
    new_total = Shop.hidden_fields(html)["total_seen"]
    assert int(new_total) == product.price_minor * left

    accepted = shop.submit(
        client,
        {**form, "total_seen": new_total, "cart_digest": Shop.hidden_fields(html)["cart_digest"]},
        payment_method="wallet",
    )

    assert accepted.status_code == 303
    [order] = shop.orders()
    assert order.total_minor == product.price_minor * left
    assert [item.quantity for item in order.items] == [left]


def test_a_catalog_stock_below_the_cart_counts_when_the_marketplace_cannot_be_asked(
    shop: Shop,
) -> None:
    user = shop.make_user(wallet=Decimal("10000"))
    product = shop.product("shopwave", 0)
    shop.fill_cart(user, [("shopwave", 0, 4)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)
    _set_catalog_stock(shop, product, 3)
    shop.make_unreachable("shopwave")  # the live check cannot say otherwise

    response = shop.submit(client, form, payment_method="wallet")

    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "only 3 left, so your order now has <strong>3</strong> (you had 4)" in html
    assert _count_orders(shop) == 0
    assert _cart_quantity(shop, user, product) == 3


def _tracked_offer(shop: Shop, slug: str, low: int, high: int) -> tuple[int, int]:
    """(index in the shop's products of `slug`, stock) of the least-stocked offer whose store
    counts its stock and has low..high units."""
    found = [
        (offer.stock, index)
        for index, offer in enumerate(shop.catalog.offers[slug])
        if offer.stock is not None and low <= offer.stock <= high
    ]
    assert found, f"no {slug} offer with {low}..{high} units among the shop's offers"
    stock, index = min(found)
    return index, stock


def _someone_else_buys(shop: Shop, product: Product, slug: str, quantity: int) -> None:
    """Another shopper buys `quantity` units at the marketplace itself, through its API."""
    [config] = [c for c in shop.catalog.configs if c.slug == slug]
    adapter = build_adapter(config)
    reference = f"elsewhere-{uuid.uuid4().hex[:12]}"
    try:
        adapter.place_order(
            OrderRequest(
                reference=reference,
                idempotency_key=f"{reference}-1",
                lines=[
                    OrderLine(product.external_id, quantity, product.price_minor, product.currency)
                ],
                shipping=ShippingAddress(
                    name="Grace Hopper", line1="1 Navy Way", city="Nairobi", country="KE"
                ),
                currency=product.currency,
            )
        )
    finally:
        adapter.close()


@pytest.mark.parametrize("slug", ["shopwave", "kiondo"])
def test_the_last_units_bought_elsewhere_show_as_sold_out_at_the_next_checkout(
    shop: Shop, slug: str
) -> None:
    index, left = _tracked_offer(shop, slug, 1, 60)
    product = shop.product(slug, index)
    user = shop.make_user(wallet=Decimal("10000"))
    shop.fill_cart(user, [(slug, index, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)
    shop.knobs(slug, cancel_rate=0)
    _someone_else_buys(shop, product, slug, left)

    response = shop.submit(client, form, payment_method="wallet")

    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "out of stock; it is left out of your order." in html
    assert _count_orders(shop) == 0
    with shop.session() as session:
        assert wallet_balance(session, session.get(User, user.id)).minor == 1_000_000
        assert session.get(Product, product.id).available is False


@pytest.mark.slow
def test_units_bought_elsewhere_after_checkout_fail_that_part_at_placement_and_refund_it(
    shop: Shop,
) -> None:
    """The live check passed; before the order reached Kiondo someone else bought all but one
    unit there: Kiondo refuses the sub-order, its share is refunded, the rest goes ahead."""
    index, left = _tracked_offer(shop, "kiondo", 3, 60)
    product = shop.product("kiondo", index)
    user = shop.make_user(wallet=Decimal("10000"))
    shop.fill_cart(user, [("kiondo", index, 2), ("shopwave", 0, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    shop.knobs("shopwave", cancel_rate=0)
    shop.knobs("kiondo", cancel_rate=0)
    _someone_else_buys(shop, product, "kiondo", left - 1)
    shop.start_workers(1)

    shop.wait_until_settled()

    order = shop.order(order.number)
    kiondo = shop.sub_order(order, "kiondo")
    shopwave = shop.sub_order(order, "shopwave")
    assert kiondo.status == SubOrderStatus.FAILED and kiondo.marketplace_order_id is None
    assert "Kiondo Market refused the order" in (kiondo.last_error or "")
    assert "does not have enough stock: 1 left, 2 ordered" in (kiondo.last_error or "")
    assert shopwave.status in (SubOrderStatus.PLACED, SubOrderStatus.PROCESSING)
    assert shop.sandbox_orders_with_reference("kiondo", order.relation_token) == []
    assert order.payment is not None
    [refund] = [r for r in order.payment.refunds if r.sub_order_id == kiondo.id]
    assert (refund.amount_minor, refund.status) == (kiondo.charge_minor, RefundStatus.SUCCEEDED)
    with shop.session() as session:
        balance = wallet_balance(session, session.get(User, user.id)).minor
    assert balance == 1_000_000 - shopwave.charge_minor

    page = shop.client_for(user).get(f"/orders/{order.number}").get_data(as_text=True)
    assert "does not have enough stock" in page
    # The marketplace's own words, not the request that carried them ("kiondo refused POST
    # wp-json/wc/v3/orders: …").
    assert "Kiondo Market refused the order: " in page
    for technical in ("wp-json", "POST ", "kiondo refused"):
        assert technical not in page, technical

"""Stock at checkout and placement, on the real sandbox marketplaces: a live offer with fewer
units left than the cart holds is a change the shopper sees and confirms (never charged
silently), so is a catalog stock below the cart when the marketplace cannot be asked; and a
marketplace refusing an order beyond its stock fails that sub-order with the reason shown and
its share refunded, the rest of the order going ahead. (`shop` checks every order's books.)"""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from commerce.models import CartItem, Product, User
from commerce.order_models import Order, RefundStatus, SubOrderStatus
from commerce.wallet import wallet_balance
from sandbox.world import World
from tests.checkout.conftest import Shop
from tests.conftest import TEST_SANDBOX_OFFERS, TEST_SANDBOX_SEED

WORLD = World(TEST_SANDBOX_SEED, TEST_SANDBOX_OFFERS)
KIONDO_ID_BASE, KIONDO_ID_STRIDE = 1000, 3  # sandbox.woocommerce.product_id


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


def _kiondo_offer_with_unpublished_stock(shop: Shop) -> tuple[int, int]:
    """(index in the shop's Kiondo products, stock) of the least-stocked offer whose store
    counts its stock but, as the Store API does when stock is not low, publishes no figure."""
    found = []
    for index, offer in enumerate(shop.catalog.offers["kiondo"]):
        world_index = (int(offer.external_id) - KIONDO_ID_BASE) // KIONDO_ID_STRIDE
        listed = WORLD.offer("kiondo", world_index)
        if listed.tracks_stock and offer.stock is None and listed.stock >= 5:
            found.append((listed.stock, index))
    assert found, "no Kiondo offer with a counted but unpublished stock"
    stock, index = min(found)
    return index, stock


@pytest.mark.slow
def test_a_marketplace_refusing_an_order_beyond_its_stock_fails_that_part_and_refunds_it(
    shop: Shop,
) -> None:
    index, left = _kiondo_offer_with_unpublished_stock(shop)
    user = shop.make_user(wallet=Decimal("10000"))
    shop.fill_cart(user, [("kiondo", index, left + 1), ("shopwave", 0, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    shop.knobs("shopwave", cancel_rate=0)
    shop.start_workers(1)

    shop.wait_until_settled()

    order = shop.order(order.number)
    kiondo = shop.sub_order(order, "kiondo")
    shopwave = shop.sub_order(order, "shopwave")
    assert kiondo.status == SubOrderStatus.FAILED and kiondo.marketplace_order_id is None
    assert "Kiondo Market refused the order" in (kiondo.last_error or "")
    assert f"does not have enough stock: {left} left" in (kiondo.last_error or "")
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

"""Items bought on a marketplace's own site (hand-off) move from the cart into the order at
checkout: never left in the cart, never listed again by a later order; on the order page the
shopper marks them bought or removes them (and can undo), and nobody else can."""

from __future__ import annotations

import re
from decimal import Decimal

import sqlalchemy as sa

from commerce.models import CartItem
from commerce.order_models import HandoffItemStatus, OrderItem
from tests.checkout.shop import Shop
from tests.storefront.conftest import text_of


def _item_status(shop: Shop, item_id: int) -> HandoffItemStatus | None:
    with shop.session() as session:
        item = session.get(OrderItem, item_id)
        assert item is not None
        return item.handoff_status


def _handoff_rows(html: str) -> dict[str, str]:
    """data-item → data-status of the order page's hand-off items."""
    return dict(
        re.findall(r'class="handoff-item[^"]*" data-item="(\d+)" data-status="(\w+)"', html)
    )


def test_handoff_items_move_into_the_order_and_are_never_listed_again(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 1), ("naijamall", 0, 2), ("amazon", 0, 1)])
    client = shop.client_for(user)

    first = shop.checkout(client, payment_method="wallet")

    assert sorted(sub.marketplace.slug for sub in first.handoff_sub_orders) == [
        "amazon",
        "naijamall",
    ]
    with shop.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(CartItem)) == 0
    cart = client.get("/cart").get_data(as_text=True)
    assert "Your cart is empty" in cart

    shop.fill_cart(user, [("dummymart", 0, 1)])
    second = shop.checkout(client, payment_method="wallet")

    assert second.handoff_sub_orders == []
    assert [item.product_id for item in second.items] == [shop.product("dummymart").id]
    page = client.get(f"/orders/{second.number}").get_data(as_text=True)
    assert "Buy on the marketplace" not in page


def test_the_shopper_marks_handoff_items_bought_or_removes_them(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    other = shop.make_user()
    shop.fill_cart(user, [("shopwave", 0, 1), ("naijamall", 0, 1), ("naijamall", 1, 3)])
    client = shop.client_for(user)
    order = shop.checkout(client, payment_method="wallet")
    [naija] = order.handoff_sub_orders
    bought, dropped = naija.items

    page = client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert _handoff_rows(page) == {str(bought.id): "to_buy", str(dropped.id): "to_buy"}
    assert f'href="{shop.product("naijamall", 0).product_url}"' in page
    path = f"/orders/{order.number}/handoff-items"

    marked = client.post(f"{path}/{bought.id}", data={"status": "bought"})
    removed = client.post(f"{path}/{dropped.id}", data={"status": "removed"})

    assert marked.status_code == removed.status_code == 303
    assert marked.location.endswith(f"/orders/{order.number}#handoff-items")
    assert _item_status(shop, bought.id) == HandoffItemStatus.BOUGHT
    assert _item_status(shop, dropped.id) == HandoffItemStatus.REMOVED
    page = client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert _handoff_rows(page) == {str(bought.id): "bought", str(dropped.id): "removed"}
    assert "Marked “" in page or "Removed “" in page
    # Neither changes what was charged or the order's own status rule.
    assert shop.order(order.number).total_minor == order.total_minor

    undone = client.post(f"{path}/{dropped.id}", data={"status": "to_buy"})
    assert undone.status_code == 303
    assert _item_status(shop, dropped.id) == HandoffItemStatus.TO_BUY

    # Someone else's order, an item OneCart placed, a made-up status: refused, nothing changes.
    [placed] = order.charged_sub_orders[0].items
    intruder = shop.client_for(other)
    assert intruder.post(f"{path}/{bought.id}", data={"status": "removed"}).status_code == 404
    assert client.post(f"{path}/{placed.id}", data={"status": "bought"}).status_code == 404
    bad = client.post(f"{path}/{bought.id}", data={"status": "delivered"})
    assert bad.status_code == 303
    assert _item_status(shop, bought.id) == HandoffItemStatus.BOUGHT
    assert placed.handoff_status is None

    # The status link's page lists them, without links or buttons.
    public = shop.app.test_client().get(f"/order-status/{order.status_token}")
    html = public.get_data(as_text=True)
    assert _handoff_rows(html) == {str(bought.id): "bought", str(dropped.id): "to_buy"}
    assert "Mark bought" not in html and "/handoff-items/" not in html


def test_checkout_with_only_handoff_items_says_there_is_nothing_to_pay_here(shop: Shop) -> None:
    """A cart of hand-off items only offers no checkout, but /checkout itself (a bookmark, the
    back button) showed the whole form: "Total (EUR) €0.00", "Takes $0.00 from your wallet",
    "Charges €0.00 to your card" and a greyed "Place order and pay €0.00 by card" that said
    nowhere why it could not be pressed. It says there is nothing to pay through OneCart and
    where those items are bought, and leaves them in the cart."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("naijamall", 0, 1), ("amazon", 0, 1)])
    client = shop.client_for(user)

    html = client.get("/checkout").get_data(as_text=True)
    page = text_of(html)

    assert "Nothing in your cart is paid through OneCart" in page
    assert "Amazon and NaijaMall take no orders through OneCart" in page
    assert "On Amazon" in page and "On NaijaMall" in page  # each item, linked
    assert 'href="/cart"' in html
    for form_part in ('id="place-order"', "Charges", "from your wallet", "Total ("):
        assert form_part not in html, form_part
    with shop.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(CartItem)) == 2


def test_checkout_converts_handoff_prices_into_the_shoppers_currency_as_the_cart_does(
    shop: Shop,
) -> None:
    """The cart shows a NaijaMall item as "NGN… ≈ $…"; checkout listed it as "— NGN…" alone,
    beside a "Not included: $…" total the shopper could not trace back to it."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 1), ("naijamall", 0, 1)])

    html = shop.client_for(user).get("/checkout").get_data(as_text=True)

    group = html[html.index('<div class="handoff-group" data-marketplace="naijamall">') :]
    group = text_of(group[: group.index("</ul>")])
    assert "NGN" in group and "≈ $" in group, group


def test_the_order_page_converts_handoff_prices_into_the_shoppers_currency_as_checkout_does(
    shop: Shop,
) -> None:
    """Shopper QA: the order page listed a hand-off item as "— $186.95" alone while the shopper
    read EUR; the cart and checkout add "≈ €…" (the same price, converted by the same helper)."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 1), ("naijamall", 0, 1)])
    client = shop.client_for(user)
    checkout = client.get("/checkout").get_data(as_text=True)
    order = shop.checkout(client, payment_method="wallet")

    html = client.get(f"/orders/{order.number}").get_data(as_text=True)

    group = html[html.index('<div class="handoff-group" data-marketplace="naijamall">') :]
    group = text_of(group[: group.index("</ul>")])
    converted = re.search(r"≈ \$[\d,.]+", group)
    assert "NGN" in group and converted, group
    assert converted.group(0) in text_of(checkout)  # the same amount checkout showed

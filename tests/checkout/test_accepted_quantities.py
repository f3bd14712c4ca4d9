"""What the order page says about a line a marketplace accepted only part of: the units it
accepted (stored per line when the placement is recorded, `order_items.accepted_quantity`) out
of those ordered, in the notification's words ("1 of 3 × …"), and the line's money for those
units, not "3 × …" at the price of three.

Shop17 left this open: the notification said "It accepted 1 of 3 × …" while the order page
listed the line as "3 × …" with the amount of three. Real database, the sandbox over HTTP (its
`max_line_quantity` knob makes Kiondo Market accept one unit of a line), placement in this
process."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from commerce.notification_models import Notification
from commerce.order_models import PLACED_SUB_ORDER_STATUSES, Order, OrderItem
from onecart.money import format_money
from tests.checkout.shop import Shop
from tests.storefront.conftest import text_of

pytestmark = pytest.mark.slow


def _lines(shop: Shop, order: Order) -> dict[str, OrderItem]:
    """The order's lines by product id on the marketplace, as stored."""
    with shop.session() as session:
        items = session.scalars(
            sa.select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.id)
        ).all()
        session.expunge_all()
        return {item.external_id: item for item in items}


def test_a_line_accepted_in_part_shows_the_units_accepted_and_their_money(
    placing_shop: Shop,
) -> None:
    shop = placing_shop
    user = shop.make_user(wallet=Decimal("5000"))
    # Three of one product and one of another: Kiondo accepts one unit of each line.
    shop.fill_cart(user, [("kiondo", 3, 3), ("kiondo", 2, 1)])
    client = shop.client_for(user)
    order = shop.checkout(client, payment_method="wallet")
    shop.knobs("kiondo", max_line_quantity=1)

    shop.place_here(order, "kiondo")

    sub = shop.sub_order(order, "kiondo")
    assert sub.status in PLACED_SUB_ORDER_STATUSES
    short, whole = shop.product("kiondo", 3), shop.product("kiondo", 2)
    lines = _lines(shop, order)
    # Stored where the placement is recorded, for every line of the part.
    assert (lines[short.external_id].quantity, lines[short.external_id].accepted_quantity) == (
        3,
        1,
    )
    assert (lines[whole.external_id].quantity, lines[whole.external_id].accepted_quantity) == (
        1,
        1,
    )
    short_line = lines[short.external_id]
    one_unit = format_money(short_line.unit_price_minor, short_line.currency)
    three_units = format_money(short_line.unit_price_minor * 3, short_line.currency)

    # The notification's words, on the shopper's page and on the public status page.
    [note] = _messages(shop, user.id, "sub_order_adjusted")
    assert f"accepted 1 of 3 × {short.title[:60]}" in note
    for path in (f"/orders/{order.number}", f"/order-status/{order.status_token}"):
        page = text_of(client.get(path).get_data(as_text=True))
        assert f"1 of 3 × {short.title} {one_unit}" in page, path
        assert page.count(f"3 × {short.title}") == page.count(f"1 of 3 × {short.title}"), path
        assert three_units not in page.split(short.title, 1)[1].split(whole.title, 1)[0], path
        # A line accepted whole reads as before.
        whole_money = format_money(whole.price_minor, whole.currency)
        assert f"1 × {whole.title} {whole_money}" in page, path
    # The line's money is what the shopper keeps paying: the part's share less its refund.
    with shop.session() as session:
        placed = session.get(type(sub), sub.id)
        assert placed is not None and placed.accepted_charge_minor is not None
        assert placed.accepted_charge_minor == sum(
            item.charge_minor * item.accepted_quantity // item.quantity
            for item in placed.items
            if item.accepted_quantity is not None
        )


def test_a_line_accepted_whole_keeps_its_quantity_and_money(placing_shop: Shop) -> None:
    shop = placing_shop
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 3, 2)])
    client = shop.client_for(user)
    order = shop.checkout(client, payment_method="wallet")

    shop.place_here(order, "kiondo")

    product = shop.product("kiondo", 3)
    line = _lines(shop, order)[product.external_id]
    assert (line.quantity, line.accepted_quantity) == (2, 2)
    page = text_of(client.get(f"/orders/{order.number}").get_data(as_text=True))
    money = format_money(line.unit_price_minor * 2, line.currency)
    assert f"2 × {product.title} {money}" in page
    assert " of 2 × " not in page
    assert not _messages(shop, user.id, "sub_order_adjusted")


def _messages(shop: Shop, user_id: int, kind: str) -> list[str]:
    with shop.session() as session:
        return list(
            session.scalars(
                sa.select(Notification.message).where(
                    Notification.user_id == user_id, Notification.kind == kind
                )
            )
        )

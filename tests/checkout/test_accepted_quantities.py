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


def _heading(page_html: str, sub_id: int) -> str:
    """The text of a part's heading amount (its `sub-order-amount`)."""
    part = page_html.split(f'id="part-{sub_id}"', 1)[1]
    amount = part.split('class="sub-order-amount">', 1)[1]
    return text_of(amount.split("</summary>", 1)[0])


def _item_lines(page_html: str) -> list[str]:
    """The HTML of each line of the parts' item lists."""
    lists = page_html.split('<ul class="order-items">')[1:]
    return [
        li.split(">", 1)[1] for chunk in lists for li in chunk.split("</ul>", 1)[0].split("<li")[1:]
    ]


def test_a_line_left_out_reads_as_the_notification_says_and_costs_nothing(
    placing_shop: Shop,
) -> None:
    """A line the marketplace dropped read "0 of 2 × …" while the notification said "left out
    …"; and the part's heading kept the amount paid for the whole part while its lines added up
    to what was accepted. Now the line is "2 × … (left out by Kiondo Market)" with no amount,
    and the heading says what the part is charged, of what was paid, and that the rest went
    back: the refund line below gives that amount once."""
    shop = placing_shop
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 3, 2), ("kiondo", 2, 1)])
    client = shop.client_for(user)
    order = shop.checkout(client, payment_method="wallet")
    dropped, kept = shop.product("kiondo", 3), shop.product("kiondo", 2)
    shop.knobs("kiondo", drop_unknown_lines=True, delisted_products=[dropped.external_id])

    shop.place_here(order, "kiondo")

    sub = shop.sub_order(order, "kiondo")
    assert sub.status in PLACED_SUB_ORDER_STATUSES
    lines = _lines(shop, order)
    assert lines[dropped.external_id].accepted_quantity == 0
    assert lines[kept.external_id].accepted_quantity == 1
    [note] = _messages(shop, user.id, "sub_order_adjusted")
    assert f"left out {dropped.title[:60]}" in note
    assert sub.accepted_charge_minor is not None and sub.accepted_charge_minor < sub.charge_minor
    charged = format_money(sub.accepted_charge_minor, sub.charge_currency)
    paid = format_money(sub.charge_minor, sub.charge_currency)
    difference = format_money(sub.charge_minor - sub.accepted_charge_minor, sub.charge_currency)
    dropped_line = lines[dropped.external_id]
    dropped_money = format_money(dropped_line.line_total_minor, dropped_line.currency)
    kept_money = format_money(kept.price_minor, kept.currency)
    for path in (f"/orders/{order.number}", f"/order-status/{order.status_token}"):
        html = client.get(path).get_data(as_text=True)
        page = text_of(html)
        assert f"2 × {dropped.title} (left out by Kiondo Market)" in page, path
        # No amount for it: its line says only that.
        assert [text_of(li) for li in _item_lines(html) if dropped.title in text_of(li)] == [
            f"2 × {dropped.title} (left out by Kiondo Market)"
        ], path
        assert " of 2 × " not in page, path
        assert dropped_money not in page, path
        assert f"1 × {kept.title} {kept_money}" in page, path
        # The heading: what the part is charged (in shillings, then dollars), of what was
        # paid, how the rest went back.
        own = format_money(kept.price_minor, kept.currency)
        assert _heading(html, sub.id) == f"{own} ({charged} of {paid} paid; the rest refunded)"
        assert f"Refunded {difference} (Kiondo Market did not accept all of your items" in page
        # Said once in the part: the refund line. The heading only says "the rest".
        assert difference not in _heading(html, sub.id), path


def test_a_part_billed_less_heads_with_what_it_is_charged(placing_shop: Shop) -> None:
    """Every item accepted and billed for less: the lines keep the price paid, the heading says
    the lower amount charged of what was paid, and the refund line why (one story)."""
    shop = placing_shop
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 1, 2)])
    client = shop.client_for(user)
    order = shop.checkout(client, payment_method="wallet")
    shop.knobs("shopwave", order_price_change_pct=-10)

    shop.place_here(order, "shopwave")

    sub = shop.sub_order(order, "shopwave")
    assert sub.accepted_charge_minor is not None and sub.accepted_charge_minor < sub.charge_minor
    charged = format_money(sub.accepted_charge_minor, sub.charge_currency)
    paid = format_money(sub.charge_minor, sub.charge_currency)
    difference = format_money(sub.charge_minor - sub.accepted_charge_minor, sub.charge_currency)
    product = shop.product("shopwave", 1)
    for path in (f"/orders/{order.number}", f"/order-status/{order.status_token}"):
        html = client.get(path).get_data(as_text=True)
        page = text_of(html)
        assert _heading(html, sub.id) == f"{charged} (of {paid} paid; the rest refunded)", path
        assert (
            f"2 × {product.title} {format_money(product.price_minor * 2, product.currency)}" in page
        )
        assert f"Refunded {difference} (ShopWave billed" in page, path
        # Said once in the part: the refund line. The heading only says "the rest".
        assert difference not in _heading(html, sub.id), path


def test_a_converted_part_charged_less_heads_in_its_own_currency_and_the_payment_currency(
    placing_shop: Shop,
) -> None:
    """A part in another currency than the payment heads, like every converted amount on the
    site, with its own currency first and the payment currency in brackets ("KES8,698.00
    ($66.98)"). Charged less than its share, its heading gave only dollars ("$22.32 (of $66.98
    paid; the rest refunded)") above lines in shillings, so the lines did not add up to it and
    the shopper could not see what the marketplace kept in its own money. Now: "KES2,899.00
    ($22.32 of $66.98 paid; the rest refunded)"; the refund line below keeps the dollars."""
    shop = placing_shop
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 3, 3), ("kiondo", 2, 1)])
    client = shop.client_for(user)
    order = shop.checkout(client, payment_method="wallet")
    shop.knobs("kiondo", max_line_quantity=1)

    shop.place_here(order, "kiondo")

    sub = shop.sub_order(order, "kiondo")
    assert sub.currency != sub.charge_currency  # the case: KES bought with USD
    assert sub.accepted_charge_minor is not None and sub.accepted_charge_minor < sub.charge_minor
    lines = _lines(shop, order).values()
    own = format_money(sum(line.accepted_total_minor for line in lines), sub.currency)
    charged = format_money(sub.accepted_charge_minor, sub.charge_currency)
    paid = format_money(sub.charge_minor, sub.charge_currency)
    difference = format_money(sub.charge_minor - sub.accepted_charge_minor, sub.charge_currency)
    for path in (f"/orders/{order.number}", f"/order-status/{order.status_token}"):
        html = client.get(path).get_data(as_text=True)
        assert _heading(html, sub.id) == f"{own} ({charged} of {paid} paid; the rest refunded)"
        assert f"Refunded {difference} (Kiondo Market did not accept" in text_of(html), path


def test_the_cancel_page_names_what_a_part_charged_less_still_costs(placing_shop: Shop) -> None:
    """The cancel page's preview gave each part's whole share ("Kiondo Market ($620.82): … once
    it confirms, this part is refunded") for a part already refunded all but $229.32 of it: the
    shopper expected $620.82 back. It names what the part still costs, in its own currency and
    the payment's."""
    shop = placing_shop
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 3, 3), ("shopwave", 1, 1)])
    client = shop.client_for(user)
    order = shop.checkout(client, payment_method="wallet")
    shop.knobs("kiondo", max_line_quantity=1)
    shop.place_here(order, "kiondo")

    sub = shop.sub_order(order, "kiondo")
    assert sub.accepted_charge_minor is not None and sub.accepted_charge_minor < sub.charge_minor
    own = format_money(
        sum(
            line.accepted_total_minor
            for line in _lines(shop, order).values()
            if line.sub_order_id == sub.id
        ),
        sub.currency,
    )
    charged = format_money(sub.accepted_charge_minor, sub.charge_currency)
    page = text_of(client.get(f"/orders/{order.number}/cancel").get_data(as_text=True))
    # One pair of brackets: "(KES25,349.00 ($195.74))" read as a sentence cut short.
    assert f"Kiondo Market ({own} / {charged}): we ask Kiondo Market to cancel" in page
    assert format_money(sub.charge_minor, sub.charge_currency) not in page
    # A part in the payment's currency, charged its whole share, reads as before.
    shopwave = shop.sub_order(order, "shopwave")
    assert f"ShopWave ({format_money(shopwave.charge_minor, shopwave.charge_currency)}):" in page

"""Amazon in the cart: its items open in one pre-filled Amazon cart from the cart page and from
checkout (Amazon's add-to-cart form with our associate tag), and OneCart charges nothing for them."""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import httpx

from tests.checkout.shop import Shop


def handoff_links(page: str) -> list[str]:
    """The hrefs of the page's one-cart hand-off buttons."""
    return [
        unescape(href)
        for href in re.findall(r'<a class="button" href="([^"]+)"[^>]*data-handoff-cart=', page)
    ]


def test_amazon_items_open_in_one_amazon_cart_and_are_not_charged(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 1), ("amazon", 0, 2), ("amazon", 1, 1)])
    first, second = shop.product("amazon", 0), shop.product("amazon", 1)
    client = shop.client_for(user)

    for path in ("/cart", "/checkout"):
        page = client.get(path).get_data(as_text=True)
        [link] = handoff_links(page)  # one button, for Amazon only (ShopWave is paid here)
        parts = urlsplit(link)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
            f"{shop.sandbox_url}/amazon/gp/aws/cart/add.html"
        )
        query = parse_qsl(parts.query)
        assert query[0] == ("AssociateTag", "onecart-20")
        lines = {
            (value, dict(query)[name.replace("ASIN", "Quantity")])
            for name, value in query
            if name.startswith("ASIN.")
        }
        assert lines == {(first.external_id, "2"), (second.external_id, "1")}, path

    landing = httpx.get(link, timeout=30)
    assert landing.status_code == 200
    assert f'data-asin="{first.external_id}" data-quantity="2"' in landing.text
    assert f'data-asin="{second.external_id}" data-quantity="1"' in landing.text

    order = shop.checkout(client, payment_method="wallet")
    assert [sub.marketplace.slug for sub in order.handoff_sub_orders] == ["amazon"]
    assert order.handoff_sub_orders[0].charge_minor == 0
    assert order.total_minor == shop.product("shopwave").price_minor

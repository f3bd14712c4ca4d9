"""The order page's items bought on the marketplaces' own sites (hand-offs) in a real browser
(Debian's Chromium through Playwright), laid out as checkout lays them out.

Shopper QA (shop16): checkout shows a hand-off line as a two-column grid (title left, price in
the right column beside the title's first line, its conversion beneath, right-aligned; see
test_browser_checkout_layout.py), but the order page, where the shopper comes back to buy them,
still ran "2 × Title — NGN310,000.00 ≈ $200.00" inline: at 390 px the price wrapped under the
title wherever the title ended, so the prices zig-zagged down the list, and the same items read
differently on the two pages. Boxes, not pixels: the same checks at 390, 960 and 1280 px, with
an item marked bought (its badge and the Undo button beneath the line, not beside the price)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.checkout.shop import Shop
from tests.checkout.test_browser_checkout import browser_page, live_site  # noqa: F401 (fixtures)
from tests.checkout.test_browser_orders import _log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTHS = (390, 960, 1280)

_HANDOFF_LINES = """() => [...document.querySelectorAll('#handoff-items .handoff-item')].map(line => {
    const box = element => element ? element.getBoundingClientRect() : null;
    const row = box(line), title = box(line.querySelector('.line-title'));
    const price = line.querySelector('.line-price');
    const amounts = price ? [...price.childNodes]
        .filter(node => node.nodeType === Node.TEXT_NODE && node.textContent.trim())
        .map(node => { const range = document.createRange(); range.selectNodeContents(node);
                       return range.getBoundingClientRect(); }) : [];
    const converted = price ? price.querySelector('.muted') : null;
    const below = [...line.querySelectorAll('.status-badge, .handoff-item-actions')].map(box);
    return {
        text: line.innerText.replace(/\\s+/g, ' ').slice(0, 60),
        status: line.dataset.status,
        rowLeft: row.left, rowRight: row.right,
        titleLeft: title ? title.left : null, titleRight: title ? title.right : null,
        titleTop: title ? title.top : null, titleBottom: title ? title.bottom : null,
        priceLeft: price ? box(price).left : null, priceTop: price ? box(price).top : null,
        priceBottom: price ? box(price).bottom : null,
        amountTop: amounts.length ? amounts[0].top : null,
        amountRight: amounts.length ? amounts[amounts.length - 1].right : null,
        convertedRight: converted ? box(converted).right : null,
        convertedTop: converted ? box(converted).top : null,
        belowTops: below.map(b => b.top), belowLefts: below.map(b => b.left),
        overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    };
})"""


def _misplaced(line: dict[str, Any]) -> list[str]:
    """What of checkout's line layout this hand-off line breaks (nothing: [])."""
    if line["titleLeft"] is None or line["priceLeft"] is None or line["amountRight"] is None:
        return ["no title and price columns"]
    wrong = []
    if not (
        line["priceLeft"] >= line["titleRight"] and abs(line["priceTop"] - line["titleTop"]) <= 2
    ):
        wrong.append("price not beside the title's first line")
    if abs(line["amountRight"] - line["rowRight"]) > 1:
        wrong.append("amount not flush right")
    if line["convertedRight"] is not None and not (
        abs(line["convertedRight"] - line["rowRight"]) <= 1
        and line["convertedTop"] > line["amountTop"]
    ):
        wrong.append("conversion not beneath the amount, right-aligned")
    text_bottom = max(line["titleBottom"], line["priceBottom"])
    if any(top < text_bottom - 1 for top in line["belowTops"]):
        wrong.append("badge or buttons beside the price instead of beneath the line")
    if any(abs(left - line["titleLeft"]) > 1 for left in line["belowLefts"][:1]):
        wrong.append("badge or buttons not under the title's left edge")
    return wrong


def test_the_order_pages_handoff_items_line_up_as_checkouts_do(
    shop: Shop,
    live_site: str,  # noqa: F811
    browser_page: Any,  # noqa: F811
) -> None:
    page = browser_page
    user = shop.make_user(wallet=Decimal("5000"))
    # NaijaMall (NGN) prices are converted into the shopper's dollars; Amazon's (USD) are not.
    shop.fill_cart(
        user, [("shopwave", 5, 1), ("naijamall", 2, 1), ("naijamall", 3, 2), ("amazon", 1, 1)]
    )
    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    _log_in(page, live_site, user.username)
    page.goto(f"{live_site}/orders/{order.number}")
    first = page.locator("#handoff-items .handoff-item").first
    first.get_by_role("button", name="Mark bought").click()
    page.wait_for_selector("#handoff-items .handoff-item[data-status=bought]")

    uneven = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{live_site}/orders/{order.number}")
        lines = page.evaluate(_HANDOFF_LINES)
        assert len(lines) == 3
        assert {line["status"] for line in lines} == {"bought", "to_buy"}
        assert any(line["convertedRight"] is not None for line in lines), lines
        assert any(line["convertedRight"] is None for line in lines), lines
        assert lines[0]["overflow"] <= 0, (width, lines[0])
        for line in lines:
            wrong = _misplaced(line)
            if wrong:
                uneven.append((width, line["text"], wrong))
        # Every title starts at the same left edge, as on checkout.
        assert len({round(line["titleLeft"] or -1) for line in lines}) == 1, (width, lines)
    assert uneven == []

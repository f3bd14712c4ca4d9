"""The checkout page's payment column in a real browser (Debian's Chromium through Playwright):
in sandbox mode the test-card dropdown shows the whole of each card's label at a 1280 px window,
a narrower desktop one and a 390 px phone. At 1280 px the summary column left the dropdown's
text about 290 px, and the chosen card read "Visa 4242 4242 4242 4242 (succeed": the outcome the
shopper picks the card for was cut off (on a phone, from "(suc")."""

from __future__ import annotations

from typing import Any

import pytest

from tests.checkout.shop import Shop
from tests.checkout.test_browser_checkout import browser_page, live_site  # noqa: F401 (fixtures)
from tests.checkout.test_browser_orders import _log_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTHS = (1280, 960, 390)
# Room Chromium keeps for a closed dropdown's arrow, beside its padding.
ARROW_PX = 24

_MEASURE = """arrow => {
    const select = document.querySelector('#test_card');
    const style = getComputedStyle(select);
    const probe = document.createElement('span');
    probe.style.font = style.font;
    probe.style.whiteSpace = 'pre';
    probe.style.position = 'absolute';
    probe.textContent = select.options[select.selectedIndex].text;
    document.body.append(probe);
    const text = probe.getBoundingClientRect().width;
    probe.remove();
    const room = select.clientWidth - parseFloat(style.paddingLeft)
        - parseFloat(style.paddingRight) - arrow;
    const root = document.documentElement;
    const box = select.getBoundingClientRect();
    const column = document.querySelector('.checkout-aside').getBoundingClientRect();
    return {
        label: probe.textContent, text, room,
        inside: box.left >= column.left && box.right <= column.right,
        overflow: root.scrollWidth - root.clientWidth,
    };
}"""


def test_the_test_card_dropdown_shows_each_cards_whole_label(
    shop: Shop,
    live_site: str,  # noqa: F811
    browser_page: Any,  # noqa: F811
) -> None:
    page = browser_page
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 5, 1), ("kiondo", 4, 1)])
    _log_in(page, live_site, user.username)
    page.goto(f"{live_site}/checkout")
    page.check("input[name=payment_method][value=stripe]")
    cards = page.eval_on_selector_all("#test_card option", "options => options.map(o => o.value)")
    assert len(cards) >= 2
    cut = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        for card in cards:
            page.select_option("#test_card", card)
            seen = page.evaluate(_MEASURE, ARROW_PX)
            if seen["overflow"] > 0 or not seen["inside"] or seen["text"] > seen["room"]:
                cut.append((width, seen))
    assert cut == []


_PHONE_LAYOUT = """() => {
    const root = document.documentElement;
    const width = root.clientWidth;
    const out = [...document.querySelectorAll('main *')]
        .filter(el => {
            const box = el.getBoundingClientRect();
            return box.width > 0 && (box.left < 0 || box.right > width + 0.5);
        })
        .map(el => `${el.tagName.toLowerCase()}.${el.className}`);
    const main = document.querySelector('.checkout-main').getBoundingClientRect();
    const aside = document.querySelector('.checkout-aside').getBoundingClientRect();
    const fields = [...document.querySelectorAll('#checkout-form input[type=text], '
        + '#checkout-form input:not([type]), #checkout-form select, #place-order')]
        .filter(el => el.offsetParent !== null)
        .map(el => el.getBoundingClientRect().width);
    return {
        overflow: root.scrollWidth - root.clientWidth, out,
        main: main.width, stacked: aside.top >= main.bottom,
        narrowest: Math.min(...fields), fields: fields.length,
    };
}"""


def test_the_checkout_fits_a_390_px_phone_without_squeezing_the_form(
    shop: Shop,
    live_site: str,  # noqa: F811
    browser_page: Any,  # noqa: F811
) -> None:
    """Shopper QA asked whether the checkout overflows or squeezes the form at 390 px: three
    marketplaces, one of them bought on its own site (its own section, an item link), by wallet
    and by card. Nothing is wider than the phone, the summary and payment column comes below the
    form, and every field and the order button take the column's width."""
    page = browser_page
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 5, 1), ("kiondo", 4, 2), ("naijamall", 2, 1)])
    _log_in(page, live_site, user.username)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_site}/checkout")
    for method in ("wallet", "stripe"):
        page.check(f"input[name=payment_method][value={method}]")
        seen = page.evaluate(_PHONE_LAYOUT)
        assert (seen["overflow"], seen["out"]) == (0, []), (method, seen)
        assert seen["stacked"], (method, seen)
        assert seen["fields"] >= 7
        # The main column less its card's padding: a field is not squeezed beside something.
        assert seen["narrowest"] >= seen["main"] - 60, (method, seen)


_ORDER_LINES = """() => [...document.querySelectorAll('#checkout-form .checkout-line')].map(line => {
    const box = element => element.getBoundingClientRect();
    const row = box(line), title = box(line.querySelector('.line-title'));
    const price = line.querySelector('.line-price');
    const amounts = [...price.childNodes]
        .filter(node => node.nodeType === Node.TEXT_NODE && node.textContent.trim())
        .map(node => { const range = document.createRange(); range.selectNodeContents(node);
                       return range.getBoundingClientRect(); });
    const converted = price.querySelector('.muted');
    return {
        text: line.innerText.replace(/\\s+/g, ' ').slice(0, 50),
        rowLeft: row.left, rowRight: row.right,
        titleLeft: title.left, titleRight: title.right, titleTop: title.top,
        priceLeft: box(price).left, priceRight: box(price).right, priceTop: box(price).top,
        amountTop: amounts.length ? amounts[0].top : null,
        amountRight: amounts.length ? amounts[amounts.length - 1].right : null,
        convertedRight: converted ? box(converted).right : null,
        convertedTop: converted ? box(converted).top : null,
    };
})"""


def test_the_checkouts_order_lines_line_up_on_a_phone_and_a_desktop(
    shop: Shop,
    live_site: str,  # noqa: F811
    browser_page: Any,  # noqa: F811
) -> None:
    """Shopper QA (shop15) at 390 px: a line whose price carries a conversion ("KES160,000.00 ≈
    $1,235.52") wrapped under its title, flush left, while the next line's price stood at the
    right beside its title: prices zig-zagged down the list. Every line now has its title on
    the left and its price in the right column, beside the title's first line, each amount's
    right edge on the line's right edge and its conversion beneath it, right-aligned too. The
    hand-off section's lines (bought on the marketplace's site) were a bulleted list, indented,
    the price after a dash: they line up the same way. Boxes, not pixels: the same checks at
    390, 960 and 1280 px."""
    page = browser_page
    user = shop.make_user()
    # Fake Store Berlin (EUR) and Kiondo (KES) prices are converted; ShopWave's (USD) are not.
    # NaijaMall's item is bought on its own site: its line (a link) lines up with the others.
    shop.fill_cart(
        user,
        [
            ("fakestore", 5, 1),
            ("kiondo", 4, 2),
            ("shopwave", 1, 3),
            ("shopwave", 5, 1),
            ("naijamall", 2, 1),
        ],
    )
    _log_in(page, live_site, user.username)
    uneven = []
    for width in (390, *WIDTHS):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{live_site}/checkout")
        lines = page.evaluate(_ORDER_LINES)
        assert len(lines) == 5
        assert any(line["convertedRight"] is not None for line in lines)
        assert any(line["convertedRight"] is None for line in lines)
        for line in lines:
            beside = (
                line["priceLeft"] >= line["titleRight"]
                and abs(line["priceTop"] - line["titleTop"]) <= 2
            )
            flush_right = abs(line["amountRight"] - line["rowRight"]) <= 1
            converted_below = line["convertedRight"] is None or (
                abs(line["convertedRight"] - line["rowRight"]) <= 1
                and line["convertedTop"] > line["amountTop"]
            )
            if not (beside and flush_right and converted_below):
                uneven.append((width, line))
        # Every title starts at the same left edge.
        assert len({round(line["titleLeft"]) for line in lines}) == 1, (width, lines)
    assert uneven == []

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

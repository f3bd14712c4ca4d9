"""The checkout page's payment column in a real browser (Debian's Chromium through Playwright):
in sandbox mode the test-card dropdown shows the whole of each card's label at a 1280 px window,
a narrower desktop one and a 390 px phone. At 1280 px the summary column left the dropdown's
text about 290 px, and the chosen card read "Visa 4242 4242 4242 4242 (succeed": the outcome the
shopper picks the card for was cut off (on a phone, from "(suc")."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from commerce.marketplace_access import adapter_for_marketplace
from commerce.placement import place_sub_order
from tests.checkout.shop import SANDBOX_CREDENTIALS, Shop
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


# Each piece of `patterns` found in the text of the elements matching `selector`: on how many
# lines the browser laid it out.
_LINES_OF = """([selector, patterns]) => {
    const found = [];
    for (const element of document.querySelectorAll(selector)) {
        const walker = document.createTreeWalker(element, NodeFilter.SHOW_TEXT);
        const nodes = [];
        let text = '';
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            nodes.push([node, text.length]);
            text += node.textContent;
        }
        const at = offset => {
            let last = nodes[0];
            for (const entry of nodes) { if (entry[1] <= offset) last = entry; }
            return [last[0], offset - last[1]];
        };
        for (const source of patterns) {
            for (const match of text.matchAll(new RegExp(source, 'g'))) {
                const range = document.createRange();
                range.setStart(...at(match.index));
                const end = at(match.index + match[0].length - 1);
                range.setEnd(end[0], end[1] + 1);
                const tops = new Set([...range.getClientRects()]
                    .filter(rect => rect.width > 0).map(rect => Math.round(rect.top)));
                found.push({piece: match[0], lines: tops.size});
            }
        }
    }
    return found;
}"""
RATE = r"1\s[A-Z]{3}\s=\s[\d.,]+\s[A-Z]{3}"
DATE = r"\d{4}-\d{2}-\d{2}"
ORDER_NUMBER = r"OC-[A-Z0-9]+-[A-Z0-9]+"


def test_rates_dates_and_order_numbers_are_not_broken_across_lines(
    shop: Shop,
    live_site: str,  # noqa: F811
    browser_page: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shopper QA (shop17) at 390 px: the checkout's rates read "… = 1.08696 USD; 1" on one line
    and "KES = 0.00772201 USD (rates of 2026-12-" on the next, "07)." on a third; the order
    confirmation said "Your order OC-2390-" and "Z0YV is confirmed" on the next line, and the
    notifications list broke the order's number the same way. A rate, a date and an order's
    number are each read on one line (at 1280 px too); the text around them still wraps."""
    for name, value in SANDBOX_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    page = browser_page
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("fakestore", 5, 1), ("kiondo", 4, 1), ("naijamall", 2, 1)])
    _log_in(page, live_site, user.username)
    broken: list[tuple[int, str, dict[str, Any]]] = []
    checked: list[str] = []

    def check(where: str, selector: str, patterns: list[str]) -> None:
        for width in (390, 1280):
            page.set_viewport_size({"width": width, "height": 900})
            pieces = page.evaluate(_LINES_OF, [selector, patterns])
            assert pieces, (where, width)
            checked.extend(piece["piece"] for piece in pieces)
            broken.extend((width, where, piece) for piece in pieces if piece["lines"] != 1)

    page.goto(f"{live_site}/cart")
    check("cart", ".rates-note", [RATE, DATE])
    page.goto(f"{live_site}/checkout")
    check("checkout", ".rates-note, #handoff-not-charged", [RATE, DATE])

    order = shop.checkout(shop.client_for(user), payment_method="wallet")
    page.goto(f"{live_site}/orders/{order.number}/confirmation")
    check("confirmation", ".alert-success", [ORDER_NUMBER])
    check("order page", ".order-page dd", [RATE, DATE])
    place_sub_order(
        shop.session_factory,
        shop.sub_order(order, "kiondo").id,
        adapter_for=adapter_for_marketplace,
        final_attempt=True,
    )
    page.goto(f"{live_site}/notifications")
    check("notifications", "main li", [ORDER_NUMBER])

    assert any(re.fullmatch(RATE, piece) for piece in checked)
    assert any(re.fullmatch(DATE, piece) for piece in checked)
    assert order.number in checked
    assert broken == [], broken

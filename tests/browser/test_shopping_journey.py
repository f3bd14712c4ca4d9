"""A shopper's whole journey in a real browser, on a catalog the real pipeline built from the
sandbox marketplaces: sign up → search with a typo → filter by marketplace and price → open a
product sold on several marketplaces → add offers from two marketplaces → one cart with both
marketplace groups and one total. Every page is photographed at 375 px and 1280 px."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import SCREENSHOT_DIR as SCREENSHOTS
from tests.browser.conftest import LiveCatalog, open_tab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TYPO_QUERY = "hedphones"  # "headphones" with a letter missing
CORRECT_WORD = "headphone"


@pytest.fixture
def page(browser: Browser, live_server: str) -> Iterator[Page]:
    with open_tab(browser, live_server) as tab:
        yield tab


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_sign_up_search_filter_compare_and_fill_one_cart(
    page: Page, live_server: str, capture: Callable[[Page, str], list[Path]]
) -> None:
    shots: list[Path] = []

    # Visitors land on the explanation of OneCart, with every marketplace's logo.
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Search once")
    # (The six demo marketplaces plus Amazon and Sokoni, issue 13.)
    expect(page.locator(".market-logos li")).to_have_count(8)
    shots += capture(page, "01-landing")

    # Sign up.
    page.goto("/signup")
    shots += capture(page, "02-signup")
    username = f"shopper{uuid.uuid4().hex[:8]}"
    page.get_by_label("Username").fill(username)
    page.get_by_label("E-mail").fill(f"{username}@example.com")
    page.get_by_label("First name").fill("Wanjiru")
    page.get_by_label("Last name").fill("Otieno")
    page.get_by_label("Password", exact=True).fill("Sunny-Plateau-42-kettle")
    page.get_by_label(re.compile("Confirm", re.I)).fill("Sunny-Plateau-42-kettle")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile(r"/home$"))
    expect(
        page.get_by_role("heading", name=re.compile("Welcome to OneCart, Wanjiru"))
    ).to_be_visible()
    expect(page.get_by_role("heading", name="Best deals")).to_be_visible()
    shots += capture(page, "03-home")

    # Search with a typo from the home page.
    page.get_by_label("Search every marketplace").last.fill(TYPO_QUERY)
    page.get_by_label("Search every marketplace").last.press("Enter")
    page.wait_for_url(re.compile(r"/search\?q=" + TYPO_QUERY))
    cards = page.locator(".product-card")
    expect(cards.first).to_be_visible()
    assert CORRECT_WORD in page.locator(".product-card-title mark").first.inner_text().lower()
    shots += capture(page, "04-search-typo")

    # Choose a product sold on several marketplaces, then narrow the listing so it stays in view:
    # one of its marketplaces and a maximum price just above its price there.
    listing = page.request.get(f"/api/search?q={TYPO_QUERY}&available=1&per_page=48").json()
    candidates = [hit for hit in listing["hits"] if hit["marketplaces"] >= 2]
    assert candidates, "the sandbox catalog should sell headphones on several marketplaces"
    target = candidates[0]
    # Listings are products (issue 9): the card's offer is the cheapest, on this marketplace.
    marketplace = target["offer"]["marketplace"]["slug"]
    display_price = Decimal(target["offer"]["display_price"]["minor"]) / 100
    max_price = str((display_price + 1).to_integral_value(rounding=ROUND_CEILING))

    page.locator(f'#facet-marketplace input[value="{marketplace}"]').check()
    page.wait_for_url(lambda url: query_of(url).get("marketplace") == [marketplace])
    page.locator("#max-price").fill(max_price)
    page.locator("#max-price").press("Enter")
    page.wait_for_url(lambda url: query_of(url).get("max_price") == [max_price])
    expect(page.locator(f'#facet-marketplace input[value="{marketplace}"]')).to_be_checked()
    # The filtered listing's card carries its marketplace filter to the product page.
    filtered_url = f"{target['url']}?marketplace={marketplace}"
    product_link = page.locator(f'.product-card a[href="{filtered_url}"]').first
    expect(product_link).to_be_visible()
    # "N offers on M marketplaces", or "N offers in stock on M marketplaces, K unavailable".
    expect(page.locator(".product-card-offers").first).to_contain_text(
        re.compile(r"offers (in stock )?on")
    )
    shots += capture(page, "05-search-filtered")

    # The product page compares every offer; add offers from two different marketplaces.
    product_link.click()
    page.wait_for_url(re.compile(re.escape(filtered_url) + "$"))
    # The suggested offer is the one the card showed, on the marketplace the listing kept.
    suggested = page.locator(".offers-table tr.is-best .offer-market > span").first
    expect(suggested).to_have_text(target["offer"]["marketplace"]["name"])
    rows = page.locator(".offers-table tbody tr:has(form.add-to-cart)")
    assert rows.count() >= 2, "a product sold on several marketplaces has several offers"
    expect(page.locator("svg.price-chart")).to_be_visible()
    shots += capture(page, "06-product")
    # Offers OneCart can order come first, so the cart shows a realistic mix when it can.
    ordered = sorted(
        range(rows.count()),
        key=lambda index: "Checkout happens on" in rows.nth(index).inner_text(),
    )
    chosen: list[str] = []
    for index in ordered:
        row = rows.nth(index)
        name = row.locator(".offer-market > span").first.inner_text().strip()
        if name in chosen:
            continue
        row.get_by_role("button", name=re.compile("Add to cart")).click()
        page.wait_for_url(re.compile(re.escape(filtered_url)))
        expect(page.locator(".flash-success")).to_contain_text("to your cart")
        chosen.append(name)
        if len(chosen) == 2:
            break
    assert len(chosen) == 2

    # One cart: a group per marketplace and one total in the shopper's currency.
    page.get_by_role("link", name=re.compile(r"^Cart")).click()
    page.wait_for_url(re.compile(r"/cart$"))
    groups = page.locator(".cart-group")
    expect(groups).to_have_count(2)
    for name in chosen:
        expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()
    total = page.locator("#cart-total").inner_text()
    assert total.startswith("$") and "Unavailable" not in total
    expect(page.locator(".cart-count")).to_have_text("2")
    shots += capture(page, "07-cart")

    # The remaining pages of the journey, photographed too.
    for path, name in (
        ("/checkout", "08-checkout"),
        ("/stores", "09-stores"),
        ("/assistant", "10-assistant"),
    ):
        page.goto(path)
        expect(page.locator("main h1")).to_be_visible()
        shots += capture(page, name)

    assert len(shots) == 20 and all(shot.stat().st_size > 0 for shot in shots)


def test_the_offers_table_breaks_no_word_or_price_in_two(page: Page) -> None:
    """Shopper QA: at 1280 px the offers table of a product sold on four marketplaces read
    "Availabilit / y", "Unavailabl / e" and "NGN161,000 / .00": the page's `overflow-wrap:
    anywhere` let the table squeeze its columns below their longest word. Headings, prices and
    badges stay whole (a long title may still wrap)."""
    page.set_viewport_size({"width": 1280, "height": 900})
    listing = page.request.get("/api/search?q=headphones&per_page=48").json()
    widest = max(listing["hits"], key=lambda hit: hit["marketplaces"])
    assert widest["marketplaces"] >= 3
    page.goto(widest["url"])
    split = page.evaluate(
        """() => [...document.querySelectorAll(
                '.offers-table thead th:not(:has(.visually-hidden)), '
                + '.offers-table td:nth-child(2) strong, '
                + '.offers-table .original-price, .offers-table .badge')]
            .filter(element => element.textContent.trim())
            .filter(element => {
                const range = document.createRange();
                range.selectNodeContents(element);
                const lines = new Set([...range.getClientRects()]
                    .filter(rect => rect.width > 0).map(rect => Math.round(rect.top)));
                return lines.size > 1;
            })
            .map(element => element.textContent.trim())"""
    )
    assert split == []


# --- Layout at 375 and 1280 px on every page (issue 14) -----------------------------------------
# The sticky header takes at most 15% of a 375x812 screen and one row at 1280, and no page
# scrolls sideways. The pages come from the app's URL map, so a new page is either visited here
# or listed in NEEDS_DATA with the reason; guest, shopper and admin pages are all visited. These
# tests live in this module to share its pipeline run (CI time).

PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}
MAX_PHONE_HEADER_SHARE = 0.15
# One row: the tallest control (44 px) plus the header's padding and border, with room to spare
# but far below two rows.
MAX_DESKTOP_HEADER_PX = 80

# GET pages not visited, and why (each needs a record that only another flow creates; the
# helpers that own those flows test their pages).
NEEDS_DATA = {
    "/orders/<number>": "an order placed through checkout",
    "/orders/<number>/confirmation": "an order placed through checkout",
    # Checked at 375 and 1280 px by tests/checkout/test_browser_orders.py.
    "/orders/<number>/cancel": "an order placed through checkout",
    "/order-status/<token>": "a guest order's status token",
    "/profile/wallet/top-up/<intent_id>/pay": "a wallet top-up payment intent",
    "/profile/wallet/top-up/<intent_id>/done": "a wallet top-up payment intent",
    "/support/tickets/<reference>": "a support ticket",
    "/support/received": "a support message just sent (it redirects otherwise)",
    # Its page is tested by tests/storefront/test_email_change.py.
    "/profile/email/confirm/<token>": "a pending e-mail change's signed link",
}
# The order pages' polling script reads these JSON answers (tests/checkout/test_order_pages.py).
NOT_PAGES = {
    "/favicon.ico",
    "/orders/<number>/status.json",
    "/order-status/<token>/status.json",
}
NOT_PAGES_PREFIXES = ("/api/", "/healthz")
# Pages that some branches add: visited when the app has them.
OPTIONAL_GUEST_PAGES = {"/signup/confirm/<token>": "/signup/confirm/not-a-real-token"}
OPTIONAL_SHOPPER_PAGES = ("/profile/watchlist",)


@pytest.fixture
def phone_page(browser: Browser, live_server: str) -> Iterator[Page]:
    with open_tab(browser, live_server, PHONE) as tab:
        yield tab


def site_pages() -> set[str]:
    """Every GET rule of the app the live server runs (blueprints included)."""
    from storefront import create_app

    app = create_app({"DATABASE_URL": "sqlite://", "SECRET_KEY": "layout-test-url-map"})
    return {
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or ())
        and rule.rule not in NOT_PAGES
        and not rule.endpoint.endswith("static")  # files, not pages
        and not rule.rule.startswith(NOT_PAGES_PREFIXES)
    }


def layout_problems(page: Page, path: str) -> list[str]:
    """Header height and sideways overflow of the current page at both widths."""
    # Measure the page as laid out with its stylesheet: after a form's navigation the first
    # result can be visible before the CSS has arrived (seen under load: an unstyled header).
    page.wait_for_load_state("load")
    problems = []
    for viewport in (PHONE, DESKTOP):
        page.set_viewport_size(viewport)
        measured = page.evaluate(
            """() => {
                const header = document.querySelector('.site-header').getBoundingClientRect();
                const root = document.documentElement;
                const wide = [...document.querySelectorAll('main *')]
                    .filter(e => e.getBoundingClientRect().right > root.clientWidth + 1)
                    .slice(0, 3)
                    .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''));
                return {header: header.height, scroll: root.scrollWidth, client: root.clientWidth,
                        wide};
            }"""
        )
        width = viewport["width"]
        if measured["scroll"] > measured["client"]:
            problems.append(
                f"{path} at {width}px scrolls sideways to {measured['scroll']}px "
                f"(widest: {measured['wide']})"
            )
        if width == PHONE["width"]:
            limit = MAX_PHONE_HEADER_SHARE * PHONE["height"]
            if measured["header"] > limit:
                problems.append(f"{path} at 375px: header {measured['header']:.0f}px > {limit}px")
        elif measured["header"] > MAX_DESKTOP_HEADER_PX:
            problems.append(f"{path} at 1280px: header {measured['header']:.0f}px, not one row")
    return problems


def visit(page: Page, path: str) -> list[str]:
    response = page.goto(path)
    assert response is not None and response.status < 500, f"{path}: {response and response.status}"
    expect(page.locator(".site-header")).to_be_visible()
    return layout_problems(page, path)


def make_admin(live_catalog: LiveCatalog, username: str) -> None:
    from commerce.db import session_scope

    with session_scope(live_catalog.database_url) as db:
        db.execute(
            sa.text("UPDATE users SET is_admin = :yes WHERE username = :name"),
            {"yes": True, "name": username},
        )


def test_every_page_fits_a_phone_and_a_desktop_header_row(
    phone_page: Page, live_catalog: LiveCatalog, capture: Callable[[Page, str], list[Path]]
) -> None:
    page = phone_page
    pages = site_pages()
    visited: set[str] = set()
    problems: list[str] = []

    def check(rule: str, url: str | None = None) -> None:
        problems.extend(visit(page, url or rule))
        visited.add(rule)

    # A guest.
    for rule in ("/", "/about", "/support", "/stores", "/login", "/signup", "/password/forgot"):
        check(rule)
    check("/password/reset/<token>", "/password/reset/not-a-real-token")
    for rule, url in OPTIONAL_GUEST_PAGES.items():
        if rule in pages:
            check(rule, url)
    check("/search", "/search?q=headphones")
    product_link = page.locator(".product-card-link").first.get_attribute("href")
    assert product_link and product_link.startswith("/product/")
    check("/product/<group_id>", product_link)
    page.goto(product_link)
    page.get_by_role("button", name=re.compile("Add to cart")).first.click()
    check("/cart")
    check("/checkout")

    # A new shopper: welcomed, not "back".
    username = f"layout{uuid.uuid4().hex[:8]}"
    page.goto("/signup")
    page.get_by_label("Username").fill(username)
    page.get_by_label("E-mail").fill(f"{username}@example.com")
    page.get_by_label("First name").fill("Amina")
    page.get_by_label("Last name").fill("Njoroge")
    page.get_by_label("Password", exact=True).fill("Quiet-Harbour-58-lantern")
    page.get_by_label(re.compile("Confirm", re.I)).fill("Quiet-Harbour-58-lantern")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome to OneCart, Amina")
    problems.extend(layout_problems(page, "/home (after sign-up)"))
    check("/home")
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome back, Amina")
    for rule in ("/profile", "/orders", "/notifications", "/support/tickets", "/cart"):
        check(rule)
    for rule in OPTIONAL_SHOPPER_PAGES:
        if rule in pages:
            check(rule)
    check("/assistant")
    page.set_viewport_size(PHONE)
    page.get_by_label(re.compile("What are you looking for", re.I)).fill(
        "wireles hedphones for the gym, not to expensive"
    )
    page.get_by_role("button", name="Ask the assistant").click()
    expect(page.locator(".assistant-suggestion").first).to_be_visible()
    problems.extend(layout_problems(page, "/assistant (an answer)"))
    capture(page, "layout-assistant-answer")
    page.goto("/home")
    capture(page, "layout-home")

    # An admin.
    make_admin(live_catalog, username)
    for rule in (
        "/admin/",
        "/admin/attention",
        "/admin/actions",
        "/admin/marketplaces",
        "/admin/marketplaces/new",
    ):
        check(rule)
    page.goto("/admin/marketplaces")
    edit = page.locator("a[href*='/admin/marketplaces/'][href$='/edit']").first.get_attribute(
        "href"
    )
    assert edit
    check("/admin/marketplaces/<int:marketplace_id>/edit", edit)
    check("/admin/wallets", f"/admin/wallets?q={username}")
    wallet = page.locator("a[href^='/admin/users/'][href$='/wallet']").first.get_attribute("href")
    assert wallet
    check("/admin/users/<int:user_id>/wallet", wallet)

    assert problems == []
    assert pages - visited - set(NEEDS_DATA) == set(), "pages neither visited nor in NEEDS_DATA"


def test_the_phone_menu_holds_the_navigation_and_the_named_currencies(
    phone_page: Page, capture: Callable[[Page, str], list[Path]]
) -> None:
    page = phone_page
    page.goto("/search?q=headphones")
    header = page.locator(".site-header")
    # On a phone the bar shows the brand, the cart and the menu; the rest waits in the menu.
    expect(header.get_by_role("link", name="Stores")).to_be_hidden()
    menu = header.locator(".site-menu")
    menu.get_by_text("Menu").click()
    expect(menu.get_by_role("link", name="Stores")).to_be_visible()
    expect(menu.get_by_role("link", name="Log in")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "layout-phone-menu-375.png"))
    # A guest's listing creates no session: no cookie, and the switcher carries no token; the
    # browser's Sec-Fetch-Site vouches for the POST instead (storefront/form_protection.py).
    assert page.context.cookies() == []
    expect(menu.locator('input[name="csrf_token"]')).to_have_value("")
    menu.get_by_role("button", name="€ Euro").click()
    expect(page.get_by_text("Prices are now shown in € Euro.")).to_be_visible()
    assert "/search?q=headphones" in page.url
    expect(page.locator(".product-card-price strong").first).to_contain_text("€")
    # From the first choice on, the session holds a CSRF secret and the forms carry its token.
    assert [cookie["name"] for cookie in page.context.cookies()] == ["onecart_session"]
    expect(menu.locator('input[name="csrf_token"]')).not_to_have_value("")

    # At 1280 the same choice sits in one header row, named by symbol and code.
    page.set_viewport_size(DESKTOP)
    expect(header.get_by_role("link", name="Stores")).to_be_visible()
    expect(menu).to_be_hidden()
    switcher = header.locator(".currency-menu")
    expect(switcher.locator("summary")).to_contain_text("€ EUR")
    switcher.locator("summary").click()
    page.screenshot(path=str(SCREENSHOTS / "layout-currency-menu-1280.png"))
    switcher.get_by_role("button", name="$ US Dollar").click()
    expect(page.get_by_text("Prices are now shown in $ US Dollar.")).to_be_visible()
    tops = page.evaluate(
        """() => ['.brand', '.header-search', '.main-nav'].map(
            s => Math.round(document.querySelector(s).getBoundingClientRect().top))"""
    )
    bottoms = page.evaluate(
        """() => ['.brand', '.header-search', '.main-nav'].map(
            s => Math.round(document.querySelector(s).getBoundingClientRect().bottom))"""
    )
    # One row: every part starts above where any other part ends.
    assert max(tops) < min(bottoms), (tops, bottoms)


def test_the_favicon_is_served(phone_page: Page, live_server: str) -> None:
    page = phone_page
    response = page.request.get(f"{live_server}/favicon.ico")
    assert response.ok and "svg" in response.headers["content-type"]

"""Paying from a wallet in another currency than the prices are shown in: the checkout page
states, per payment method, the exact amount, its currency and the rates behind it; the wallet
pays exactly what its line said, and the confirmation shows that same amount."""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape

from commerce.fx import format_rate
from commerce.order_models import Order
from storefront import format_money
from tests.checkout.shop import TEST_FX_RATES, Shop
from tests.storefront.conftest import text_of


def _text(html: str, selector_attr: str) -> str:
    """The text of the first element with that attribute (its own closing tag ends it)."""
    match = re.search(rf"<(\w+)[^>]*{selector_attr}[^>]*>(.*?)</\1>", html, re.S)
    assert match, f"nothing with {selector_attr}"
    return _plain(match.group(2))


def _plain(fragment: str) -> str:
    """An HTML fragment's text as read (a rate's non-breaking spaces read as spaces)."""
    return " ".join(unescape(re.sub(r"<[^>]+>", "", fragment)).split())


def test_wallet_and_card_lines_each_state_their_own_charge_currency_and_rates(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"), display_currency="EUR")
    shop.fill_cart(user, [("shopwave", 0, 1), ("kiondo", 0, 2)])
    client = shop.client_for(user)

    html = client.get("/checkout").get_data(as_text=True)
    form = shop.checkout_form(client)

    card_total = int(form["total_seen"])
    wallet_total = int(form["wallet_total_seen"])
    card_text = format_money(card_total, "EUR")
    wallet_text = format_money(wallet_total, "USD")
    assert _text(html, 'data-testid="card-charge"') == card_text
    assert _text(html, 'id="checkout-total"') == card_text
    assert _text(html, 'data-testid="wallet-charge"') == wallet_text
    # The wallet's amount is worked out in USD from the items, with the rate shown.
    kes_to_usd = format_rate(Decimal(1) / Decimal(TEST_FX_RATES["KES"]))
    conversion = _text(html, 'data-testid="wallet-conversion"')
    assert "Your wallet holds USD" in conversion and f"1 KES = {kes_to_usd} USD" in conversion
    assert "Wallet (USD)" in html and "Card (EUR)" in html
    # The button names both amounts; the page's CSS shows the chosen method's only.
    button = _text(html, 'id="place-order"')
    assert f"{card_text} by card" in button and f"{wallet_text} from your wallet" in button

    response = shop.submit(client, form, payment_method="wallet")

    assert response.status_code == 303
    order = shop.order(response.headers["Location"].rstrip("/").split("/")[-2])
    assert (order.total_minor, order.currency) == (wallet_total, "USD")
    assert order.payment is not None and order.payment.amount_minor == wallet_total
    confirmation = client.get(response.headers["Location"]).get_data(as_text=True)
    assert _text(confirmation, 'data-testid="order-total"') == wallet_text


def test_the_wallet_line_and_the_order_name_only_the_rates_of_what_is_paid(shop: Shop) -> None:
    # Euro Bazaar's item is bought on Euro Bazaar's own site (a hand-off): OneCart converts
    # nothing of it into the wallet's USD, so its EUR rate is not among the rates "each item"
    # was converted at, on the checkout page or on the order page.
    user = shop.make_user(wallet=Decimal("5000"), display_currency="GBP")
    shop.fill_cart(user, [("kiondo", 0, 1), ("bazaar", 0, 1)])
    client = shop.client_for(user)

    html = client.get("/checkout").get_data(as_text=True)
    conversion = _text(html, 'data-testid="wallet-conversion"')

    kes_to_usd = format_rate(Decimal(1) / Decimal(TEST_FX_RATES["KES"]))
    assert f"each item converted at 1 KES = {kes_to_usd} USD" in conversion
    assert "EUR" not in conversion

    response = shop.submit(client, shop.checkout_form(client), payment_method="wallet")
    assert response.status_code == 303
    number = response.headers["Location"].rstrip("/").split("/")[-2]
    order = shop.order(number)
    assert order.rates_to_payment_currency.keys() == {"KES"}
    page = client.get(f"/orders/{number}").get_data(as_text=True)
    rates_used = re.search(r"<dt>Rates used</dt><dd[^>]*>(.*?)</dd>", page, re.S)
    assert rates_used and f"1 KES = {kes_to_usd} USD" in _plain(rates_used[1])
    assert "EUR" not in _plain(rates_used[1])
    # The order page prints a rate as the checkout does, whatever the stored rates: one whose
    # sixth digit rounds to zero reads "0.30705", not "0.307050".
    with shop.session() as session:
        stored = session.get(Order, order.id)
        assert stored is not None
        stored.fx_rates = {**(stored.fx_rates or {}), "KES": "3.2568"}
        session.commit()
    page = client.get(f"/orders/{number}").get_data(as_text=True)
    rates_used = re.search(r"<dt>Rates used</dt><dd[^>]*>(.*?)</dd>", page, re.S)
    assert rates_used and "1 KES = 0.30705 USD" in _plain(rates_used[1])


def test_a_wallet_in_the_shown_currency_needs_no_conversion_note(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 1)])
    client = shop.client_for(user)

    html = client.get("/checkout").get_data(as_text=True)

    price = format_money(shop.product("shopwave").price_minor, "USD")
    assert _text(html, 'data-testid="wallet-charge"') == price
    assert _text(html, 'data-testid="card-charge"') == price
    assert 'data-testid="wallet-conversion"' not in html


def test_the_summary_says_the_rates_are_stored_only_for_what_onecart_charges(shop: Shop) -> None:
    """The checkout summary said "Converted to GBP at 1 EUR = …; 1 KES = … The rates are stored
    with your order." with the EUR rate of a Euro Bazaar hand-off item, which OneCart charges
    nothing for and the order does not store (its "Rates used" names KES only). That rate now
    stands beside the hand-off figure it converts."""
    user = shop.make_user(wallet=Decimal("5000"), display_currency="GBP")
    shop.fill_cart(user, [("kiondo", 0, 1), ("bazaar", 0, 1)])
    client = shop.client_for(user)

    html = client.get("/checkout").get_data(as_text=True)

    stored = _text(html, 'class="small muted rates-note"')
    assert stored.startswith("Converted to GBP at 1 KES = ")
    assert "The rates are stored with your order" in stored and "EUR" not in stored
    handoff = _text(html, 'id="handoff-not-charged"')
    assert "Not included:" in handoff and "1 EUR = " in handoff


def _checked_payment(html: str) -> list[str]:
    return re.findall(
        r'<input type="radio" name="payment_method" value="(\w+)"[^>]*\bchecked\b', html
    )


def test_a_first_visit_picks_the_wallet_when_it_covers_the_order_else_the_card(
    shop: Shop,
) -> None:
    rich = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(rich, [("shopwave", 0, 1)])
    assert _checked_payment(shop.client_for(rich).get("/checkout").get_data(as_text=True)) == [
        "wallet"
    ]

    short = shop.make_user(wallet=Decimal("0.01"))
    shop.fill_cart(short, [("shopwave", 0, 1)])
    html = shop.client_for(short).get("/checkout").get_data(as_text=True)
    assert _checked_payment(html) == ["stripe"]
    assert 'id="wallet-short"' in html


def test_a_re_rendered_form_keeps_the_shoppers_own_choice(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)

    # A form problem (no name) re-renders the page with the card the shopper chose.
    response = shop.submit(client, form, payment_method="stripe", name="")
    assert response.status_code == 422, response.status_code
    assert _checked_payment(response.get_data(as_text=True)) == ["stripe"]


def test_the_pay_with_onecart_summary_gives_a_converted_part_in_its_own_currency_too(
    shop: Shop,
) -> None:
    """The cart's summary reads "Kiondo Market KES… ≈ $…"; checkout's "Pay with OneCart" gave
    the same part in dollars only, so the shopper could not match it with the marketplace's
    own price. Both summaries now say it the same way."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 1), ("kiondo", 0, 2)])
    client = shop.client_for(user)

    cart = client.get("/cart").get_data(as_text=True)
    html = client.get("/checkout").get_data(as_text=True)

    kiondo = shop.product("kiondo")
    own = format_money(2 * kiondo.price_minor, kiondo.currency)
    summary = re.search(r'<div class="cart-summary".*?</dl>', html, re.S)
    assert summary, "no summary"
    rows = text_of(summary.group(0))
    converted = re.search(rf"Kiondo Market {re.escape(own)} ≈ (\S+)", rows)
    assert converted, rows
    cart_summary = re.search(r'<div class="cart-summary".*?</dl>', cart, re.S)
    assert cart_summary and f"{own} ≈ {converted[1]}" in text_of(cart_summary.group(0))
    shopwave = format_money(shop.product("shopwave").price_minor, "USD")
    row = re.search(r"<dt>ShopWave</dt>(.*?)</div>", summary.group(0), re.S)
    assert row and _plain(row[1]) == shopwave  # its own currency: no "≈"

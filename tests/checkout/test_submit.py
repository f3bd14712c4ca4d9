"""Submitting checkout: one order per validation token, totals re-checked live, clear refusals."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from commerce.checkout import OutcomeKind, submit_checkout
from commerce.exactly_once_models import OutboxMessage
from commerce.fx import FxTable
from commerce.marketplace_access import lookup_adapter_for_marketplace
from commerce.models import CartItem, Product, User, WalletEntry
from commerce.order_models import HandoffItemStatus, Order, Payment, PaymentMethod, SubOrderStatus
from commerce.payments.stripe_gateway import StripeGateway, stripe_client_from_settings
from commerce.wallet import wallet_balance
from onecart.settings import get_settings
from tests.checkout.shop import Shop, stripe_client
from tests.storefront.conftest import text_of
from tests.storefront.test_rejected_forms import assert_errors_are_announced_and_focused


def _count(shop: Shop, model: type) -> int:
    with shop.session() as session:
        return int(session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def test_wallet_checkout_records_order_sub_orders_payment_and_outbox(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 0, 2), ("dummymart", 0, 1), ("naijamall", 0, 1)])
    client = shop.client_for(user)

    order = shop.checkout(client, payment_method="wallet")

    charged = order.charged_sub_orders
    assert {sub.marketplace.slug for sub in charged} == {"shopwave", "dummymart"}
    assert [sub.marketplace.slug for sub in order.handoff_sub_orders] == ["naijamall"]
    assert order.handoff_sub_orders[0].charge_minor == 0
    [handoff_item] = order.handoff_sub_orders[0].items
    assert handoff_item.product_id == shop.product("naijamall").id
    assert handoff_item.handoff_status == HandoffItemStatus.TO_BUY
    assert all(item.handoff_status is None for sub in charged for item in sub.items)
    assert sum(sub.charge_minor for sub in charged) == order.total_minor
    expected = 2 * shop.product("shopwave").price_minor + shop.product("dummymart").price_minor
    assert order.total_minor == expected and order.currency == "USD"
    assert order.payment is not None and order.payment.method == PaymentMethod.WALLET
    assert order.payment.amount_minor == expected
    assert all(sub.status == SubOrderStatus.PENDING for sub in charged)
    with shop.session() as session:
        balance = wallet_balance(session, session.get(User, user.id))
        assert balance.minor == 500_000 - expected
        # Every line left the cart; the hand-off one now lives in the order, to buy there.
        remaining = list(
            session.scalars(sa.select(CartItem.product_id).where(CartItem.user_id == user.id))
        )
        assert remaining == []
        assert session.scalar(sa.select(sa.func.count()).select_from(OutboxMessage)) == 2
        saved = session.get(User, user.id)
        assert (saved.ship_city, saved.ship_country) == ("London", "GB")


def test_second_submit_with_same_token_charges_once(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("kiondo", 0, 1), ("shopwave", 1, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)

    first = shop.submit(client, form, payment_method="wallet")
    second = shop.submit(client, form, payment_method="wallet")

    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert _count(shop, Order) == 1
    assert _count(shop, Payment) == 1
    with shop.session() as session:
        debits = session.scalar(
            sa.select(sa.func.count()).select_from(WalletEntry).where(WalletEntry.amount_minor < 0)
        )
    assert debits == 1


def test_second_card_submit_with_same_token_authorizes_once(shop: Shop) -> None:
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 2, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)

    first = shop.submit(client, form, payment_method="stripe", test_card="pm_card_visa")
    second = shop.submit(client, form, payment_method="stripe", test_card="pm_card_visa")

    assert first.headers["Location"] == second.headers["Location"]
    orders = shop.orders()
    assert len(orders) == 1 and orders[0].payment is not None
    assert orders[0].payment.provider_reference.startswith("pi_")


def _concurrent_posts(shop: Shop, user: User, forms: list[dict[str, str]]) -> list[int]:
    """POST each form from its own thread and client (same signed-in session), all at once."""
    leader = shop.client_for(user)
    cookie = leader.get_cookie("onecart_session")
    assert cookie is not None
    clients = []
    for _ in forms:
        client = shop.app.test_client()
        client.set_cookie("onecart_session", cookie.value)
        clients.append(client)
    barrier = threading.Barrier(len(forms))

    def post(index: int) -> int:
        barrier.wait()
        return clients[index].post("/checkout", data=forms[index]).status_code

    with ThreadPoolExecutor(max_workers=len(forms)) as executor:
        return list(executor.map(post, range(len(forms))))


def test_twenty_concurrent_submits_of_one_form_make_one_order(shop: Shop) -> None:
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 3, 1), ("kiondo", 1, 1)])
    form = shop.checkout_form(shop.client_for(user))
    form.update(payment_method="stripe", test_card="pm_card_visa")

    statuses = _concurrent_posts(shop, user, [form] * 20)

    assert statuses == [303] * 20
    assert _count(shop, Order) == 1
    assert _count(shop, Payment) == 1


def test_twenty_concurrent_submits_from_twenty_tabs_make_one_order(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("dummymart", 3, 1), ("fakestore", 2, 1)])
    client = shop.client_for(user)
    forms = [shop.checkout_form(client) for _ in range(20)]
    assert len({form["validation_token"] for form in forms}) == 20

    statuses = _concurrent_posts(shop, user, forms)

    assert statuses.count(303) == 1
    assert statuses.count(422) == 19  # "Your cart is empty" for every later tab
    assert _count(shop, Order) == 1
    with shop.session() as session:
        debits = session.scalar(
            sa.select(sa.func.count()).select_from(WalletEntry).where(WalletEntry.amount_minor < 0)
        )
    assert debits == 1


def test_changed_live_price_rerenders_with_the_difference_and_takes_nothing(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 4, 1), ("kiondo", 2, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)
    shop.knobs("shopwave", price_drift=1.0)

    response = shop.submit(client, form, payment_method="wallet")

    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert "price changed from" in html
    assert 'class="checkout-line changed"' in html
    assert _count(shop, Order) == 0
    with shop.session() as session:
        assert wallet_balance(session, session.get(User, user.id)).minor == 500_000
        live_price = session.get(type(shop.product("shopwave", 4)), shop.product("shopwave", 4).id)
        assert live_price.price_minor != shop.product("shopwave", 4).price_minor
    new_total = Shop.hidden_fields(html)["total_seen"]
    assert new_total != form["total_seen"]

    # The shopper accepts the new total: the same form, now carrying it (and the digest of the
    # cart it shows), goes through.
    new_digest = Shop.hidden_fields(html)["cart_digest"]
    accepted = shop.submit(
        client,
        {**form, "total_seen": new_total, "cart_digest": new_digest},
        payment_method="wallet",
    )
    assert accepted.status_code == 303
    [order] = shop.orders()
    assert order.total_minor == int(new_total)


def test_item_gone_from_the_marketplace_is_shown_and_nothing_charged(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("dummymart", 4, 1), ("shopwave", 5, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)
    with shop.session() as session, session.begin():
        product = session.get(Product, shop.product("dummymart", 4).id)
        product.external_id = "999999999"  # the marketplace no longer knows this offer

    response = shop.submit(client, form, payment_method="wallet")

    assert response.status_code == 409
    assert "no longer sold" in response.get_data(as_text=True)
    assert _count(shop, Order) == 0


def test_insufficient_wallet_balance_is_a_clear_error_and_keeps_the_cart(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("1"))
    shop.fill_cart(user, [("shopwave", 0, 1)])
    client = shop.client_for(user)
    page = client.get("/checkout").get_data(as_text=True)
    assert "Your balance does not cover this order" in page

    response = shop.submit(client, shop.checkout_form(client), payment_method="wallet")

    assert response.status_code == 422
    assert "Your wallet balance does not cover this order" in response.get_data(as_text=True)
    assert _count(shop, Order) == 0
    with shop.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(CartItem)) == 1
        assert wallet_balance(session, session.get(User, user.id)).minor == 100


def test_declined_test_card_is_a_clear_error_and_takes_nothing(shop: Shop) -> None:
    user = shop.make_user()
    shop.fill_cart(user, [("kiondo", 0, 1)])
    client = shop.client_for(user)

    response = shop.submit(
        client,
        shop.checkout_form(client),
        payment_method="stripe",
        test_card="pm_card_chargeCustomerFail",
    )

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    # What now: a decline alone left the shopper guessing whether money was taken.
    assert "Your card was declined. Nothing was charged. Try another card or pay from" in page
    assert _count(shop, Order) == 0 and _count(shop, CartItem) == 1
    # The page says the address is kept: the re-rendered form and the next visit both have it.
    assert 'value="12 Analytical Way"' in response.get_data(as_text=True)
    fresh = client.get("/checkout").get_data(as_text=True)
    assert 'value="12 Analytical Way"' in fresh and 'value="London"' in fresh
    assert '<option selected value="GB">' in fresh or 'value="GB" selected' in fresh
    with shop.session() as session:
        saved = session.get(User, user.id)
        assert (saved.ship_line1, saved.ship_city, saved.ship_country) == (
            "12 Analytical Way",
            "London",
            "GB",
        )


def test_checkout_in_another_currency_charges_once_with_exact_shares(shop: Shop) -> None:
    user = shop.make_user(display_currency="EUR")
    shop.fill_cart(user, [("shopwave", 1, 3), ("kiondo", 3, 2), ("fakestore", 3, 1)])
    client = shop.client_for(user)

    order = shop.checkout(client, payment_method="stripe", test_card="pm_card_visa")

    assert order.currency == "EUR"
    # The published per-USD rates behind every conversion are stored with the order.
    assert order.fx_rates == {"EUR": "0.92000000", "KES": "129.50000000"}
    assert set(order.rates_to_payment_currency) == {"USD", "KES"}
    shares = {sub.marketplace.slug: sub for sub in order.charged_sub_orders}
    assert shares["kiondo"].currency == "KES" and shares["kiondo"].charge_currency == "EUR"
    assert shares["fakestore"].charge_minor == shares["fakestore"].amount_minor
    assert sum(sub.charge_minor for sub in shares.values()) == order.total_minor
    assert order.payment is not None and order.payment.amount_minor == order.total_minor
    assert order.payment.currency == "EUR"


def test_hand_off_only_cart_cannot_be_paid(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("100"))
    shop.fill_cart(user, [("dummymart", 0, 1), ("naijamall", 1, 1), ("bazaar", 0, 1)])
    client = shop.client_for(user)
    # A form opened while the cart still held an item paid through OneCart (another tab
    # removes it): checkout shows no form for hand-off items alone (test_handoff_items).
    form = shop.checkout_form(client)
    with shop.session() as session, session.begin():
        session.execute(
            sa.delete(CartItem).where(
                CartItem.user_id == user.id,
                CartItem.product_id == shop.product("dummymart").id,
            )
        )
    page = client.get("/checkout").get_data(as_text=True)
    assert "On NaijaMall" in page and "On Euro Bazaar" in page

    response = shop.submit(client, form, payment_method="wallet")

    assert response.status_code in (409, 422)
    assert _count(shop, Order) == 0


def test_tampered_token_and_missing_address_are_refused(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("100"))
    shop.fill_cart(user, [("dummymart", 0, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)

    tampered = shop.submit(client, form, validation_token="x'); DROP TABLE orders;--")
    no_address = shop.submit(client, form, line1="", city="")
    no_country = shop.submit(client, form, country="EU")  # a CLDR region, no ISO 3166 country

    assert tampered.status_code == 422
    assert no_address.status_code == 422
    assert "Enter the street address." in no_address.get_data(as_text=True)
    assert_errors_are_announced_and_focused(no_address.get_data(as_text=True))
    assert no_country.status_code == 422
    page = no_country.get_data(as_text=True)
    assert 'value="EU"' not in page and "European Union" not in page and "Eurozone" not in page
    assert _count(shop, Order) == 0


def test_forged_payment_method_or_empty_token_rerenders_the_page_saying_why(shop: Shop) -> None:
    """Fields the shopper cannot see or type (a forged radio value, a hidden token lost) are
    said at the top of the page; the page comes with a fresh token, so placing again works."""
    user = shop.make_user(wallet=Decimal("1000"))
    shop.fill_cart(user, [("dummymart", 0, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)

    forged = shop.submit(client, form, payment_method="bitcoin")
    no_token = shop.submit(client, form, validation_token="")

    assert forged.status_code == 422
    assert "Choose how to pay: wallet or card." in text_of(forged.get_data(as_text=True))
    assert_errors_are_announced_and_focused(forged.get_data(as_text=True))
    assert no_token.status_code == 422
    page = no_token.get_data(as_text=True)
    assert "incomplete or has expired, so nothing was charged" in text_of(page)
    fresh_token = Shop.hidden_fields(page)["validation_token"]
    assert fresh_token and fresh_token != form["validation_token"]
    assert _count(shop, Order) == 0
    placed = shop.submit(client, form, validation_token=fresh_token, payment_method="wallet")
    assert placed.status_code == 303


def test_guests_are_sent_to_sign_in(shop: Shop) -> None:
    response = shop.app.test_client().get("/checkout")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_form_for_another_cart_with_the_same_total_takes_nothing(shop: Shop) -> None:
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 6, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)
    # The total matches; the cart the form was rendered for does not (its digest differs).
    response = shop.submit(client, form, payment_method="wallet", cart_digest="0" * 32)

    assert response.status_code == 409
    assert _count(shop, Order) == 0
    accepted = shop.submit(client, form, payment_method="wallet")
    assert accepted.status_code == 303


def test_cart_digest_tells_apart_carts_with_the_same_total() -> None:
    from commerce.checkout import CheckoutQuote, QuoteGroup, QuoteLine

    def quote(*lines: tuple[int, int, int]) -> CheckoutQuote:
        quote_lines = tuple(
            QuoteLine(
                product,
                f"x{product}",
                "t",
                None,
                None,
                qty,
                price,
                "USD",
                qty * price,
                price,
                "USD",
            )
            for product, qty, price in lines
        )
        group = QuoteGroup(
            1,
            "shopwave",
            "Shopwave",
            None,
            "USD",
            False,
            quote_lines,
            sum(line.line_total_minor for line in quote_lines),
            sum(line.line_total_minor for line in quote_lines),
        )
        return CheckoutQuote("USD", (group,), group.amount_minor, None, {}, None, (), ())

    one_of_two = quote((1, 2, 500))
    two_of_one = quote((2, 1, 1000))
    assert one_of_two.total_minor == two_of_one.total_minor
    assert one_of_two.digest != two_of_one.digest
    assert quote((1, 2, 500)).digest == one_of_two.digest


class RecordsVoids:
    """The real Stripe gateway (localstripe), noting every release of a hold."""

    def __init__(self, inner: StripeGateway) -> None:
        self.inner = inner
        self.method = inner.method
        self.voided: list[str] = []

    def void(self, provider_reference: str, *, attempt: int | None = 0) -> None:
        self.voided.append(provider_reference)
        self.inner.void(provider_reference, attempt=attempt)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_an_order_commit_whose_reply_is_lost_keeps_its_card_hold(shop: Shop) -> None:
    """The COMMIT reached the database but its answer did not come back (connection reset):
    the order exists, so its authorization must not be released; the submit finds the order."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 3, 1)])
    form = shop.checkout_form(shop.client_for(user))
    gateway = RecordsVoids(StripeGateway(stripe_client_from_settings(get_settings())))
    lost: list[bool] = []

    def lose_the_order_commit_reply(session: Session) -> None:
        if not lost and any(isinstance(obj, Order) for obj in session.identity_map.values()):
            lost.append(True)
            raise sa.exc.OperationalError(
                "COMMIT", {}, Exception("server closed the connection unexpectedly")
            )

    event.listen(shop.session_factory, "after_commit", lose_the_order_commit_reply)
    try:
        outcome = submit_checkout(
            shop.session_factory,
            shop.card_submission(user, form),
            fx=FxTable(per_usd={}),
            adapter_for=lookup_adapter_for_marketplace,
            card_gateway=gateway,
        )
    finally:
        event.remove(shop.session_factory, "after_commit", lose_the_order_commit_reply)

    assert lost
    [order] = shop.orders()
    assert (outcome.kind, outcome.order_id) == (OutcomeKind.EXISTING, order.id)
    assert gateway.voided == []
    assert order.payment is not None
    intent = stripe_client().v1.payment_intents.retrieve(order.payment.provider_reference)
    assert intent.status == "requires_capture"


def test_a_live_offer_in_another_currency_is_a_change_not_the_old_price(shop: Shop) -> None:
    """The marketplace now sells the offer in another currency than the catalog holds: the
    catalog's price cannot be confirmed, so the shopper sees the live one and nothing is taken
    (before, the check compared prices only within one currency and let the old one through)."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 4, 1)])
    live = shop.product("shopwave", 4)
    with shop.session() as session, session.begin():
        product = session.get(Product, live.id)
        product.currency, product.price_minor = "EUR", live.price_minor // 2
    client = shop.client_for(user)
    form = shop.checkout_form(client)

    response = shop.submit(client, form, payment_method="wallet")

    assert response.status_code == 409
    assert _count(shop, Order) == 0
    html = response.get_data(as_text=True)
    assert "price changed from" in html and "EUR" in html
    with shop.session() as session:
        assert wallet_balance(session, session.get(User, user.id)).minor == 500_000
        product = session.get(Product, live.id)
        assert (product.currency, product.price_minor) == ("USD", live.price_minor)
    accepted = shop.submit(
        client,
        {
            **form,
            "total_seen": Shop.hidden_fields(html)["total_seen"],
            "cart_digest": Shop.hidden_fields(html)["cart_digest"],
        },
        payment_method="wallet",
    )
    assert accepted.status_code == 303
    [order] = shop.orders()
    assert order.total_minor == live.price_minor


def test_a_form_shown_in_one_currency_is_not_charged_in_another_with_the_same_digits(
    shop: Shop,
) -> None:
    """The shopper opened checkout in USD, then switched the site to BSD in another tab (pegged
    1:1, so the cart's digits are the same) and submitted the first tab: the page showed USD, so
    nothing is charged in BSD without the shopper seeing it (the form is bound to its currency,
    not only to its digits)."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 3, 1)])
    form = shop.checkout_form(shop.client_for(user))
    pegged = FxTable(per_usd={"BSD": Decimal("1")})
    submission = replace(shop.card_submission(user, form), display_currency="BSD")

    outcome = submit_checkout(
        shop.session_factory,
        submission,
        fx=pegged,
        adapter_for=lookup_adapter_for_marketplace,
        card_gateway=StripeGateway(stripe_client_from_settings(get_settings())),
    )

    assert outcome.kind == OutcomeKind.CHANGED, outcome
    assert _count(shop, Order) == 0 and _count(shop, Payment) == 0


def test_a_currency_switched_in_another_tab_is_named_not_called_a_price_change(
    shop: Shop,
) -> None:
    """The shopper opened checkout in US dollars, switched the site to euros in another tab and
    then placed the order from the first tab. Nothing is charged (the page showed dollars), and
    the page says why: the display currency changed, not "Prices or availability changed", which
    sends the shopper hunting for a price that did not move."""
    user = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(user, [("shopwave", 3, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)
    assert client.post("/currency", data={"currency": "EUR"}).status_code == 303

    response = shop.submit(client, form, payment_method="wallet")

    assert response.status_code == 409
    text = text_of(response.get_data(as_text=True))
    assert (
        "Prices are now shown in € Euro, not in $ US Dollar as when this checkout page was "
        "opened (the currency was changed in another tab or window). Please review the total "
        "in € Euro; nothing was charged."
    ) in text
    assert "Prices or availability changed" not in text
    assert _count(shop, Order) == 0
    # The page re-rendered in euros carries the euro total: placing the order from it works.
    accepted = shop.submit(
        client, {**form, **_totals(response.get_data(as_text=True))}, payment_method="wallet"
    )
    assert accepted.status_code == 303


def _totals(html: str) -> dict[str, str]:
    hidden = Shop.hidden_fields(html)
    fields = ("total_seen", "wallet_total_seen", "cart_digest", "currency_seen")
    return {name: hidden[name] for name in fields}

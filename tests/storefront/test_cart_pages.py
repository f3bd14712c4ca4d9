"""The cart page and its forms, through the Flask test client on
the real storefront DB (these pages never need Meilisearch: the app's MEILI_URL points nowhere)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from html import unescape
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from commerce.models import CartItem, FxRate, Product, User
from storefront import format_money
from tests.storefront.conftest import DEFAULT_PASSWORD, csrf_token_from, text_of
from tests.storefront.sample_catalog import FX_AS_OF, insert_sample_catalog


def add(
    client: FlaskClient, product: Product | int | str, quantity: object = 1, **extra: str
) -> TestResponse:
    product_id = product.id if isinstance(product, Product) else product
    return client.post(
        "/cart/add", data={"product_id": str(product_id), "quantity": str(quantity), **extra}
    )


def cart_text(client: FlaskClient) -> str:
    return text_of(client.get("/cart").get_data(as_text=True))


def saved_line(
    session: Session,
    user: User,
    product: Product,
    quantity: int,
    *,
    price_seen_minor: int | None = None,
    currency_seen: str | None = None,
) -> CartItem:
    """A line of `user`'s saved cart (added, not committed), seen at the product's price unless
    `price_seen_minor` and `currency_seen` say otherwise."""
    line = CartItem(
        user_id=user.id,
        product_id=product.id,
        relation_token=product.relation_token,
        quantity=quantity,
        price_seen_minor=product.price_minor if price_seen_minor is None else price_seen_minor,
        currency_seen=product.currency if currency_seen is None else currency_seen,
    )
    session.add(line)
    return line


@pytest.fixture(params=[False, True], ids=["guest", "signed-in"])
def shopper(
    request: pytest.FixtureRequest,
    client: FlaskClient,
    catalog: dict[str, Product],
    make_user: Callable[..., User],
    login: Callable[..., Any],
) -> User | None:
    """A test taking it runs twice: for a guest (None), and for a new user signed in on
    `client`."""
    if not request.param:
        return None
    user = make_user()
    login(client, user)
    return user


def test_an_empty_cart_says_so(client: FlaskClient) -> None:
    response = client.get("/cart")
    assert response.status_code == 200
    assert "Your cart is empty" in text_of(response.get_data(as_text=True))


def test_a_guest_adds_offers_from_two_marketplaces_and_sees_one_total(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    first = add(client, catalog["1001"], 2, next="/product/g-sonyxm5")
    assert first.status_code == 303 and first.location.endswith("/product/g-sonyxm5")
    second = add(client, catalog["31"], 1)
    assert second.status_code == 303 and second.location.endswith("/cart")

    html = client.get("/cart").get_data(as_text=True)
    page = text_of(html)
    assert "3 items from 2 marketplaces" in page
    assert 'id="group-shopwave"' in html and 'id="group-dummymart"' in html
    assert "/static/logos/shopwave.svg" in html and "/static/logos/dummymart.svg" in html
    assert f"Subtotal at ShopWave: {format_money(69998, 'USD')}" in page
    assert f"Subtotal at DummyMart: {format_money(54999, 'USD')}" in page
    assert f"Total (USD) {format_money(124997, 'USD')}" in page
    assert 'class="cart-count">3<' in html


def test_the_added_flash_names_the_product(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    response = add(client, catalog["44"], 1)
    page = text_of(client.get(response.location).get_data(as_text=True))
    assert "Added “Asics Gel-Contend 8 Running Shoes” to your cart." in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"quantity": "0"}, "Quantity must be a whole number from 1 to 99."),
        ({"quantity": "100"}, "Quantity must be a whole number from 1 to 99."),
        # Not WTForms' "Not a valid integer value.": the same sentence as any bad quantity.
        ({"quantity": "abc"}, "Quantity must be a whole number from 1 to 99."),
        ({"quantity": "1.5"}, "Quantity must be a whole number from 1 to 99."),
        ({"quantity": ""}, "Quantity must be a whole number from 1 to 99."),
        # A tampered form: int() refuses "²" and a 5,000-digit number but reads "٣" as 3 and
        # "1_0" as 10; the field takes ASCII digits only, like onecart.params.bounded_int.
        ({"quantity": "²"}, "Quantity must be a whole number from 1 to 99."),
        ({"quantity": "٣"}, "Quantity must be a whole number from 1 to 99."),
        ({"quantity": "1_0"}, "Quantity must be a whole number from 1 to 99."),
        ({"quantity": "１"}, "Quantity must be a whole number from 1 to 99."),
        ({"quantity": "9" * 5000}, "Quantity must be a whole number from 1 to 99."),
        ({"product_id": ""}, "Choose an offer to add."),
        ({"product_id": "not-a-number"}, "That product does not exist."),
        ({"product_id": "999999"}, "That product does not exist."),
        ({"product_id": "out_of_stock"}, "is not available right now"),
    ],
)
def test_adding_refuses_bad_input_with_a_message_and_changes_nothing(
    client: FlaskClient, catalog: dict[str, Product], data: dict[str, str], message: str
) -> None:
    form = {"product_id": str(catalog["44"].id), "quantity": "1", **data}
    if form["product_id"] == "out_of_stock":
        form["product_id"] = str(catalog["8"].id)  # the TV on Fake Store Berlin
    response = client.post("/cart/add", data=form)

    assert response.status_code == 303
    page = cart_text(client)
    assert message in page
    assert "Your cart is empty" in page


def test_quantities_above_99_in_total_are_refused(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    add(client, catalog["44"], 60)
    add(client, catalog["44"], 60)

    page = cart_text(client)
    assert "at most 99" in page and "already have 60" in page
    assert "60 items from 1 marketplace" in page


def test_guests_update_and_remove_lines(client: FlaskClient, catalog: dict[str, Product]) -> None:
    add(client, catalog["44"], 1)
    add(client, catalog["KD-90"], 1)
    product_id = str(catalog["44"].id)

    updated = client.post("/cart/update", data={"product_id": product_id, "quantity": "4"})
    assert updated.status_code == 303 and updated.location.endswith(f"/cart#line-{product_id}")
    assert "Quantity updated." in cart_text(client)
    assert "5 items from 2 marketplaces" in cart_text(client)

    removed = client.post("/cart/remove", data={"product_id": product_id})
    assert removed.status_code == 303
    page = cart_text(client)
    assert "Item removed from your cart." in page and "1 item from 1 marketplace" in page


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        ("/cart/update", {"quantity": "0"}, "Quantity must be a whole number from 1 to 99."),
        ("/cart/update", {"quantity": "x"}, "Quantity must be a whole number from 1 to 99."),
        ("/cart/update", {"quantity": "²"}, "Quantity must be a whole number from 1 to 99."),
        ("/cart/update", {"quantity": "٣"}, "Quantity must be a whole number from 1 to 99."),
        ("/cart/update", {"quantity": "1_0"}, "Quantity must be a whole number from 1 to 99."),
        ("/cart/update", {"product_id": ""}, "Choose a cart line."),
        ("/cart/update", {"product_id": "not_in_cart"}, "That item is no longer in your cart."),
        ("/cart/remove", {"product_id": ""}, "Choose a cart line."),
        ("/cart/remove", {"product_id": "not_in_cart"}, "That item is no longer in your cart."),
        ("/cart/remove", {"product_id": "-1"}, "That product does not exist."),
    ],
)
def test_update_and_remove_refuse_bad_input_with_a_message(
    client: FlaskClient,
    catalog: dict[str, Product],
    path: str,
    data: dict[str, str],
    message: str,
) -> None:
    add(client, catalog["44"], 2)
    form = {"product_id": str(catalog["44"].id), "quantity": "3", **data}
    if form["product_id"] == "not_in_cart":
        form["product_id"] = str(catalog["KD-90"].id)

    response = client.post(path, data=form)

    assert response.status_code == 303
    page = cart_text(client)
    assert message in page
    assert "2 items from 1 marketplace" in page


def test_signed_in_carts_are_stored_per_account(
    client: FlaskClient,
    db_session: Session,
    catalog: dict[str, Product],
    make_user: Callable[..., User],
    login: Callable[..., Any],
) -> None:
    alice, bob = make_user(), make_user()
    login(client, alice)
    add(client, catalog["1001"], 2)
    bob_line = saved_line(
        db_session, bob, catalog["KD-90"], 7, price_seen_minor=350000, currency_seen="KES"
    )
    db_session.commit()

    # Alice cannot change or remove Bob's line: the product is simply not in her cart.
    client.post("/cart/update", data={"product_id": str(catalog["KD-90"].id), "quantity": "1"})
    client.post("/cart/remove", data={"product_id": str(catalog["KD-90"].id)})

    db_session.expire_all()
    assert db_session.get(CartItem, bob_line.id).quantity == 7
    alice_lines = db_session.scalars(sa.select(CartItem).where(CartItem.user_id == alice.id)).all()
    assert [(line.product_id, line.quantity) for line in alice_lines] == [(catalog["1001"].id, 2)]
    assert "Thermos" not in cart_text(client)


def test_the_guest_cart_is_merged_at_login_with_quantities_added(
    client: FlaskClient,
    db_session: Session,
    catalog: dict[str, Product],
    make_user: Callable[..., User],
    login: Callable[..., Any],
) -> None:
    user = make_user()
    saved_line(db_session, user, catalog["44"], 2, price_seen_minor=3999, currency_seen="USD")
    db_session.commit()
    add(client, catalog["44"], 3)
    add(client, catalog["BZ-TH1"], 1)

    login(client, user)

    page = cart_text(client)
    assert "6 items from 2 marketplaces" in page
    quantities = {
        item.product_id: item.quantity
        for item in db_session.scalars(sa.select(CartItem).where(CartItem.user_id == user.id))
    }
    assert quantities == {catalog["44"].id: 5, catalog["BZ-TH1"].id: 1}


def test_signing_in_at_checkout_says_the_accounts_saved_lines_joined_the_cart(
    client: FlaskClient,
    db_session: Session,
    catalog: dict[str, Product],
    make_user: Callable[..., User],
) -> None:
    """A guest with one $39.99 item is sent to sign in by the checkout and comes back to it:
    the account's cart already held two of that item and a thermos, so the checkout now asks
    for more than the guest's cart showed. The shopper is told which lines were already there
    before paying, not only "Welcome back"."""
    user = make_user()
    for external_id, quantity in (("44", 2), ("KD-90", 1)):
        saved_line(db_session, user, catalog[external_id], quantity)
    db_session.commit()
    add(client, catalog["44"], 1)
    assert client.get("/checkout").headers["Location"] == "/login?next=/checkout"

    page = client.post(
        "/login",
        data={"login": user.username, "password": DEFAULT_PASSWORD, "next": "/checkout"},
        follow_redirects=True,
    )

    assert page.request.path == "/checkout"
    text = text_of(page.get_data(as_text=True))
    shoes, thermos = catalog["44"].title, catalog["KD-90"].title
    assert (
        "Your account's cart already held items, so they are in this cart too: "
        f"“{shoes}” (2 from before + 1 now = 3), “{thermos}” (1). "
        "Check the items and the total before you pay."
    ) in text
    # Read in the order they happened: the greeting first, then what the sign-in did to the cart.
    assert text.index("Welcome back") < text.index("Your account's cart already held items")


def test_the_checkout_says_which_prices_moved_since_they_were_added_to_the_cart(
    client: FlaskClient,
    db_session: Session,
    catalog: dict[str, Product],
    signed_in_user: User,
) -> None:
    """The shoes were added at $35.00 and cost $39.99 now. The cart page says so ("Price changed
    since you added it"), but a shopper going to the checkout straight from a product page, the
    header or a sign-in saw $39.99 there with nothing said: the checkout says it too, per line."""
    shoes, thermos = catalog["44"], catalog["KD-90"]
    for product, seen in ((shoes, 3500), (thermos, thermos.price_minor)):
        saved_line(db_session, signed_in_user, product, 2, price_seen_minor=seen)
    db_session.commit()

    page = text_of(client.get("/checkout").get_data(as_text=True))

    assert f"2 × {shoes.title} $79.98 Price changed since you added it (was $35.00 each)." in page
    assert page.count("Price changed since you added it") == 1


def test_signing_in_with_nothing_saved_in_the_account_says_nothing_of_a_merge(
    client: FlaskClient, catalog: dict[str, Product], make_user: Callable[..., User]
) -> None:
    user = make_user()
    add(client, catalog["44"], 1)
    page = client.post(
        "/login",
        data={"login": user.username, "password": DEFAULT_PASSWORD, "next": "/checkout"},
        follow_redirects=True,
    )
    assert page.request.path == "/checkout"
    assert "already held" not in text_of(page.get_data(as_text=True))


def test_a_guest_line_merged_above_the_stock_is_capped_and_the_shopper_told_once(
    client: FlaskClient,
    db_session: Session,
    catalog: dict[str, Product],
    make_user: Callable[..., User],
    login: Callable[..., Any],
) -> None:
    user = make_user()
    product = catalog["44"]
    saved_line(db_session, user, product, 2, price_seen_minor=3999, currency_seen="USD")
    db_session.get(Product, product.id).stock = 4
    db_session.commit()
    add(client, product, 3)  # within the stock for the guest cart alone

    login(client, user)

    page = cart_text(client)
    notice = f"Only 4 left at {product.marketplace.name}; your cart has 4."
    assert page.count(notice) == 1
    assert "4 items from 1 marketplace" in page
    line = db_session.scalar(sa.select(CartItem).where(CartItem.user_id == user.id))
    assert line is not None
    db_session.refresh(line)
    assert line.quantity == 4


def test_the_cart_shows_rates_hand_off_hints_and_unavailable_items(
    client: FlaskClient,
    db_session: Session,
    catalog: dict[str, Product],
    make_user: Callable[..., User],
    login: Callable[..., Any],
) -> None:
    login(client, make_user(display_currency="EUR"))
    add(client, catalog["1001"], 1)  # ShopWave, cheaper at Kiondo
    add(client, catalog["NM-77"], 1)  # NaijaMall: no ordering API
    add(client, catalog["31"], 1)  # DummyMart TV, about to vanish
    catalog_tv = db_session.get(Product, catalog["31"].id)
    catalog_tv.removed_at = datetime.now(UTC)
    db_session.commit()

    html = client.get("/cart").get_data(as_text=True)
    page = text_of(html)

    assert "Checkout on NaijaMall" in page
    assert "This marketplace takes no orders through OneCart: open the item" in page
    assert 'href="http://127.0.0.1:9/naijamall/NM-77"' in html
    assert "Cheaper on Kiondo Market" in page
    assert "Switch to the Kiondo Market offer" in page
    assert "Unavailable" in page and "No longer sold on DummyMart" in page
    assert "left out of the total" in page
    assert "1 USD = 0.92 EUR" in page and "rates of 2026-11-20" in page
    assert "Total (EUR)" in page


def test_the_summary_shows_each_subtotal_in_the_total_s_currency(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    """The summary's rows add up to its total: a marketplace charging in another currency shows
    its subtotal converted beside its own (KES 42,000.00 ≈ $324.32), as the checkout's summary
    does; shoppers saw "ShopWave $349.99, Kiondo Market KES42,000.00, Total (USD) $674.31"."""
    add(client, catalog["1001"], 1)  # ShopWave, $349.99
    add(client, catalog["KD-55"], 1)  # Kiondo Market, KES 42,000.00

    html = client.get("/cart").get_data(as_text=True)
    summary = re.search(r'<div class="cart-summary".*?</dl>', html, re.S)
    assert summary, "no summary"
    rows = text_of(summary.group(0))

    kes, usd = format_money(4200000, "KES"), format_money(32432, "USD")
    assert f"Kiondo Market {kes} ≈ {usd}" in rows
    assert f"ShopWave {format_money(34999, 'USD')} Total" in rows  # its own currency: no "≈"
    assert f"Total (USD) {format_money(34999 + 32432, 'USD')}" in rows


def test_a_marketplace_with_nothing_available_has_no_zero_subtotal(
    client: FlaskClient, db_session: Session, catalog: dict[str, Product]
) -> None:
    """A marketplace whose every item is unavailable showed "Subtotal at DummyMart: $0.00", and
    in another currency "KES0.00 ≈ $0.00", beside the items' real prices: as if they were free."""
    add(client, catalog["1001"], 1)  # ShopWave, available
    add(client, catalog["31"], 1)  # DummyMart's TV, about to leave the catalog
    db_session.get(Product, catalog["31"].id).removed_at = datetime.now(UTC)
    db_session.commit()

    page = cart_text(client)

    assert "Subtotal at DummyMart: nothing available" in page
    assert "DummyMart —" in page  # the summary's row
    assert format_money(0, "USD") not in page
    assert f"Subtotal at ShopWave: {format_money(34999, 'USD')}" in page


def _part(html: str, part_id: str) -> str:
    match = re.search(
        rf'<section class="cart-part[^"]*" id="{part_id}".*?</section>\s*</section>', html, re.S
    )
    assert match, f"no {part_id} part"
    return match.group(0)


def test_the_cart_splits_what_onecart_charges_from_what_the_marketplaces_sell(
    client: FlaskClient,
    catalog: dict[str, Product],
    make_user: Callable[..., User],
    login: Callable[..., Any],
) -> None:
    login(client, make_user())
    add(client, catalog["44"], 2)  # DummyMart: ordered through OneCart
    add(client, catalog["NM-77"], 1)  # NaijaMall: no ordering API

    html = client.get("/cart").get_data(as_text=True)

    onecart = text_of(_part(html, "pay-with-onecart"))
    marketplace = _part(html, "buy-on-marketplace")
    assert "DummyMart" in onecart and "NaijaMall" not in onecart
    assert "NaijaMall" in text_of(marketplace) and "DummyMart" not in text_of(marketplace)
    assert 'href="http://127.0.0.1:9/naijamall/NM-77"' in marketplace
    # The one total is what checkout charges: the NGN item is not in it.
    total = re.search(r'<dd id="cart-total">(.*?)</dd>', html, re.S)
    assert total and text_of(total.group(1)) == format_money(2 * 3999, "USD")
    assert "Buy on the marketplace (not charged by OneCart)" in text_of(html)
    assert "Go to checkout" in text_of(html)


def test_a_cart_of_handoff_items_only_offers_no_checkout(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    add(client, catalog["NM-77"], 1)

    page = cart_text(client)

    assert "Buy on the marketplace" in page and "Pay with OneCart" not in page
    assert "Go to checkout" not in page


def test_the_hint_says_when_the_cheaper_offer_is_already_in_the_cart(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    """Shopper QA: with the Sony headphones from ShopWave and from Kiondo Market in the cart,
    ShopWave's line offered "Switch to the Kiondo Market offer" as if it were a new line; it
    merges the two (quantities added). The hint says so."""
    add(client, catalog["1001"], 2)
    add(client, catalog["KD-55"], 1)

    page = cart_text(client)

    assert "Cheaper on Kiondo Market" in page
    assert "Kiondo Market's offer is already in your cart" in page
    assert "Add these 2 to the Kiondo Market line" in page
    assert "Switch to the Kiondo Market offer" not in page

    client.post(
        "/cart/swap",
        data={"product_id": str(catalog["1001"].id), "replacement_id": str(catalog["KD-55"].id)},
    )
    assert "3 items from 1 marketplace" in cart_text(client)


def test_the_hint_says_when_the_cheaper_offer_is_bought_on_the_marketplace(
    client: FlaskClient, db_session: Session, catalog: dict[str, Product]
) -> None:
    naija = db_session.get(Product, catalog["NM-77"].id)
    naija.price_minor = 31000000  # NGN 310,000 ≈ $200: now the cheapest Sony, at NaijaMall
    db_session.commit()
    add(client, catalog["1001"], 1)

    page = cart_text(client)

    assert "Cheaper on NaijaMall" in page
    assert (
        "NaijaMall takes no orders through OneCart: you would buy it on NaijaMall's own site"
        in page
    )


def _swap_form(html: str) -> dict[str, str]:
    form = re.search(r'<form method="post" action="/cart/swap".*?</form>', html, re.S)
    assert form, "no swap form"
    return dict(re.findall(r'name="([a-z_]+)"[^>]*value="([^"]*)"', form.group(0)))


def test_switching_to_the_cheaper_offer_replaces_the_line_with_the_same_quantity(
    client: FlaskClient, db_session: Session, catalog: dict[str, Product], shopper: User | None
) -> None:
    user = shopper
    add(client, catalog["1001"], 2)  # ShopWave; the same Sony is cheaper at Kiondo
    add(client, catalog["44"], 1)
    fields = _swap_form(client.get("/cart").get_data(as_text=True))
    assert fields == {
        "product_id": str(catalog["1001"].id),
        "replacement_id": str(catalog["KD-55"].id),
    }

    response = client.post("/cart/swap", data=fields)

    # Back at the new line (a keyboard or screen-reader user goes on from there, not from the
    # top of the page).
    assert response.status_code == 303
    assert response.location.endswith(f"/cart#line-{catalog['KD-55'].id}")
    html = client.get("/cart").get_data(as_text=True)
    page = text_of(html)
    assert "Your cart now has the Kiondo Market offer instead." in page
    assert "3 items from 2 marketplaces" in page
    assert 'id="group-shopwave"' not in html
    assert re.search(rf'id="quantity-{catalog["KD-55"].id}"[^>]*value="2"', html)
    if user is not None:
        quantities = {
            item.product_id: item.quantity
            for item in db_session.scalars(sa.select(CartItem).where(CartItem.user_id == user.id))
        }
        assert quantities == {catalog["KD-55"].id: 2, catalog["44"].id: 1}


def test_a_tampered_swap_changes_nothing(client: FlaskClient, catalog: dict[str, Product]) -> None:
    add(client, catalog["1001"], 2)

    response = client.post(
        "/cart/swap",
        data={"product_id": str(catalog["1001"].id), "replacement_id": str(catalog["44"].id)},
    )

    assert response.status_code == 303
    page = cart_text(client)
    assert "is not the same product" in page and "2 items from 1 marketplace" in page


def test_redirects_after_a_cart_change_stay_on_this_site(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = add(client, catalog["44"], 1, next=target)
        assert response.status_code == 303
        assert "evil.example" not in response.location


def test_cart_forms_without_a_csrf_token_are_rejected(
    csrf_client: FlaskClient, db_session: Session
) -> None:
    products = insert_sample_catalog(db_session)
    db_session.commit()
    data = {"product_id": str(products["44"].id), "quantity": "1"}

    for path in ("/cart/add", "/cart/update", "/cart/remove", "/cart/swap"):
        assert csrf_client.post(path, data=data).status_code == 400

    token = csrf_token_from(csrf_client, f"/product/{products['44'].relation_token}")
    accepted = csrf_client.post("/cart/add", data={**data, "csrf_token": token})
    assert accepted.status_code == 303
    assert "1 item from 1 marketplace" in text_of(csrf_client.get("/cart").get_data(as_text=True))


def test_the_cheaper_offer_hint_adds_up_with_the_line_in_a_three_decimal_currency(
    client: FlaskClient, db_session: Session, catalog: dict[str, Product]
) -> None:
    """Kuwaiti dinar lines are quoted in card steps of 10 fils (rounded down); the saving next
    to a line is the difference of the amounts shown, not of the unrounded ones."""
    db_session.add(FxRate(currency="KWD", rate=Decimal("0.3071"), as_of=FX_AS_OF, source="test"))
    db_session.commit()
    client.post("/currency", data={"currency": "KWD", "next": "/cart"})
    add(client, catalog["1001"], 1)  # ShopWave $349.99; the same Sony is KES 42,000 at Kiondo

    page = cart_text(client)

    assert "≈ KWD107.480" in page  # $349.99 is KWD107.482, quoted as 107.480
    assert "Cheaper on Kiondo Market" in page
    # 107.480 − 99.600, not 107.482 − 99.600; the Kiondo price as Kiondo asks it beside it.
    assert "KWD99.600 KES42,000.00 (save KWD7.880 each)" in page


# --- Stock ----------------------------------------------------------------------------------


def _stock(db_session: Session, product: Product, stock: int | None) -> None:
    db_session.get(Product, product.id).stock = stock
    db_session.commit()


def test_more_than_the_published_stock_is_capped_with_a_message(
    client: FlaskClient, db_session: Session, catalog: dict[str, Product], shopper: User | None
) -> None:
    _stock(db_session, catalog["1001"], 3)  # the product page says "In stock (3 left)"

    add(client, catalog["1001"], 4)
    page = cart_text(client)
    assert "Only 3 left at ShopWave; your cart has 3." in page
    assert "3 items from 1 marketplace" in page

    # Adding one more, or setting a larger quantity, keeps the line at the stock.
    add(client, catalog["1001"], 1)
    assert "Only 3 left at ShopWave; your cart has 3." in cart_text(client)
    client.post("/cart/update", data={"product_id": str(catalog["1001"].id), "quantity": "5"})
    page = cart_text(client)
    assert "Only 3 left at ShopWave; your cart has 3." in page
    assert "3 items from 1 marketplace" in page

    # Lowering is simply done.
    client.post("/cart/update", data={"product_id": str(catalog["1001"].id), "quantity": "2"})
    page = cart_text(client)
    assert "Quantity updated." in page and "2 items from 1 marketplace" in page


def test_an_offer_out_of_stock_is_refused_with_a_message(
    client: FlaskClient, db_session: Session, catalog: dict[str, Product]
) -> None:
    _stock(db_session, catalog["1001"], 0)

    response = add(client, catalog["1001"], 1)

    assert response.status_code == 303
    page = cart_text(client)
    assert "is out of stock at ShopWave, so your cart was not changed." in page
    assert "Your cart is empty" in page


def test_an_offer_without_a_published_stock_has_no_limit_but_99(
    client: FlaskClient, db_session: Session, catalog: dict[str, Product]
) -> None:
    _stock(db_session, catalog["1001"], None)

    add(client, catalog["1001"], 40)

    page = cart_text(client)
    assert "40 items from 1 marketplace" in page and "left at" not in page


def test_a_line_whose_offer_ran_out_can_be_lowered_but_not_raised(
    client: FlaskClient, db_session: Session, catalog: dict[str, Product]
) -> None:
    add(client, catalog["1001"], 3)
    _stock(db_session, catalog["1001"], 0)
    product_id = str(catalog["1001"].id)

    client.post("/cart/update", data={"product_id": product_id, "quantity": "4"})
    page = cart_text(client)
    assert "is out of stock at ShopWave" in page and "3 items from 1 marketplace" in page

    client.post("/cart/update", data={"product_id": product_id, "quantity": "1"})
    assert "Quantity updated." in cart_text(client)


@pytest.mark.parametrize(
    ("quantity", "message"),
    [("abc", "Quantity must be a whole number from 1 to 99."), ("0", "from 1 to 99")],
)
def test_bad_quantities_for_a_stocked_offer_get_the_form_message(
    client: FlaskClient,
    db_session: Session,
    catalog: dict[str, Product],
    quantity: str,
    message: str,
) -> None:
    _stock(db_session, catalog["1001"], 3)

    add(client, catalog["1001"], quantity)

    page = cart_text(client)
    assert message in page and "Your cart is empty" in page


def test_a_line_above_a_stock_that_fell_after_it_was_added_says_so(
    client: FlaskClient, db_session: Session, catalog: dict[str, Product]
) -> None:
    add(client, catalog["1001"], 4)
    _stock(db_session, catalog["1001"], 2)

    page = cart_text(client)

    assert "Only 2 left at ShopWave: checkout will lower this line to 2." in page


def test_a_sum_above_99_that_the_stock_caps_is_capped_not_refused(
    client: FlaskClient, db_session: Session, catalog: dict[str, Product]
) -> None:
    _stock(db_session, catalog["1001"], 70)
    add(client, catalog["1001"], 60)

    add(client, catalog["1001"], 60)

    page = cart_text(client)
    assert "Only 70 left at ShopWave; your cart has 70." in page
    assert "70 items from 1 marketplace" in page


def test_a_title_with_a_right_to_left_override_stays_inside_its_quotes_in_the_flash(
    client: FlaskClient, catalog: dict[str, Product], db_session: Session
) -> None:
    """A marketplace title ending in U+202E (right-to-left override) would reverse the rest of
    our sentence; the flash quotes it as a directional isolate, which the PDI closes."""
    product = catalog["44"]
    stored = db_session.get(Product, product.id)
    assert stored is not None
    stored.title = "Running Shoes \u202eXL"
    db_session.commit()

    response = add(client, product, 1)
    page = client.get(response.location).get_data(as_text=True)

    assert "Added “\u2068Running Shoes \u202eXL\u2069” to your cart." in unescape(page)


def test_a_handoff_marketplace_is_totalled_in_the_currencies_its_items_are_priced_in(
    client: FlaskClient, db_session: Session, catalog: dict[str, Product]
) -> None:
    """The sandbox's Sokoni feed prices items in KES and in NGN. A hand-off marketplace's
    subtotal was converted into its one listed currency: an item priced NGN407,500.00 at Sokoni
    (a KES marketplace) read "To pay on Sokoni: KES36,266.18", an amount nobody asks for there
    (OneCart converts nothing of a hand-off item). It is now in the items' own currencies."""
    naija = catalog["NM-77"].marketplace_id
    kes_item = catalog["NM-77"]
    kes_item.currency, kes_item.price_minor = "KES", 3775000
    ngn_item = Product(
        marketplace_id=naija,
        external_id="NM-78",
        title="Anker Soundcore Q30",
        description="Headphones.",
        price_minor=5200000,
        currency="NGN",
        product_url="http://127.0.0.1:9/naijamall/NM-78",
        category="Headphones",
        available=True,
    )
    db_session.add(ngn_item)
    db_session.commit()

    add(client, kes_item, 2)
    page = cart_text(client)
    assert f"To pay on NaijaMall: {format_money(2 * 3775000, 'KES')}" in page
    assert "NGN" not in page.split("Summary", 1)[1].split("Converted at", 1)[0]

    add(client, ngn_item, 1)
    html = client.get("/cart").get_data(as_text=True)
    page = text_of(html)
    # In the order of the lines (by title: the Anker first).
    both = f"{format_money(5200000, 'NGN')} + {format_money(2 * 3775000, 'KES')}"
    assert f"To pay on NaijaMall: {both}" in page
    summary = text_of(html.split('id="handoff-summary"', 1)[1].split("</dl>", 1)[0])
    assert both in summary
    # What both come to in the shown currency, for reference (each line converted on its own).
    usd = round(2 * 3775000 / Decimal("129.50")) + round(5200000 / Decimal("1550"))
    assert f"≈ {format_money(usd, 'USD')}" in summary


def test_updating_a_quantity_returns_to_that_line(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    """After "Update" the cart came back at its top: a keyboard user tabbed through the header
    and every line above to reach the line again. It now comes back at the line (`#line-<id>`),
    which the browser scrolls to and continues the tab order from, as the order page's hand-off
    items do."""
    add(client, catalog["1001"], 1)
    add(client, catalog["44"], 1)
    response = client.post(
        "/cart/update", data={"product_id": str(catalog["44"].id), "quantity": "2"}
    )

    assert response.status_code == 303
    assert response.location.endswith(f"/cart#line-{catalog['44'].id}")
    assert f'id="line-{catalog["44"].id}"' in client.get("/cart").get_data(as_text=True)


def test_the_same_product_on_several_lines_is_said_once_and_each_line_names_the_others(
    client: FlaskClient, db_session: Session, catalog: dict[str, Product]
) -> None:
    """Shopper QA: the Sony headphones from ShopWave and from Kiondo Market in the cart, both
    dearer than NaijaMall's: "Cheaper on NaijaMall" was said on each line, and nothing said the
    product was in the cart twice. The hint is given once; each line names the other."""
    naija = db_session.get(Product, catalog["NM-77"].id)
    naija.price_minor = 31000000  # NGN 310,000 ≈ $200: the cheapest Sony, at NaijaMall
    db_session.commit()
    add(client, catalog["1001"], 2)
    add(client, catalog["KD-55"], 1)

    page = cart_text(client)

    assert page.count("Cheaper on NaijaMall") == 1
    assert "Also in your cart from Kiondo Market." in page
    assert "Also in your cart from ShopWave." in page


def _cart_link_text(html: str) -> str:
    """What a screen reader reads for the header's cart link."""
    link = html.split('class="cart-link', 1)[1].split(">", 1)[1].split("</a>", 1)[0]
    return text_of(link)


def test_the_header_cart_link_says_one_item_not_one_items(
    client: FlaskClient, catalog: dict[str, Product]
) -> None:
    """Shopper QA (shop20, keyboard and screen reader): the link read "Cart 1 items"."""
    assert _cart_link_text(client.get("/cart").get_data(as_text=True)) == "Cart 0 items"
    add(client, catalog["1001"], 1)
    assert _cart_link_text(client.get("/cart").get_data(as_text=True)) == "Cart 1 item"
    add(client, catalog["31"], 1)
    assert _cart_link_text(client.get("/cart").get_data(as_text=True)) == "Cart 2 items"

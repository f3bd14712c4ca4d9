"""commerce.cart and commerce.fx: quantity rules, guest carts, merging, and the cart view's
groups, subtotals, unified total, hints and flags (pure logic, then the real storefront DB)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.cart import (
    GUEST_CART_MAX_LINES,
    QUANTITY_MAX,
    CartError,
    CartErrorCode,
    add_to_cart,
    add_to_guest_cart,
    cart_item_count,
    guest_item_count,
    merge_guest_cart,
    normalize_guest_lines,
    parse_product_id,
    parse_quantity,
    remove_from_cart,
    remove_from_guest_cart,
    swap_cart_offer,
    swap_guest_offer,
    update_cart_quantity,
    update_guest_quantity,
)
from commerce.cart_view import build_cart_view
from commerce.fx import (
    FxRateMissing,
    FxTable,
    format_rate,
    load_fx_table,
    supported_display_currencies,
)
from commerce.models import CartItem, Product, User
from onecart.bidi import isolated
from onecart.money import currency_exponent
from tests.storefront.sample_catalog import FX_AS_OF, FX_PER_USD

FX = FxTable(per_usd=dict(FX_PER_USD), as_of=FX_AS_OF)


def reference_convert(minor: int, source: str, target: str) -> int:
    """An independent exact conversion (fractions, half-even) to check FxTable against."""
    rates = {"USD": Fraction(1), **{c: Fraction(r) for c, r in FX_PER_USD.items()}}
    amount = Fraction(minor, 10 ** currency_exponent(source)) / rates[source] * rates[target]
    return round(amount * 10 ** currency_exponent(target))


# --- Pure rules --------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["1", " 7 ", "99", "+3"])
def test_quantities_from_1_to_99_are_accepted(raw: str) -> None:
    assert parse_quantity(raw) == int(raw)


@pytest.mark.parametrize(
    # "²" and "٣" are digits to str.isdigit() but int() refuses the first (a 500 before), and
    # 5,000 digits are past int()'s limit for text.
    "raw",
    ["0", "100", "-1", "2.5", "abc", "", None, True, "1e2", "²", "٣", "1" * 5000],
)
def test_other_quantities_are_refused_with_a_clear_message(raw: object) -> None:
    with pytest.raises(CartError) as caught:
        parse_quantity(raw)
    assert caught.value.code is CartErrorCode.INVALID_QUANTITY
    assert "1" in caught.value.message and "99" in caught.value.message


@pytest.mark.parametrize("raw", ["", "x", "-4", "1.0", "9" * 30, None, "²", "٣", "1" * 5000])
def test_a_tampered_product_id_is_an_unknown_product(raw: object) -> None:
    with pytest.raises(CartError) as caught:
        parse_product_id(raw)
    assert caught.value.code is CartErrorCode.UNKNOWN_PRODUCT


def test_guest_lines_from_the_session_are_cleaned_not_trusted() -> None:
    raw = [
        {"product_id": 5, "quantity": 2, "price_seen_minor": 100, "currency_seen": "USD"},
        {"product_id": 5, "quantity": 98},
        {"product_id": "6", "quantity": 1},
        {"product_id": 7, "quantity": 0},
        {"product_id": True, "quantity": 1},
        "junk",
        {"product_id": 8, "quantity": 500},
    ]
    lines = normalize_guest_lines(raw)

    assert [(line["product_id"], line["quantity"]) for line in lines] == [(5, 99), (8, 99)]
    assert normalize_guest_lines({"not": "a list"}) == []
    assert guest_item_count(raw) == 198


def test_guest_quantity_updates_and_removals_name_missing_lines() -> None:
    lines = [{"product_id": 1, "quantity": 1}, {"product_id": 2, "quantity": 4}]

    assert update_guest_quantity(lines, 2, 9)[1]["quantity"] == 9
    assert [line["product_id"] for line in remove_from_guest_cart(lines, 1)] == [2]
    for change in (
        lambda: update_guest_quantity(lines, 3, 1),
        lambda: remove_from_guest_cart(lines, 3),
    ):
        with pytest.raises(CartError) as caught:
            change()
        assert caught.value.code is CartErrorCode.NOT_IN_CART
    with pytest.raises(CartError):
        update_guest_quantity(lines, 2, 100)


@pytest.mark.parametrize(
    ("minor", "source", "target"),
    [
        (4200000, "KES", "EUR"),
        (52000000, "NGN", "EUR"),
        (69998, "USD", "EUR"),
        (2999, "EUR", "KES"),
        (1800, "GBP", "NGN"),
        (1, "KES", "USD"),
    ],
)
def test_fx_conversion_is_exact_and_rounded_once(minor: int, source: str, target: str) -> None:
    assert FX.convert(minor, source, target) == reference_convert(minor, source, target)


def test_fx_names_a_missing_rate() -> None:
    with pytest.raises(FxRateMissing) as caught:
        FX.convert(100, "JPY", "USD")
    assert caught.value.currency == "JPY"
    assert FX.convert_or_none(100, "USD", "JPY") is None
    assert FX.convert(123, "JPY", "JPY") == 123
    assert FX.rates_for({"EUR", "USD", "JPY"}, "USD") == {"EUR": 1 / Decimal("0.92")}


@pytest.mark.parametrize(
    ("rate", "shown"),
    [
        (Decimal("0.92000000"), "0.92"),
        (Decimal("1550.00000000"), "1550"),
        (Decimal("0.92") / Decimal("1550"), "0.000593548"),
        (Decimal("1234567.5"), "1234570"),
        # Rounded to six digits the last is a zero: not printed ("0.307050" was).
        (Decimal(1) / Decimal("3.2568"), "0.30705"),
        (Decimal("129.500001"), "129.5"),
    ],
)
def test_rates_are_shown_with_six_significant_digits(rate: Decimal, shown: str) -> None:
    assert format_rate(rate) == shown


# --- Signed-in carts (DB) ----------------------------------------------------------------------


@pytest.fixture
def shopper(make_user: Callable[..., User]) -> User:
    return make_user(display_currency="EUR")


def test_adding_records_the_price_seen_and_adding_again_sums(
    db_session: Session, catalog: dict[str, Product], shopper: User
) -> None:
    sony = catalog["1001"]
    line = add_to_cart(db_session, shopper, sony.id, 2)
    assert (line.quantity, line.price_seen_minor, line.currency_seen) == (2, 34999, "USD")
    assert line.relation_token == sony.relation_token

    add_to_cart(db_session, shopper, sony.id, 3)
    db_session.commit()
    assert cart_item_count(db_session, shopper) == 5

    with pytest.raises(CartError) as caught:
        add_to_cart(db_session, shopper, sony.id, 95)
    assert caught.value.code is CartErrorCode.INVALID_QUANTITY
    assert "already have 5" in caught.value.message
    assert db_session.get(CartItem, line.id).quantity == 5


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("out_of_stock", CartErrorCode.UNAVAILABLE),
        ("removed", CartErrorCode.UNAVAILABLE),
        ("inactive_marketplace", CartErrorCode.UNAVAILABLE),
        ("unknown", CartErrorCode.UNKNOWN_PRODUCT),
    ],
)
def test_offers_that_cannot_be_bought_are_not_added(
    db_session: Session, catalog: dict[str, Product], shopper: User, setup: str, code: CartErrorCode
) -> None:
    product = catalog["2001"]
    product_id = product.id
    if setup == "out_of_stock":
        product.available = False
    elif setup == "removed":
        product.removed_at = datetime.now(UTC)
    elif setup == "inactive_marketplace":
        product.marketplace.active = False
    else:
        product_id = 999_999
    db_session.commit()

    for add in (
        lambda: add_to_cart(db_session, shopper, product_id, 1),
        lambda: add_to_guest_cart(db_session, [], product_id, 1),
    ):
        with pytest.raises(CartError) as caught:
            add()
        assert caught.value.code is code
    assert cart_item_count(db_session, shopper) == 0


def test_updates_and_removals_touch_only_the_shoppers_own_lines(
    db_session: Session, catalog: dict[str, Product], make_user: Callable[..., User]
) -> None:
    alice, bob = make_user(), make_user()
    sony = catalog["1001"].id
    add_to_cart(db_session, alice, sony, 1)
    db_session.commit()

    for change in (
        lambda: update_cart_quantity(db_session, bob, sony, 5),
        lambda: remove_from_cart(db_session, bob, sony),
    ):
        with pytest.raises(CartError) as caught:
            change()
        assert caught.value.code is CartErrorCode.NOT_IN_CART
    assert cart_item_count(db_session, alice) == 1

    update_cart_quantity(db_session, alice, sony, 4)
    assert cart_item_count(db_session, alice) == 4
    with pytest.raises(CartError):
        update_cart_quantity(db_session, alice, sony, 0)
    remove_from_cart(db_session, alice, sony)
    db_session.commit()
    assert cart_item_count(db_session, alice) == 0


def test_a_guest_cart_is_plain_data_and_limited_in_size(
    db_session: Session, catalog: dict[str, Product]
) -> None:
    lines = add_to_guest_cart(db_session, None, catalog["1001"].id, 2)
    lines = add_to_guest_cart(db_session, lines, catalog["1001"].id, 1)
    lines = add_to_guest_cart(db_session, lines, catalog["KD-90"].id, 1)

    assert [(line["product_id"], line["quantity"]) for line in lines] == [
        (catalog["1001"].id, 3),
        (catalog["KD-90"].id, 1),
    ]
    assert lines[1]["price_seen_minor"] == 350000 and lines[1]["currency_seen"] == "KES"
    full = [{"product_id": 10_000 + n, "quantity": 1} for n in range(GUEST_CART_MAX_LINES)]
    with pytest.raises(CartError) as caught:
        add_to_guest_cart(db_session, full, catalog["44"].id, 1)
    assert caught.value.code is CartErrorCode.TOO_MANY_LINES


def test_merging_a_guest_cart_adds_quantities_and_loses_nothing(
    db_session: Session, catalog: dict[str, Product], shopper: User
) -> None:
    sony, tv, flask = catalog["1001"], catalog["8"], catalog["KD-90"]
    add_to_cart(db_session, shopper, sony.id, 2)
    add_to_cart(db_session, shopper, flask.id, 90)
    db_session.commit()
    tv.available = False  # went out of stock while in the guest cart: kept, flagged later
    db_session.commit()
    guest = [
        {"product_id": sony.id, "quantity": 3, "price_seen_minor": 30000, "currency_seen": "USD"},
        {"product_id": tv.id, "quantity": 1, "price_seen_minor": 61000, "currency_seen": "EUR"},
        {"product_id": flask.id, "quantity": 20},
        {"product_id": 987_654, "quantity": 1},
    ]

    result = merge_guest_cart(db_session, shopper, guest)
    db_session.commit()

    items = {
        item.product_id: item
        for item in db_session.scalars(sa.select(CartItem).where(CartItem.user_id == shopper.id))
    }
    assert items[sony.id].quantity == 5
    assert items[sony.id].price_seen_minor == 34999  # the account's line keeps its own price
    assert items[tv.id].quantity == 1 and items[tv.id].price_seen_minor == 61000
    assert items[flask.id].quantity == QUANTITY_MAX
    assert result.merged == 3
    assert result.capped == (flask.title,)
    assert result.unknown == (987_654,)
    assert merge_guest_cart(db_session, shopper, []).merged == 0


def test_merging_a_guest_cart_caps_lines_at_the_published_stock_and_says_so(
    db_session: Session, catalog: dict[str, Product], shopper: User
) -> None:
    sony, flask, tv = catalog["1001"], catalog["KD-90"], catalog["8"]
    add_to_cart(db_session, shopper, sony.id, 2)
    db_session.commit()
    sony.stock, flask.stock, tv.stock = 4, 2, 0  # stock fell since the guest's adds
    db_session.commit()
    guest = [
        {"product_id": sony.id, "quantity": 3},  # 2 + 3 > 4
        {"product_id": flask.id, "quantity": 5},  # a new line above the stock
        {"product_id": tv.id, "quantity": 1},  # out of stock: kept, shown as unavailable
    ]

    result = merge_guest_cart(db_session, shopper, guest)
    db_session.commit()

    items = {
        item.product_id: item.quantity
        for item in db_session.scalars(sa.select(CartItem).where(CartItem.user_id == shopper.id))
    }
    assert items == {sony.id: 4, flask.id: 2, tv.id: 1}
    assert result.merged == 3 and result.capped == ()
    assert result.stock_notices == (
        f"“{isolated(sony.title)}”: Only 4 left at {sony.marketplace.name}; your cart has 4.",
        f"“{isolated(flask.title)}”: Only 2 left at {flask.marketplace.name}; your cart has 2.",
    )


# --- The cart view -----------------------------------------------------------------------------


def test_the_cart_view_groups_by_marketplace_and_totals_in_the_display_currency(
    db_session: Session, catalog: dict[str, Product], shopper: User
) -> None:
    add_to_cart(db_session, shopper, catalog["1001"].id, 2)  # ShopWave, 2 × 349.99 USD
    add_to_cart(
        db_session, shopper, catalog["BZ-TH1"].id, 1
    )  # Euro Bazaar, 29.99 EUR (catalog only)
    add_to_cart(db_session, shopper, catalog["NM-77"].id, 1)  # NaijaMall, 520,000.00 NGN (hand-off)
    add_to_cart(db_session, shopper, catalog["2001"].id, 1)  # ShopWave TV, then it disappears
    db_session.commit()
    catalog["2001"].removed_at = datetime.now(UTC)
    db_session.commit()
    fx = load_fx_table(db_session)

    cart = build_cart_view(db_session, user=shopper, display_currency="EUR", fx=fx)

    assert [group.slug for group in cart.groups] == ["bazaar", "naijamall", "shopwave"]
    bazaar, naija, shopwave = cart.groups
    assert (shopwave.subtotal_minor, shopwave.currency) == (69998, "USD")
    assert (naija.subtotal_minor, naija.currency) == (52000000, "NGN")
    assert (bazaar.subtotal_minor, bazaar.currency) == (2999, "EUR")
    assert naija.handoff and bazaar.handoff and not shopwave.handoff
    assert all(line.handoff for line in naija.lines)

    tv_line = next(line for line in shopwave.lines if line.product_id == catalog["2001"].id)
    assert not tv_line.available and "No longer sold" in (tv_line.unavailable_reason or "")
    assert cart.unavailable_count == 1
    assert cart.item_count == 5

    in_eur = {
        "shopwave": reference_convert(69998, "USD", "EUR"),
        "bazaar": 2999,
        "naijamall": reference_convert(52000000, "NGN", "EUR"),
    }
    assert cart.payable_display_minor == in_eur["shopwave"]
    assert cart.handoff_display_minor == in_eur["bazaar"] + in_eur["naijamall"]
    # The two parts: OneCart's total never includes what the marketplaces' own sites charge.
    assert [group.slug for group in cart.payable_groups] == ["shopwave"]
    assert [group.slug for group in cart.handoff_groups] == ["bazaar", "naijamall"]
    assert cart.payable_item_count == 2  # the vanished TV is not paid for
    assert cart.rates == {
        "USD": Decimal("0.92"),
        "NGN": Decimal("0.92") / Decimal("1550"),
    }
    assert cart.rates_as_of == FX_AS_OF and cart.missing_rates == ()


def test_the_cart_points_at_a_cheaper_offer_of_the_same_product(
    db_session: Session, catalog: dict[str, Product], shopper: User
) -> None:
    add_to_cart(db_session, shopper, catalog["1001"].id, 1)  # 349.99 USD at ShopWave
    add_to_cart(db_session, shopper, catalog["KD-55"].id, 1)  # the cheapest Sony already
    db_session.commit()

    cart = build_cart_view(db_session, user=shopper, display_currency="USD", fx=FX)

    lines = {line.product_id: line for group in cart.groups for line in group.lines}
    hint = lines[catalog["1001"].id].cheaper_offer
    assert hint is not None
    assert hint.product_id == catalog["KD-55"].id and hint.marketplace_name == "Kiondo Market"
    assert hint.display_price_minor == reference_convert(4200000, "KES", "USD")
    assert hint.saving_display_minor == 34999 - hint.display_price_minor
    assert lines[catalog["KD-55"].id].cheaper_offer is None
    assert not hint.handoff


def test_a_cheaper_offer_on_a_handoff_marketplace_says_so(
    db_session: Session, catalog: dict[str, Product], shopper: User
) -> None:
    naija = db_session.get(Product, catalog["NM-77"].id)
    naija.price_minor = 31000000  # NGN 310,000 ≈ $200: now the cheapest Sony, at NaijaMall
    add_to_cart(db_session, shopper, catalog["1001"].id, 1)
    db_session.commit()

    cart = build_cart_view(db_session, user=shopper, display_currency="USD", fx=FX)

    [line] = [line for group in cart.groups for line in group.lines]
    assert line.cheaper_offer is not None
    assert line.cheaper_offer.marketplace_slug == "naijamall" and line.cheaper_offer.handoff


def test_swapping_to_the_cheaper_offer_replaces_the_line_and_keeps_the_quantity(
    db_session: Session, catalog: dict[str, Product], shopper: User
) -> None:
    add_to_cart(db_session, shopper, catalog["44"].id, 1)
    first = add_to_cart(db_session, shopper, catalog["1001"].id, 3)
    added_at = first.added_at

    swapped = swap_cart_offer(db_session, shopper, catalog["1001"].id, catalog["KD-55"].id)
    db_session.commit()

    lines = {
        item.product_id: item
        for item in db_session.scalars(sa.select(CartItem).where(CartItem.user_id == shopper.id))
    }
    assert set(lines) == {catalog["44"].id, catalog["KD-55"].id}
    assert lines[catalog["KD-55"].id].quantity == 3 and swapped.added_at == added_at
    assert (swapped.price_seen_minor, swapped.currency_seen) == (4200000, "KES")


def test_swapping_onto_an_offer_already_in_the_cart_makes_one_line(
    db_session: Session, catalog: dict[str, Product], shopper: User
) -> None:
    add_to_cart(db_session, shopper, catalog["1001"].id, 2)
    add_to_cart(db_session, shopper, catalog["KD-55"].id, 1)

    swap_cart_offer(db_session, shopper, catalog["1001"].id, catalog["KD-55"].id)

    items = list(db_session.scalars(sa.select(CartItem).where(CartItem.user_id == shopper.id)))
    assert [(item.product_id, item.quantity) for item in items] == [(catalog["KD-55"].id, 3)]


def test_a_swap_to_another_product_or_from_a_missing_line_is_refused(
    db_session: Session, catalog: dict[str, Product], shopper: User
) -> None:
    add_to_cart(db_session, shopper, catalog["1001"].id, 2)

    with pytest.raises(CartError) as different:
        swap_cart_offer(db_session, shopper, catalog["1001"].id, catalog["44"].id)
    with pytest.raises(CartError) as missing:
        swap_cart_offer(db_session, shopper, catalog["KD-55"].id, catalog["1001"].id)

    assert different.value.code == CartErrorCode.DIFFERENT_PRODUCT
    assert missing.value.code == CartErrorCode.NOT_IN_CART
    items = list(db_session.scalars(sa.select(CartItem).where(CartItem.user_id == shopper.id)))
    assert [(item.product_id, item.quantity) for item in items] == [(catalog["1001"].id, 2)]


def test_a_guest_swap_replaces_the_line_in_place(
    db_session: Session, catalog: dict[str, Product]
) -> None:
    lines = add_to_guest_cart(db_session, [], catalog["1001"].id, 2)
    lines = add_to_guest_cart(db_session, lines, catalog["44"].id, 1)

    swapped = swap_guest_offer(db_session, lines, catalog["1001"].id, catalog["KD-55"].id)

    assert [(line["product_id"], line["quantity"]) for line in swapped] == [
        (catalog["KD-55"].id, 2),
        (catalog["44"].id, 1),
    ]


def test_a_missing_rate_hides_the_total_but_keeps_subtotals(
    db_session: Session, catalog: dict[str, Product], shopper: User
) -> None:
    add_to_cart(db_session, shopper, catalog["KD-90"].id, 2)
    add_to_cart(db_session, shopper, catalog["44"].id, 1)
    db_session.commit()
    without_kes = FxTable(per_usd={"EUR": Decimal("0.92")}, as_of=FX_AS_OF)

    cart = build_cart_view(db_session, user=shopper, display_currency="EUR", fx=without_kes)

    assert cart.payable_display_minor is None and cart.missing_rates == ("KES",)
    kiondo = next(group for group in cart.groups if group.slug == "kiondo")
    assert kiondo.subtotal_minor == 700000


def test_a_guest_cart_view_matches_the_same_rules(
    db_session: Session, catalog: dict[str, Product]
) -> None:
    lines = add_to_guest_cart(db_session, [], catalog["44"].id, 2)
    lines.append({"product_id": 424_242, "quantity": 1})  # vanished entirely

    cart = build_cart_view(db_session, guest_lines=lines, display_currency="USD", fx=FX)

    assert [group.slug for group in cart.groups] == ["dummymart"]
    assert cart.payable_display_minor == 2 * 3999
    assert any("no longer exist" in note for note in cart.notes)
    empty = build_cart_view(db_session, guest_lines=None, display_currency="USD", fx=FX)
    assert empty.is_empty and empty.payable_display_minor == 0


def test_rates_load_from_the_db_and_name_their_date(
    db_session: Session, catalog: dict[str, Product]
) -> None:
    table = load_fx_table(db_session)

    assert table.per_usd == FX_PER_USD and table.as_of == FX_AS_OF
    assert supported_display_currencies(table) == ["EUR", "GBP", "KES", "NGN", "USD"]

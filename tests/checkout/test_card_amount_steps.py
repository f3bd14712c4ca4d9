"""Three-decimal currencies and cards: Stripe takes BHD, JOD, KWD, OMR and TND amounts only in
steps of 10 minor units, for captures and refunds too. Card amounts are quoted in those steps,
rounded down (never more than the exact price), so a partial capture or a refund of a share is
always an amount Stripe accepts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from commerce.cart_pricing import CartEntry, price_cart
from commerce.fx import FxTable
from commerce.models import FxRate, Marketplace, Product
from commerce.order_models import SubOrderStatus
from commerce.payments.gateway import card_amount_step, floor_card_amount
from tests.checkout.shop import Shop

THREE_DECIMAL = ["BHD", "JOD", "KWD", "OMR", "TND"]


@pytest.mark.parametrize("currency", THREE_DECIMAL)
def test_three_decimal_card_amounts_are_floored_to_steps_of_ten(currency: str) -> None:
    assert card_amount_step(currency) == 10
    assert floor_card_amount(12_349, currency) == 12_340  # down: never more than the price
    assert floor_card_amount(12_340, currency) == 12_340


@pytest.mark.parametrize("currency", ["USD", "JPY", "EUR"])
def test_other_currencies_take_any_minor_unit(currency: str) -> None:
    assert floor_card_amount(12_349, currency) == 12_349


def test_a_cart_priced_in_kwd_has_every_line_and_total_in_steps_never_above_the_exact_price() -> (
    None
):
    fx = FxTable(per_usd={"KWD": Decimal("0.3071"), "KES": Decimal("129.5")})
    market = Marketplace(
        id=1, slug="m", name="M", currency="USD", capabilities=["order"], active=True
    )
    entries = [
        CartEntry(
            Product(
                id=n,
                external_id=str(n),
                title=f"P{n}",
                price_minor=price,
                currency=cur,
                available=True,
            ),
            market,
            quantity,
            None,
            None,
        )
        for n, (price, cur, quantity) in enumerate(
            [(1999, "USD", 1), (4550, "USD", 3), (123_456, "KES", 1)], start=1
        )
    ]
    priced = price_cart(entries, currency="KWD", fx=fx)

    exact = [
        fx.convert_or_none(
            entry.product.price_minor * entry.quantity, entry.product.currency, "KWD"
        )
        for entry in entries
    ]
    assert any(value is not None and value % 10 for value in exact)  # uneven without the rule
    charged = [line.converted_minor for line in priced.available_lines]
    assert all(value is not None and value % 10 == 0 for value in charged)
    assert all(c <= e for c, e in zip(charged, exact, strict=True))  # type: ignore[operator]
    assert all(e - c < 10 for c, e in zip(charged, exact, strict=True))  # type: ignore[operator]
    assert priced.payable_minor == sum(charged)  # type: ignore[arg-type]


def test_a_kwd_card_order_with_a_failed_share_captures_and_releases_in_steps_of_ten(
    shop: Shop,
) -> None:
    with shop.session() as session, session.begin():
        session.add(
            FxRate(currency="KWD", rate=Decimal("0.3071"), as_of=date.today(), source="test")
        )
    user = shop.make_user(display_currency="KWD")
    shop.fill_cart(user, [("kiondo", 2, 1), ("shopwave", 2, 1), ("dummymart", 1, 2)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    assert order.currency == "KWD"
    shop.make_unreachable("kiondo")
    shop.start_workers(2)

    shop.wait_until_settled()

    order = shop.order(order.number)
    assert order.payment is not None
    kiondo = shop.sub_order(order, "kiondo")
    assert kiondo.status == SubOrderStatus.FAILED
    assert all(sub.charge_minor % 10 == 0 for sub in order.charged_sub_orders)
    assert all(item.charge_minor % 10 == 0 for item in order.items)
    assert order.payment.amount_minor % 10 == 0
    assert order.payment.captured_minor % 10 == 0 and order.payment.captured_minor > 0
    assert [refund.amount_minor % 10 for refund in order.payment.refunds] == [0]
    shop.knobs("kiondo", down=False)


def test_a_kwd_share_billed_for_less_keeps_and_refunds_in_steps_of_ten(shop: Shop) -> None:
    with shop.session() as session, session.begin():
        session.add(
            FxRate(currency="KWD", rate=Decimal("0.3071"), as_of=date.today(), source="test")
        )
    user = shop.make_user(display_currency="KWD")
    shop.fill_cart(user, [("shopwave", 1, 3)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    shop.knobs("shopwave", order_price_change_pct=-3)  # billed less than paid: the rest back
    shop.start_workers(1)

    shop.wait_until_settled()

    [sub] = shop.order(order.number).charged_sub_orders
    assert sub.accepted_charge_minor is not None
    assert 0 < sub.accepted_charge_minor < sub.charge_minor
    assert sub.accepted_charge_minor % 10 == 0
    payment = shop.order(order.number).payment
    assert payment is not None and payment.captured_minor == sub.accepted_charge_minor
    assert [refund.amount_minor for refund in payment.refunds] == [
        sub.charge_minor - sub.accepted_charge_minor
    ]
    shop.knobs("shopwave", order_price_change_pct=0)

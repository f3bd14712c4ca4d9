"""Currencies whose amounts Stripe's API takes in another unit than ISO 4217's minor unit: ISK and
UGX have no minor unit (ISO exponent 0), yet Stripe takes them as two-decimal values ending in 00
("to charge 5 ISK, provide an amount value of 500", docs.stripe.com/currencies#special-cases).
OneCart keeps ISO minor units everywhere and converts at the Stripe boundary only, both ways, so a
card is held, captured, released and refunded for the krónur the shopper saw, not a hundredth of
them. Against localstripe, which stores what it is sent."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from commerce.models import FxRate
from commerce.order_models import RefundKind, RefundStatus, SubOrderStatus
from commerce.payments.gateway import from_stripe_amount, to_stripe_amount
from tests.checkout.shop import Shop, stripe_books_problems, stripe_client


@pytest.mark.parametrize(("currency", "factor"), [("ISK", 100), ("UGX", 100), ("JPY", 1)])
def test_stripe_amounts_convert_both_ways_for_the_special_cases_only(
    currency: str, factor: int
) -> None:
    assert to_stripe_amount(5, currency) == 5 * factor
    assert from_stripe_amount(5 * factor, currency) == 5
    assert to_stripe_amount(1099, "USD") == 1099 and from_stripe_amount(1099, "USD") == 1099


def test_an_isk_card_order_holds_captures_and_releases_the_kronur_the_shopper_saw(
    shop: Shop,
) -> None:
    with shop.session() as session, session.begin():
        session.add(FxRate(currency="ISK", rate=Decimal("138.5"), as_of=date.today(), source="t"))
    user = shop.make_user(display_currency="ISK")
    shop.fill_cart(user, [("kiondo", 2, 1), ("shopwave", 2, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    assert order.currency == "ISK" and order.payment is not None
    intent = stripe_client().v1.payment_intents.retrieve(order.payment.provider_reference)
    assert int(intent.amount) == 100 * order.total_minor  # not a hundredth of the total

    shop.make_unreachable("kiondo")
    shop.start_workers(1)
    shop.wait_until_settled()

    order = shop.order(order.number)
    payment = order.payment
    assert payment is not None
    assert shop.sub_order(order, "kiondo").status == SubOrderStatus.FAILED
    [release] = payment.refunds
    assert (release.kind, release.status) == (RefundKind.RELEASE, RefundStatus.SUCCEEDED)
    assert payment.captured_minor == order.total_minor - release.amount_minor > 0
    intent = stripe_client().v1.payment_intents.retrieve(
        payment.provider_reference, params={"expand": ["latest_charge"]}
    )
    charge = intent.latest_charge  # localstripe counts the part not captured as refunded
    assert int(charge.amount) - int(charge.amount_refunded) == 100 * payment.captured_minor
    assert stripe_books_problems(order) == []

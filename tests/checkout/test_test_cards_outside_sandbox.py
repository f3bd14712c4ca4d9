"""The server-side test cards (`pm_card_visa`, …) are a sandbox convenience: outside sandbox mode
(real Stripe keys, where Stripe.js takes the card) a checkout posting one is refused before
Stripe is asked, and nothing is ordered or held. Real Redis, localstripe and the sandbox."""

from __future__ import annotations

import pytest

from storefront.checkout import routes as checkout_routes
from tests.checkout.shop import Shop, stripe_client


def _intents() -> set[str]:
    return {intent.id for intent in stripe_client().v1.payment_intents.list().data}


@pytest.mark.parametrize("card", ["pm_card_visa", "pm_card_chargeCustomerFail"])
def test_outside_sandbox_mode_a_posted_test_card_is_refused_unsent(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, card: str
) -> None:
    """Before: the form's hidden choice was honoured in any mode, so a hand-made POST had the
    server confirm a PaymentIntent with it, outside the per-account card-payment limit of the
    Stripe.js path; here (localstripe standing in for Stripe) the test Visa paid for an order."""
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 2, 1)])
    client = shop.client_for(user)
    form = shop.checkout_form(client)
    before = _intents()
    monkeypatch.setattr(checkout_routes, "is_sandbox_mode", lambda settings: False)

    answer = shop.submit(client, form, payment_method="stripe", test_card=card)

    assert answer.status_code == 422
    assert "Enter your card details" in answer.get_data(as_text=True)
    assert shop.orders() == []
    assert _intents() == before


def test_in_sandbox_mode_the_test_card_still_pays(shop: Shop) -> None:
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 2, 1)])

    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")

    assert order.payment is not None and order.payment.provider_reference.startswith("pi_")

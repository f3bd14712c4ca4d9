"""Card payments a shopper can have prepared are limited per account (CARD_PAYMENTS_LIMIT).

Security review, fourth pass: every checkout form's token and every top-up form's reference is
the shopper's to invent, and each new one made the site create another Stripe PaymentIntent, as
fast as a script could ask. That is the tool of card testing (stolen card numbers tried one
PaymentIntent after another through the shop's account, which Stripe then blocks for its decline
rate) and a way to spend the account's Stripe API rate limit. Preparing a card payment (the
checkout's Stripe.js intent, a card top-up) now counts against a per-account limit, 20 an hour
by default; past it the answer is 429 and Stripe is not asked.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from flask.testing import FlaskClient

from commerce.models import User
from commerce.payments.gateway import PreparedIntent, ProviderPaymentState, ProviderStatus
from onecart.money import Money
from storefront.checkout import routes as checkout_routes
from tests.checkout.conftest import localstripe_server
from tests.storefront.conftest import DEFAULT_PASSWORD, csrf_token_from, log_in

__all__ = ["localstripe_server"]


class CountingStripe:
    """Stands in for the card gateway of checkout.js's intent (a new intent per idempotency
    key, each awaiting a card): what matters here is how many the site asked for."""

    def __init__(self) -> None:
        self.intents: dict[str, Money] = {}

    def __call__(self) -> CountingStripe:  # routes._card_gateway
        return self

    def prepare_intent(
        self, amount: Money, *, idempotency_key: str, metadata: Mapping[str, str]
    ) -> PreparedIntent:
        intent_id = f"pi_{len(self.intents) + 1}"
        self.intents[intent_id] = amount
        return PreparedIntent(intent_id, f"{intent_id}_secret", ProviderStatus.FAILED)

    def retrieve(self, provider_reference: str) -> ProviderPaymentState:
        amount = self.intents[provider_reference]
        return ProviderPaymentState(
            provider_reference=provider_reference,
            status=ProviderStatus.FAILED,  # requires_payment_method
            amount_minor=amount.minor,
            captured_minor=0,
            refunded_minor=0,
            currency=amount.currency,
        )


@pytest.mark.parametrize("app_config_overrides", [{"CARD_PAYMENTS_LIMIT": "3/3600"}])
def test_checkout_intents_stop_at_the_limit_per_account(
    csrf_client: FlaskClient, make_user: Callable[..., User], monkeypatch: pytest.MonkeyPatch
) -> None:
    stripe_fake = CountingStripe()
    monkeypatch.setattr(checkout_routes, "is_sandbox_mode", lambda settings: False)
    monkeypatch.setattr(checkout_routes, "_card_gateway", stripe_fake)
    monkeypatch.setattr(
        checkout_routes,
        "build_quote",
        lambda *args, **kwargs: type("Quote", (), {"can_pay": True, "total_minor": 1999})(),
    )
    user = make_user()
    login_token = csrf_token_from(csrf_client, "/login")
    csrf_client.post(
        "/login",
        data={"login": user.username, "password": DEFAULT_PASSWORD, "csrf_token": login_token},
    )
    csrf = csrf_token_from(csrf_client, "/profile")

    def ask(number: int) -> Any:
        return csrf_client.post(
            "/checkout/payment-intent",
            json={"validation_token": f"{number:02d}" * 22},  # a new, well-formed form token
            headers={"Accept": "*/*", "X-CSRFToken": csrf},
        )

    assert [ask(number).status_code for number in range(3)] == [200, 200, 200]
    refused = ask(3)
    assert refused.status_code == 429 and refused.mimetype == "application/json"
    assert refused.headers.get("Retry-After")
    assert len(stripe_fake.intents) == 3  # Stripe was not asked the fourth time


@pytest.mark.parametrize(
    "app_config_overrides", [{"SANDBOX_MODE": False, "CARD_PAYMENTS_LIMIT": "2/3600"}]
)
def test_card_top_ups_stop_at_the_limit_per_account(
    localstripe_server: str, client: FlaskClient, make_user: Callable[..., User]
) -> None:
    """Against localstripe: two top-ups start their card payment, the third is refused."""
    log_in(client, make_user())

    def start() -> Any:
        page = client.get("/profile").get_data(as_text=True)
        match = re.search(r'name="reference"[^>]*value="([^"]+)"', page) or re.search(
            r'value="([^"]+)"[^>]*name="reference"', page
        )
        assert match
        return client.post(
            "/profile/wallet/top-up", data={"amount": "10", "reference": match.group(1)}
        )

    first, second = start(), start()
    assert "/pay" in first.headers["Location"] and "/pay" in second.headers["Location"]
    assert start().status_code == 429

"""The checkout form's PaymentIntent id is checked for Stripe's shape before anything uses it.

The id comes from the browser (Stripe.js hands it to checkout.js), so it is whatever a forged
form says. Unchecked, one longer than the 120 characters its columns hold reached the hold in
doubt recorded when Stripe does not answer: on PostgreSQL that write raised and the shopper got
a 500 (nothing taken); on SQLite the forged id was kept for the sweeper to ask Stripe about.
Now an id that is not `pi_` and letters/digits, or is too long, re-renders the form (422) saying
so, and nothing is recorded or asked. Real database, the checkout shop; Stripe unreachable."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import stripe
from flask.testing import FlaskClient

from commerce.exactly_once_models import CardHoldInDoubt
from commerce.payments.stripe_gateway import StripeGateway
from onecart import processes
from onecart.settings import get_settings
from storefront.checkout import routes as checkout_routes
from tests.checkout.shop import Shop


@pytest.fixture
def stripe_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = stripe.StripeClient(
        get_settings().stripe_api_key,
        base_addresses={"api": f"http://127.0.0.1:{processes.free_port()}"},
        max_network_retries=0,
    )
    monkeypatch.setattr(checkout_routes, "_card_gateway", lambda: StripeGateway(dead))


@pytest.mark.parametrize(
    "forged",
    [
        "pi_" + "A1b2" * 40,  # 163 characters: past the columns' 120
        "pi_3Nx'; drop table payments; --",
        "ch_3NxAbCdEfGhIjKlMn",  # a charge's id, not a PaymentIntent's
        "pi_",
    ],
)
def test_a_forged_payment_intent_id_is_refused_with_the_form_not_a_500(
    shop: Shop, stripe_unreachable: None, forged: str
) -> None:
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 3, 1)])
    client: FlaskClient = shop.client_for(user)
    form = shop.checkout_form(client)

    response = shop.submit(client, form, payment_method="stripe", payment_intent_id=forged)

    assert response.status_code == 422, response.get_data(as_text=True)[:500]
    html = response.get_data(as_text=True)
    assert "card payment this page started is not valid" in html
    # The forged id is not handed back: checkout.js would submit it again.
    assert Shop.hidden_fields(html).get("payment_intent_id", "") == ""
    assert shop.orders() == []
    with shop.session_factory() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(CardHoldInDoubt)) == 0

"""The checkout form's PaymentIntent id is checked for Stripe's shape before anything uses it.

The id comes from the browser (Stripe.js hands it to checkout.js), so it is whatever a forged
form says. Unchecked, one longer than the 120 characters its columns hold reached the hold in
doubt recorded when Stripe does not answer: on PostgreSQL that write raised and the shopper got
a 500 (nothing taken); on SQLite the forged id was kept for the sweeper to ask Stripe about.
Now an id that is not `pi_` and letters/digits, or is too long, re-renders the form (422) saying
so, and nothing is recorded or asked. Real database, the checkout shop; Stripe unreachable."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
import stripe
from flask.testing import FlaskClient

from commerce.card_holds import NO_SUCH_INTENT
from commerce.exactly_once_models import CardHoldInDoubt
from commerce.payments.gateway import ProviderPaymentState
from commerce.payments.stripe_gateway import StripeGateway
from commerce.sweeper import SweepPolicy, sweep
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


def test_a_well_formed_forged_id_stripe_does_not_know_is_resolved_once_not_asked_for_ever(
    shop: Shop, stripe_unreachable: None
) -> None:
    """An id of Stripe's shape that Stripe has no intent for, submitted while Stripe does not
    answer, becomes a hold in doubt. Stripe's "no such PaymentIntent" (404) is a final answer:
    the sweeper resolves the row with that reason (nothing to release) and stops asking, and
    the row stays listed for an operator. Before, it was asked about at every sweep for ever."""
    forged = "pi_" + uuid.uuid4().hex[:24]
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 3, 1)])
    client: FlaskClient = shop.client_for(user)

    response = shop.submit(
        client, shop.checkout_form(client), payment_method="stripe", payment_intent_id=forged
    )

    assert response.status_code == 202, response.get_data(as_text=True)[:500]
    assert shop.orders() == []
    with shop.session() as session:
        [row] = session.scalars(sa.select(CardHoldInDoubt)).all()
        row_id, key = row.id, row.idempotency_key
        assert row.intent_id == forged and row.resolved_at is None

    asked: list[str] = []

    class Counting(StripeGateway):
        def retrieve(self, provider_reference: str) -> ProviderPaymentState:
            asked.append(provider_reference)
            return super().retrieve(provider_reference)

    stripe_gateway = Counting.from_settings(get_settings())  # localstripe: answers 404

    def no_queue(message: object) -> str:
        raise ConnectionError("no queue in this test")

    for _ in range(2):
        sweep(
            shop.session_factory,
            no_queue,
            policy=SweepPolicy(hold_in_doubt_after=timedelta(0)),
            card_gateway=lambda: stripe_gateway,
        )

    assert asked == [forged]  # the second sweep did not ask again
    with shop.session() as session:
        row = session.get(CardHoldInDoubt, row_id)
        assert row is not None and row.resolved_at is not None
        assert row.resolution == f"{NO_SUCH_INTENT}: {forged}"
    admin = shop.client_for(shop.make_user(is_admin=True))
    page = admin.get("/admin/attention").get_data(as_text=True)
    listed = page[page.index(f'id="missing-hold-{row_id}"') :].split("</tr>", 1)[0]
    assert forged in listed and key in listed and NO_SUCH_INTENT in listed
    assert f'id="card-hold-{row_id}"' not in page

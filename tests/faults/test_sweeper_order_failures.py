"""One order whose sweep step fails for a reason that is not a payment error (a bug, a write the
database refuses) must not stop the sweep for the other orders: before, the exception ended the
pass, and since the failing order came first again at every pass, the others were never settled.
Placement runs in-process against the sandbox and localstripe; the sweeper then resolves the
payments by asking Stripe. Every test ends with the invariants (tests/faults/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import stripe
from sqlalchemy.orm import Session

from commerce.marketplace_access import adapter_for_marketplace
from commerce.order_models import Order, Payment, PaymentStatus
from commerce.payments.gateway import PaymentGateway
from commerce.payments.providers import gateway_for_payment
from commerce.payments.stripe_gateway import StripeGateway
from commerce.placement import place_sub_order
from commerce.sweeper import SweepPolicy, SweepReport, sweep
from onecart import processes
from onecart.settings import get_settings
from tests.checkout.shop import Shop
from tests.faults.conftest import check_invariants

pytestmark = pytest.mark.slow

GatewayFor = Callable[[Session, Payment], PaymentGateway]


class Broken:
    """The real gateway, except that one call raises an error that is not a PaymentError (what
    a bug or a refused database write in that order's step looks like to the sweeper)."""

    def __init__(self, inner: PaymentGateway, call: str) -> None:
        self.inner = inner
        self.method = inner.method
        self.call = call

    def __getattr__(self, name: str) -> Any:
        if name == self.call:
            raise RuntimeError(f"{name}: this order's step is broken")
        return getattr(self.inner, name)


def _card_order_awaiting_capture(shop: Shop, marketplace: str) -> Order:
    """A card order whose part is placed while Stripe was unreachable: its payment waits in
    `reconciling` for the sweeper to ask Stripe (the intent is still only authorized)."""
    user = shop.make_user()
    shop.fill_cart(user, [(marketplace, 3, 1)])
    order = shop.checkout(shop.client_for(user), payment_method="stripe", test_card="pm_card_visa")
    settings = get_settings()
    dead = stripe.StripeClient(
        settings.stripe_api_key,
        base_addresses={"api": f"http://127.0.0.1:{processes.free_port()}"},
        max_network_retries=0,
    )
    for sub in order.charged_sub_orders:
        place_sub_order(
            shop.session_factory,
            sub.id,
            adapter_for=adapter_for_marketplace,
            final_attempt=True,
            gateway_for=lambda session, payment: StripeGateway(dead),
        )
    payment = shop.order(order.number).payment
    assert payment is not None and payment.status == PaymentStatus.RECONCILING
    return order


def _sweep(shop: Shop, gateway_for: GatewayFor = gateway_for_payment) -> SweepReport:
    return sweep(
        shop.session_factory,
        lambda message: pytest.fail("nothing should need enqueueing"),
        policy=SweepPolicy(stuck_after=timedelta(0), refund_processing_after=timedelta(0)),
        gateway_for=gateway_for,
    )


def _status(shop: Shop, order: Order) -> PaymentStatus:
    payment = shop.order(order.number).payment
    assert payment is not None
    return payment.status


@pytest.mark.parametrize(
    ("call", "step"),
    [("retrieve", "reconciling its payment"), ("capture", "settling its payment")],
)
def test_one_order_failing_its_sweep_step_does_not_stop_the_others(
    shop: Shop, call: str, step: str
) -> None:
    """The first order's step raises (`retrieve`: reconciling its payment fails; `capture`: it
    is reconciled, then settling it fails). The second order is captured in the same pass; the
    first is counted, put on the operator's list (nothing refunded, nothing captured blind), and
    settled by a later pass once its step works."""
    first = _card_order_awaiting_capture(shop, "shopwave")
    second = _card_order_awaiting_capture(shop, "kiondo")
    first_payment = shop.order(first.number).payment
    assert first_payment is not None

    def broken_for_first(session: Session, payment: Payment) -> PaymentGateway:
        gateway = gateway_for_payment(session, payment)
        if payment.id == first_payment.id:
            return Broken(gateway, call)  # type: ignore[return-value]
        return gateway

    report = _sweep(shop, broken_for_first)

    assert _status(shop, second) == PaymentStatus.CAPTURED
    assert _status(shop, first) != PaymentStatus.CAPTURED
    assert report.order_failures == 1
    reason = shop.order(first.number).attention_reason
    assert reason is not None and step in reason and "RuntimeError" in reason
    assert shop.order(second.number).attention_reason is None

    again = _sweep(shop, broken_for_first)  # still failing: flagged once, counted again
    assert again.order_failures == 1
    assert shop.order(first.number).attention_reason == reason

    _sweep(shop)  # the step works again: the first order is captured at the next pass
    assert _status(shop, first) == PaymentStatus.CAPTURED
    payment = shop.order(first.number).payment
    assert payment is not None and payment.captured_minor == first.total_minor
    check_invariants(shop)

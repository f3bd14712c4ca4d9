"""The shopper's checkout lock is held for as long as its holder runs, however slow Stripe is.

On SQLite the lock is a lease. A submit can make three slow Stripe calls under it (an
authorization whose reply is lost, the look-up that finds the hold, and the release of that hold
when the order cannot be written); a lease sized for two ran out during the third, and a second
checkout of the same shopper could enter meanwhile. The holder now renews its lease while it
runs. On PostgreSQL the lock is a row lock held by a connection, so the same tests hold there.

The lease is shortened for the tests (the production one is minutes long); real localstripe, the
sandbox marketplaces and the real database.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from commerce import checkout_lock as checkout_lock_module
from commerce.checkout import CheckoutBusy, checkout_lock, submit_checkout
from commerce.exactly_once_models import CardHoldInDoubt
from commerce.fx import FxTable
from commerce.marketplace_access import lookup_adapter_for_marketplace
from commerce.order_models import Order
from commerce.payments.gateway import (
    Authorization,
    AuthorizationRequest,
    PaymentUnavailable,
    ProviderPaymentState,
)
from commerce.payments.stripe_gateway import StripeGateway
from onecart.settings import get_settings
from tests.checkout.shop import Shop
from tests.checkout.test_card_holds_in_doubt import _intents_with_key

SHORT_LEASE = timedelta(seconds=1)
SLOW_CALL_S = 0.7


def _lock_taken_by_another(shop: Shop, user_id: int) -> bool:
    """Whether a second checkout of the shopper gets the lock right now (given back at once)."""
    try:
        with checkout_lock(shop.session_factory, user_id, wait_s=0.0):
            return True
    except CheckoutBusy:
        return False


class ThreeSlowCalls:
    """The real gateway, each call as slow as SLOW_CALL_S: the authorization happens at Stripe
    and its reply is lost, the look-up finds it, and while the hold is being released a second
    checkout of the same shopper tries the lock."""

    def __init__(self, shop: Shop, user_id: int) -> None:
        self.inner = StripeGateway.from_settings(get_settings())
        self.method = self.inner.method
        self.shop = shop
        self.user_id = user_id
        self.second_checkout_entered: bool | None = None
        self.keys: list[str] = []

    def authorize(self, request: AuthorizationRequest) -> Authorization:
        self.keys.append(request.idempotency_key)
        self.inner.authorize(request)
        time.sleep(SLOW_CALL_S)
        raise PaymentUnavailable("The card payment service is unreachable (authorized).")

    def find_authorizations(self, idempotency_key: str) -> list[ProviderPaymentState]:
        time.sleep(SLOW_CALL_S)
        return [self.inner.retrieve(intent.id) for intent in _intents_with_key(idempotency_key)]

    def void(self, provider_reference: str, *, attempt: int | None = 0) -> None:
        time.sleep(SLOW_CALL_S)
        self.second_checkout_entered = _lock_taken_by_another(self.shop, self.user_id)
        self.inner.void(provider_reference, attempt=attempt)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_submit_making_three_slow_stripe_calls_keeps_the_shoppers_lock(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkout_lock_module, "LOCK_LEASE", SHORT_LEASE)
    user = shop.make_user()
    shop.fill_cart(user, [("shopwave", 2, 1)])
    form = shop.checkout_form(shop.client_for(user))
    gateway = ThreeSlowCalls(shop, user.id)

    def fail_the_order_commit(session: Session) -> None:
        if any(isinstance(obj, Order) for obj in session.identity_map.values()):
            raise sa.exc.OperationalError("COMMIT", {}, Exception("database went away"))

    event.listen(shop.session_factory, "before_commit", fail_the_order_commit)
    try:
        with pytest.raises(sa.exc.OperationalError):
            submit_checkout(
                shop.session_factory,
                shop.card_submission(user, form),
                fx=FxTable(per_usd={}),
                adapter_for=lookup_adapter_for_marketplace,
                card_gateway=gateway,  # type: ignore[arg-type]
            )
    finally:
        event.remove(shop.session_factory, "before_commit", fail_the_order_commit)

    # Three calls of 0.7 s under a lease of 1 s: the third still ran under the shopper's lock.
    assert gateway.second_checkout_entered is False
    # The hold the lost reply made was found and released; nothing was left behind.
    assert shop.orders() == []
    [key] = gateway.keys
    [intent] = _intents_with_key(key)
    assert intent.status == "canceled"
    with shop.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(CardHoldInDoubt)) == 0
    # Given back at the end: the next checkout gets the lock at once.
    assert _lock_taken_by_another(shop, user.id)


def test_a_holder_keeps_the_lock_past_its_lease_and_gives_it_back_at_the_end(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(checkout_lock_module, "LOCK_LEASE", SHORT_LEASE)
    user = shop.make_user()
    entered: list[bool] = []
    with checkout_lock(shop.session_factory, user.id):
        ends = time.monotonic() + 3 * SHORT_LEASE.total_seconds()
        while time.monotonic() < ends:
            # Asked from another thread, as another request of the site would.
            probe = threading.Thread(
                target=lambda: entered.append(_lock_taken_by_another(shop, user.id))
            )
            probe.start()
            probe.join()
            time.sleep(0.2)
    assert entered and not any(entered)
    assert _lock_taken_by_another(shop, user.id)

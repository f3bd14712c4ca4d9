"""Choosing the gateway for a stored payment (the jobs' side of the gateway plugins)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from commerce.models import User
from commerce.order_models import Order, Payment, PaymentMethod
from commerce.payments.gateway import PaymentGateway
from commerce.payments.stripe_gateway import StripeGateway
from commerce.payments.wallet_gateway import WalletGateway
from onecart.settings import get_settings

GatewayProvider = Callable[[Session, Payment], PaymentGateway]


def gateway_for_payment(session: Session, payment: Payment) -> PaymentGateway:
    """The gateway that took `payment`: the shopper's wallet, or Stripe from the settings."""
    if payment.method == PaymentMethod.WALLET:
        order = session.get(Order, payment.order_id)
        assert order is not None
        user = session.get(User, order.user_id)
        assert user is not None
        return WalletGateway(session, user)
    return card_gateway_from_settings()


def card_gateway_from_settings() -> PaymentGateway:
    """The card gateway (Stripe) from the settings, for work on no stored payment (holds in
    doubt, commerce.card_holds)."""
    return StripeGateway.from_settings(get_settings())

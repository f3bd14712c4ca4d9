"""Payment gateways: one interface (authorize, capture, refund, void), one module per provider.

The checkout takes ONE payment per order through a gateway; placement captures what was placed and
refunds (or releases) the share of each sub-order that could not be. Providers are plugins behind
:class:`PaymentGateway`: the wallet (our own ledger) and Stripe (PaymentIntents, manual capture).
"""

from commerce.payments.gateway import (
    Authorization,
    AuthorizationRequest,
    PaymentDeclined,
    PaymentError,
    PaymentGateway,
    PaymentUnavailable,
    ProviderPaymentState,
)

__all__ = [
    "Authorization",
    "AuthorizationRequest",
    "PaymentDeclined",
    "PaymentError",
    "PaymentGateway",
    "PaymentUnavailable",
    "ProviderPaymentState",
]

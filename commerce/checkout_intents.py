"""The PaymentIntent Stripe.js confirms at checkout, one per form and total.

Its idempotency key is derived from the form's validation token and the total, so a double click
or a retried request gets the same intent, never a second hold. But Stripe replays a key's first
answer for 24 hours, whatever became of the intent since: when the form's total changed, the
submit released (cancelled) the intent for the old total, and when the total later comes back to
that amount the same key hands back the cancelled intent, which Stripe.js cannot confirm. So a
replayed answer (Stripe marks it `Idempotent-Replayed`) is checked by reading the intent; an
intent made by this very request is as its reply says, with no second read. While the intent is
cancelled the next generation of the key (`<key>-g1`, `-g2`, …) is asked: each generation is itself idempotent, so a repeated request walks
the same keys to the same usable intent. A generation whose key Stripe answers with a stored 500
(replayed) is walked past the same way: no browser ever got that intent's client secret.
Any state but cancelled is handed back as it is: an
intent still holding money for this total (requires_capture) is the one the submit will adopt,
and a second one would hold the money twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from commerce.card_holds import checkout_intent_metadata
from commerce.payments.gateway import (
    PaymentError,
    PreparedIntent,
    ProviderPaymentState,
    ProviderStatus,
    StoredFailureReplayed,
)
from onecart.money import Money

# A form whose total went back to the same amount this many times is reloaded instead: each
# generation replayed costs two Stripe calls per request.
MAX_INTENT_GENERATIONS = 10


class TooManyCheckoutIntents(PaymentError):
    """Every generation's intent is cancelled: the shopper reloads the page (a new form)."""

    def __init__(self) -> None:
        super().__init__("This checkout form has prepared too many card payments; reload the page.")


class CheckoutIntentGateway(Protocol):
    """What preparing a checkout intent asks of the card gateway (StripeGateway)."""

    def prepare_intent(
        self, amount: Money, *, idempotency_key: str, metadata: Mapping[str, str]
    ) -> PreparedIntent: ...

    def retrieve(self, provider_reference: str) -> ProviderPaymentState: ...


def checkout_intent_key(validation_token: str, amount: Money, generation: int) -> str:
    """The idempotency key of a form's intent for `amount`: generation 0 is the key used before
    generations existed, so forms rendered before a deploy keep their intents."""
    base = f"onecart-intent-{validation_token}-{amount.minor}-{amount.currency}"
    return base if generation == 0 else f"{base}-g{generation}"


def prepare_checkout_intent(
    gateway: CheckoutIntentGateway, amount: Money, *, validation_token: str, user_id: int
) -> tuple[str, str]:
    """(id, client_secret) of a PaymentIntent for `amount` that Stripe.js can still use.

    PaymentDeclined / PaymentUnavailable from the gateway pass through; TooManyCheckoutIntents
    when every generation's intent is cancelled."""
    metadata = checkout_intent_metadata(user_id, validation_token)
    for generation in range(MAX_INTENT_GENERATIONS):
        try:
            prepared = gateway.prepare_intent(
                amount,
                idempotency_key=checkout_intent_key(validation_token, amount, generation),
                metadata=metadata,
            )
        except StoredFailureReplayed:
            # This generation's key is spent on Stripe's stored 500 (replayed for a day). Its
            # first and only answer was that failure, so no browser got the client secret of
            # an intent it may have made: that intent can never be confirmed, never hold
            # money, and the next generation is safe. A fresh 500 is raised as it came (the
            # page says so; the next load walks past it), so an outage spends one generation
            # per page load, not all of them.
            continue
        status = prepared.status
        if status is None:
            # Replayed: what the intent was when the key was first used; ask what it is now.
            status = gateway.retrieve(prepared.intent_id).status
        if status != ProviderStatus.CANCELED:
            return prepared.intent_id, prepared.client_secret
    raise TooManyCheckoutIntents()

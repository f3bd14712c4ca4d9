"""Reading Stripe's replies in our words: its errors as PaymentErrors (refused, unknown, not
found), a PaymentIntent as a ProviderPaymentState, what its record says was captured, a refund
reply checked against the refund asked for, and Stripe's idempotent-replay header.

Split from commerce.payments.stripe_gateway (the calls and their idempotency keys), which uses
it; commerce.wallet_topup and the webhooks read Stripe's records through it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import stripe

from commerce.payments.gateway import (
    REFUND_KEY_METADATA,
    REFUND_REFERENCE_METADATA,
    PaymentDeclined,
    PaymentError,
    PaymentNotFound,
    PaymentServiceFailed,
    PaymentUnavailable,
    ProviderPaymentState,
    ProviderStatus,
    StoredFailureReplayed,
    UncapturedAuthorization,
    from_stripe_amount,
)
from onecart.money import Money

# Stripe's error code for an object it does not know (HTTP 404: "No such payment_intent").
RESOURCE_MISSING_CODE = "resource_missing"
# Stripe's error code for a refund of a charge that has been charged back.
DISPUTED_CHARGE_CODE = "charge_disputed"
# A refund's statuses: done (or as good as done), refused for good; anything else is unfinished.
REFUND_DONE_STATUSES = frozenset({"succeeded", "pending"})
REFUND_FAILED_STATUSES = frozenset({"failed", "canceled"})


def check_refund(refund: Any, amount: Money) -> None:
    """A refund reply confirms the refund asked for: refused for good when Stripe says it failed
    or was made for another amount (an operator looks), unknown while it is unfinished."""
    if refund.status in REFUND_FAILED_STATUSES:
        raise PaymentDeclined(f"The card refund {refund.id} {refund.status}.")
    currency = str(refund.currency).upper()
    if currency != amount.currency or from_stripe_amount(refund.amount, currency) != amount.minor:
        raise PaymentDeclined(
            f"The card refund {refund.id} is for {refund.amount} {refund.currency} (Stripe's "
            f"units), not {amount.minor} {amount.currency}."
        )
    if refund.status not in REFUND_DONE_STATUSES:
        raise PaymentUnavailable(f"The card refund {refund.id} is still {refund.status}.")


def is_refund_of(refund: Any, reference: str) -> bool:
    """Whether a Stripe refund is one of our refund `reference`'s attempts. A refund made before
    refunds carried their reference has only the attempt's key: the reference itself (attempt
    0) or `<reference>-attempt-<n>` (commerce.provider_attempts.refund_attempt_key)."""
    metadata = refund.metadata.to_dict() if refund.metadata else {}
    if REFUND_REFERENCE_METADATA in metadata:
        return metadata[REFUND_REFERENCE_METADATA] == reference
    key = str(metadata.get(REFUND_KEY_METADATA) or "")
    return key == reference or key.startswith(f"{reference}-attempt-")


def stripe_currency(currency: str) -> str:
    return currency.lower()


def decline_message(exc: stripe.StripeError) -> str:
    return exc.user_message or "Your card was declined."


def translate_error(exc: stripe.StripeError, action: str) -> PaymentError:
    if isinstance(exc, stripe.CardError):
        return PaymentDeclined(decline_message(exc))
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return PaymentUnavailable(f"The card payment service is unreachable ({action}).")
    if isinstance(exc, stripe.InvalidRequestError):
        # The object the URL names is unknown: Stripe answers 404 `resource_missing`
        # ("No such payment_intent"); localstripe answers 404 with no code. (A parameter naming
        # an unknown object is a 400 `resource_missing`: a refusal, not this.)
        if exc.http_status == 404 and exc.code in (RESOURCE_MISSING_CODE, None):
            return PaymentNotFound(f"The card payment service knows no such payment ({action}).")
        return PaymentDeclined(f"The card payment could not be {action}: {exc.user_message}")
    if isinstance(exc, stripe.APIError) and (exc.http_status or 0) >= 500:
        failed = StoredFailureReplayed if replayed_headers(exc.headers) else PaymentServiceFailed
        return failed(f"The card payment service failed ({action}): {exc.user_message}")
    return PaymentUnavailable(f"The card payment service failed ({action}): {exc.user_message}")


def replayed(stripe_object: Any) -> bool:
    """Whether Stripe answered with its replay of an earlier reply to the same idempotency key
    (the `Idempotent-Replayed: true` header; header names are case-insensitive)."""
    response = getattr(stripe_object, "last_response", None)
    return replayed_headers(getattr(response, "headers", None))


def replayed_headers(headers: Mapping[str, Any] | None) -> bool:
    """Whether these reply headers carry `Idempotent-Replayed: true`."""
    return any(
        str(name).lower() == "idempotent-replayed" and str(value).strip().lower() == "true"
        for name, value in (headers or {}).items()
    )


_STATUSES = {
    "requires_capture": ProviderStatus.AUTHORIZED,
    "succeeded": ProviderStatus.CAPTURED,
    "canceled": ProviderStatus.CANCELED,
    "processing": ProviderStatus.PENDING,
}


def provider_status(intent: Any) -> ProviderStatus:
    """A PaymentIntent's status in our words (any other is not money we can use: failed)."""
    return _STATUSES.get(str(intent.status), ProviderStatus.FAILED)


def captured_on_record(
    intent_fields: Mapping[str, Any], *, refunds_are_the_released_rest: bool
) -> int | None:
    """What Stripe's record of a PaymentIntent (its charge expanded) says was captured, in
    Stripe's units: the intent's `amount_received`, else its charge's `amount_captured`, else
    the amount of its captured charge (localstripe, which keeps neither). None when the record
    says none of these (no charge expanded, or not captured).

    localstripe records the released rest of a partial capture as a refund of the charge, so
    with `refunds_are_the_released_rest` that reading is the charge's amount less what it
    refunded. That is the capture only while no other refund was made on the charge: right
    after the capture, or while OneCart has not recorded the capture yet (it sends a card refund
    only once the capture is recorded: commerce.refunds._process_refund). A refund made outside
    OneCart (the Stripe dashboard) before that makes the figure smaller, never larger: the
    capture is then recorded short and flagged (settlement.finish_settlement), and no refund is
    sent because of it. A top-up is captured in full at once, so its refunds are not subtracted
    (commerce.wallet_topup: a refund is taken back on its own event)."""
    if intent_fields.get("amount_received") is not None:
        return int(intent_fields["amount_received"])
    charge = intent_fields.get("latest_charge")
    if not isinstance(charge, Mapping):
        return None
    if charge.get("amount_captured") is not None:
        return int(charge["amount_captured"])
    if not charge.get("captured") or charge.get("amount") is None:
        return None
    refunded = int(charge.get("amount_refunded") or 0) if refunds_are_the_released_rest else 0
    return int(charge["amount"]) - refunded


def intent_state(intent: Any) -> ProviderPaymentState:
    """A PaymentIntent in our words."""
    status = provider_status(intent)
    currency = str(intent.currency).upper()
    amount = from_stripe_amount(intent.amount, currency)
    fields = intent.to_dict()
    received = from_stripe_amount(fields.get("amount_received") or 0, currency)
    on_record = captured_on_record(fields, refunds_are_the_released_rest=True)
    # Known only when the charge was expanded (retrieve); a bare charge id says nothing.
    refunded = from_stripe_amount(
        getattr(getattr(intent, "latest_charge", None), "amount_refunded", 0) or 0, currency
    )
    return ProviderPaymentState(
        provider_reference=intent.id,
        status=status,
        amount_minor=amount,
        # What was actually captured (a partial capture releases the rest).
        captured_minor=(received or amount) if status == ProviderStatus.CAPTURED else 0,
        refunded_minor=refunded,
        currency=currency,
        captured_on_record_minor=(
            from_stripe_amount(on_record, currency)
            if on_record is not None and status == ProviderStatus.CAPTURED
            else None
        ),
        metadata={
            str(key): str(value)
            for key, value in (intent.metadata.to_dict() if intent.metadata else {}).items()
        },
    )


def uncaptured_authorization(intent: Any) -> UncapturedAuthorization:
    metadata = intent.metadata.to_dict() if intent.metadata else {}
    currency = str(intent.currency).upper()
    return UncapturedAuthorization(
        provider_reference=str(intent.id),
        amount_minor=from_stripe_amount(intent.amount, currency),
        currency=currency,
        created_at=datetime.fromtimestamp(int(intent.created), UTC),
        metadata={str(key): str(value) for key, value in metadata.items()},
    )

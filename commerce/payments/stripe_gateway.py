"""Stripe as a payment gateway: one PaymentIntent per order, manual capture.

authorize = create and confirm a PaymentIntent with `capture_method="manual"` (or adopt one that
Stripe.js confirmed in the browser); capture = capture what was placed (Stripe releases the rest
of the hold); refund = a partial refund after capture; void = cancel the PaymentIntent.
Every write carries an idempotency key derived from our own ids.

With `settings.stripe_api_base` set (localstripe in the demo and tests) the client talks to that
address and the checkout offers Stripe's standard test cards, confirmed server-side; without it
the client talks to Stripe and the browser collects the card with the Payment Element.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import stripe

from commerce.order_models import PaymentMethod
from commerce.payments.gateway import (
    AUTHORIZATION_ATTEMPT_METADATA,
    AUTHORIZATION_KEY_METADATA,
    REFUND_KEY_METADATA,
    REFUND_REFERENCE_METADATA,
    Authorization,
    AuthorizationReleased,
    AuthorizationRequest,
    FoundRefund,
    FoundRefundStatus,
    PaymentDeclined,
    PaymentError,
    PaymentUnavailable,
    PreparedIntent,
    ProviderPaymentState,
    RefundBlockedByDispute,
    UncapturedAuthorization,
    authorization_attempt_key,
    from_stripe_amount,
    to_stripe_amount,
)
from commerce.payments.stripe_replies import (
    DISPUTED_CHARGE_CODE,
    REFUND_DONE_STATUSES,
    REFUND_FAILED_STATUSES,
    captured_on_record,
    check_refund,
    intent_state,
    is_refund_of,
    provider_status,
    replayed,
    stripe_currency,
    translate_error,
    uncaptured_authorization,
)
from onecart.money import Money
from onecart.settings import Settings

STRIPE_NETWORK_RETRIES = 2
# The stripe library's own per-request timeout (its HTTP clients default to 80 s) and its longest
# back-off between retries: together the longest one gateway call can take.
STRIPE_REQUEST_TIMEOUT_S = 80.0
STRIPE_MAX_RETRY_DELAY_S = 5.0
STRIPE_WORST_CALL_S = STRIPE_REQUEST_TIMEOUT_S * (STRIPE_NETWORK_RETRIES + 1) + (
    STRIPE_MAX_RETRY_DELAY_S * STRIPE_NETWORK_RETRIES
)


@dataclass(frozen=True, slots=True)
class TestCard:
    """One of Stripe's standard test payment methods offered in sandbox mode."""

    payment_method: str
    label: str


# Stripe's documented test payment methods that localstripe also implements. Labelled by the
# card's last four digits, as a wallet names a card: the whole number ("Visa 4000 0000 0000 0341
# (declined)") is wider than the checkout's payment column at 1280 px and on a phone, and the
# closed dropdown cut off the outcome the card is picked for; no one types it (the dropdown sends
# the payment method).
SANDBOX_TEST_CARDS: tuple[TestCard, ...] = (
    TestCard("pm_card_visa", "Visa ending 4242 (succeeds)"),
    TestCard("pm_card_chargeCustomerFail", "Visa ending 0341 (declined)"),
)
SANDBOX_PAYMENT_METHODS = frozenset(card.payment_method for card in SANDBOX_TEST_CARDS)


def is_sandbox_mode(settings: Settings) -> bool:
    """True when payments go to a local fake Stripe (the test cards are offered server-side):
    sandbox mode on (settings.sandbox_enabled) and STRIPE_API_BASE set."""
    return settings.sandbox_enabled and bool(settings.stripe_api_base)


def stripe_client_from_settings(settings: Settings) -> stripe.StripeClient:
    """A StripeClient with the configured key, pointed at STRIPE_API_BASE when it is set.

    One client per key and address, per process: a new client opens a new HTTP session (and
    connection) for every payment call, which cost the order workers more CPU than the call.
    Sharing is safe: stripe's HTTP client keeps one session per thread."""
    return _stripe_client(settings.stripe_api_key, (settings.stripe_api_base or "").rstrip("/"))


def preload_stripe(settings: Settings) -> None:
    """Build the shared client and import what a payment call needs up front (stripe imports
    its services and object classes on first use), so a long-running worker's first capture
    costs what every later one does."""
    client = stripe_client_from_settings(settings)
    _ = (client.v1.payment_intents, client.v1.refunds)
    for module in ("stripe._payment_intent", "stripe._refund", "stripe._charge"):
        importlib.import_module(module)


@functools.lru_cache(maxsize=8)
def _stripe_client(api_key: str, api_base: str) -> stripe.StripeClient:
    options: dict[str, Any] = {"max_network_retries": STRIPE_NETWORK_RETRIES}
    if api_base:
        options["base_addresses"] = {"api": api_base}
    return stripe.StripeClient(api_key, **options)


class StripeGateway:
    """Card payments through Stripe PaymentIntents with manual capture."""

    method = PaymentMethod.STRIPE

    def __init__(self, client: stripe.StripeClient, *, search_available: bool = True) -> None:
        self.client = client
        # localstripe has no search endpoint: there, the holds are found by listing every
        # PaymentIntent (it keeps a few hundred; Stripe keeps every intent ever made).
        self.search_available = search_available

    @classmethod
    def from_settings(cls, settings: Settings) -> StripeGateway:
        """The gateway for the configured Stripe; STRIPE_API_BASE set means localstripe."""
        return cls(
            stripe_client_from_settings(settings), search_available=not settings.stripe_api_base
        )

    def authorize(self, request: AuthorizationRequest) -> Authorization:
        """Hold `amount` on the card: confirm a new PaymentIntent, or adopt one Stripe.js
        confirmed (its amount, currency and checkout must match)."""
        if request.intent_id:
            return self._adopt_confirmed_intent(request)
        if not request.payment_token:
            raise PaymentDeclined("Choose a card to pay with.")
        params: dict[str, Any] = {
            "amount": to_stripe_amount(request.amount.minor, request.amount.currency),
            "currency": stripe_currency(request.amount.currency),
            "payment_method": request.payment_token,
            "payment_method_types": ["card"],
            "capture_method": "manual",
            "confirm": True,
            # Metadata ties the intent to the checkout (localstripe rejects `description`).
            "metadata": {
                **request.metadata,
                "onecart_description": request.description,
                AUTHORIZATION_KEY_METADATA: request.idempotency_key,
                AUTHORIZATION_ATTEMPT_METADATA: str(request.attempt),
            },
        }
        try:
            intent = self.client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={
                    "idempotency_key": authorization_attempt_key(
                        request.idempotency_key, request.attempt
                    )
                },
            )
        except stripe.StripeError as exc:
            raise translate_error(exc, "authorized") from exc
        if replayed(intent):
            # Stripe's stored answer to an earlier send of this attempt: the intent as it was
            # then. Its hold may have been released since (the sweeper releases a hold in doubt
            # no order uses, and the shopper is told to send the page again), so what it is now
            # is asked before it is used.
            intent = self._intent_now(intent.id)
            if intent.status == "canceled":
                raise AuthorizationReleased()
        if intent.status == "processing":
            # Confirmed and still being processed: it may yet become a hold, so this is neither
            # a decline nor a hold to use. Checkout asks again; what stays unknown becomes a
            # hold in doubt that the sweeper uses or releases (commerce.card_holds).
            raise PaymentUnavailable(f"The card payment {intent.id} is still processing.")
        if intent.status != "requires_capture":
            self._cancel_quietly(intent.id)
            raise PaymentDeclined(
                "Your card needs a confirmation step this checkout cannot show; "
                "please use another card."
                if intent.status == "requires_action"
                else "Your card was declined."
            )
        currency = str(intent.currency).upper()
        return Authorization(
            provider_reference=intent.id,
            amount_minor=from_stripe_amount(intent.amount, currency),
            currency=currency,
            captured=False,
        )

    def _intent_now(self, intent_id: str) -> Any:
        try:
            return self.client.v1.payment_intents.retrieve(intent_id)
        except stripe.StripeError as exc:
            raise translate_error(exc, "checked") from exc

    def _adopt_confirmed_intent(self, request: AuthorizationRequest) -> Authorization:
        assert request.intent_id is not None
        try:
            intent = self.client.v1.payment_intents.retrieve(request.intent_id)
        except stripe.StripeError as exc:
            raise translate_error(exc, "checked") from exc
        metadata: Mapping[str, Any] = intent.metadata.to_dict() if intent.metadata else {}
        expected = dict(request.metadata)
        mismatch = PaymentDeclined(
            "The card payment does not match this checkout; nothing was taken."
        )
        if any(metadata.get(key) != value for key, value in expected.items()):
            raise mismatch  # not this checkout's intent: left alone
        if (
            str(intent.currency).upper() != request.amount.currency
            or from_stripe_amount(intent.amount, request.amount.currency) != request.amount.minor
        ):
            # This checkout's intent, for a total that is no longer right: release the hold.
            if intent.status == "requires_capture":
                self._cancel_quietly(intent.id)
            raise mismatch
        if intent.status == "processing":
            # Stripe.js can hand the form an intent that is still processing (briefly for a
            # card): it becomes a hold moments later, so "not confirmed" would be a lie that
            # leaves a hold with no order. Unknown: asked again, else a hold in doubt.
            raise PaymentUnavailable(f"The card payment {intent.id} is still processing.")
        if intent.status != "requires_capture":
            raise PaymentDeclined("Your card payment was not confirmed.")
        return Authorization(
            provider_reference=intent.id,
            amount_minor=request.amount.minor,
            currency=request.amount.currency,
            captured=False,
        )

    def prepare_intent(
        self, amount: Money, *, idempotency_key: str, metadata: Mapping[str, str]
    ) -> PreparedIntent:
        """A PaymentIntent for Stripe.js to confirm in the browser. Its status is the reply's
        unless Stripe replayed the key's first answer (`Idempotent-Replayed: true`, which
        Stripe sets on every replayed reply): that one may be older than the intent's last
        change, so it carries no status and the caller asks Stripe (commerce.checkout_intents).
        """
        try:
            intent = self.client.v1.payment_intents.create(
                params={
                    "amount": to_stripe_amount(amount.minor, amount.currency),
                    "currency": stripe_currency(amount.currency),
                    "capture_method": "manual",
                    "automatic_payment_methods": {"enabled": True},
                    "metadata": dict(metadata),
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise translate_error(exc, "prepared") from exc
        return PreparedIntent(
            intent.id,
            str(intent.client_secret),
            None if replayed(intent) else provider_status(intent),
        )

    def capture(self, provider_reference: str, amount: Money, *, attempt: int | None) -> None:
        """Capture `amount`; Stripe releases whatever of the hold is left. One key per intent,
        amount and attempt (`capture_key`): a retry of the same capture is recognised, a capture
        recomputed for another amount (a share cancelled meanwhile) is not refused as a reused
        key, and a new attempt after a refusal is not answered with that refusal's replay.
        Stripe captures an intent only once, so two keys can never make two captures."""
        try:
            intent = self.client.v1.payment_intents.capture(
                provider_reference,
                params={"amount_to_capture": to_stripe_amount(amount.minor, amount.currency)},
                options=_key_option(
                    None if attempt is None else capture_key(provider_reference, amount, attempt)
                ),
            )
        except stripe.StripeError as exc:
            raise translate_error(exc, "captured") from exc
        # A 2xx whose intent is not captured, or captured for another amount, did not do what
        # was asked: unknown, so settlement retrieves the intent and records Stripe's figure.
        received = intent.to_dict().get("amount_received")
        if str(intent.status) == "succeeded" and received is None:
            # A reply silent on the amount confirms nothing about it: Stripe's record says.
            # (Stripe's own replies carry it, so a capture there stays one call; the capture
            # has happened by now, so a sweep reconciling meanwhile finds it captured.)
            received = self._captured_as_recorded(provider_reference)
        if str(intent.status) != "succeeded" or (
            from_stripe_amount(received, amount.currency) != amount.minor
        ):
            raise PaymentUnavailable(
                f"The card payment service did not confirm the capture of {amount.minor} "
                f"(status {intent.status}, received {received})."
            )

    def _captured_as_recorded(self, provider_reference: str) -> int:
        """What Stripe's record of a just-captured intent says was captured, in Stripe's units
        (`captured_on_record`: right after the capture, localstripe's charge has refunded only
        the released rest). PaymentUnavailable when the record cannot be read or says nothing."""
        try:
            intent = self.client.v1.payment_intents.retrieve(
                provider_reference, params={"expand": ["latest_charge"]}
            )
        except stripe.StripeError as exc:
            raise translate_error(exc, "looked up after the capture") from exc
        captured = captured_on_record(intent.to_dict(), refunds_are_the_released_rest=True)
        if captured is None:
            raise PaymentUnavailable(
                f"The card payment service did not say how much of {provider_reference} it "
                "captured."
            )
        return captured

    def refund(
        self, provider_reference: str, amount: Money, *, idempotency_key: str, reference: str
    ) -> str:
        """A (partial) refund of a captured PaymentIntent."""
        try:
            refund = self.client.v1.refunds.create(
                params={
                    "payment_intent": provider_reference,
                    "amount": to_stripe_amount(amount.minor, amount.currency),
                    # Ours on the refund itself, so an unknown outcome can be looked up: the
                    # attempt's key, and the refund's reference every attempt shares.
                    "metadata": {
                        REFUND_KEY_METADATA: idempotency_key,
                        REFUND_REFERENCE_METADATA: reference,
                    },
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            if getattr(exc, "code", None) == DISPUTED_CHARGE_CODE:
                raise RefundBlockedByDispute(
                    f"The card payment {provider_reference} is disputed: no refund while the "
                    "bank decides."
                ) from exc
            raise translate_error(exc, "refunded") from exc
        check_refund(refund, amount)
        return str(refund.id)

    def find_refund(self, provider_reference: str, reference: str) -> FoundRefund | None:
        """The refund of this PaymentIntent that carries our refund's reference, whichever
        attempt made it. Every page of the intent's refunds is read (the list is strongly
        consistent, unlike the search API, whose index lags): "none" is said only once Stripe
        listed them all. A done one wins over a failed one (a later attempt after a failure);
        one made and not finished (requires_action) is neither done nor absent, so the answer
        is unknown (sent again, it could be refunded twice)."""
        failed: FoundRefund | None = None
        try:
            refunds = self.client.v1.refunds.list(
                params={"payment_intent": provider_reference, "limit": 100}
            )
            for refund in refunds.auto_paging_iter():
                if not is_refund_of(refund, reference):
                    continue
                if refund.status in REFUND_DONE_STATUSES:
                    return FoundRefund(str(refund.id), FoundRefundStatus.DONE, str(refund.status))
                if refund.status not in REFUND_FAILED_STATUSES:
                    raise PaymentUnavailable(
                        f"The card refund {refund.id} is still {refund.status}; asked again later."
                    )
                failed = FoundRefund(str(refund.id), FoundRefundStatus.FAILED, str(refund.status))
        except stripe.StripeError as exc:
            raise translate_error(exc, "looked up") from exc
        return failed

    def void(self, provider_reference: str, *, attempt: int | None) -> None:
        """Cancel the PaymentIntent: the hold on the card is released. The key names the
        attempt (`void_key`): a resend of this attempt is its retry, a release after a refusal
        is the caller's next attempt (commerce.provider_attempts)."""
        self._cancel(
            provider_reference, None if attempt is None else void_key(provider_reference, attempt)
        )

    def _cancel(self, provider_reference: str, idempotency_key: str | None) -> None:
        try:
            self.client.v1.payment_intents.cancel(
                provider_reference,
                options=_key_option(idempotency_key),  # type: ignore[arg-type]
            )
        except stripe.StripeError as exc:
            raise translate_error(exc, "released") from exc

    def _cancel_quietly(self, provider_reference: str) -> None:
        # An unconfirmed intent holds nothing; Stripe expires it if the cancel fails. No key of
        # ours: the stripe library gives the call its own random one (its retries within the
        # call resend it), so a refusal here is stored under no key a later release sends (a
        # shared `void-<id>` key replayed this refusal to the sweeper's release for a day).
        with contextlib.suppress(PaymentError):
            self._cancel(provider_reference, None)

    def find_authorizations(self, idempotency_key: str) -> list[ProviderPaymentState]:
        """The PaymentIntents authorizations with this key made, found by the key in their
        metadata (Stripe's search; more than one only when a retry came after Stripe forgot the
        key). Stripe's search can lag writes by about a minute, so an empty answer right after
        the authorization proves nothing: commerce.card_holds believes it only long after."""
        query = f"metadata['{AUTHORIZATION_KEY_METADATA}']:'{idempotency_key}'"
        try:
            found = self.client.v1.payment_intents.search(params={"query": query, "limit": 100})
        except stripe.StripeError as exc:
            raise translate_error(exc, "looked up") from exc
        return [
            intent_state(intent)
            for intent in found.data
            if (intent.metadata.to_dict() if intent.metadata else {}).get(
                AUTHORIZATION_KEY_METADATA
            )
            == idempotency_key
        ]

    def find_uncaptured_authorizations(
        self, created_before: datetime
    ) -> list[UncapturedAuthorization]:
        """The PaymentIntents created before `created_before` still in `requires_capture`, by
        Stripe's search (which lags writes by about a minute: the caller asks only about holds
        older than that), or by listing them all where there is no search (localstripe)."""
        cutoff = int(created_before.timestamp())
        intents_api = self.client.v1.payment_intents
        try:
            if self.search_available:
                query = f"status:'requires_capture' AND created<{cutoff}"
                found = intents_api.search(params={"query": query, "limit": 100})
            else:
                found = intents_api.list(params={"limit": 100})
            # Paging asks Stripe again, so it belongs inside the try too.
            return [
                uncaptured_authorization(intent)
                for intent in found.auto_paging_iter()
                if str(intent.status) == "requires_capture" and int(intent.created) < cutoff
            ]
        except stripe.StripeError as exc:
            raise translate_error(exc, "listed") from exc

    def retrieve(self, provider_reference: str) -> ProviderPaymentState:
        """The PaymentIntent's status in our words, with what its charge had refunded (the
        charge expanded: the intent itself does not say)."""
        try:
            intent = self.client.v1.payment_intents.retrieve(
                provider_reference, params={"expand": ["latest_charge"]}
            )
        except stripe.StripeError as exc:
            raise translate_error(exc, "looked up") from exc
        return intent_state(intent)


# Stripe's idempotency (https://docs.stripe.com/idempotency): "Stripe's idempotency works by
# saving the resulting status code and body of the first request made for any given idempotency
# key, regardless of whether it succeeds or fails. Subsequent requests with the same key return
# the same result, including 500 errors"; keys are pruned once "at least 24 hours old"; "We save
# results only after the execution of an endpoint begins" (a request failing validation, or
# conflicting with a concurrent one of the same key, saves nothing). So a key must name one
# attempt: its resends (a timeout, then the same request again) get the attempt's own answer,
# while an attempt after a refusal needs a key of its own, or it is answered with the stored
# refusal for a day. The attempt number lives in our database (commerce.provider_attempts).


def _key_option(idempotency_key: str | None) -> dict[str, Any]:
    """The request options carrying our key; none (None: a one-off attempt) leaves the stripe
    library to give the call a random key of its own, which its retries within the call resend."""
    return {} if idempotency_key is None else {"idempotency_key": idempotency_key}


def void_key(provider_reference: str, attempt: int) -> str:
    """The idempotency key of attempt `attempt` to cancel this PaymentIntent."""
    return f"void-{provider_reference}-{attempt}"


def capture_key(provider_reference: str, amount: Money, attempt: int) -> str:
    """The idempotency key of attempt `attempt` to capture `amount` of this PaymentIntent."""
    return f"capture-{provider_reference}-{amount.minor}-{attempt}"

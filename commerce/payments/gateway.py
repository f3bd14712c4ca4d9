"""The payment gateway interface every provider implements, and its errors.

Modelled on Saleor's gateway plugins: authorize, capture, refund and void are the only verbs the
orchestrator uses, each provider maps them onto its own API, and every money-moving call carries
an idempotency key derived from our own ids, so a retried call never moves money twice.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from commerce.order_models import PaymentMethod
from onecart.money import Money

# The metadata key under which a card authorization carries its idempotency key, so that it can
# be found when the reply to its creation was lost (find_authorizations).
AUTHORIZATION_KEY_METADATA = "onecart_authorization_key"
# Which attempt of that authorization made the intent (absent: attempt 0, as before attempts).
AUTHORIZATION_ATTEMPT_METADATA = "onecart_authorization_attempt"
# The metadata keys a card refund carries: the idempotency key of the attempt that made it, and
# our refund's own reference (its row's key), the same for every attempt, by which a refund whose
# outcome is unknown is found whichever attempt made it (find_refund).
REFUND_KEY_METADATA = "onecart_refund_key"
REFUND_REFERENCE_METADATA = "onecart_refund_reference"

# A PaymentIntent id as the browser hands it back (Stripe.js): Stripe's `pi_` and letters and
# digits (real ids are ~27 characters), never longer than the 120 the columns naming one hold.
# Checked before anything uses an id a form brought: a forged one is refused, not stored or sent.
PAYMENT_INTENT_ID_MAX_LENGTH = 120
_PAYMENT_INTENT_ID = re.compile(r"pi_[A-Za-z0-9]+")


def is_payment_intent_id(value: object) -> bool:
    """Whether `value` has the shape of a Stripe PaymentIntent id (not whether it exists)."""
    return (
        isinstance(value, str)
        and len(value) <= PAYMENT_INTENT_ID_MAX_LENGTH
        and _PAYMENT_INTENT_ID.fullmatch(value) is not None
    )


# Stripe takes amounts in these three-decimal currencies only in steps of 10 minor units (the
# last digit must be 0), for charges, captures and refunds alike
# (https://docs.stripe.com/currencies#three-decimal). Every other currency: any minor unit.
CARD_AMOUNT_STEPS: dict[str, int] = {"BHD": 10, "JOD": 10, "KWD": 10, "OMR": 10, "TND": 10}


# Stripe's API takes these zero-decimal currencies (ISO 4217 exponent 0) as two-decimal values
# whose decimals are always 00: "to charge 5 ISK, provide an amount value of 500"
# (https://docs.stripe.com/currencies#special-cases; UGX word for word). OneCart keeps ISO minor
# units everywhere and converts only where an amount crosses to or from Stripe.
STRIPE_WIRE_FACTORS: dict[str, int] = {"ISK": 100, "UGX": 100}


def to_stripe_amount(minor: int, currency: str) -> int:
    """ISO minor units of `currency` as the `amount` Stripe's API expects."""
    return minor * STRIPE_WIRE_FACTORS.get(currency.upper(), 1)


def from_stripe_amount(amount: int, currency: str) -> int:
    """An `amount` Stripe reported, in ISO minor units of `currency` (Stripe charges no fraction
    of ISK or UGX, so the division is exact)."""
    return int(amount) // STRIPE_WIRE_FACTORS.get(currency.upper(), 1)


def card_amount_step(currency: str) -> int:
    """The smallest card amount step in `currency` (10 for BHD, JOD, KWD, OMR, TND, else 1)."""
    return CARD_AMOUNT_STEPS.get(currency.upper(), 1)


def floor_card_amount(minor: int, currency: str) -> int:
    """`minor` rounded DOWN to the card amount step: the rounding rule wherever a card amount is
    quoted or kept. Always down, so the shopper is never charged more than the exact price (we
    absorb at most 9 fils a line); and since every share is then a whole number of steps, any
    sum of shares (a partial capture) and any difference (a refund) is one too."""
    step = card_amount_step(currency)
    return minor - minor % step


class PaymentError(Exception):
    """A payment operation that did not happen; `message` is fit for the shopper."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PaymentDeclined(PaymentError):
    """The provider refused (card declined, wallet balance too low): retrying will not help."""


# What the shopper is told when this page's earlier hold was released by us (never "declined":
# nothing was wrong with the card).
RELEASED_HOLD_MESSAGE = (
    "The card hold made for this page earlier was released, so nothing is held on your card. "
    "Send the page again to pay."
)


class PaymentNotFound(PaymentDeclined):
    """The provider knows no such payment (Stripe: 404 `resource_missing` for the PaymentIntent
    asked about, e.g. an id a forged form sent). A definite answer, not an outage: there is
    nothing to release or capture, so a hold in doubt naming it is resolved (commerce.card_holds).
    """


class RefundBlockedByDispute(PaymentDeclined):
    """The provider refuses to refund a charge the cardholder's bank has charged back (Stripe:
    `charge_disputed`). Not a refusal for good: the bank's decision settles it (commerce.refunds
    holds the refund until the dispute is closed)."""


class AuthorizationReleased(PaymentDeclined):
    """The authorization attempt's hold was released by us since it was made (Stripe: the
    intent is `canceled` now): seen when the provider replays its stored answer to an earlier
    send of the same key, or when a look-up after an answer that was not one finds the
    attempt's own intent cancelled. Not the bank's refusal: the attempt holds nothing, and a
    new attempt may hold the card (commerce.checkout_authorization)."""

    def __init__(self, message: str = RELEASED_HOLD_MESSAGE) -> None:
        super().__init__(message)


class PaymentUnavailable(PaymentError):
    """The provider could not be reached, timed out or failed: the operation may or may not have
    happened, so the caller asks the provider (retrieve, find_refund) before doing it again."""


class PaymentServiceFailed(PaymentUnavailable):
    """The provider answered with its own failure (Stripe: HTTP 5xx). Still unknown (the call
    may have done its work), but an answer Stripe stores under the idempotency key and replays
    to every resend: a resend of the key cannot learn more (commerce.provider_attempts)."""


class StoredFailureReplayed(PaymentServiceFailed):
    """The provider's replay of its own failure stored under the idempotency key by an earlier
    request (Stripe: a 5xx with `Idempotent-Replayed: true`): the key's first and only answer
    was that failure, so no caller ever got the object's details from it."""


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """Take `amount` from the shopper, held (card) or debited (wallet).

    `payment_token` is the provider's payment method (a Stripe `pm_…` id) for server-side
    confirmation; `intent_id` is a PaymentIntent the browser already confirmed with Stripe.js.
    """

    amount: Money
    idempotency_key: str
    description: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    payment_token: str | None = None
    intent_id: str | None = None
    # Which attempt of the authorization this is (commerce.checkout_authorization): part of the
    # provider's idempotency key, while `idempotency_key` names the authorization in metadata.
    attempt: int = 0


@dataclass(frozen=True, slots=True)
class Authorization:
    """What the provider holds for us: `captured` is True when the money already moved (wallet)."""

    provider_reference: str
    amount_minor: int
    currency: str
    captured: bool


class ProviderStatus(enum.StrEnum):
    """A provider's view of one payment, in our words."""

    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    CANCELED = "canceled"
    FAILED = "failed"
    PENDING = "pending"


@dataclass(frozen=True, slots=True)
class PreparedIntent:
    """A PaymentIntent made for Stripe.js to confirm in the browser. `status` is the intent's
    status as the reply gave it; None when the reply was the provider's replay of an earlier
    answer to the same idempotency key (Stripe: `Idempotent-Replayed: true`), which says what
    the intent was then, not what it is now."""

    intent_id: str
    client_secret: str
    status: ProviderStatus | None


@dataclass(frozen=True, slots=True)
class ProviderPaymentState:
    """The provider's current record of a payment (used to reconcile after a crash)."""

    provider_reference: str
    status: ProviderStatus
    amount_minor: int
    captured_minor: int
    refunded_minor: int
    currency: str
    # What the provider's record says was captured, read as a capture not yet recorded is
    # reconciled (settlement.reconcile_payment); None when it says nothing. Not `captured_minor`,
    # which is only the intent's amount where the provider keeps no `amount_received`: on
    # localstripe this is the charge less what it refunded, the capture only until a refund of
    # the payment is made (stripe_replies.captured_on_record).
    captured_on_record_minor: int | None = None
    # What the payment was made with (Stripe: the PaymentIntent's metadata; which checkout or
    # top-up made it), empty when the provider keeps none.
    metadata: Mapping[str, str] = field(default_factory=dict)


class FoundRefundStatus(enum.StrEnum):
    """A refund of ours the provider holds, in our words: `done` (Stripe: succeeded, or pending,
    as good as done until the bank refuses it) or `failed` (Stripe: failed, canceled: nothing was
    given back, and whether to try another way is a person's call)."""

    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class FoundRefund:
    """A refund of ours the provider holds (find_refund): its reference there and its status."""

    provider_reference: str
    status: FoundRefundStatus
    provider_status: str


@dataclass(frozen=True, slots=True)
class UncapturedAuthorization:
    """A hold the provider keeps on a card (authorized, neither captured nor released), with the
    metadata it was made with: what the sweeper compares with our records
    (commerce.unrecorded_card_holds)."""

    provider_reference: str
    amount_minor: int
    currency: str
    created_at: datetime
    metadata: Mapping[str, str]


class PaymentGateway(Protocol):
    """One payment provider behind the four verbs of the orchestrator."""

    method: PaymentMethod

    def authorize(self, request: AuthorizationRequest) -> Authorization:
        """Hold (or, for the wallet, take) the amount; PaymentDeclined / PaymentUnavailable."""
        ...

    def capture(self, provider_reference: str, amount: Money, *, attempt: int | None) -> None:
        """Capture `amount` (at most the authorized amount); the rest is released. `attempt`:
        which attempt this is (commerce.provider_attempts): a resend of the same attempt is
        recognised by the provider, a new attempt after a refusal is not its replay; None when
        our record cannot be read (a one-off attempt)."""
        ...

    def refund(
        self, provider_reference: str, amount: Money, *, idempotency_key: str, reference: str
    ) -> str:
        """Give `amount` back after capture; returns the provider's refund reference.
        `idempotency_key` is this attempt's; `reference` is our refund's own, kept on the refund
        (Stripe: its metadata) so that find_refund finds it whichever attempt made it."""
        ...

    def void(self, provider_reference: str, *, attempt: int | None) -> None:
        """Release an authorization that will never be captured (`attempt`: as for capture)."""
        ...

    def find_refund(self, provider_reference: str, reference: str) -> FoundRefund | None:
        """The refund of this payment carrying our refund's `reference` (any attempt of it),
        None when the provider answered and holds none; PaymentUnavailable when it cannot be
        asked, or when one is made and not finished (neither done nor absent). Resolves a refund
        whose outcome was unknown before it is ever sent again."""
        ...

    def retrieve(self, provider_reference: str) -> ProviderPaymentState:
        """The provider's current record of the payment."""
        ...

    def find_authorizations(self, idempotency_key: str) -> list[ProviderPaymentState]:
        """The payments authorizations with this key made, empty when the provider shows none
        (resolves an authorization whose reply was lost; see commerce.card_holds)."""
        ...

    def find_uncaptured_authorizations(
        self, created_before: datetime
    ) -> list[UncapturedAuthorization]:
        """Every hold made before `created_before` that the provider still keeps uncaptured,
        whoever made it (the caller tells its own by their metadata). Finds the holds our
        database never recorded (commerce.unrecorded_card_holds); PaymentError when it cannot be
        asked."""
        ...


def authorization_attempt_key(idempotency_key: str, attempt: int) -> str:
    """The provider's idempotency key of attempt `attempt` of an authorization: attempt 0 is the
    authorization's own key, as sent before attempts were numbered."""
    return idempotency_key if attempt == 0 else f"{idempotency_key}-a{attempt}"


def is_attempt_of(state: ProviderPaymentState, attempt: int) -> bool:
    """Whether this intent was made by attempt `attempt` of its authorization."""
    return state.metadata.get(AUTHORIZATION_ATTEMPT_METADATA, "0") == str(attempt)

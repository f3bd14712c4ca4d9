"""The other sides of the money path as the model-based fault test (test_money_model.py) drives
them: a card provider (commerce.payments.gateway.PaymentGateway) and marketplaces
(adapters.base.MarketplaceAdapter) that keep their own truth and fail on demand.

Every call a test arms (`Faults.arm`) fails once, in one of the ways a real call can:

- `refuse`: the other side answers no (Stripe 4xx: PaymentDeclined; a marketplace: Rejected);
- `lost_before`: the request never arrived (a timeout before it was read): unknown to the
  caller, nothing happened;
- `lost_after`: the other side did it and the reply was lost: unknown to the caller;
- `crash_after`: the other side did it and the caller's process died before reading the reply
  (WorkerCrash, a BaseException, so no `except Exception` of ours runs, as under SIGKILL).

Both fakes answer a later question truthfully (retrieve an intent, find a refund by our
reference, find an order by our reference), honour idempotency keys as their real counterparts
do (Stripe: a key's first answer is replayed, refusals included; a marketplace: a resend with
the same key returns the order it made), and write down what no caller should ever ask of them
(`violations`): a second order for one part, a capture of a released hold, a refund beyond what
was captured.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from adapters.base import (
    AcceptedLine,
    Capability,
    OrderRequest,
    OrderState,
    OrderStatus,
    OutcomeUnknown,
    PlacedOrder,
    Rejected,
    Transient,
)
from commerce.models import Marketplace, utc_now
from commerce.order_models import PaymentMethod
from commerce.payments.gateway import (
    AUTHORIZATION_ATTEMPT_METADATA,
    AUTHORIZATION_KEY_METADATA,
    Authorization,
    AuthorizationReleased,
    AuthorizationRequest,
    FoundRefund,
    FoundRefundStatus,
    PaymentDeclined,
    PaymentServiceFailed,
    PaymentUnavailable,
    ProviderPaymentState,
    ProviderStatus,
    UncapturedAuthorization,
    authorization_attempt_key,
)
from onecart.money import Money

OUTCOMES = ("refuse", "lost_before", "lost_after", "crash_after")
# The calls a test can arm, by side and verb.
STRIPE_CALLS = ("authorize", "capture", "void", "refund", "retrieve", "find_refund")
READS = ("retrieve", "find_refund")
MARKETPLACE_CALLS = ("place_order", "find_order", "order_status", "cancel_order")


class WorkerCrash(BaseException):
    """The process making the call died right after the other side acted."""


@dataclass
class Faults:
    """Armed failures: the next call of `target` ("stripe.capture", "market.place_order") fails
    with the outcome armed for it (one each, consumed by the call)."""

    armed: dict[str, str] = field(default_factory=dict)
    fired: list[str] = field(default_factory=list)

    def arm(self, target: str, outcome: str) -> None:
        self.armed[target] = outcome

    def take(self, target: str) -> str | None:
        outcome = self.armed.pop(target, None)
        if outcome is not None:
            self.fired.append(f"{target}:{outcome}")
        return outcome

    def clear(self) -> None:
        self.armed.clear()


# --- The card provider ---------------------------------------------------------------------------


@dataclass
class FakeRefund:
    refund_id: str
    amount_minor: int
    key: str
    reference: str


@dataclass
class FakeIntent:
    """A PaymentIntent as Stripe keeps it (manual capture)."""

    intent_id: str
    amount_minor: int
    currency: str
    metadata: dict[str, str]
    created_at: datetime
    status: str = "requires_capture"  # succeeded, canceled
    captured_minor: int = 0
    refunds: list[FakeRefund] = field(default_factory=list)

    @property
    def refunded_minor(self) -> int:
        return sum(refund.amount_minor for refund in self.refunds)

    def state(self) -> ProviderPaymentState:
        status = {
            "requires_capture": ProviderStatus.AUTHORIZED,
            "succeeded": ProviderStatus.CAPTURED,
            "canceled": ProviderStatus.CANCELED,
        }[self.status]
        captured = status == ProviderStatus.CAPTURED
        return ProviderPaymentState(
            provider_reference=self.intent_id,
            status=status,
            amount_minor=self.amount_minor,
            captured_minor=self.captured_minor if captured else 0,
            refunded_minor=self.refunded_minor,
            currency=self.currency,
            captured_on_record_minor=self.captured_minor if captured else None,
            metadata=dict(self.metadata),
        )


_StoredAnswer = object | BaseException


class FakeStripe:
    """A card gateway that keeps Stripe's truth (see the module docstring). `events` is what
    Stripe would send to the webhook, in order: (event id, type, data object)."""

    method = PaymentMethod.STRIPE

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.intents: dict[str, FakeIntent] = {}
        self.answers: dict[str, _StoredAnswer] = {}
        self.events: list[tuple[str, str, dict[str, object]]] = []
        self.violations: list[str] = []
        self._ids = itertools.count(1)

    # Time passes for Stripe's records too (the test moves every timestamp back).
    def age(self, delta: timedelta) -> None:
        for intent in self.intents.values():
            intent.created_at -= delta

    def _event(self, event_type: str, data: dict[str, object]) -> None:
        self.events.append((f"evt_{next(self._ids)}", event_type, data))

    def _call(self, verb: str, key: str | None, act: object) -> object:
        """Run `act` (a callable) as Stripe would under idempotency key `key`, failing as armed.
        A key's first answer (result or refusal) is stored and replayed to every resend."""
        outcome = self.faults.take(f"stripe.{verb}")
        if outcome == "refuse" and verb in READS:
            # Stripe does not refuse a question: its failure to answer is a 5xx.
            raise PaymentServiceFailed(f"Stripe failed ({verb}).")
        if outcome == "lost_before":
            raise PaymentUnavailable(f"The card payment service timed out ({verb}).")
        if key is not None and key in self.answers:
            answer = self.answers[key]
        else:
            try:
                answer = (
                    act() if outcome != "refuse" else PaymentDeclined("Your card was declined.")
                )  # type: ignore[operator]
            except PaymentDeclined as refusal:
                answer = refusal
            if key is not None:
                self.answers[key] = answer
        if outcome == "lost_after":
            raise PaymentUnavailable(f"The card payment service timed out ({verb}).")
        if outcome == "crash_after":
            raise WorkerCrash(f"stripe.{verb}")
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _intent(self, provider_reference: str) -> FakeIntent:
        intent = self.intents.get(provider_reference)
        if intent is None:
            raise PaymentDeclined(f"No such payment_intent: {provider_reference}")
        return intent

    def authorize(self, request: AuthorizationRequest) -> Authorization:
        def act() -> FakeIntent:
            intent = FakeIntent(
                intent_id=f"pi_fake{next(self._ids)}",
                amount_minor=request.amount.minor,
                currency=request.amount.currency,
                metadata={
                    **request.metadata,
                    AUTHORIZATION_KEY_METADATA: request.idempotency_key,
                    AUTHORIZATION_ATTEMPT_METADATA: str(request.attempt),
                },
                created_at=utc_now(),
            )
            self.intents[intent.intent_id] = intent
            return intent

        key = authorization_attempt_key(request.idempotency_key, request.attempt)
        replay = key in self.answers
        intent = self._call("authorize", key, act)
        assert isinstance(intent, FakeIntent)
        if replay and intent.status == "canceled":
            raise AuthorizationReleased()
        if intent.status != "requires_capture":
            raise PaymentUnavailable(f"intent {intent.intent_id} is {intent.status}")
        return Authorization(intent.intent_id, intent.amount_minor, intent.currency, False)

    def capture(self, provider_reference: str, amount: Money, *, attempt: int | None) -> None:
        def act() -> None:
            intent = self._intent(provider_reference)
            if intent.status == "canceled":
                self.violations.append(
                    f"capture of {amount.minor} asked of the released hold {provider_reference}"
                )
                raise PaymentDeclined("This PaymentIntent was canceled.")
            if intent.status == "succeeded":
                raise PaymentDeclined("This PaymentIntent has already been captured.")
            if amount.minor > intent.amount_minor:
                raise PaymentDeclined("amount_to_capture exceeds the authorized amount")
            intent.status = "succeeded"
            intent.captured_minor = amount.minor
            self._event(
                "payment_intent.succeeded",
                {
                    "id": intent.intent_id,
                    "amount_received": amount.minor,
                    "currency": intent.currency.lower(),
                },
            )

        key = None if attempt is None else f"capture-{provider_reference}-{amount.minor}-{attempt}"
        self._call("capture", key, act)

    def void(self, provider_reference: str, *, attempt: int | None) -> None:
        def act() -> None:
            intent = self._intent(provider_reference)
            if intent.status == "succeeded":
                raise PaymentDeclined("This PaymentIntent has already been captured.")
            if intent.status == "canceled":
                raise PaymentDeclined("This PaymentIntent is already canceled.")
            intent.status = "canceled"
            self._event("payment_intent.canceled", {"id": intent.intent_id})

        key = None if attempt is None else f"void-{provider_reference}-{attempt}"
        self._call("void", key, act)

    def refund(
        self, provider_reference: str, amount: Money, *, idempotency_key: str, reference: str
    ) -> str:
        def act() -> str:
            intent = self._intent(provider_reference)
            if intent.status != "succeeded":
                raise PaymentDeclined("This PaymentIntent has no captured charge to refund.")
            if intent.refunded_minor + amount.minor > intent.captured_minor:
                self.violations.append(
                    f"refund of {amount.minor} asked of {provider_reference}, which captured "
                    f"{intent.captured_minor} and refunded {intent.refunded_minor}"
                )
                raise PaymentDeclined("Refund amount is greater than the unrefunded charge.")
            made = FakeRefund(f"re_fake{next(self._ids)}", amount.minor, idempotency_key, reference)
            intent.refunds.append(made)
            self._event(
                "charge.refunded",
                {
                    "payment_intent": intent.intent_id,
                    "amount_refunded": intent.amount_minor
                    - intent.captured_minor
                    + intent.refunded_minor,
                    "amount_captured": intent.captured_minor,
                    "currency": intent.currency.lower(),
                },
            )
            return made.refund_id

        answer = self._call("refund", idempotency_key, act)
        assert isinstance(answer, str)
        return answer

    def find_refund(self, provider_reference: str, reference: str) -> FoundRefund | None:
        def act() -> FoundRefund | None:
            for made in self._intent(provider_reference).refunds:
                if made.reference == reference:
                    return FoundRefund(made.refund_id, FoundRefundStatus.DONE, "succeeded")
            return None

        found = self._call("find_refund", None, act)
        return found if isinstance(found, FoundRefund) else None

    def retrieve(self, provider_reference: str) -> ProviderPaymentState:
        state = self._call("retrieve", None, lambda: self._intent(provider_reference).state())
        assert isinstance(state, ProviderPaymentState)
        return state

    def find_authorizations(self, idempotency_key: str) -> list[ProviderPaymentState]:
        return [
            intent.state()
            for intent in self.intents.values()
            if intent.metadata.get(AUTHORIZATION_KEY_METADATA) == idempotency_key
        ]

    def find_uncaptured_authorizations(
        self, created_before: datetime
    ) -> list[UncapturedAuthorization]:
        return [
            UncapturedAuthorization(
                intent.intent_id,
                intent.amount_minor,
                intent.currency,
                intent.created_at,
                dict(intent.metadata),
            )
            for intent in self.intents.values()
            if intent.status == "requires_capture" and intent.created_at < created_before
        ]


# --- Marketplaces --------------------------------------------------------------------------------

# What a marketplace may do to an order by itself, from which statuses.
MARKETPLACE_MOVES: Mapping[str, tuple[OrderStatus, ...]] = {
    "process": (OrderStatus.PENDING,),
    "cancel": (OrderStatus.PENDING, OrderStatus.PROCESSING),
    "ship": (OrderStatus.PENDING, OrderStatus.PROCESSING),
    "deliver": (OrderStatus.SHIPPED,),
    "refund": (OrderStatus.DELIVERED,),
}
_MOVED_TO = {
    "process": OrderStatus.PROCESSING,
    "cancel": OrderStatus.CANCELLED,
    "ship": OrderStatus.SHIPPED,
    "deliver": OrderStatus.DELIVERED,
    "refund": OrderStatus.REFUNDED,
}
# The statuses in which a marketplace keeps (or kept) the shopper's money.
KEPT_STATUSES = frozenset(
    {OrderStatus.PENDING, OrderStatus.PROCESSING, OrderStatus.SHIPPED, OrderStatus.DELIVERED}
)


@dataclass
class FakeOrder:
    order_id: str
    slug: str
    reference: str
    idempotency_key: str
    lines: tuple[AcceptedLine, ...]
    total_minor: int
    currency: str
    status: OrderStatus = OrderStatus.PENDING

    def placed(self) -> PlacedOrder:
        return PlacedOrder(
            marketplace_order_id=self.order_id,
            status=self.status,
            total_minor=self.total_minor,
            currency=self.currency,
            lines=self.lines,
            shipping_minor=0,
            tax_minor=0,
        )

    def state(self) -> OrderState:
        refunded = self.status == OrderStatus.REFUNDED
        return OrderState(
            marketplace_order_id=self.order_id,
            status=self.status,
            raw_status=self.status.value,
            tracking_number="TRK1" if self.status != OrderStatus.PENDING else None,
            refunded_minor=self.total_minor if refunded else 0,
            refunded_currency=self.currency,
        )


class FakeMarketplaces:
    """Every marketplace of the test, one order book each (see the module docstring)."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.orders: dict[str, FakeOrder] = {}
        self.created: list[tuple[str, str]] = []  # (slug, reference) of every order made
        self.violations: list[str] = []
        self._ids = itertools.count(1001)

    def held(self, slug: str, reference: str) -> FakeOrder | None:
        for order in self.orders.values():
            if order.slug == slug and order.reference == reference:
                return order
        return None

    def move(self, order: FakeOrder, action: str) -> bool:
        """The marketplace moves an order by itself; False when `action` does not apply."""
        if order.status not in MARKETPLACE_MOVES[action]:
            return False
        order.status = _MOVED_TO[action]
        return True

    def adapter_for(self, marketplace: Marketplace) -> FakeAdapter:
        return FakeAdapter(self, marketplace.slug)


class FakeAdapter:
    """One marketplace's order API over FakeMarketplaces."""

    capabilities = frozenset({Capability.ORDER, Capability.TRACK, Capability.CANCEL})
    honours_idempotency_keys = True
    idempotency_key_retention = timedelta(hours=24)

    def __init__(self, book: FakeMarketplaces, slug: str) -> None:
        self.book = book
        self.slug = slug

    def _before(self, verb: str) -> str | None:
        outcome = self.book.faults.take(f"market.{verb}")
        if outcome == "refuse":
            raise Rejected(f"{self.slug} refused {verb}", marketplace=self.slug, status=422)
        if outcome == "lost_before":
            if verb in ("place_order", "cancel_order"):
                raise OutcomeUnknown("read timeout", marketplace=self.slug)
            raise Transient("503 Service Unavailable", marketplace=self.slug, status=503)
        return outcome

    def _after(self, verb: str, outcome: str | None) -> None:
        if outcome == "lost_after":
            if verb in ("place_order", "cancel_order"):
                raise OutcomeUnknown("read timeout", marketplace=self.slug)
            raise Transient("503 Service Unavailable", marketplace=self.slug, status=503)
        if outcome == "crash_after":
            raise WorkerCrash(f"market.{verb}")

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        outcome = self.book.faults.take("market.place_order")
        if outcome == "lost_before":
            raise OutcomeUnknown("read timeout", marketplace=self.slug)
        made = next(
            (
                order
                for order in self.book.orders.values()
                if order.slug == self.slug and order.idempotency_key == request.idempotency_key
            ),
            None,
        )
        # A resend of a key the marketplace made an order for is answered with that order.
        if made is None and outcome == "refuse":
            raise Rejected(f"{self.slug} refused the order", marketplace=self.slug, status=422)
        if made is None:
            if self.book.held(self.slug, request.reference) is not None:
                self.book.violations.append(
                    f"{self.slug}: a second order for reference {request.reference}"
                )
            lines = tuple(
                AcceptedLine(line.external_id, line.quantity, line.unit_price_minor)
                for line in request.lines
            )
            made = FakeOrder(
                order_id=f"{self.slug}-{next(self.book._ids)}",
                slug=self.slug,
                reference=request.reference,
                idempotency_key=request.idempotency_key,
                lines=lines,
                total_minor=sum(line.unit_price_minor * line.quantity for line in request.lines),
                currency=request.currency,
            )
            self.book.orders[made.order_id] = made
            self.book.created.append((self.slug, request.reference))
        self._after("place_order", outcome)
        return made.placed()

    def find_order(
        self, reference: str, *, sent_since: datetime | None = None
    ) -> PlacedOrder | None:
        outcome = self._before("find_order")
        found = self.book.held(self.slug, reference)
        self._after("find_order", outcome)
        return found.placed() if found is not None else None

    def order_status(self, marketplace_order_id: str) -> OrderState:
        outcome = self._before("order_status")
        order = self.book.orders[marketplace_order_id]
        self._after("order_status", outcome)
        return order.state()

    def cancel_order(self, marketplace_order_id: str) -> OrderState:
        outcome = self._before("cancel_order")
        order = self.book.orders[marketplace_order_id]
        if order.status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.REFUNDED):
            raise Rejected(
                f"{self.slug}: order {marketplace_order_id} has shipped",
                marketplace=self.slug,
                status=422,
            )
        order.status = OrderStatus.CANCELLED
        self._after("cancel_order", outcome)
        return order.state()

    def check_orders_api(self) -> None:
        return None

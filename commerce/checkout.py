"""The checkout orchestrator: from a cart to one order, one payment and one outbox row per
sub-order — never two orders for one checkout, never a charge without an order.

The bar is Saleor's locked checkout completion and Spree's idempotent completion:

1. The shopper's checkouts are serialized by a lock on their `checkout_locks` row (SELECT … FOR
   UPDATE on PostgreSQL, a lease on the row elsewhere, because SQLite locks the whole file).
2. Inside it, the order made earlier with the same validation token is returned as is (a second
   submit charges nothing). Otherwise every line's live price and availability is re-checked
   through its marketplace's adapter — concurrently, with a deadline per marketplace — and if the
   total moved or an item vanished the shopper gets the differences and nothing is taken.
3. A card is authorized (a PaymentIntent with manual capture) before the order is written; the
   order, its sub-orders, items, payment row, outbox rows, the wallet debit (for wallet payments)
   and the emptied cart are then ONE transaction, keyed by the validation token (unique). Items
   bought on a marketplace's own site (hand-off) leave the cart too: they move into the order,
   where the shopper marks them bought or removes them (commerce.handoff), so no later order
   lists them again. When that transaction fails, the database is asked (by the token) whether
   the order was committed after all before the card hold is released.
4. The caller dispatches the outbox (storefront.jobs): one RQ job per sub-order. If Redis is down
   the rows stay undispatched and the sweeper enqueues them later.

Money: the order is charged in one currency (the display currency for cards, the wallet's for the
wallet). Each line is converted once with the FX table; a sub-order's share is the sum of its
lines, so the shares add up to the charged total exactly, and the rates used are stored.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.checkout_lock import (
    LOCK_LEASE,
    LOCK_WAIT_S,
    CheckoutBusy,
    CheckoutError,
    checkout_lock,
)
from commerce.checkout_quote import (
    CheckoutQuote,
    QuoteGroup,
    QuoteLine,
    UnavailableLine,
    build_quote,
)
from commerce.countries import is_shipping_country
from commerce.fx import FxTable
from commerce.marketplace_access import AdapterProvider
from commerce.models import CartItem, User
from commerce.notifications import notify
from commerce.order_models import (
    HandoffItemStatus,
    MarketplaceOrder,
    Order,
    OrderItem,
    OrderStatus,
    OutboxMessage,
    OutboxTopic,
    Payment,
    PaymentMethod,
    PaymentStatus,
    SubOrderStatus,
    new_validation_token,
)
from commerce.payments.gateway import (
    Authorization,
    AuthorizationRequest,
    PaymentDeclined,
    PaymentError,
    PaymentGateway,
)
from commerce.payments.wallet_gateway import WalletGateway
from commerce.placement_history import expected_placement_seconds
from commerce.revalidation import (
    REVALIDATION_DEADLINE_S,
    ChangeKind,
    LineChange,
    Revalidation,
    revalidate_cart,
)
from onecart.money import Money, MoneyError, format_money

logger = logging.getLogger(__name__)

VALIDATION_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")

# Importable from here as before: the quote, the live re-check and the lock live in modules of
# their own.
__all__ = [
    "LOCK_LEASE",
    "LOCK_WAIT_S",
    "REVALIDATION_DEADLINE_S",
    "ChangeKind",
    "CheckoutBusy",
    "CheckoutError",
    "CheckoutQuote",
    "LineChange",
    "QuoteGroup",
    "QuoteLine",
    "Revalidation",
    "UnavailableLine",
    "build_quote",
    "checkout_lock",
    "revalidate_cart",
]


# --- Shipping --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShippingDetails:
    """Where the marketplaces ship to; saved to the shopper's profile for next time."""

    name: str
    line1: str
    city: str
    country: str
    postal_code: str = ""
    line2: str = ""
    phone: str = ""

    def errors(self) -> dict[str, str]:
        """Field name -> problem, empty when the address is usable."""
        problems: dict[str, str] = {}
        for name, label, limit in (
            ("name", "Name", 160),
            ("line1", "Address", 200),
            ("city", "City", 120),
        ):
            value = getattr(self, name).strip()
            if not value:
                problems[name] = f"{label} is required."
            elif len(value) > limit:
                problems[name] = f"{label} is at most {limit} characters."
        if not is_shipping_country(self.country):
            problems["country"] = "Choose a country from the list."
        if len(self.postal_code) > 20:
            problems["postal_code"] = "Postal code is at most 20 characters."
        if len(self.line2) > 200:
            problems["line2"] = "Address line 2 is at most 200 characters."
        if len(self.phone) > 32:
            problems["phone"] = "Phone is at most 32 characters."
        return problems

    @classmethod
    def from_profile(cls, user: User) -> ShippingDetails:
        """The address saved on the profile (empty fields when none was saved)."""
        return cls(
            name=user.ship_name or user.full_name,
            line1=user.ship_line1 or "",
            line2=user.ship_line2 or "",
            city=user.ship_city or "",
            postal_code=user.ship_postal_code or "",
            country=user.ship_country or "",
            phone=user.phone_number or "",
        )


def save_shipping_to_profile(user: User, shipping: ShippingDetails) -> None:
    """Remember the address on the profile, so the next checkout is pre-filled."""
    user.ship_name = shipping.name.strip()
    user.ship_line1 = shipping.line1.strip()
    user.ship_line2 = shipping.line2.strip() or None
    user.ship_city = shipping.city.strip()
    user.ship_postal_code = shipping.postal_code.strip() or None
    user.ship_country = shipping.country.strip().upper()
    if shipping.phone.strip():
        user.phone_number = shipping.phone.strip()


# --- Submitting ------------------------------------------------------------------------------


class OutcomeKind(enum.StrEnum):
    """How a submit ended."""

    CREATED = "created"
    EXISTING = "existing"
    CHANGED = "changed"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class CheckoutSubmission:
    """What the checkout form sent."""

    user_id: int
    validation_token: str
    payment_method: PaymentMethod
    display_currency: str
    total_seen_minor: int | None
    shipping: ShippingDetails
    # Card: a Stripe test payment method (sandbox mode) or a PaymentIntent Stripe.js confirmed.
    card_payment_method: str | None = None
    payment_intent_id: str | None = None
    # The wallet total the page showed, when the wallet currency differs from the display one.
    wallet_total_seen_minor: int | None = None
    # The digest of the cart the page showed (CheckoutQuote.digest).
    cart_digest_seen: str | None = None


@dataclass(frozen=True, slots=True)
class CheckoutOutcome:
    """The result: an order (new or the earlier one), or why not and what changed."""

    kind: OutcomeKind
    order_id: int | None = None
    order_number: str | None = None
    message: str = ""
    changes: tuple[LineChange, ...] = ()
    unchecked: tuple[str, ...] = ()
    field_errors: Mapping[str, str] = field(default_factory=dict)


def is_valid_validation_token(token: object) -> bool:
    """The shape every issued validation token has (anything else is a tampered form)."""
    return isinstance(token, str) and bool(VALIDATION_TOKEN_PATTERN.match(token))


def payment_currency(user: User, method: PaymentMethod, display_currency: str) -> str:
    """The currency the order is charged in: the wallet's for wallet payments, else the
    shopper's display currency."""
    return user.wallet_currency if method == PaymentMethod.WALLET else display_currency


def _existing_order(session: Session, validation_token: str) -> Order | None:
    return session.scalar(sa.select(Order).where(Order.validation_token == validation_token))


def _existing_outcome(order: Order | _RecordedOrder, user_id: int) -> CheckoutOutcome:
    if order.user_id != user_id:
        return CheckoutOutcome(
            OutcomeKind.REJECTED,
            message="This checkout form has expired. Please review your order and try again.",
        )
    return CheckoutOutcome(OutcomeKind.EXISTING, order_id=order.id, order_number=order.number)


def card_idempotency_key(submission: CheckoutSubmission, amount: Money) -> str:
    """One key per (checkout form, card, amount): a replayed submit reuses the same
    PaymentIntent, a different card or amount makes a new one."""
    digest = hashlib.sha256(
        "|".join(
            (
                submission.validation_token,
                submission.card_payment_method or submission.payment_intent_id or "",
                str(amount.minor),
                amount.currency,
            )
        ).encode()
    ).hexdigest()[:32]
    return f"onecart-checkout-{digest}"


def submit_checkout(
    session_factory: sessionmaker[Session],
    submission: CheckoutSubmission,
    *,
    fx: FxTable,
    adapter_for: AdapterProvider,
    card_gateway: PaymentGateway | None,
    revalidation_deadline_s: float = REVALIDATION_DEADLINE_S,
    lock_wait_s: float = LOCK_WAIT_S,
) -> CheckoutOutcome:
    """Turn the shopper's cart into one order and one payment (see the module docstring)."""
    if not is_valid_validation_token(submission.validation_token):
        return CheckoutOutcome(
            OutcomeKind.REJECTED,
            message="This checkout form is not valid any more. Please review your order again.",
        )
    with session_factory() as session:
        earlier = _existing_order(session, submission.validation_token)
        if earlier is not None:
            return _existing_outcome(earlier, submission.user_id)
    problems = submission.shipping.errors()
    if problems:
        return CheckoutOutcome(
            OutcomeKind.REJECTED,
            message="Please check the shipping address.",
            field_errors=problems,
        )
    with checkout_lock(session_factory, submission.user_id, wait_s=lock_wait_s):
        return _submit_locked(
            session_factory,
            submission,
            fx=fx,
            adapter_for=adapter_for,
            card_gateway=card_gateway,
            revalidation_deadline_s=revalidation_deadline_s,
        )


def _submit_locked(
    session_factory: sessionmaker[Session],
    submission: CheckoutSubmission,
    *,
    fx: FxTable,
    adapter_for: AdapterProvider,
    card_gateway: PaymentGateway | None,
    revalidation_deadline_s: float,
) -> CheckoutOutcome:
    with session_factory() as session:
        earlier = _existing_order(session, submission.validation_token)
        if earlier is not None:
            return _existing_outcome(earlier, submission.user_id)
        user = session.get(User, submission.user_id)
        if user is None:
            return CheckoutOutcome(OutcomeKind.REJECTED, message="Please sign in again.")
        before = build_quote(session, user, currency=submission.display_currency, fx=fx)
        if not before.orderable_groups:
            return CheckoutOutcome(
                OutcomeKind.REJECTED,
                message="There is nothing in your cart that can be paid through OneCart."
                if not before.is_empty
                else "Your cart is empty.",
            )

        revalidation = revalidate_cart(
            session, user, adapter_for=adapter_for, deadline_s=revalidation_deadline_s
        )
        # The page promises the address is kept: saved now, so a declined card or a changed
        # total does not lose it (the order saves it again, unchanged).
        save_shipping_to_profile(user, submission.shipping)
        session.commit()
        quote = build_quote(session, user, currency=submission.display_currency, fx=fx)
        if quote.total_minor is None:
            return CheckoutOutcome(
                OutcomeKind.REJECTED,
                message="Exchange rates for "
                + ", ".join(quote.missing_rates)
                + " are missing, so the total cannot be computed. Please try again later.",
            )
        if (
            revalidation.changes
            or submission.total_seen_minor != quote.total_minor
            or submission.cart_digest_seen != quote.digest
            or not quote.can_pay
        ):
            _release_browser_intent(card_gateway, submission)
            return CheckoutOutcome(
                OutcomeKind.CHANGED,
                message="Prices or availability changed since you opened checkout. "
                "Please review the new total; nothing was charged.",
                changes=revalidation.changes,
                unchecked=revalidation.unchecked,
            )

        charge_currency = payment_currency(user, submission.payment_method, quote.currency)
        if charge_currency != quote.currency:
            quote = build_quote(session, user, currency=charge_currency, fx=fx)
            if quote.total_minor is None:
                return CheckoutOutcome(
                    OutcomeKind.REJECTED,
                    message=f"There is no exchange rate for {charge_currency} right now.",
                )
            if submission.wallet_total_seen_minor != quote.total_minor:
                return CheckoutOutcome(
                    OutcomeKind.CHANGED,
                    message="The amount in your wallet's currency changed. "
                    "Please review it; nothing was charged.",
                    unchecked=revalidation.unchecked,
                )
        assert quote.total_minor is not None
        try:
            amount = Money(quote.total_minor, quote.currency)
        except MoneyError as exc:
            return CheckoutOutcome(OutcomeKind.REJECTED, message=str(exc))

        authorization: Authorization | None = None
        if submission.payment_method == PaymentMethod.STRIPE:
            if card_gateway is None:
                return CheckoutOutcome(
                    OutcomeKind.REJECTED, message="Card payments are not available right now."
                )
            try:
                authorization = card_gateway.authorize(
                    AuthorizationRequest(
                        amount=amount,
                        idempotency_key=card_idempotency_key(submission, amount),
                        description=f"OneCart checkout for {user.username}",
                        metadata={"onecart_validation_token": submission.validation_token},
                        payment_token=submission.card_payment_method,
                        intent_id=submission.payment_intent_id,
                    )
                )
            except PaymentError as exc:
                return CheckoutOutcome(OutcomeKind.REJECTED, message=exc.message)

        try:
            order = _record_order(session, user, quote, submission, authorization)
            session.commit()
        except PaymentDeclined as exc:
            session.rollback()
            return CheckoutOutcome(OutcomeKind.REJECTED, message=exc.message)
        except BaseException:
            # The order may be committed even though the commit raised (the connection dropped
            # after COMMIT was sent), or made by another submit of this form (the token is
            # unique). Ask the database before releasing the hold: a hold the order holds is
            # never released, and when the database cannot answer, neither is this one (an
            # uncaptured hold expires on its own; a released one cannot be captured).
            with contextlib.suppress(Exception):
                session.rollback()
            try:
                earlier = _recorded_order(session_factory, submission.validation_token)
            except Exception:
                logger.exception(
                    "checkout of user %s: cannot tell whether the order was recorded; its card "
                    "hold is left to expire",
                    submission.user_id,
                )
                raise
            if earlier is None or earlier.provider_reference != (
                authorization.provider_reference if authorization else None
            ):
                _release_authorization(card_gateway, authorization)
            if earlier is not None:
                return _existing_outcome(earlier, submission.user_id)
            raise
        return CheckoutOutcome(
            OutcomeKind.CREATED,
            order_id=order.id,
            order_number=order.number,
            unchecked=revalidation.unchecked,
        )


@dataclass(frozen=True, slots=True)
class _RecordedOrder:
    id: int
    number: str
    user_id: int
    provider_reference: str | None


def _recorded_order(
    session_factory: sessionmaker[Session], validation_token: str
) -> _RecordedOrder | None:
    """The order committed for this token, read in a session of its own (the submit's session
    may be unusable after a failed commit)."""
    with session_factory() as session:
        order = _existing_order(session, validation_token)
        if order is None:
            return None
        return _RecordedOrder(
            order.id,
            order.number,
            order.user_id,
            order.payment.provider_reference if order.payment is not None else None,
        )


def _release_browser_intent(gateway: PaymentGateway | None, submission: CheckoutSubmission) -> None:
    """A card hold Stripe.js made for a total that changed is released, not left hanging."""
    release = getattr(gateway, "release_checkout_intent", None)
    if submission.payment_intent_id and callable(release):
        release(submission.payment_intent_id, submission.validation_token)


def _release_authorization(
    gateway: PaymentGateway | None, authorization: Authorization | None
) -> None:
    """Give back a card hold whose order could not be written (nothing else references it)."""
    if gateway is None or authorization is None:
        return
    try:
        gateway.void(authorization.provider_reference)
    except PaymentError:
        logger.exception(
            "could not release %s; it expires on its own", authorization.provider_reference
        )


def _record_order(
    session: Session,
    user: User,
    quote: CheckoutQuote,
    submission: CheckoutSubmission,
    authorization: Authorization | None,
) -> Order:
    """The one transaction: order, sub-orders, items, payment, outbox, cart, profile address."""
    assert quote.total_minor is not None
    shipping = submission.shipping
    order = Order(
        user_id=user.id,
        status=OrderStatus.PROCESSING,
        total_minor=quote.total_minor,
        currency=quote.currency,
        handoff_total_minor=quote.handoff_total_minor,
        payment_method=submission.payment_method,
        fx_rates={currency: str(rate) for currency, rate in quote.source_rates.items()},
        fx_as_of=quote.rates_as_of,
        validation_token=submission.validation_token,
        email=user.email,
        phone=shipping.phone.strip(),
        ship_name=shipping.name.strip(),
        ship_line1=shipping.line1.strip(),
        ship_line2=shipping.line2.strip(),
        ship_city=shipping.city.strip(),
        ship_postal_code=shipping.postal_code.strip(),
        ship_country=shipping.country.strip().upper(),
    )
    session.add(order)
    session.flush()

    # Every line of the order leaves the cart: placed ones and hand-offs alike.
    purchased: list[int] = []
    placements: list[tuple[int, MarketplaceOrder]] = []
    for group in quote.groups:
        if group.amount_minor is None or group.charge_minor is None:
            raise CheckoutError(f"Missing exchange rate for {group.name}.")
        sub_order = MarketplaceOrder(
            order_id=order.id,
            marketplace_id=group.marketplace_id,
            status=SubOrderStatus.HANDOFF if group.handoff else SubOrderStatus.PENDING,
            amount_minor=group.amount_minor,
            currency=group.marketplace_currency,
            charge_minor=0 if group.handoff else group.charge_minor,
            charge_currency=quote.currency,
            idempotency_key=f"onecart-{order.relation_token}-{group.slug}",
        )
        session.add(sub_order)
        session.flush()
        for line in group.lines:
            session.add(
                OrderItem(
                    order_id=order.id,
                    sub_order_id=sub_order.id,
                    product_id=line.product_id,
                    external_id=line.external_id,
                    title=line.title[:300],
                    product_url=line.product_url,
                    image_url=line.image_url,
                    quantity=line.quantity,
                    unit_price_minor=line.unit_price_minor,
                    currency=line.currency,
                    charge_minor=0 if group.handoff else (line.charge_minor or 0),
                    handoff_status=HandoffItemStatus.TO_BUY if group.handoff else None,
                )
            )
            purchased.append(line.product_id)
        if not group.handoff:
            placements.append((group.marketplace_id, sub_order))

    amount = Money(quote.total_minor, quote.currency)
    if submission.payment_method == PaymentMethod.WALLET:
        wallet_authorization = WalletGateway(session, user).authorize(
            AuthorizationRequest(
                amount=amount,
                idempotency_key=f"checkout-{submission.validation_token}",
                description=f"Order {order.number}",
            )
        )
        payment = Payment(
            order_id=order.id,
            method=PaymentMethod.WALLET,
            status=PaymentStatus.CAPTURED,
            currency=amount.currency,
            amount_minor=wallet_authorization.amount_minor,
            captured_minor=wallet_authorization.amount_minor,
            provider_reference=wallet_authorization.provider_reference,
        )
    else:
        assert authorization is not None
        payment = Payment(
            order_id=order.id,
            method=PaymentMethod.STRIPE,
            status=PaymentStatus.AUTHORIZED,
            currency=authorization.currency,
            amount_minor=authorization.amount_minor,
            captured_minor=0,
            provider_reference=authorization.provider_reference,
        )
    if payment.amount_minor != order.total_minor or payment.currency != order.currency:
        raise CheckoutError("The payment does not match the order total; nothing was recorded.")
    session.add(payment)
    # Slowest marketplaces first: the outbox is dispatched in id order.
    expected = expected_placement_seconds(session, [market for market, _ in placements])
    for _market, sub_order in sorted(placements, key=lambda item: -expected[item[0]]):
        session.add(
            OutboxMessage(
                topic=OutboxTopic.PLACE_SUB_ORDER, order_id=order.id, sub_order_id=sub_order.id
            )
        )
        session.flush()
    if purchased:
        session.execute(
            sa.delete(CartItem).where(
                CartItem.user_id == user.id, CartItem.product_id.in_(purchased)
            )
        )
    save_shipping_to_profile(user, shipping)
    markets = ", ".join(group.name for group in quote.orderable_groups)
    notify(
        session,
        order,
        "order_received",
        f"We received order {order.number} ({format_money(amount.minor, amount.currency)}) "
        f"and are placing it with {markets}.",
    )
    session.flush()
    return order


def new_checkout_token() -> str:
    """A fresh validation token for one rendered checkout form."""
    return new_validation_token()


def changes_by_product(changes: Sequence[LineChange]) -> dict[int, LineChange]:
    """Changes keyed by product id, for highlighting lines on the re-rendered page."""
    return {change.product_id: change for change in changes}

"""The checkout orchestrator: from a cart to one order, one payment and one outbox row per
sub-order — never two orders for one checkout, never a charge without an order.

The bar is Saleor's locked checkout completion and Spree's idempotent completion:

1. The shopper's checkouts are serialized by a lock on their `checkout_locks` row (SELECT … FOR
   UPDATE on PostgreSQL, a lease on the row elsewhere, because SQLite locks the whole file).
2. Inside it, the order made earlier with the same validation token is returned as is (a second
   submit charges nothing). Otherwise every line's live price and availability is re-checked
   through its marketplace's adapter — concurrently, with a deadline per marketplace — and if the
   total moved or an item vanished the shopper gets the differences and nothing is taken.
3. A card is authorized (a PaymentIntent with manual capture) before the order is written. An
   authorization whose outcome is unknown is not a refusal: Stripe is asked for the intent (by
   id, or by the authorization's key in its metadata) and an authorized one is used; one that
   cannot be told is recorded for the sweeper and the shopper is told the payment is being
   checked (commerce.card_holds). The order, its sub-orders, items, the stock holds of
   marketplaces whose orders take no stock (commerce.offer_stock: compare-and-set, so the last
   unit is sold once; a checkout that finds too few left is rolled back, its card hold released
   and the shopper shown what is left), payment row, outbox rows,
   the wallet debit (for wallet payments) and the emptied cart are then ONE transaction, keyed
   by the validation token (unique). Items bought on a marketplace's own site (hand-off) leave
   the cart too: they move into the order, where the shopper marks them bought or removes them
   (commerce.handoff), so no later order lists them again. When that transaction fails, the database is asked (by the token) whether
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

from sqlalchemy.orm import Session, sessionmaker

from commerce.card_holds import (
    checkout_intent_metadata,
    in_doubt_message,
    record_hold_in_doubt,
)
from commerce.checkout_authorization import authorize_card
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
from commerce.checkout_record import RecordedOrder, existing_order, record_order, recorded_order
from commerce.checkout_shipping import ShippingDetails, save_shipping_to_profile
from commerce.form_holds import release_form_hold
from commerce.fx import FxTable
from commerce.marketplace_access import AdapterProvider
from commerce.models import User
from commerce.offer_stock import StockShortfall
from commerce.order_models import Order, PaymentMethod, new_validation_token
from commerce.payments.gateway import (
    Authorization,
    AuthorizationReleased,
    AuthorizationRequest,
    PaymentDeclined,
    PaymentError,
    PaymentGateway,
    PaymentServiceFailed,
    PaymentUnavailable,
)
from commerce.provider_attempts import void_intent
from commerce.revalidation import (
    REVALIDATION_DEADLINE_S,
    ChangeKind,
    LineChange,
    Revalidation,
    limit_cart_line_to_stock,
    revalidate_cart,
)
from onecart.bidi import isolated
from onecart.money import Money, MoneyError

logger = logging.getLogger(__name__)

# Said after a card's refusal (the bank's or Stripe's own words): that no money moved, and what
# the shopper can do now. The decline alone left them guessing.
CARD_DECLINED_NEXT_STEP = "Nothing was charged. Try another card or pay from your wallet."

VALIDATION_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")

# Importable from here as before: the quote, the live re-check, the lock, the shipping address
# and the order's writing live in modules of their own.
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
    "ShippingDetails",
    "UnavailableLine",
    "build_quote",
    "checkout_lock",
    "revalidate_cart",
    "save_shipping_to_profile",
]


# --- Submitting ------------------------------------------------------------------------------


class OutcomeKind(enum.StrEnum):
    """How a submit ended."""

    CREATED = "created"
    EXISTING = "existing"
    CHANGED = "changed"
    REJECTED = "rejected"
    # The card authorization's outcome is unknown: being checked, not declined (card_holds).
    IN_DOUBT = "in_doubt"


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
    # The card hold the form brought (Stripe.js) is still good for the next submit of the form:
    # untouched (the address refused, rates missing) or being checked. Otherwise it was used,
    # released or refused, and the page must not hand it back.
    keep_card_hold: bool = False


def is_valid_validation_token(token: object) -> bool:
    """The shape every issued validation token has (anything else is a tampered form)."""
    return isinstance(token, str) and bool(VALIDATION_TOKEN_PATTERN.match(token))


def payment_currency(user: User, method: PaymentMethod, display_currency: str) -> str:
    """The currency the order is charged in: the wallet's for wallet payments, else the
    shopper's display currency."""
    return user.wallet_currency if method == PaymentMethod.WALLET else display_currency


def _existing_outcome(order: Order | RecordedOrder, user_id: int) -> CheckoutOutcome:
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
        earlier = existing_order(session, submission.validation_token)
        if earlier is not None:
            return _existing_outcome(earlier, submission.user_id)
    problems = submission.shipping.errors()
    if problems:
        return CheckoutOutcome(
            OutcomeKind.REJECTED,
            message="Please check the shipping address.",
            field_errors=problems,
            keep_card_hold=True,
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
        earlier = existing_order(session, submission.validation_token)
        if earlier is not None:
            return _existing_outcome(earlier, submission.user_id)
        user = session.get(User, submission.user_id)
        if user is None:
            return _refused(session_factory, card_gateway, submission, "Please sign in again.")
        before = build_quote(session, user, currency=submission.display_currency, fx=fx)
        if not before.orderable_groups:
            # Another tab may have bought the cart meanwhile: this tab's card hold is released.
            return _refused(
                session_factory, card_gateway, submission, _nothing_to_pay_message(before)
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
            # Nothing is wrong with the form: its hold is kept for the submit once rates are back.
            return CheckoutOutcome(
                OutcomeKind.REJECTED,
                message="Exchange rates for "
                + ", ".join(quote.missing_rates)
                + " are missing, so the total cannot be computed. Please try again later.",
                keep_card_hold=True,
            )
        if (
            revalidation.changes
            or submission.total_seen_minor != quote.total_minor
            or submission.cart_digest_seen != quote.digest
            or not quote.can_pay
        ):
            _release_browser_intent(session_factory, card_gateway, submission)
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
                # Nothing is wrong with the form either: a card hold it brought for the shown
                # total is still good for paying by card, so it stays on the page.
                return CheckoutOutcome(
                    OutcomeKind.REJECTED,
                    message=f"There is no exchange rate for {charge_currency} right now.",
                    keep_card_hold=True,
                )
            if submission.wallet_total_seen_minor != quote.total_minor:
                _release_browser_intent(session_factory, card_gateway, submission)
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
            return _refused(session_factory, card_gateway, submission, str(exc))

        authorization: Authorization | None = None
        card_request: AuthorizationRequest | None = None
        if submission.payment_method == PaymentMethod.STRIPE:
            if card_gateway is None:
                return CheckoutOutcome(
                    OutcomeKind.REJECTED, message="Card payments are not available right now."
                )
            request = card_request = AuthorizationRequest(
                amount=amount,
                idempotency_key=card_idempotency_key(submission, amount),
                description=f"OneCart checkout for {user.username}",
                metadata=checkout_intent_metadata(user.id, submission.validation_token),
                payment_token=submission.card_payment_method,
                intent_id=submission.payment_intent_id,
            )
            try:
                authorization = authorize_card(
                    session_factory,
                    card_gateway,
                    request,
                    user_id=user.id,
                    validation_token=submission.validation_token,
                )
            except AuthorizationReleased as exc:
                # Our own release, twice (the next attempt could not be recorded): the card is
                # fine and nothing is held, so not "try another card".
                return CheckoutOutcome(OutcomeKind.REJECTED, message=exc.message)
            except PaymentDeclined as exc:
                return CheckoutOutcome(
                    OutcomeKind.REJECTED, message=f"{exc.message} {CARD_DECLINED_NEXT_STEP}"
                )
            except PaymentUnavailable as exc:
                # Unknown is not refused: Stripe may hold money for this checkout. The sweeper
                # resolves the hold (used by this form's order on a retry, or released).
                # Stripe's own failure is stored under the key: past a bound with no intent
                # found, the hold goes before an operator, and the shopper is told so.
                with_operator = record_hold_in_doubt(
                    session_factory,
                    user.id,
                    submission.validation_token,
                    request,
                    exc.message,
                    stripe_failed=isinstance(exc, PaymentServiceFailed),
                )
                return CheckoutOutcome(
                    OutcomeKind.IN_DOUBT,
                    message=in_doubt_message(with_operator=with_operator),
                    keep_card_hold=True,
                )

        try:
            order = record_order(
                session,
                user,
                quote,
                authorization=authorization,
                shipping=submission.shipping,
                payment_method=submission.payment_method,
                validation_token=submission.validation_token,
            )
            session.commit()
        except StockShortfall as shortfall:
            # Another checkout took the units between the re-check and this order (their
            # holds are compare-and-set): nothing was recorded, the card hold is given back
            # and the cart lowered to what is left, for the shopper to look at again.
            session.rollback()
            if authorization is None:
                _release_browser_intent(session_factory, card_gateway, submission)
            else:
                _release_authorization(
                    session_factory, card_gateway, submission, card_request, authorization
                )
            change = limit_cart_line_to_stock(session, user, shortfall.product_id)
            session.commit()
            return CheckoutOutcome(
                OutcomeKind.CHANGED,
                message=f"{shortfall.message} Nothing was charged; please review your order.",
                changes=(change,) if change is not None else (),
                unchecked=revalidation.unchecked,
            )
        except PaymentDeclined as exc:
            session.rollback()
            # The wallet does not cover the total: a card hold the form brought for this very
            # total is still good for paying by card instead, so it stays on the page.
            return CheckoutOutcome(
                OutcomeKind.REJECTED,
                message=exc.message,
                keep_card_hold=submission.payment_method == PaymentMethod.WALLET,
            )
        except BaseException:
            # The order may be committed even though the commit raised (the connection dropped
            # after COMMIT was sent), or made by another submit of this form (the token is
            # unique). Ask the database before releasing the hold: a hold the order holds is
            # never released, and when the database cannot answer, neither is this one: it is
            # left to the sweeper, which releases it unless an order uses it (card_holds).
            with contextlib.suppress(Exception):
                session.rollback()
            try:
                earlier = recorded_order(session_factory, submission.validation_token)
            except Exception as exc:
                logger.exception(
                    "checkout of user %s: cannot tell whether the order was recorded",
                    submission.user_id,
                )
                _leave_hold_to_sweeper(
                    session_factory, submission, card_request, authorization, str(exc)
                )
                raise
            if earlier is None or earlier.provider_reference != (
                authorization.provider_reference if authorization else None
            ):
                _release_authorization(
                    session_factory, card_gateway, submission, card_request, authorization
                )
            if earlier is not None:
                return _existing_outcome(earlier, submission.user_id)
            raise
        if submission.payment_method == PaymentMethod.WALLET:
            _release_unused_hold(session_factory, card_gateway, submission)
        return CheckoutOutcome(
            OutcomeKind.CREATED,
            order_id=order.id,
            order_number=order.number,
            unchecked=revalidation.unchecked,
        )


# How many unavailable lines the refusal names (the page lists all of them).
NAMED_UNAVAILABLE_LINES = 3


def _nothing_to_pay_message(quote: CheckoutQuote) -> str:
    """Why a submit has nothing to charge: an empty cart (another tab bought it), only hand-off
    items, or lines none of which can be bought now, named with the reason (the last units
    other shoppers bought since the form was shown: commerce.offer_stock)."""
    if quote.unavailable:
        named = " ".join(
            f"“{isolated(line.title)}” ({line.marketplace_name}): {line.reason}"
            for line in quote.unavailable[:NAMED_UNAVAILABLE_LINES]
        )
        more = len(quote.unavailable) - NAMED_UNAVAILABLE_LINES
        return (
            "There is nothing in your cart that can be paid through OneCart. "
            + named
            + (f" And {more} more." if more > 0 else "")
            + " Nothing was charged."
        )
    if not quote.is_empty:
        return "There is nothing in your cart that can be paid through OneCart."
    return "Your cart is empty."


def _refused(
    session_factory: sessionmaker[Session],
    gateway: PaymentGateway | None,
    submission: CheckoutSubmission,
    message: str,
) -> CheckoutOutcome:
    """A submit refused before any authorization: the card hold Stripe.js made for this form, if
    any, is released now (no order can use it: none exists for the token, under the lock), not
    left on the card until the sweeper finds it unrecorded."""
    _release_browser_intent(session_factory, gateway, submission)
    return CheckoutOutcome(OutcomeKind.REJECTED, message=message)


def _release_browser_intent(
    session_factory: sessionmaker[Session],
    gateway: PaymentGateway | None,
    submission: CheckoutSubmission,
) -> None:
    """A card hold Stripe.js made for a form whose submit is refused is released now, even one
    still `processing`; a release with no answer is left in doubt for the sweeper
    (commerce.form_holds), never taken for done."""
    if gateway is None or not submission.payment_intent_id:
        return
    release_form_hold(
        session_factory,
        gateway,
        user_id=submission.user_id,
        validation_token=submission.validation_token,
        intent_id=submission.payment_intent_id,
        shown_minor=submission.total_seen_minor,
        currency=submission.display_currency,
    )


def _release_unused_hold(
    session_factory: sessionmaker[Session],
    gateway: PaymentGateway | None,
    submission: CheckoutSubmission,
) -> None:
    """The order this form made is paid from the wallet: a card hold Stripe.js made for the form
    before the shopper switched to the wallet is no order's (the form's token has this wallet
    order, made under the lock), so it is released now rather than left on the card for the
    sweeper. The order stands whatever happens here: a hold that cannot be released is still
    found by the sweeper."""
    try:
        _release_browser_intent(session_factory, gateway, submission)
    except Exception:
        logger.exception(
            "card hold %s of a wallet-paid checkout not released; left to the sweeper",
            submission.payment_intent_id,
        )


def _release_authorization(
    session_factory: sessionmaker[Session],
    gateway: PaymentGateway | None,
    submission: CheckoutSubmission,
    request: AuthorizationRequest | None,
    authorization: Authorization | None,
) -> None:
    """Give back a card hold whose order could not be written (nothing else references it);
    one that cannot be released now is left to the sweeper, never silently."""
    if gateway is None or authorization is None:
        return
    try:
        void_intent(session_factory, gateway, authorization.provider_reference)
    except PaymentError as exc:
        logger.warning("could not release %s: %s", authorization.provider_reference, exc)
        _leave_hold_to_sweeper(session_factory, submission, request, authorization, exc.message)


def _leave_hold_to_sweeper(
    session_factory: sessionmaker[Session],
    submission: CheckoutSubmission,
    request: AuthorizationRequest | None,
    authorization: Authorization | None,
    error: str,
) -> None:
    """Record a card hold this submit could not settle as a hold in doubt (by its intent id):
    the sweeper keeps it if an order uses it, else releases it. With the database unreachable
    the record may fail too: the hold then expires uncaptured (logged)."""
    if request is None or authorization is None:
        return
    try:
        record_hold_in_doubt(
            session_factory,
            submission.user_id,
            submission.validation_token,
            request,
            error,
            intent_id=authorization.provider_reference,
        )
    except Exception:
        logger.exception(
            "card hold %s could not be recorded for the sweeper; it expires uncaptured",
            authorization.provider_reference,
        )


def new_checkout_token() -> str:
    """A fresh validation token for one rendered checkout form."""
    return new_validation_token()


def changes_by_product(changes: Sequence[LineChange]) -> dict[int, LineChange]:
    """Changes keyed by product id, for highlighting lines on the re-rendered page."""
    return {change.product_id: change for change in changes}

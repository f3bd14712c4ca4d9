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
   and the emptied cart are then ONE transaction, keyed by the validation token (unique).
4. The caller dispatches the outbox (storefront.jobs): one RQ job per sub-order. If Redis is down
   the rows stay undispatched and the sweeper enqueues them later.

Money: the order is charged in one currency (the display currency for cards, the wallet's for the
wallet). Each line is converted once with the FX table; a sub-order's share is the sum of its
lines, so the shares add up to the charged total exactly, and the rates used are stored.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import random
import re
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from adapters.base import Capability, MarketplaceAdapter, MarketplaceError, NotFound, Offer
from commerce.fx import FxTable
from commerce.marketplace_access import AdapterProvider, marketplace_can
from commerce.models import CartItem, Marketplace, Product, User, utc_now
from commerce.notifications import notify
from commerce.order_models import (
    CheckoutLock,
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
from commerce.payments.stripe_gateway import STRIPE_WORST_CALL_S
from commerce.payments.wallet_gateway import WalletGateway
from commerce.placement import expected_placement_seconds
from onecart.money import Money, MoneyError

logger = logging.getLogger(__name__)

# Live re-validation: how long one marketplace may take for all its lines (the checkout must
# answer quickly; its adapters retry once, see marketplace_access.lookup_adapter_for_marketplace).
REVALIDATION_DEADLINE_S = 4.0
# How long a shopper's second checkout waits for their first one, and the SQLite lease length:
# longer than any checkout can take — the live re-check, then two worst-case Stripe calls (an
# authorization and the release of a hold that cannot be used), plus a margin — so the lease is
# never lost while its holder is still paying, and a crashed holder's lease simply runs out.
LOCK_WAIT_S = 60.0
LOCK_LEASE = timedelta(seconds=REVALIDATION_DEADLINE_S + 2 * STRIPE_WORST_CALL_S + 30)
LOCK_POLL_S = 0.05
VALIDATION_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")


class CheckoutError(Exception):
    """The checkout cannot go ahead; `message` is written for the shopper."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class CheckoutBusy(CheckoutError):
    """Another checkout of the same shopper held the lock for too long."""


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
        if not re.fullmatch(r"[A-Z]{2}", self.country.strip().upper()):
            problems["country"] = "Choose a country (two-letter code)."
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


# --- Quote: the cart priced for payment ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuoteLine:
    """A cart line as checkout prices it. `charge_minor` is in the quote's currency."""

    product_id: int
    external_id: str
    title: str
    product_url: str | None
    image_url: str | None
    quantity: int
    unit_price_minor: int
    currency: str
    charge_minor: int | None
    price_seen_minor: int | None
    currency_seen: str | None

    @property
    def line_total_minor(self) -> int:
        """Unit price × quantity in the offer's currency."""
        return self.unit_price_minor * self.quantity


@dataclass(frozen=True, slots=True)
class QuoteGroup:
    """One marketplace's lines: the future sub-order (or a hand-off)."""

    marketplace_id: int
    slug: str
    name: str
    logo: str | None
    marketplace_currency: str
    handoff: bool
    lines: tuple[QuoteLine, ...]
    # In the marketplace's currency (None when a rate is missing).
    amount_minor: int | None
    # In the quote's currency: the share of the total (None when a rate is missing).
    charge_minor: int | None


@dataclass(frozen=True, slots=True)
class UnavailableLine:
    """A cart line that cannot be bought now, with the reason."""

    product_id: int
    title: str
    marketplace_name: str
    reason: str


@dataclass(frozen=True, slots=True)
class CheckoutQuote:
    """The cart priced in one currency: what the checkout page shows and the order charges."""

    currency: str
    groups: tuple[QuoteGroup, ...]
    # What OneCart charges: the orderable groups' shares (None when a rate is missing).
    total_minor: int | None
    # What the hand-off items come to, in the same currency (shown, never charged).
    handoff_total_minor: int | None
    rates: Mapping[str, Decimal]
    rates_as_of: date | None
    missing_rates: tuple[str, ...]
    unavailable: tuple[UnavailableLine, ...]
    # The published rates behind every conversion (units per 1 USD), stored with the order.
    source_rates: Mapping[str, Decimal] = field(default_factory=dict)

    @property
    def orderable_groups(self) -> tuple[QuoteGroup, ...]:
        """The groups OneCart places and charges."""
        return tuple(group for group in self.groups if not group.handoff)

    @property
    def handoff_groups(self) -> tuple[QuoteGroup, ...]:
        """The groups the shopper completes on the marketplace's site."""
        return tuple(group for group in self.groups if group.handoff)

    @property
    def is_empty(self) -> bool:
        """No purchasable line at all."""
        return not self.groups

    @property
    def digest(self) -> str:
        """What the checkout form is bound to: every orderable line's product, quantity and price
        (not only the total, which two different carts can share)."""
        lines = sorted(
            f"{group.marketplace_id}:{line.product_id}:{line.quantity}:"
            f"{line.unit_price_minor}:{line.currency}"
            for group in self.orderable_groups
            for line in group.lines
        )
        return hashlib.sha256("|".join(lines).encode()).hexdigest()[:32]

    @property
    def can_pay(self) -> bool:
        """Something to pay for, and every amount convertible."""
        return bool(self.orderable_groups) and self.total_minor is not None and self.total_minor > 0


def _unavailable_reason(product: Product, marketplace: Marketplace) -> str | None:
    if product.removed_at is not None:
        return f"No longer sold on {marketplace.name}."
    if not marketplace.active:
        return f"{marketplace.name} is not available on OneCart right now."
    if not product.available:
        return "Out of stock."
    return None


def _sum_or_none(values: Sequence[int | None]) -> int | None:
    if any(value is None for value in values):
        return None
    return sum(value for value in values if value is not None)


def build_quote(session: Session, user: User, *, currency: str, fx: FxTable) -> CheckoutQuote:
    """Price the shopper's cart in `currency`, grouped by marketplace (hand-offs apart).

    The per-line conversion is the cart page's, so the total equals the cart's payable total.
    """
    rows = session.execute(
        sa.select(CartItem, Product, Marketplace)
        .join(Product, CartItem.product_id == Product.id)
        .join(Marketplace, Product.marketplace_id == Marketplace.id)
        .where(CartItem.user_id == user.id)
        .order_by(Marketplace.name, Product.title, Product.id)
    ).all()
    missing: set[str] = set() if fx.has(currency) else {currency}
    grouped: dict[int, tuple[Marketplace, list[QuoteLine]]] = {}
    unavailable: list[UnavailableLine] = []
    for item, product, marketplace in rows:
        reason = _unavailable_reason(product, marketplace)
        if reason is not None:
            unavailable.append(UnavailableLine(product.id, product.title, marketplace.name, reason))
            continue
        line_total = product.price_minor * item.quantity
        charge = fx.convert_or_none(line_total, product.currency, currency)
        if charge is None:
            missing.update(c for c in (product.currency, currency) if not fx.has(c))
        line = QuoteLine(
            product_id=product.id,
            external_id=product.external_id,
            title=product.title,
            product_url=product.product_url,
            image_url=product.image_url,
            quantity=item.quantity,
            unit_price_minor=product.price_minor,
            currency=product.currency,
            charge_minor=charge,
            price_seen_minor=item.price_seen_minor,
            currency_seen=item.currency_seen,
        )
        grouped.setdefault(marketplace.id, (marketplace, []))[1].append(line)

    groups: list[QuoteGroup] = []
    for marketplace, lines in grouped.values():
        amount = _sum_or_none(
            [
                fx.convert_or_none(ln.line_total_minor, ln.currency, marketplace.currency)
                for ln in lines
            ]
        )
        if amount is None:
            missing.update(
                c for c in {marketplace.currency, *(ln.currency for ln in lines)} if not fx.has(c)
            )
        groups.append(
            QuoteGroup(
                marketplace_id=marketplace.id,
                slug=marketplace.slug,
                name=marketplace.name,
                logo=marketplace.logo,
                marketplace_currency=marketplace.currency,
                handoff=not marketplace_can(marketplace, Capability.ORDER),
                lines=tuple(lines),
                amount_minor=amount,
                charge_minor=_sum_or_none([line.charge_minor for line in lines]),
            )
        )
    orderable = [group.charge_minor for group in groups if not group.handoff]
    handoff = [group.charge_minor for group in groups if group.handoff]
    currencies = {line.currency for group in groups for line in group.lines}
    return CheckoutQuote(
        currency=currency,
        groups=tuple(groups),
        total_minor=_sum_or_none(orderable),
        handoff_total_minor=_sum_or_none(handoff),
        rates=fx.rates_for(currencies, currency),
        rates_as_of=fx.as_of,
        missing_rates=tuple(sorted(missing)),
        unavailable=tuple(unavailable),
        source_rates={
            code: fx.per_usd[code] for code in sorted({*currencies, currency}) if code in fx.per_usd
        },
    )


# --- Live re-validation ----------------------------------------------------------------------


class ChangeKind(enum.StrEnum):
    """What live re-validation found different from the catalog."""

    PRICE = "price"
    UNAVAILABLE = "unavailable"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class LineChange:
    """One difference the shopper must see before paying."""

    product_id: int
    title: str
    marketplace_name: str
    kind: ChangeKind
    currency: str
    old_unit_minor: int
    new_unit_minor: int | None


@dataclass(frozen=True, slots=True)
class Revalidation:
    """What the live check found: changes, and marketplaces that did not answer in time."""

    changes: tuple[LineChange, ...] = ()
    unchecked: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _LookupJob:
    marketplace_name: str
    adapter: MarketplaceAdapter
    external_ids: tuple[str, ...]


def _lookup_all(job: _LookupJob) -> dict[str, Offer | None]:
    """Live offers of one marketplace (None: the offer no longer exists)."""
    found: dict[str, Offer | None] = {}
    for external_id in job.external_ids:
        try:
            found[external_id] = job.adapter.lookup_offer(external_id)
        except NotFound:
            found[external_id] = None
    return found


def revalidate_cart(
    session: Session,
    user: User,
    *,
    adapter_for: AdapterProvider,
    deadline_s: float = REVALIDATION_DEADLINE_S,
) -> Revalidation:
    """Re-check live price and availability of every orderable line, one thread per marketplace
    (`adapter_for` should give fast-failing adapters: lookup_adapter_for_marketplace).

    Offers that changed are updated in the storefront DB (flushed; the caller commits), so the
    re-rendered checkout shows today's prices. A marketplace that errs or misses the deadline is
    reported as unchecked and its catalog prices stand: its placement may still fail later, and
    is then refunded.
    """
    rows = session.execute(
        sa.select(Product, Marketplace)
        .join(CartItem, CartItem.product_id == Product.id)
        .join(Marketplace, Product.marketplace_id == Marketplace.id)
        .where(
            CartItem.user_id == user.id, Product.removed_at.is_(None), Product.available.is_(True)
        )
    ).all()
    by_market: dict[int, tuple[Marketplace, list[Product]]] = {}
    for product, marketplace in rows:
        if marketplace_can(marketplace, Capability.ORDER) and marketplace_can(
            marketplace, Capability.LIVE_OFFER
        ):
            by_market.setdefault(marketplace.id, (marketplace, []))[1].append(product)
    if not by_market:
        return Revalidation()

    jobs: dict[int, _LookupJob] = {}
    for market_id, (marketplace, products) in by_market.items():
        adapter = adapter_for(marketplace)
        jobs[market_id] = _LookupJob(
            marketplace.name, adapter, tuple(product.external_id for product in products)
        )
    executor = ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="revalidate")
    futures: dict[int, Future[dict[str, Offer | None]]] = {
        market_id: executor.submit(_lookup_all, job) for market_id, job in jobs.items()
    }
    try:
        wait(futures.values(), timeout=deadline_s)
    finally:
        # Late lookups finish in the background; their results are simply not used.
        executor.shutdown(wait=False, cancel_futures=True)

    changes: list[LineChange] = []
    unchecked: list[str] = []
    for market_id, future in futures.items():
        marketplace, products = by_market[market_id]
        if not future.done() or future.cancelled():
            unchecked.append(marketplace.name)
            continue
        error = future.exception()
        if error is not None:
            if not isinstance(error, MarketplaceError):
                logger.exception("live check of %s failed", marketplace.slug, exc_info=error)
            unchecked.append(marketplace.name)
            continue
        offers = future.result()
        for product in products:
            change = _apply_live_offer(product, marketplace, offers.get(product.external_id))
            if change is not None:
                changes.append(change)
    session.flush()
    return Revalidation(changes=tuple(changes), unchecked=tuple(sorted(unchecked)))


def _apply_live_offer(
    product: Product, marketplace: Marketplace, offer: Offer | None
) -> LineChange | None:
    if offer is None:
        product.available = False
        return LineChange(
            product.id, product.title, marketplace.name, ChangeKind.GONE, product.currency,
            product.price_minor, None,
        )  # fmt: skip
    if not offer.available:
        product.available = False
        return LineChange(
            product.id, product.title, marketplace.name, ChangeKind.UNAVAILABLE, product.currency,
            product.price_minor, None,
        )  # fmt: skip
    if offer.currency == product.currency and offer.price_minor != product.price_minor:
        old = product.price_minor
        product.price_minor = offer.price_minor
        product.updated_at = utc_now()
        return LineChange(
            product.id, product.title, marketplace.name, ChangeKind.PRICE, product.currency,
            old, offer.price_minor,
        )  # fmt: skip
    return None


# --- The lock on a shopper's checkouts -------------------------------------------------------


@contextmanager
def checkout_lock(
    session_factory: sessionmaker[Session], user_id: int, *, wait_s: float = LOCK_WAIT_S
) -> Iterator[None]:
    """Serialize one shopper's checkouts (other shoppers never wait).

    PostgreSQL: SELECT … FOR UPDATE on the shopper's `checkout_locks` row, held by a connection of
    its own for the duration. SQLite locks the whole file for a write transaction, so there the
    row is a lease, taken with one conditional UPDATE and given back at the end (a holder that
    crashed loses it when the lease runs out).
    """
    engine = session_factory.kw["bind"]
    if engine.dialect.name == "postgresql":
        with _row_lock(engine, user_id, wait_s):
            yield
    else:
        with _lease_lock(session_factory, user_id, wait_s):
            yield


@contextmanager
def _row_lock(engine: sa.Engine, user_id: int, wait_s: float) -> Iterator[None]:
    """SELECT … FOR UPDATE SKIP LOCKED, retried until the row is ours: waiters hold no
    connection while they wait (twenty tabs cannot drain the pool), and a holder that dies
    releases the lock with its connection."""
    with engine.connect() as connection:
        connection.execute(
            postgresql_insert(CheckoutLock)
            .values(user_id=user_id)
            .on_conflict_do_nothing(index_elements=["user_id"])
        )
        connection.commit()
    deadline = time.monotonic() + wait_s
    while True:
        connection = engine.connect()
        try:
            locked = connection.execute(
                sa.select(CheckoutLock.user_id)
                .where(CheckoutLock.user_id == user_id)
                .with_for_update(skip_locked=True)
            ).first()
        except BaseException:
            connection.close()
            raise
        if locked is not None:
            break
        connection.rollback()
        connection.close()
        if time.monotonic() > deadline:
            raise CheckoutBusy(
                "Another checkout of yours is still running. Please try again in a moment."
            )
        time.sleep(LOCK_POLL_S)
    try:
        yield
    finally:
        connection.rollback()
        connection.close()


@contextmanager
def _lease_lock(
    session_factory: sessionmaker[Session], user_id: int, wait_s: float
) -> Iterator[None]:
    holder = secrets.token_hex(16)
    deadline = time.monotonic() + wait_s
    while not _take_lease(session_factory, user_id, holder):
        if time.monotonic() > deadline:
            raise CheckoutBusy(
                "Another checkout of yours is still running. Please try again in a moment."
            )
        time.sleep(LOCK_POLL_S * random.uniform(1.0, 3.0))
    try:
        yield
    finally:
        with session_factory() as session, session.begin():
            session.execute(
                sa.update(CheckoutLock)
                .where(CheckoutLock.user_id == user_id, CheckoutLock.holder == holder)
                .values(holder=None, expires_at=None)
            )


def _take_lease(session_factory: sessionmaker[Session], user_id: int, holder: str) -> bool:
    now = utc_now()
    try:
        with session_factory() as session:
            # A plain read first: under WAL it never waits, so shoppers' other tabs poll without
            # queueing for SQLite's single write lock (which the lease holder needs).
            current = session.execute(
                sa.select(CheckoutLock.holder, CheckoutLock.expires_at).where(
                    CheckoutLock.user_id == user_id
                )
            ).first()
            session.rollback()
            if current is not None and current.holder is not None and current.expires_at >= now:
                return False
            with session.begin():
                if current is None:
                    session.add(
                        CheckoutLock(user_id=user_id, holder=holder, expires_at=now + LOCK_LEASE)
                    )
                    session.flush()
                    return True
                taken = session.execute(
                    sa.update(CheckoutLock)
                    .where(
                        CheckoutLock.user_id == user_id,
                        sa.or_(CheckoutLock.holder.is_(None), CheckoutLock.expires_at < now),
                    )
                    .values(holder=holder, expires_at=now + LOCK_LEASE)
                ).rowcount  # type: ignore[attr-defined]
                return bool(taken)
    except (IntegrityError, OperationalError):
        # Another checkout inserted the row (or held the file) at the same moment: wait, retry.
        return False


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


def _existing_outcome(order: Order, user_id: int) -> CheckoutOutcome:
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
        except IntegrityError:
            session.rollback()
            _release_authorization(card_gateway, authorization)
            earlier = _existing_order(session, submission.validation_token)
            if earlier is not None:
                return _existing_outcome(earlier, submission.user_id)
            raise
        except BaseException:
            session.rollback()
            _release_authorization(card_gateway, authorization)
            raise
        return CheckoutOutcome(
            OutcomeKind.CREATED,
            order_id=order.id,
            order_number=order.number,
            unchecked=revalidation.unchecked,
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
                )
            )
            if not group.handoff:
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
        f"We received order {order.number} ({_money_text(amount)}) and are placing it with "
        f"{markets}.",
    )
    session.flush()
    return order


def _money_text(amount: Money) -> str:
    return f"{amount.amount:,} {amount.currency}"


def new_checkout_token() -> str:
    """A fresh validation token for one rendered checkout form."""
    return new_validation_token()


def changes_by_product(changes: Sequence[LineChange]) -> dict[int, LineChange]:
    """Changes keyed by product id, for highlighting lines on the re-rendered page."""
    return {change.product_id: change for change in changes}

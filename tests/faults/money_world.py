"""The world the model-based fault test (test_money_model.py) runs in: the plain services of the
money path on the test database, wired to the fakes of money_fakes.py, and what is true of it.

`MoneyWorld` seeds three marketplaces (USD, orders, tracking and cancels), a few products and a
shopper with a wallet; runs checkout, placement, the shopper's cancellation, tracking, the
sweeper and Stripe's webhook events as the jobs would (no Flask, no RQ: the sweeper's dispatch
only marks outbox rows sent; the test itself plays the placement worker); moves time forward by
moving every stored timestamp back (the clock is the database's); and states what must hold
after every step (`problems_now`) and once the sweeper has had its passes (`problems_settled`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from adapters.base import OrderStatus
from commerce.accounts import register_user
from commerce.cancellation import OrderActionError, carry_out_cancellation, request_cancellation
from commerce.checkout import CheckoutOutcome, CheckoutSubmission, ShippingDetails, submit_checkout
from commerce.checkout_quote import build_quote
from commerce.db import get_session_factory
from commerce.exactly_once_models import CardHoldInDoubt
from commerce.fx import FxTable
from commerce.models import Base, CartItem, Marketplace, Product, User, import_all_models
from commerce.notification_models import Notification
from commerce.order_models import (
    PLACED_SUB_ORDER_STATUSES,
    UNSETTLED_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundStatus,
    SubOrderStatus,
)
from commerce.orders import order_books_problems, wallet_books_problems
from commerce.payments.gateway import PaymentGateway
from commerce.payments.wallet_gateway import WalletGateway
from commerce.placement import place_sub_order
from commerce.sweeper import SweepPolicy, sweep
from commerce.tracking import track_open_sub_orders
from commerce.tracking_schedule import TrackingPolicy
from commerce.wallet import top_up
from tests.faults.money_fakes import KEPT_STATUSES, FakeMarketplaces, FakeStripe, Faults

SLUGS = ("alpha", "beta", "gamma")
# Prices in USD cents of each marketplace's two products.
PRICES = {"alpha": (1250, 799), "beta": (4999, 305), "gamma": (1999, 12000)}
WALLET_TOP_UP = Decimal("500")
# Every open sub-order in one tracking pass.
TRACKING = TrackingPolicy(batch_size=50, delivered_batch_size=50)
_tokens = itertools.count(1)
# commerce.refunds' "We refunded $12.50 of order … to your card".
REFUND_TOLD = re.compile(r"We refunded \$([0-9,.]+) of order")
# What commerce.orders.order_books_problems says of an order whose parts are all settled but
# whose capture, void or refunds the next job or sweep still has to make: true between steps
# (the shopper's cancellation settles the payment in its job, not in the request), so checked
# once the sweeper has had its passes, not after every step.
SETTLING = " not done"
SETTLING_WORDS = ("card payment still", "!= taken − released", "!= placed shares")


def empty_database(url: str) -> None:
    import_all_models()
    factory = get_session_factory(url)
    with factory() as session, session.begin():
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())


def _books_problems(session: Session, order: Order) -> list[str]:
    """commerce.orders' books of an order, unless it is on the operator's list: money that could
    not move by itself (a refund Stripe refused for good) is an operator's to balance, as the
    checkout suite's `unbalanced_orders` allows. The other sides' truth is checked for every
    order all the same."""
    if order.attention_reason:
        return []
    return order_books_problems(session, order)


def _holds_moments(column: sa.Column) -> bool:
    """A timestamp column (commerce.models.UTCDateTime decorates DateTime)."""
    kind = getattr(column.type, "impl", column.type)
    return isinstance(kind, sa.DateTime)


@dataclass
class Checkout:
    """One checkout the test made: its outcome and how it paid."""

    method: PaymentMethod
    outcome: CheckoutOutcome
    validation_token: str


class MoneyWorld:
    """See the module docstring."""

    def __init__(self, url: str) -> None:
        empty_database(url)
        self.session_factory: sessionmaker[Session] = get_session_factory(url)
        self.faults = Faults()
        self.stripe = FakeStripe(self.faults)
        self.markets = FakeMarketplaces(self.faults)
        self.checkouts: list[Checkout] = []
        self.webhook_log: list[str] = []
        with self.session_factory() as session, session.begin():
            for slug in SLUGS:
                market = Marketplace(
                    slug=slug,
                    name=slug.title(),
                    kind="fake",
                    api_base_url=f"http://{slug}.invalid",
                    currency="USD",
                    capabilities=["order", "track", "cancel"],
                )
                session.add(market)
                session.flush()
                for index, price in enumerate(PRICES[slug]):
                    session.add(
                        Product(
                            marketplace_id=market.id,
                            external_id=f"{slug}-{index}",
                            title=f"{slug.title()} thing {index}",
                            price_minor=price,
                            currency="USD",
                            available=True,
                            relation_token=f"g-{slug}-{index}",
                            match_method="single",
                            match_confidence=Decimal("1.00"),
                        )
                    )
            user = register_user(
                session,
                username=f"modelbuyer{next(_tokens)}",
                email=f"modelbuyer{next(_tokens)}@example.com",
                password="correct-Horse-7-battery",
            )
            session.flush()
            top_up(session, user, WALLET_TOP_UP, reference=f"model-topup-{user.id}")
            self.user_id = user.id

    # --- Wiring ------------------------------------------------------------------------------

    def gateway_for(self, session: Session, payment: Payment) -> PaymentGateway:
        if payment.method == PaymentMethod.WALLET:
            order = session.get(Order, payment.order_id)
            assert order is not None
            user = session.get(User, order.user_id)
            assert user is not None
            return WalletGateway(session, user)
        return self.stripe

    def card_gateway(self) -> PaymentGateway:
        return self.stripe

    # --- What the shopper and the jobs do ----------------------------------------------------

    def checkout(self, method: PaymentMethod, lines: list[tuple[str, int, int]]) -> Checkout:
        """Fill the cart with (slug, product index, quantity) lines and submit the checkout as
        the form would, with the total and digest the page showed."""
        token = f"model-checkout-token-{next(_tokens):06d}-xxxxxxxx"
        with self.session_factory() as session, session.begin():
            session.execute(sa.delete(CartItem).where(CartItem.user_id == self.user_id))
            for slug, index, quantity in lines:
                product = session.scalar(
                    sa.select(Product).where(Product.external_id == f"{slug}-{index}")
                )
                assert product is not None
                session.add(
                    CartItem(
                        user_id=self.user_id,
                        product_id=product.id,
                        relation_token=product.relation_token,
                        quantity=quantity,
                        price_seen_minor=product.price_minor,
                        currency_seen=product.currency,
                    )
                )
        with self.session_factory() as session:
            user = session.get(User, self.user_id)
            assert user is not None
            quote = build_quote(session, user, currency="USD", fx=FxTable())
        submission = CheckoutSubmission(
            user_id=self.user_id,
            validation_token=token,
            payment_method=method,
            display_currency="USD",
            total_seen_minor=quote.total_minor,
            cart_digest_seen=quote.digest,
            shipping=ShippingDetails(
                name="Ada Lovelace", line1="12 Analytical Way", city="London", country="GB"
            ),
            card_payment_method="pm_card_visa" if method == PaymentMethod.STRIPE else None,
        )
        outcome = submit_checkout(
            self.session_factory,
            submission,
            fx=FxTable(),
            adapter_for=self.markets.adapter_for,
            card_gateway=self.stripe,
            lock_wait_s=0.5,
        )
        made = Checkout(method, outcome, token)
        self.checkouts.append(made)
        return made

    def order_ids(self) -> list[int]:
        with self.session_factory() as session:
            return list(session.scalars(sa.select(Order.id).order_by(Order.id)))

    def sub_order_ids(self, order_id: int) -> list[int]:
        with self.session_factory() as session:
            return list(
                session.scalars(
                    sa.select(MarketplaceOrder.id)
                    .where(MarketplaceOrder.order_id == order_id)
                    .order_by(MarketplaceOrder.id)
                )
            )

    def sub_orders_in(self, statuses: tuple[SubOrderStatus, ...]) -> list[int]:
        with self.session_factory() as session:
            return list(
                session.scalars(
                    sa.select(MarketplaceOrder.id)
                    .where(MarketplaceOrder.status.in_(statuses))
                    .order_by(MarketplaceOrder.id)
                )
            )

    def cancelling_orders(self) -> list[int]:
        with self.session_factory() as session:
            return list(
                session.scalars(
                    sa.select(Order.id)
                    .where(Order.cancel_requested_at.is_not(None))
                    .order_by(Order.id)
                )
            )

    def place(self, sub_order_id: int, *, final_attempt: bool) -> str:
        result = place_sub_order(
            self.session_factory,
            sub_order_id,
            adapter_for=self.markets.adapter_for,
            final_attempt=final_attempt,
            gateway_for=self.gateway_for,
        )
        return result.value

    def request_cancel(self, order_id: int) -> bool:
        with self.session_factory() as session, session.begin():
            number = session.scalar(sa.select(Order.number).where(Order.id == order_id))
            assert number is not None
            try:
                request_cancellation(session, self.user_id, number)
            except OrderActionError:
                return False
        return True

    def carry_out_cancel(self, order_id: int, *, final_attempt: bool) -> None:
        carry_out_cancellation(
            self.session_factory,
            order_id,
            adapter_for=self.markets.adapter_for,
            gateway_for=self.gateway_for,
            final_attempt=final_attempt,
        )

    def track(self) -> None:
        track_open_sub_orders(
            self.session_factory,
            adapter_for=self.markets.adapter_for,
            gateway_for=self.gateway_for,
            policy=TRACKING,
        )

    def sweep(self) -> None:
        sweep(
            self.session_factory,
            lambda message: f"model-job-{message.id}",
            policy=SweepPolicy(),
            gateway_for=self.gateway_for,
            card_gateway=self.card_gateway,
            adapter_for=self.markets.adapter_for,
        )

    def deliver_event(self, index: int) -> str:
        from commerce.payments.stripe_webhooks import handle_stripe_event

        event_id, event_type, data = self.stripe.events[index]
        outcome = handle_stripe_event(self.session_factory, event_id, event_type, data)
        self.webhook_log.append(f"{event_id} {event_type}: {outcome}")
        return outcome

    def advance(self, delta: timedelta) -> None:
        """Time passes: every timestamp we (and Stripe) stored moves `delta` into the past."""
        import_all_models()
        with self.session_factory() as session, session.begin():
            for table in Base.metadata.sorted_tables:
                columns = [c for c in table.columns if _holds_moments(c)]
                keys = list(table.primary_key.columns)
                if not columns or not keys:
                    continue
                for row in session.execute(sa.select(*keys, *columns)).all():
                    values = {
                        column.name: value - delta
                        for column, value in zip(columns, row[len(keys) :], strict=True)
                        if isinstance(value, datetime)
                    }
                    if values:
                        where = [key == row[i] for i, key in enumerate(keys)]
                        session.execute(sa.update(table).where(*where).values(**values))
        self.stripe.age(delta)

    # --- What must be true -------------------------------------------------------------------

    def problems_now(self) -> list[str]:
        """What must hold after every step, from our database and the other sides' truth."""
        problems = [*self.stripe.violations, *self.markets.violations]
        with self.session_factory() as session:
            for order in session.scalars(sa.select(Order).order_by(Order.id)):
                problems += [
                    problem
                    for problem in _books_problems(session, order)
                    if not problem.endswith(SETTLING)
                    and not any(words in problem for words in SETTLING_WORDS)
                ]
                problems += self._refunded_yet_held(order)
                problems += self._card_books(order)
                problems += self._refunds_told(session, order)
            user = session.get(User, self.user_id)
            assert user is not None
            problems += wallet_books_problems(session, user)
        return problems

    def _refunded_yet_held(self, order: Order) -> list[str]:
        """No money of a part goes back (refunded, released, or on its way) while its
        marketplace keeps an order for it."""
        problems = []
        payment = order.payment
        if payment is None:
            return problems
        for refund in payment.refunds:
            if refund.status == RefundStatus.FAILED or refund.sub_order_id is None:
                continue
            sub = next(s for s in order.sub_orders if s.id == refund.sub_order_id)
            held = self.markets.held(sub.marketplace.slug, order.relation_token)
            if held is not None and held.status in KEPT_STATUSES:
                problems.append(
                    f"order {order.number}: {refund.kind} {refund.id} ({refund.status}) of "
                    f"{refund.amount_minor} for the {sub.marketplace.slug} part "
                    f"({sub.status}), while {held.order_id} is {held.status} there"
                )
        return problems

    def _card_books(self, order: Order) -> list[str]:
        """A card payment we record settled agrees with Stripe's intent."""
        payment = order.payment
        if payment is None or payment.method != PaymentMethod.STRIPE:
            return []
        intent = self.stripe.intents.get(payment.provider_reference)
        where = f"order {order.number} ({payment.provider_reference}, {payment.status})"
        if intent is None:
            return [f"{where}: no such intent at Stripe"]
        problems = []
        if payment.status in (
            PaymentStatus.CAPTURED,
            PaymentStatus.PARTIALLY_REFUNDED,
            PaymentStatus.REFUNDED,
        ):
            if intent.status != "succeeded" or intent.captured_minor != payment.captured_minor:
                problems.append(
                    f"{where}: captured {payment.captured_minor} here, Stripe {intent.status} "
                    f"{intent.captured_minor}"
                )
            in_doubt = any(
                r.status in (RefundStatus.PROCESSING, RefundStatus.PENDING) for r in payment.refunds
            )
            ours = sum(
                r.amount_minor
                for r in payment.refunds
                if r.kind.value == "card_refund" and r.status == RefundStatus.SUCCEEDED
            )
            if not in_doubt and ours != intent.refunded_minor:
                problems.append(f"{where}: refunded {ours} here, {intent.refunded_minor} at Stripe")
        if payment.status == PaymentStatus.VOIDED and intent.status != "canceled":
            problems.append(f"{where}: voided here, {intent.status} at Stripe")
        return problems

    def _refunds_told(self, session: Session, order: Order) -> list[str]:
        """What the shopper was told was refunded to the card is what was refunded (a refund is
        told in the transaction that records it done, so this holds after every step)."""
        payment = order.payment
        if payment is None or payment.method != PaymentMethod.STRIPE:
            return []
        told = 0
        for message in session.scalars(
            sa.select(Notification.message).where(
                Notification.order_id == order.id, Notification.kind == "refund_made"
            )
        ):
            said = REFUND_TOLD.search(message)
            assert said is not None, message
            told += int(Decimal(said.group(1).replace(",", "")) * 100)
        refunded = sum(
            r.amount_minor
            for r in payment.refunds
            if r.kind.value == "card_refund" and r.status == RefundStatus.SUCCEEDED
        )
        problems = []
        if told != refunded:
            problems.append(
                f"order {order.number}: told {told} refunded to the card, refunded {refunded}"
            )
        # A refund told on its way that failed for good is told too (it will not come by itself).
        failed = [r for r in payment.refunds if r.status == RefundStatus.FAILED]
        if failed and not session.scalar(
            sa.select(sa.func.count())
            .select_from(Notification)
            .where(Notification.order_id == order.id, Notification.kind == "refund_failed")
        ):
            problems.append(
                f"order {order.number}: refunds {[r.id for r in failed]} failed, untold"
            )
        return problems

    def problems_settled(self) -> list[str]:
        """Once the sweeper has had its passes: every order settled or flagged for an operator,
        and the money each side holds agrees with what each marketplace kept."""
        problems = [*self.stripe.violations, *self.markets.violations]
        with self.session_factory() as session:
            for order in session.scalars(sa.select(Order).order_by(Order.id)):
                problems += _books_problems(session, order)
            used = set()
            for order in session.scalars(sa.select(Order).order_by(Order.id)):
                payment = order.payment
                assert payment is not None
                used.add(payment.provider_reference)
                flagged = bool(order.attention_reason)
                where = f"order {order.number}"
                busy = [
                    f"{sub.marketplace.slug} {sub.status}"
                    for sub in order.charged_sub_orders
                    if sub.status in UNSETTLED_SUB_ORDER_STATUSES
                ]
                if payment.status in (
                    PaymentStatus.AUTHORIZED,
                    PaymentStatus.CAPTURING,
                    PaymentStatus.RECONCILING,
                ):
                    busy.append(f"payment {payment.status}")
                busy += [
                    f"refund {r.id} {r.status}"
                    for r in payment.refunds
                    if r.status in (RefundStatus.PENDING, RefundStatus.PROCESSING)
                ]
                if busy and not flagged:
                    problems.append(f"{where}: left unsettled and unflagged: {busy}")
                if flagged:
                    continue
                kept = 0
                for sub in order.charged_sub_orders:
                    held = self.markets.held(sub.marketplace.slug, order.relation_token)
                    keeps = held is not None and held.status in KEPT_STATUSES
                    kept += sub.charge_minor if keeps else 0
                    if keeps and sub.status not in PLACED_SUB_ORDER_STATUSES:
                        problems.append(
                            f"{where}: {held.order_id} is {held.status} at {held.slug}, "
                            f"the part is {sub.status} here"
                        )
                taken = self._taken(session, order)
                if taken != kept:
                    problems.append(
                        f"{where}: the shopper paid {taken} net, the marketplaces keep {kept}"
                    )
            for intent in self.stripe.intents.values():
                if intent.intent_id in used or intent.status == "canceled":
                    continue
                hold = session.scalar(
                    sa.select(CardHoldInDoubt).where(CardHoldInDoubt.intent_id == intent.intent_id)
                )
                if hold is None or hold.flagged_at is None:
                    problems.append(
                        f"Stripe holds {intent.intent_id} ({intent.status}, "
                        f"{intent.captured_minor - intent.refunded_minor} taken) for no order, "
                        "unflagged"
                    )
        return problems

    def endings(self) -> list[str]:
        """How each order ended: its parts' statuses, its payment's, and whether flagged."""
        with self.session_factory() as session:
            return [
                "+".join(sorted(sub.status.value for sub in order.charged_sub_orders))
                + f" / {order.payment.status.value if order.payment else '-'}"
                + (" / flagged" if order.attention_reason else "")
                for order in session.scalars(sa.select(Order).order_by(Order.id))
            ]

    def _taken(self, session: Session, order: Order) -> int:
        """What the shopper is out of for the order, by the other side's own record."""
        payment = order.payment
        assert payment is not None
        if payment.method == PaymentMethod.STRIPE:
            intent = self.stripe.intents[payment.provider_reference]
            return (
                intent.captured_minor - intent.refunded_minor if intent.status == "succeeded" else 0
            )
        from commerce.models import WalletEntry

        prefix = payment.provider_reference
        entries = session.scalars(
            sa.select(WalletEntry.amount_minor).where(
                sa.or_(
                    WalletEntry.reference == prefix,
                    sa.func.substr(WalletEntry.reference, 1, len(prefix) + 1) == f"{prefix}:",
                )
            )
        )
        return -sum(entries)

    def refunds_of(self, order_id: int) -> list[Refund]:
        with self.session_factory() as session:
            rows = list(
                session.scalars(sa.select(Refund).join(Payment).where(Payment.order_id == order_id))
            )
            session.expunge_all()
            return rows

    def fake_order_of(self, order_id: int, sub_order_id: int) -> object:
        with self.session_factory() as session:
            sub = session.get(MarketplaceOrder, sub_order_id)
            assert sub is not None
            return self.markets.held(sub.marketplace.slug, sub.order.relation_token)


__all__ = ["SLUGS", "Checkout", "MoneyWorld", "OrderStatus", "empty_database"]

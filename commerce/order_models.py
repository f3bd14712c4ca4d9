"""Orders, sub-orders, their items and tracking events, and the order's payment and refunds, as
SQLAlchemy models. The shopper's notifications are in commerce.notification_models; the rows
that make the lifecycle's effects happen once (job outbox, checkout lock, handled Stripe events,
card holds in doubt) are in commerce.exactly_once_models.

One Order is what the shopper sees (one number, one total, one payment). It holds one
MarketplaceOrder (sub-order) per marketplace in the cart; each orderable sub-order is placed on its
marketplace by an RQ job and tracked afterwards. Hand-off sub-orders (marketplaces without an
order API) are recorded for the shopper's reference, never charged and never placed.

Money is an integer `*_minor` column plus a three-letter currency on the same row. A sub-order
stores its amount twice: in the marketplace's currency (what the marketplace is asked for) and
as its share of the charged total in the payment currency (`charge_minor`), so compensation
refunds exactly that share and the shares of an order always add up to its total.

The tables share `commerce.models.Base`, so the storefront's migrations and test fixtures see them.
"""

from __future__ import annotations

import enum
import re
import secrets
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from commerce.models import Base, Marketplace, Product, User, stored_enum, utc_now

# Crockford's base32 without I, L, O, U: order numbers are read out loud on support calls.
_NUMBER_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


# An order number where a sentence names it ("We received order OC-7K3M-9Q2P …").
ORDER_NUMBER_IN_TEXT = re.compile(rf"\bOC-[{_NUMBER_ALPHABET}]{{4}}-[{_NUMBER_ALPHABET}]{{4}}\b")


def new_order_number() -> str:
    """A public order number such as `OC-7K3M-9Q2P` (random, so numbers leak no volume)."""
    body = "".join(secrets.choice(_NUMBER_ALPHABET) for _ in range(8))
    return f"OC-{body[:4]}-{body[4:]}"


def new_status_token() -> str:
    """The authentication token of an order's status link: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


def new_relation_token() -> str:
    """The reference sent to every marketplace with the order's sub-orders."""
    return f"ocr-{secrets.token_hex(12)}"


def new_validation_token() -> str:
    """The idempotency key a checkout form carries (one per rendered form)."""
    return secrets.token_urlsafe(24)


class OrderStatus(enum.StrEnum):
    """The shopper's order, derived from its sub-orders (commerce.tracking.derive_order_status)."""

    PENDING = "pending"
    PROCESSING = "processing"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    PARTIALLY_DELIVERED = "partially_delivered"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    FAILED = "failed"
    REFUNDED = "refunded"


class SubOrderStatus(enum.StrEnum):
    """One marketplace's part of an order.

    pending → placing → placed → processing → shipped → delivered; or failed (never placed,
    refunded), or cancelled (by the shopper or the marketplace, refunded). Hand-off sub-orders
    stay `handoff`: the shopper completes them on the marketplace's own site.

    `reconciling`: a placement whose outcome is unknown (timeout or 5xx after the request was
    sent); the marketplace is asked for an order with our reference before anything else.
    `needs_attention`: still unknown on a marketplace that cannot be asked; an operator decides
    (storefront admin), nothing is refunded automatically.
    """

    PENDING = "pending"
    PLACING = "placing"
    RECONCILING = "reconciling"
    NEEDS_ATTENTION = "needs_attention"
    PLACED = "placed"
    PROCESSING = "processing"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    FAILED = "failed"
    HANDOFF = "handoff"


# Sub-orders whose share of the payment is still owed to the marketplace (or may be).
LIVE_SUB_ORDER_STATUSES = frozenset(
    {
        SubOrderStatus.PENDING,
        SubOrderStatus.PLACING,
        SubOrderStatus.RECONCILING,
        SubOrderStatus.NEEDS_ATTENTION,
        SubOrderStatus.PLACED,
        SubOrderStatus.PROCESSING,
        SubOrderStatus.SHIPPED,
        SubOrderStatus.DELIVERED,
    }
)
# Not known to be placed or given up: the payment is not settled while any sub-order is here.
UNSETTLED_SUB_ORDER_STATUSES = frozenset(
    {
        SubOrderStatus.PENDING,
        SubOrderStatus.PLACING,
        SubOrderStatus.RECONCILING,
        SubOrderStatus.NEEDS_ATTENTION,
    }
)
PLACED_SUB_ORDER_STATUSES = frozenset(
    {
        SubOrderStatus.PLACED,
        SubOrderStatus.PROCESSING,
        SubOrderStatus.SHIPPED,
        SubOrderStatus.DELIVERED,
    }
)
# Marks a refund passing on a marketplace's own (`refund-sub-<id>-marketplace-refund-<total>`).
MARKETPLACE_REFUND_KEY_INFIX = "-marketplace-refund-"


class PaymentMethod(enum.StrEnum):
    """How the shopper paid."""

    WALLET = "wallet"
    STRIPE = "stripe"


class PaymentStatus(enum.StrEnum):
    """Where the one payment of an order stands."""

    AUTHORIZED = "authorized"
    CAPTURING = "capturing"
    # A capture or void whose outcome is unknown: the PaymentIntent is retrieved before anything.
    RECONCILING = "reconciling"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"
    FAILED = "failed"


class RefundKind(enum.StrEnum):
    """How money went back: an uncaptured authorization released, a card refund, or a wallet credit."""

    RELEASE = "release"
    CARD_REFUND = "card_refund"
    WALLET_CREDIT = "wallet_credit"


class RefundStatus(enum.StrEnum):
    """A refund is pending until the provider (or the ledger) has done it."""

    PENDING = "pending"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class HandoffItemStatus(enum.StrEnum):
    """Where an item the shopper buys on a marketplace's own site stands (set by the shopper: OneCart
    cannot see those purchases)."""

    TO_BUY = "to_buy"
    BOUGHT = "bought"
    REMOVED = "removed"


class Order(Base):
    """What the shopper bought: one number, one total in one currency, one payment."""

    __tablename__ = "orders"
    __table_args__ = (sa.Index("ix_orders_user_id_created_at", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(sa.String(16), unique=True, default=new_order_number)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="RESTRICT"))
    status: Mapped[OrderStatus] = mapped_column(
        stored_enum(OrderStatus, "order_status"), default=OrderStatus.PROCESSING
    )
    # The charged total: the sum of the orderable sub-orders' shares, in the payment currency.
    total_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    # What the hand-off items come to in the same currency (shown, never charged); None = no rate.
    handoff_total_minor: Mapped[int | None] = mapped_column(sa.BigInteger)
    payment_method: Mapped[PaymentMethod] = mapped_column(
        stored_enum(PaymentMethod, "payment_method")
    )
    # The published rates every conversion of this order used: units of each currency per
    # 1 USD, as exact decimal strings (USD itself is 1 and not listed).
    fx_rates: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    fx_as_of: Mapped[date | None] = mapped_column(sa.Date)
    status_token: Mapped[str] = mapped_column(sa.String(64), unique=True, default=new_status_token)
    validation_token: Mapped[str] = mapped_column(sa.String(64), unique=True)
    relation_token: Mapped[str] = mapped_column(
        sa.String(40), unique=True, default=new_relation_token
    )
    email: Mapped[str] = mapped_column(sa.String(254))
    phone: Mapped[str] = mapped_column(sa.String(32), default="")
    ship_name: Mapped[str] = mapped_column(sa.String(160))
    ship_line1: Mapped[str] = mapped_column(sa.String(200))
    ship_line2: Mapped[str] = mapped_column(sa.String(200), default="")
    ship_city: Mapped[str] = mapped_column(sa.String(120))
    ship_postal_code: Mapped[str] = mapped_column(sa.String(20), default="")
    ship_country: Mapped[str] = mapped_column(sa.String(2))
    cancel_requested_at: Mapped[datetime | None]
    # Set when an operator must look at the order (a capture refused for good, a refund refused);
    # cleared by the operator, who is recorded (commerce.flag_resolution). Every open reason,
    # whole (commerce.order_state.flag_order bounds it at FLAG_TEXT_LIMIT).
    attention_reason: Mapped[str | None] = mapped_column(sa.Text)
    # When the order was put on the operator's list (its first open reason; a later reason
    # keeps it); cleared with the flag. None for flags raised before it was recorded (0022).
    flagged_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)

    user: Mapped[User] = relationship()
    sub_orders: Mapped[list[MarketplaceOrder]] = relationship(
        back_populates="order", order_by="MarketplaceOrder.id"
    )
    items: Mapped[list[OrderItem]] = relationship(back_populates="order", order_by="OrderItem.id")
    payment: Mapped[Payment | None] = relationship(back_populates="order", uselist=False)

    @property
    def rates_to_payment_currency(self) -> dict[str, Decimal]:
        """1 unit of each foreign currency the order paid for in the payment currency, derived
        from the stored per-USD rates (exact; pages print them with commerce.fx.format_rate,
        as the checkout did). Hand-off items are paid on their marketplace's site, so their
        currencies are left out."""
        per_usd = {code: Decimal(rate) for code, rate in (self.fx_rates or {}).items()}
        per_usd.setdefault("USD", Decimal(1))
        target = per_usd.get(self.currency)
        if target is None:
            return {}
        paid = {item.currency for item in self.items if item.handoff_status is None}
        currencies = paid - {self.currency}
        return {code: target / per_usd[code] for code in sorted(currencies) if code in per_usd}

    @property
    def charged_sub_orders(self) -> list[MarketplaceOrder]:
        """The sub-orders paid through OneCart (every one except hand-offs)."""
        return [sub for sub in self.sub_orders if sub.status != SubOrderStatus.HANDOFF]

    @property
    def handoff_sub_orders(self) -> list[MarketplaceOrder]:
        """The sub-orders the shopper completes on the marketplace's own site."""
        return [sub for sub in self.sub_orders if sub.status == SubOrderStatus.HANDOFF]

    def __repr__(self) -> str:
        return f"<Order {self.number} {self.status}>"


class MarketplaceOrder(Base):
    """One marketplace's part of an order: placed once, tracked, or compensated."""

    __tablename__ = "marketplace_orders"
    __table_args__ = (
        sa.UniqueConstraint(
            "order_id", "marketplace_id", name="uq_marketplace_orders_order_market"
        ),
        sa.Index("ix_marketplace_orders_status_updated_at", "status", "updated_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id", ondelete="CASCADE"))
    marketplace_id: Mapped[int] = mapped_column(
        sa.ForeignKey("marketplaces.id", ondelete="RESTRICT")
    )
    status: Mapped[SubOrderStatus] = mapped_column(
        stored_enum(SubOrderStatus, "sub_order_status"), default=SubOrderStatus.PENDING
    )
    # What the marketplace is asked for, in its own currency.
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    # This sub-order's share of the order total, in the payment currency (0 for hand-offs).
    charge_minor: Mapped[int] = mapped_column(sa.BigInteger)
    charge_currency: Mapped[str] = mapped_column(sa.String(3))
    # Sent unchanged with every placement attempt, so the marketplace can recognise a repeat.
    idempotency_key: Mapped[str] = mapped_column(sa.String(120), unique=True)
    # What the marketplace's API names the order, whole (an opaque id may be long).
    marketplace_order_id: Mapped[str | None] = mapped_column(sa.Text)
    raw_status: Mapped[str | None] = mapped_column(sa.String(80))
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    # The placement claim: whoever holds this token may record the outcome until the lease ends
    # (after that the sweeper may hand the sub-order to another worker, with a new token).
    claim_token: Mapped[str | None] = mapped_column(sa.String(64))
    claim_expires_at: Mapped[datetime | None]
    # What the marketplace accepted, verified against what was asked: its total in its own
    # currency, and the part of our share it covers (None = everything as asked).
    accepted_amount_minor: Mapped[int | None] = mapped_column(sa.BigInteger)
    accepted_charge_minor: Mapped[int | None] = mapped_column(sa.BigInteger)
    # The shipping and tax the marketplace added on top of the items that OneCart paid (within
    # the marketplace's allowance; never charged to the shopper), in its currency. None: the
    # marketplace did not report them apart.
    absorbed_shipping_minor: Mapped[int | None] = mapped_column(sa.BigInteger)
    absorbed_tax_minor: Mapped[int | None] = mapped_column(sa.BigInteger)
    # The marketplace's refunds passed on to the shopper: its cumulative figure (its currency;
    # compare-and-set by commerce.marketplace_refunds) and what of the share they gave back.
    marketplace_refunded_minor: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    passed_on_charge_minor: Mapped[int] = mapped_column(sa.BigInteger, server_default="0")
    # Its items' units are counted in offer_stock_holds (a marketplace whose orders take no
    # stock: commerce.offer_stock); cleared, once, when they are given back.
    stock_held: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    placing_started_at: Mapped[datetime | None]
    # When its outcome first became unresolved (its first claim): kept while it flips between
    # `placing` (an attempt asking again) and `reconciling`, so the operator's flag counts from
    # it; cleared when an attempt gives it back `pending` (nothing sent), and when the part
    # leaves the two for good (placed, failed, cancelled, needs attention). commerce.sweep_steps.
    unresolved_since: Mapped[datetime | None]
    placed_at: Mapped[datetime | None]
    tracking_number: Mapped[str | None] = mapped_column(sa.String(120))
    carrier: Mapped[str | None] = mapped_column(sa.String(120))
    # The carrier's link as the marketplace gives it (the adapters read up to 2,000 characters).
    tracking_url: Mapped[str | None] = mapped_column(sa.Text)
    # The number the marketplace shows people (Shopify's `name` "#1001"), beside its API id.
    marketplace_order_number: Mapped[str | None] = mapped_column(sa.String(60))
    # The shipment's latest step while shipped (commerce.order_events.ShipmentStep values).
    shipment_status: Mapped[str | None] = mapped_column(sa.String(32))
    # The shopper said it arrived (marketplaces that report no delivery).
    receipt_confirmed_at: Mapped[datetime | None]
    # When it was handed to an operator (needs_attention: its placement's outcome stayed
    # unknown on a marketplace that cannot be asked). Kept once they settled it.
    attention_since: Mapped[datetime | None]
    # The marketplace's answer to the shopper's cancellation: cancelled, refused or unknown.
    cancel_outcome: Mapped[str | None] = mapped_column(sa.String(16))
    # When the abandoned-cancellation sweep took the part ("unknown" meanwhile); cleared with
    # its answer. A claim older than any live sweep's was left by a killed one and is taken over
    # (commerce.abandoned_cancellations).
    cancel_claimed_at: Mapped[datetime | None]
    # When the shopper was told this part's cancellation was refused, so it goes ahead (by the
    # cancellation job or the abandoned-cancellation sweep). Set by a compare-and-set from NULL
    # under the order's lock: whichever run or sweep finds the refusal, it is told once, and a
    # part refused after the order's notice was sent is still told (commerce.cancellation).
    cancel_refusal_told_at: Mapped[datetime | None]
    # The marketplace's last answer about it; the last time it was asked, answered or not.
    last_polled_at: Mapped[datetime | None]
    last_poll_attempt_at: Mapped[datetime | None]
    # Status polls of this one order that failed while its marketplace answered the others
    # (commerce.tracking_health): how many in a row since its last answer, the first of them,
    # the latest error, when it may be asked again (its own backoff), and when it was put on
    # the operator's list for failing too long (once per run of failures).
    poll_failures: Mapped[int] = mapped_column(default=0, server_default="0")
    poll_failing_since: Mapped[datetime | None]
    poll_last_error: Mapped[str | None] = mapped_column(sa.String(300))
    poll_retry_at: Mapped[datetime | None]
    poll_flagged_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)

    order: Mapped[Order] = relationship(back_populates="sub_orders")
    marketplace: Mapped[Marketplace] = relationship()
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="sub_order", order_by="OrderItem.id"
    )

    @property
    def display_number(self) -> str | None:
        """The marketplace's order number as people see it, never a raw API id."""
        return self.marketplace_order_number or human_order_number(self.marketplace_order_id)

    @property
    def is_handoff(self) -> bool:
        """Completed by the shopper on the marketplace; never placed or charged."""
        return self.status == SubOrderStatus.HANDOFF

    @property
    def kept_charge_minor(self) -> int:
        """The share the shopper pays for what the marketplace accepted (the whole share unless
        the placement was partial or billed less), less its refunds passed on since."""
        return self.accepted_share_minor - (self.passed_on_charge_minor or 0)

    @property
    def accepted_share_minor(self) -> int:
        """The share the shopper paid for what the marketplace accepted at placement."""
        if self.accepted_charge_minor is None:
            return self.charge_minor
        return self.accepted_charge_minor

    def __repr__(self) -> str:
        return f"<MarketplaceOrder {self.id} {self.status}>"


def human_order_number(marketplace_order_id: str | None) -> str | None:
    """A readable order number from an API id when the marketplace gave no display number: the
    numeric tail of a global id (`gid://shopify/Order/1001` → `#1001`), else the id itself."""
    if not marketplace_order_id:
        return None
    text = marketplace_order_id.strip()
    if text.startswith("gid://"):
        tail = text.rsplit("/", 1)[-1]
        return f"#{tail}" if tail else None
    return f"#{text}" if text.isdigit() else text


class OrderEvent(Base):
    """One step of an order's story, recorded when it happened: a sub-order's tracking step
    (processing, shipped with its carrier, in transit, delayed, delivered, ...) or the shopper's
    confirmation of receipt. The order page's timelines are built from these rows; each step is
    recorded once per sub-order."""

    __tablename__ = "order_events"
    __table_args__ = (
        sa.UniqueConstraint("sub_order_id", "step", name="uq_order_events_sub_order_step"),
        sa.Index("ix_order_events_order_id", "order_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id", ondelete="CASCADE"))
    sub_order_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("marketplace_orders.id", ondelete="CASCADE")
    )
    step: Mapped[str] = mapped_column(sa.String(32))
    detail: Mapped[str] = mapped_column(sa.String(300), default="")
    # When the marketplace says it happened (else when we saw it).
    occurred_at: Mapped[datetime] = mapped_column(default=utc_now)
    recorded_at: Mapped[datetime] = mapped_column(default=utc_now)


class OrderItem(Base):
    """One line of an order, with the price at the time of purchase and a title snapshot."""

    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(
        sa.ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    sub_order_id: Mapped[int] = mapped_column(
        sa.ForeignKey("marketplace_orders.id", ondelete="CASCADE"), index=True
    )
    product_id: Mapped[int] = mapped_column(sa.ForeignKey("products.id", ondelete="RESTRICT"))
    external_id: Mapped[str] = mapped_column(sa.String(200))
    title: Mapped[str] = mapped_column(sa.String(300))
    product_url: Mapped[str | None] = mapped_column(sa.String(1000))
    image_url: Mapped[str | None] = mapped_column(sa.String(1000))
    quantity: Mapped[int]
    # The units of this line counted in offer_stock_holds (commerce.offer_stock): its quantity
    # while its sub-order holds them, less what the marketplace left out of the placement, 0
    # once given back. Changed only there, with compare-and-set updates.
    held_units: Mapped[int] = mapped_column(default=0, server_default="0")
    # The units the marketplace accepted of this line, recorded with the placement
    # (commerce.placement_outcomes): less than `quantity` when it accepted only part of it.
    # None until then, for hand-offs, for a part an operator marked placed, and for lines
    # placed before it was recorded (migration 0028): read as the whole quantity.
    accepted_quantity: Mapped[int | None]
    unit_price_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    # The line's amount in the payment currency (its part of the sub-order's share).
    charge_minor: Mapped[int] = mapped_column(sa.BigInteger)
    # Hand-off items only (None for items OneCart places): the shopper's own note of whether
    # they bought it on the marketplace's site or dropped it, and when they said so.
    handoff_status: Mapped[HandoffItemStatus | None] = mapped_column(
        stored_enum(HandoffItemStatus, "handoff_item_status", length=16)
    )
    handoff_updated_at: Mapped[datetime | None]

    order: Mapped[Order] = relationship(back_populates="items")
    sub_order: Mapped[MarketplaceOrder] = relationship(back_populates="items")
    product: Mapped[Product] = relationship()

    @property
    def line_total_minor(self) -> int:
        """The line in the marketplace's currency (price at purchase × quantity)."""
        return self.unit_price_minor * self.quantity

    @property
    def accepted_units(self) -> int:
        """The units of the line the shopper gets and pays for: what the marketplace accepted,
        the whole quantity while that is not known."""
        if self.accepted_quantity is None:
            return self.quantity
        return min(max(self.accepted_quantity, 0), self.quantity)

    @property
    def accepted_total_minor(self) -> int:
        """The accepted units at the price at purchase, in the marketplace's currency."""
        return self.unit_price_minor * self.accepted_units

    @property
    def left_out(self) -> bool:
        """Whether the marketplace accepted none of the line (the notification: "left out …")."""
        return self.accepted_quantity is not None and self.accepted_units == 0

    @property
    def quantity_label(self) -> str:
        """The line's quantity as the order's notification says it: "1 of 3" when the
        marketplace accepted only part of it, else "3" (also for a line left out, which the
        page then says is, as the notification does: "0 of 3" read as a line still ordered)."""
        if 0 < self.accepted_units < self.quantity:
            return f"{self.accepted_units} of {self.quantity}"
        return str(self.quantity)


class Payment(Base):
    """The one payment of an order: a wallet debit or a Stripe PaymentIntent (manual capture)."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(
        sa.ForeignKey("orders.id", ondelete="CASCADE"), unique=True
    )
    method: Mapped[PaymentMethod] = mapped_column(stored_enum(PaymentMethod, "payment_method"))
    status: Mapped[PaymentStatus] = mapped_column(stored_enum(PaymentStatus, "payment_status"))
    currency: Mapped[str] = mapped_column(sa.String(3))
    # Taken from the shopper: debited from the wallet, or authorized on the card.
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    captured_minor: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    # PaymentIntent id, or the wallet ledger reference of the debit.
    provider_reference: Mapped[str] = mapped_column(sa.String(120), unique=True)
    failure_message: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)

    order: Mapped[Order] = relationship(back_populates="payment")
    refunds: Mapped[list[Refund]] = relationship(back_populates="payment", order_by="Refund.id")


class Refund(Base):
    """Money given back for one sub-order: its share (failed or cancelled), or the part of it a
    marketplace did not accept (an adjustment); at most one of each per sub-order."""

    __tablename__ = "refunds"

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(
        sa.ForeignKey("payments.id", ondelete="CASCADE"), index=True
    )
    sub_order_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("marketplace_orders.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[RefundKind] = mapped_column(stored_enum(RefundKind, "refund_kind"))
    status: Mapped[RefundStatus] = mapped_column(stored_enum(RefundStatus, "refund_status"))
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    reason: Mapped[str] = mapped_column(sa.String(200), default="")
    # Derived from our own ids (`refund-sub-<id>`), so a retried refund is never a second one.
    idempotency_key: Mapped[str] = mapped_column(sa.String(120), unique=True)
    provider_reference: Mapped[str | None] = mapped_column(sa.String(120))
    # Stripe's ids of refunds of ours it reported failed while this one was `processing`, one a
    # line: a reply naming one of them keeps the refund failed (commerce.refunds._refund_done).
    failures_reported: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    # When the provider call started: a refund stuck in `processing` is looked up after a while.
    processing_started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

    payment: Mapped[Payment] = relationship(back_populates="refunds")
    sub_order: Mapped[MarketplaceOrder | None] = relationship()

"""What only an operator can settle about card money Stripe holds or takes back: disputes
(chargebacks and inquiries) of our charges, and uncaptured card holds that name no account of
this shop. Both are written by Stripe's side of the books (webhooks, the sweeper) and listed on
/admin/attention.
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from commerce.models import Base, User, utc_now
from commerce.order_models import Order


class DisputePurpose(enum.StrEnum):
    """What the disputed charge paid for."""

    ORDER = "order"
    WALLET_TOPUP = "wallet_topup"
    # A charge of no order or top-up of this shop (another integration on the Stripe account).
    UNKNOWN = "unknown"


# Stripe's dispute statuses that say a chargeback: Stripe took the money from the shop.
CHARGEBACK_STATUSES = frozenset({"needs_response", "under_review", "lost"})
# Ended in the shop's favour: the money stays (or comes back to) the shop.
KEPT_STATUSES = frozenset({"won", "prevented", "warning_closed"})


class PaymentDispute(Base):
    """One Stripe dispute (`du_…`), kept up to date from its `charge.dispute.*` events.

    `status` is Stripe's word, kept as Stripe spells it (new statuses are recorded, not refused);
    `status_at` is the time of the event it came from, so an older event delivered late never
    moves it back. A top-up's dispute takes the disputed credit from the wallet once
    (`wallet_held_minor`; what was already spent is `wallet_short_minor`) and gives it back once
    (`wallet_released_minor`) if the shop wins (commerce.dispute_holds)."""

    __tablename__ = "payment_disputes"

    id: Mapped[int] = mapped_column(primary_key=True)
    dispute_id: Mapped[str] = mapped_column(sa.String(120), unique=True)
    charge_id: Mapped[str] = mapped_column(sa.String(120))
    payment_intent_id: Mapped[str | None] = mapped_column(sa.String(120), index=True)
    purpose: Mapped[str] = mapped_column(sa.String(16))
    order_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("orders.id", ondelete="SET NULL"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    reason: Mapped[str] = mapped_column(sa.String(60), default="")
    status: Mapped[str] = mapped_column(sa.String(40))
    status_at: Mapped[datetime]
    evidence_due_by: Mapped[datetime | None]
    funds_withdrawn_at: Mapped[datetime | None]
    funds_reinstated_at: Mapped[datetime | None]
    wallet_held_minor: Mapped[int | None] = mapped_column(sa.BigInteger)
    wallet_short_minor: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    wallet_released_minor: Mapped[int | None] = mapped_column(sa.BigInteger)
    # What of the hold stands in for refunds of the same top-up made while it is held (the card
    # gets that money back once, by the refund): those refunds take only the rest from the
    # wallet, and a won dispute gives back only the hold less this (commerce.wallet_topup).
    # The sum of its TopUpRefundCover rows that no failed refund has undone.
    wallet_refund_covered_minor: Mapped[int] = mapped_column(
        sa.BigInteger, default=0, server_default="0"
    )
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now, onupdate=utc_now)
    closed_at: Mapped[datetime | None] = mapped_column(index=True)
    # An operator dealt with it (answered in Stripe, or nothing to do): it leaves the attention
    # list, stays on the order's and the wallet's pages. Who (username) and when.
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(sa.String(120))

    order: Mapped[Order | None] = relationship()
    user: Mapped[User | None] = relationship()


def is_chargeback(dispute: PaymentDispute) -> bool:
    """Whether the bank took (or is taking) the disputed money back: a chargeback under way or
    lost, by its status, or by funds Stripe withdrew while no status says the shop kept them."""
    return dispute.status in CHARGEBACK_STATUSES or (
        dispute.funds_withdrawn_at is not None and dispute.status not in KEPT_STATUSES
    )


class TopUpRefundCover(Base):
    """What of one refund of a top-up one dispute's hold stood in for (that refund's take-back
    took only the rest from the wallet). A refund Stripe later reports failed gave the card
    nothing, so exactly this goes back: to the hold while the dispute is open or lost (the hold
    then stands for the chargeback alone), to the wallet when the hold was given back already
    less it (commerce.topup_refunds). One row per (dispute, refund), written with the take-back."""

    __tablename__ = "topup_refund_covers"
    __table_args__ = (
        sa.UniqueConstraint("dispute_row_id", "refund_id", name="uq_topup_refund_covers_refund"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    dispute_row_id: Mapped[int] = mapped_column(
        sa.ForeignKey("payment_disputes.id", ondelete="CASCADE")
    )
    refund_id: Mapped[str] = mapped_column(sa.String(120), index=True)
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    dispute: Mapped[PaymentDispute] = relationship()


class UnownedCardHold(Base):
    """A checkout hold Stripe keeps uncaptured that no order or record accounts for and whose
    metadata names no account of this shop: the sweeper cannot resolve it under a shopper's
    checkout lock, so an operator releases it in Stripe (commerce.unrecorded_card_holds). One row per
    PaymentIntent however often the sweeper sees it; `gone_at` once Stripe no longer holds it."""

    __tablename__ = "unowned_card_holds"

    id: Mapped[int] = mapped_column(primary_key=True)
    intent_id: Mapped[str] = mapped_column(sa.String(120), unique=True)
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    # What the PaymentIntent's metadata named as its shopper (empty: nobody).
    named_user: Mapped[str] = mapped_column(sa.String(40), default="")
    hold_created_at: Mapped[datetime]
    first_seen_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_seen_at: Mapped[datetime] = mapped_column(default=utc_now)
    gone_at: Mapped[datetime | None] = mapped_column(index=True)
    # An operator dealt with it (released it in Stripe, or an order uses it): off the list.
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(sa.String(120))

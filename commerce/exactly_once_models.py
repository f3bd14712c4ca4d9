"""The rows that make the order lifecycle's effects happen once across processes and crashes:
the job outbox (a job is enqueued for every change that needs one, even if Redis was down), the
per-shopper checkout lock, the Stripe events already handled, and the card authorizations whose
outcome checkout could not learn.
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from commerce.models import Base, stored_enum, utc_now


class OutboxTopic(enum.StrEnum):
    """What an outbox row asks the job queue to do."""

    PLACE_SUB_ORDER = "place_sub_order"
    CANCEL_ORDER = "cancel_order"


class OutboxMessage(Base):
    """A job to enqueue, written in the same transaction as the change that needs it.

    `dispatched_at` stays empty until the job reached Redis; the sweeper enqueues what never did.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        sa.Index("ix_outbox_messages_dispatched_at_available_at", "dispatched_at", "available_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    topic: Mapped[OutboxTopic] = mapped_column(stored_enum(OutboxTopic, "outbox_topic"))
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id", ondelete="CASCADE"))
    sub_order_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("marketplace_orders.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    available_at: Mapped[datetime] = mapped_column(default=utc_now)
    dispatched_at: Mapped[datetime | None]
    job_id: Mapped[str | None] = mapped_column(sa.String(120))
    dispatch_attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(500))


class CheckoutLock(Base):
    """One row per shopper serializes their checkouts (row lock on PostgreSQL, lease on SQLite)."""

    __tablename__ = "checkout_locks"

    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    holder: Mapped[str | None] = mapped_column(sa.String(64))
    expires_at: Mapped[datetime | None]


class ProcessedWebhookEvent(Base):
    """A Stripe event already handled: a replay of the same event id changes nothing."""

    __tablename__ = "processed_webhook_events"

    event_id: Mapped[str] = mapped_column(sa.String(120), primary_key=True)
    event_type: Mapped[str] = mapped_column(sa.String(80))
    outcome: Mapped[str] = mapped_column(sa.String(200), default="")
    received_at: Mapped[datetime] = mapped_column(default=utc_now)


class CardHoldInDoubt(Base):
    """A card authorization whose outcome checkout could not learn (Stripe unreachable, reply
    lost): no order was written, yet Stripe may hold money on the card. The sweeper asks Stripe
    (commerce.card_holds) and releases the hold unless an order of the same checkout uses it."""

    __tablename__ = "card_holds_in_doubt"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    validation_token: Mapped[str] = mapped_column(sa.String(64))
    # The authorization's idempotency key, also in the PaymentIntent's metadata (its lookup).
    idempotency_key: Mapped[str] = mapped_column(sa.String(80), unique=True)
    # Known when the browser confirmed the PaymentIntent (Stripe.js) before the submit.
    intent_id: Mapped[str | None] = mapped_column(sa.String(120))
    amount_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    resolved_at: Mapped[datetime | None] = mapped_column(index=True)
    resolution: Mapped[str | None] = mapped_column(sa.String(200))
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    # Stripe says the hold was captured though no order uses it (not checkout's doing): set
    # once, when the sweeper first finds it, for an operator to refund it in Stripe; the row is
    # resolved once Stripe reports it refunded in full.
    captured_without_order_at: Mapped[datetime | None]
    # When Stripe first answered this authorization with its own error (a 5xx it stores under
    # the key and replays to every resubmit of the form); kept when a resubmit reopens the row.
    stripe_failed_since: Mapped[datetime | None]
    # When the sweeper put it before an operator: Stripe's failure, and still no PaymentIntent
    # found for it (commerce.card_holds.AUTHORIZATION_FAILURE_FLAG_AFTER).
    flagged_at: Mapped[datetime | None]


class ProviderCallAttempt(Base):
    """Which attempt of one provider call (a PaymentIntent's cancel, or its capture of one amount)
    is current: its number is part of the call's idempotency key. A resend of the attempt (its
    answer was lost) reuses the key; a refusal moves the number on, compare-and-set, so the next
    attempt is not answered with the refusal the provider stored under the key (Stripe replays
    a key's first answer for a day). See commerce.provider_attempts."""

    __tablename__ = "provider_call_attempts"

    # The call without its attempt: `void-<intent id>` or `capture-<intent id>-<amount>`.
    call: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    attempt: Mapped[int] = mapped_column(default=0)
    # When an attempt was last refused (or failed at Stripe, a 5xx it replays the same way),
    # and what it said.
    refused_at: Mapped[datetime | None]
    last_refusal: Mapped[str | None] = mapped_column(sa.String(500))

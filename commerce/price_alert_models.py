"""Price watches and the alerts they fired, as SQLAlchemy models (rules: commerce.price_alerts).

A watch follows one product (a product group, `Product.relation_token`) for one shopper. Every
amount is integer minor units with its own currency column: a target is kept in the currency the
shopper typed it in and converted at evaluation time, so changing the display currency never
loses it.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from commerce.models import Base, utc_now


class PriceWatch(Base):
    """One shopper watching one product's cheapest price.

    `reference_minor`/`reference_currency` is the price the next drop is measured from: the
    cheapest price when the watch started, raised whenever the price rises, and lowered to the
    alerted price after each alert (so one drop makes one alert). `version` is bumped by every
    change the evaluator makes, compare-and-set, so two evaluations never fire the same drop.
    """

    __tablename__ = "price_watches"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "group_id", name="uq_price_watches_user_group"),
        sa.Index("ix_price_watches_group_id", "group_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    group_id: Mapped[str] = mapped_column(sa.String(200))
    # The product's title when the watch was made, for the watch list once it left every store.
    title: Mapped[str] = mapped_column(sa.String(300))
    target_minor: Mapped[int | None] = mapped_column(sa.BigInteger)
    target_currency: Mapped[str | None] = mapped_column(sa.String(3))
    # Alert when the price fell by at least this many percent from the reference (1-90).
    drop_percent: Mapped[int | None]
    reference_minor: Mapped[int | None] = mapped_column(sa.BigInteger)
    reference_currency: Mapped[str | None] = mapped_column(sa.String(3))
    version: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(default=utc_now)
    last_alert_at: Mapped[datetime | None]


class PriceAlert(Base):
    """One price drop told to the shopper: where, how much, and the notification that said so.

    (watch_id, sequence) is unique: the sequence is the watch's version the alert was fired at,
    so the database itself refuses a second alert for the same evaluation of the same drop.
    """

    __tablename__ = "price_alerts"
    __table_args__ = (
        sa.UniqueConstraint("watch_id", "sequence", name="uq_price_alerts_watch_sequence"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    watch_id: Mapped[int] = mapped_column(sa.ForeignKey("price_watches.id", ondelete="CASCADE"))
    sequence: Mapped[int]
    notification_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("notifications.id", ondelete="SET NULL")
    )
    product_id: Mapped[int] = mapped_column(sa.ForeignKey("products.id", ondelete="CASCADE"))
    marketplace_name: Mapped[str] = mapped_column(sa.String(120))
    reason: Mapped[str] = mapped_column(sa.String(20))
    price_minor: Mapped[int] = mapped_column(sa.BigInteger)
    previous_minor: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(3))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

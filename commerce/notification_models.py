"""What the shopper is told: a notification about an order (placed, shipped, refunded, ...) or a
price alert, listed on the site and e-mailed when SMTP is configured (commerce.notifications).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from commerce.models import Base, utc_now
from commerce.order_models import Order


class Notification(Base):
    """Something the shopper should know about an order, or a price alert (no order, a link to
    the product); e-mailed too when SMTP is configured."""

    __tablename__ = "notifications"
    __table_args__ = (sa.Index("ix_notifications_user_id_read_at", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    order_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    sub_order_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("marketplace_orders.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(sa.String(40))
    message: Mapped[str] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    read_at: Mapped[datetime | None]
    emailed_at: Mapped[datetime | None]
    email_attempts: Mapped[int] = mapped_column(default=0)
    # Where the notification leads when it is not about an order (a price alert's product page),
    # as a site-relative path; the e-mail prefixes the site's URL.
    link_path: Mapped[str | None] = mapped_column(sa.String(300))

    order: Mapped[Order | None] = relationship()

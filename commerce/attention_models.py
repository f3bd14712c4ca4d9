"""What an operator did about a flagged order (`Order.attention_reason`): each time a flag is
cleared, the reasons cleared, who cleared them, when, and the operator's note
(commerce.flag_resolution). The order's `attention_reason` only ever holds what is still open;
this is the history.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from commerce.models import Base, utc_now
from commerce.order_models import Order


class FlagResolution(Base):
    """One clearing of an order's flag: all of it by an operator's "Resolved", or one dispute's
    reason by acknowledging that dispute (`dispute_id` set)."""

    __tablename__ = "flag_resolutions"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(
        sa.ForeignKey("orders.id", ondelete="CASCADE"), index=True
    )
    # The reason text cleared, exactly as it stood on the order.
    reason: Mapped[str] = mapped_column(sa.Text)
    note: Mapped[str] = mapped_column(sa.String(500), default="")
    resolved_by: Mapped[str] = mapped_column(sa.String(120))
    resolved_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    # The dispute (`du_…`) whose acknowledgement cleared its own reason; None for a resolution.
    dispute_id: Mapped[str | None] = mapped_column(sa.String(120))

    order: Mapped[Order] = relationship()

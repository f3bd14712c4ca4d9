"""When the shopper was told a part's cancellation was refused
(`marketplace_orders.cancel_refusal_told_at`).

Until now "told?" was read from the notifications: a part was told if a `cancellation_refused`
notice existed for it or for the order as a whole. The order's notice names the parts refused
when it was sent, so a part refused later (a later run of the cancellation job, the
abandoned-cancellation sweep) was taken as told and never told. Each part now keeps when it was
told (a compare-and-set from NULL under the order's lock). Rows before this revision: a refused
part whose order or part has a refusal notice is taken as told (its notice's time), so nothing
already said is said again.

Revision ID: 0027_cancel_refusal_told
Revises: 0026_ended_unresolved_since
Create Date: 2026-12-07 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0027_cancel_refusal_told"
down_revision: str | Sequence[str] | None = "0026_ended_unresolved_since"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# commerce.cancellation.CANCELLATION_REFUSED at this revision.
REFUSED_KIND = "cancellation_refused"


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cancel_refusal_told_at", sa.DateTime(timezone=True), nullable=True)
        )
    parts = sa.table(
        "marketplace_orders",
        sa.column("id", sa.Integer),
        sa.column("order_id", sa.Integer),
        sa.column("cancel_outcome", sa.String),
        sa.column("cancel_refusal_told_at", sa.DateTime(timezone=True)),
    )
    notices = sa.table(
        "notifications",
        sa.column("order_id", sa.Integer),
        sa.column("sub_order_id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    first_notice = (
        sa.select(sa.func.min(notices.c.created_at))
        .where(
            notices.c.order_id == parts.c.order_id,
            notices.c.kind == REFUSED_KIND,
            sa.or_(notices.c.sub_order_id.is_(None), notices.c.sub_order_id == parts.c.id),
        )
        .scalar_subquery()
    )
    op.execute(
        parts.update()
        .where(parts.c.cancel_outcome == "refused")
        .values(cancel_refusal_told_at=first_notice)
    )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.drop_column("cancel_refusal_told_at")

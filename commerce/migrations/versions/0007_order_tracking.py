"""Order tracking a shopper can follow: every tracking step of a sub-order kept as an event (the
order page's timelines), the marketplace's human order number (Shopify's `name` "#1001"), the
shipment's finer step (in transit, delayed), the shopper's confirmation of receipt for
marketplaces that report no delivery, and each marketplace's answer to a cancellation.

Revision ID: 0007_order_tracking
Revises: 0006_handoff_items
Create Date: 2026-12-02 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_order_tracking"
down_revision: str | Sequence[str] | None = "0006_handoff_items"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("marketplace_order_number", sa.String(length=60), nullable=True)
        )
        batch_op.add_column(sa.Column("shipment_status", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("receipt_confirmed_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("cancel_outcome", sa.String(length=16), nullable=True))
    op.create_table(
        "order_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("sub_order_id", sa.Integer(), nullable=True),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=300), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["sub_order_id"], ["marketplace_orders.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sub_order_id", "step", name="uq_order_events_sub_order_step"),
    )
    op.create_index("ix_order_events_order_id", "order_events", ["order_id"])


def downgrade() -> None:
    """Revert this revision (the tracking history is lost)."""
    op.drop_index("ix_order_events_order_id", table_name="order_events")
    op.drop_table("order_events")
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.drop_column("cancel_outcome")
        batch_op.drop_column("receipt_confirmed_at")
        batch_op.drop_column("shipment_status")
        batch_op.drop_column("marketplace_order_number")

"""Hand-off items move into the order: each one the shopper buys on a marketplace's own site
keeps their note of it (to buy, bought, removed) and when it was set.

Revision ID: 0006_handoff_items
Revises: 0005_price_alerts
Create Date: 2026-12-02 09:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_handoff_items"
down_revision: str | Sequence[str] | None = "0005_price_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HANDOFF_ITEM_STATUSES = ("to_buy", "bought", "removed")


def upgrade() -> None:
    """Apply this revision; hand-off items of earlier orders start as 'to buy'."""
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "handoff_status",
                sa.Enum(
                    *HANDOFF_ITEM_STATUSES,
                    name="handoff_item_status",
                    native_enum=False,
                    create_constraint=True,
                    length=16,
                ),
                nullable=True,
            )
        )
        batch_op.add_column(
            sa.Column("handoff_updated_at", sa.DateTime(timezone=True), nullable=True)
        )
    marketplace_orders = sa.table(
        "marketplace_orders", sa.column("id", sa.Integer), sa.column("status", sa.String)
    )
    order_items = sa.table(
        "order_items",
        sa.column("sub_order_id", sa.Integer),
        sa.column("handoff_status", sa.String),
    )
    op.execute(
        order_items.update()
        .where(
            order_items.c.sub_order_id.in_(
                sa.select(marketplace_orders.c.id).where(marketplace_orders.c.status == "handoff")
            )
        )
        .values(handoff_status="to_buy")
    )


def downgrade() -> None:
    """Revert this revision (the shoppers' notes are lost)."""
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.drop_column("handoff_updated_at")
        batch_op.drop_column("handoff_status")

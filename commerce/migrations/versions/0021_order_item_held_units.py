"""The units of each order line that are still counted in offer_stock_holds
(`order_items.held_units`, commerce.offer_stock): a placement the marketplace accepted only part
of gives back the units it left out, line by line, and a later cancellation gives back only what
the lines still hold, not their whole quantity again.

The lines of sub-orders whose units are held (`marketplace_orders.stock_held`, 0019) hold their
whole quantity: before this revision nothing was ever given back in part.

Revision ID: 0021_order_item_held_units
Revises: 0020_pending_email_since
Create Date: 2026-12-06 17:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021_order_item_held_units"
down_revision: str | Sequence[str] | None = "0020_pending_email_since"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("held_units", sa.Integer(), server_default="0", nullable=False)
        )
    items = sa.table(
        "order_items",
        sa.column("sub_order_id", sa.Integer),
        sa.column("quantity", sa.Integer),
        sa.column("held_units", sa.Integer),
    )
    sub_orders = sa.table(
        "marketplace_orders", sa.column("id", sa.Integer), sa.column("stock_held", sa.Boolean)
    )
    op.execute(
        items.update()
        .where(
            items.c.sub_order_id.in_(
                sa.select(sub_orders.c.id).where(sub_orders.c.stock_held.is_(True))
            )
        )
        .values(held_units=items.c.quantity)
    )


def downgrade() -> None:
    """Revert this revision (0019 reads a held sub-order's whole quantity as held again)."""
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.drop_column("held_units")

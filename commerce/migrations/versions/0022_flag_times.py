"""When an order or a part was flagged for an operator: `orders.flagged_at` (the order was put
on /admin/attention's flagged list; cleared with its flag, commerce.flag_resolution) and
`marketplace_orders.attention_since` (its placement's outcome stayed unknown on a marketplace
that cannot be asked, commerce.placement_outcomes.needs_attention).

Flags raised before this revision have no recorded time and stay NULL (the admin page says the
time was not recorded): their rows' updated_at moves with every later change, so it is no
record of when they were flagged.

Revision ID: 0022_flag_times
Revises: 0021_order_item_held_units
Create Date: 2026-12-06 20:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022_flag_times"
down_revision: str | Sequence[str] | None = "0021_order_item_held_units"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attention_since", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.drop_column("attention_since")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("flagged_at")

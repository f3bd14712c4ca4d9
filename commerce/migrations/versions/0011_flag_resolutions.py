"""Who cleared an order's flag for an operator (`attention_reason`), when, what it said and the
operator's note: the history behind /admin/attention's "Resolved" and dispute acknowledgements.

Revision ID: 0011_flag_resolutions
Revises: 0010_absorbed_and_captured
Create Date: 2026-12-06 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_flag_resolutions"
down_revision: str | Sequence[str] | None = "0010_absorbed_and_captured"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "flag_resolutions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("resolved_by", sa.String(length=120), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dispute_id", sa.String(length=120), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_flag_resolutions_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_resolutions")),
    )
    with op.batch_alter_table("flag_resolutions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flag_resolutions_order_id"), ["order_id"])
        batch_op.create_index(batch_op.f("ix_flag_resolutions_resolved_at"), ["resolved_at"])


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("flag_resolutions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flag_resolutions_resolved_at"))
        batch_op.drop_index(batch_op.f("ix_flag_resolutions_order_id"))
    op.drop_table("flag_resolutions")

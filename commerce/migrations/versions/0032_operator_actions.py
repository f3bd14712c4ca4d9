"""What operators did in the admin area (`operator_actions`): who marked a part placed, refunded
it or recorded it cancelled, and who added, edited, disabled or enabled a marketplace, when, and
what it did (commerce.operator_actions). Those actions kept no "by whom" before; a flag's
resolution and an acknowledgement already did.

Revision ID: 0032_operator_actions
Revises: 0030_refund_failures_reported
Create Date: 2026-12-07 16:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032_operator_actions"
down_revision: str | Sequence[str] | None = "0030_refund_failures_reported"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "operator_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("acted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("detail", sa.String(length=1000), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("marketplace_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_operator_actions_order_id_orders"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["marketplace_id"],
            ["marketplaces.id"],
            name=op.f("fk_operator_actions_marketplace_id_marketplaces"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_actions")),
    )
    with op.batch_alter_table("operator_actions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_operator_actions_acted_at"), ["acted_at"])
        batch_op.create_index(batch_op.f("ix_operator_actions_order_id"), ["order_id"])
        batch_op.create_index(batch_op.f("ix_operator_actions_marketplace_id"), ["marketplace_id"])


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("operator_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operator_actions_marketplace_id"))
        batch_op.drop_index(batch_op.f("ix_operator_actions_order_id"))
        batch_op.drop_index(batch_op.f("ix_operator_actions_acted_at"))
    op.drop_table("operator_actions")

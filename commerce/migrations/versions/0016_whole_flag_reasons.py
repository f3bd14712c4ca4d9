"""An order's flag for an operator keeps every open reason whole: `orders.attention_reason` and
the cleared text kept in `flag_resolutions.reason` become TEXT (they were VARCHAR(500), and the
oldest reasons were cut to make room for a new one while an operator still had to act on them).

Revision ID: 0016_whole_flag_reasons
Revises: 0015_sub_order_poll_backoff
Create Date: 2026-12-06 14:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_whole_flag_reasons"
down_revision: str | Sequence[str] | None = "0015_sub_order_poll_backoff"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column(
            "attention_reason",
            existing_type=sa.String(length=500),
            type_=sa.Text(),
            existing_nullable=True,
        )
    with op.batch_alter_table("flag_resolutions", schema=None) as batch_op:
        batch_op.alter_column(
            "reason",
            existing_type=sa.String(length=500),
            type_=sa.Text(),
            existing_nullable=False,
        )


def downgrade() -> None:
    """Revert this revision (texts past 500 characters keep their first 500)."""
    with op.batch_alter_table("flag_resolutions", schema=None) as batch_op:
        batch_op.alter_column(
            "reason",
            existing_type=sa.Text(),
            type_=sa.String(length=500),
            existing_nullable=False,
            postgresql_using="left(reason, 500)",
        )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column(
            "attention_reason",
            existing_type=sa.Text(),
            type_=sa.String(length=500),
            existing_nullable=True,
            postgresql_using="left(attention_reason, 500)",
        )

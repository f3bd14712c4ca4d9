"""Order tracking backs off one sub-order whose status polls fail while its marketplace answers
the others: each sub-order keeps its own failed polls in a row, since when, the latest error,
when it may be asked again, and when it was put on the operator's list for failing too long.

Revision ID: 0015_sub_order_poll_backoff
Revises: 0014_tracking_backoff
Create Date: 2026-12-06 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_sub_order_poll_backoff"
down_revision: str | Sequence[str] | None = "0014_tracking_backoff"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("poll_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("poll_failing_since", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("poll_last_error", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("poll_retry_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("poll_flagged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.drop_column("poll_flagged_at")
        batch_op.drop_column("poll_retry_at")
        batch_op.drop_column("poll_last_error")
        batch_op.drop_column("poll_failing_since")
        batch_op.drop_column("poll_failures")

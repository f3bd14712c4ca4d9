"""Order tracking backs off a marketplace whose status API fails: each sub-order's last poll
attempt (answered or not; `last_polled_at` stays its last answer) orders the queue, and each
marketplace keeps its failed polls in a row, since when, the latest error and when it may be
asked again. Existing sub-orders' last attempt starts as their last answer.

Numbered 0014 so that another branch's 0013 can be chained before it: whichever merges second
sets its down_revision to the other's revision.

Revision ID: 0014_tracking_backoff
Revises: 0013_topup_refund_covers
Create Date: 2026-12-06 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_tracking_backoff"
down_revision: str | Sequence[str] | None = "0013_topup_refund_covers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("last_poll_attempt_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.execute("UPDATE marketplace_orders SET last_poll_attempt_at = last_polled_at")
    with op.batch_alter_table("marketplaces", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("tracking_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("tracking_failing_since", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("tracking_last_error", sa.String(length=300), nullable=True))
        batch_op.add_column(
            sa.Column("tracking_retry_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("marketplaces", schema=None) as batch_op:
        batch_op.drop_column("tracking_retry_at")
        batch_op.drop_column("tracking_last_error")
        batch_op.drop_column("tracking_failing_since")
        batch_op.drop_column("tracking_failures")
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.drop_column("last_poll_attempt_at")

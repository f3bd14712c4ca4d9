"""The Stripe refunds of ours Stripe reported failed while our refund was in doubt
(`refunds.failures_reported`).

Stripe's `refund.failed` event for a refund still `processing` with us only flagged the order:
a later attempt of the same refund may have made one that counts, so the row could not be
failed. The worker's reply (`pending`) arriving next then recorded the failed refund done. The
event now keeps the failed refund's Stripe id on the row, so a reply naming it keeps the refund
failed, while a reply naming another (a later attempt's) still counts. Rows before this
revision stay NULL: nothing reported.

Revision ID: 0030_refund_failures_reported
Revises: 0029_accepted_quantity
Create Date: 2026-12-07 16:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030_refund_failures_reported"
down_revision: str | Sequence[str] | None = "0029_accepted_quantity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("failures_reported", sa.Text(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_column("failures_reported")

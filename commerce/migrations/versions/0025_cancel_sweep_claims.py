"""When the abandoned-cancellation sweep took a part (`marketplace_orders.cancel_claimed_at`).

The sweep takes a part by setting its answer to "unknown" (compare-and-set from NULL) before it
asks the marketplace, and writes the real answer after. A sweep killed in between left "unknown"
behind, which no later sweep took again: the time of the claim lets a later sweep take over a
claim older than any live sweep's (commerce.abandoned_cancellations). Cleared with each answer;
NULL on every row before this revision (none of them is a sweep's claim known to be live).

Revision ID: 0025_cancel_sweep_claims
Revises: 0024_unresolved_since
Create Date: 2026-12-07 04:25:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025_cancel_sweep_claims"
down_revision: str | Sequence[str] | None = "0024_unresolved_since"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("cancel_claimed_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.drop_column("cancel_claimed_at")

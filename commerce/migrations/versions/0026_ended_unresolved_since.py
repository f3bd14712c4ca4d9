"""Clear `marketplace_orders.unresolved_since` on parts that are neither placing nor reconciling.

Until now only an attempt giving a part back `pending` cleared it, so a part placed, failed,
cancelled or put before an operator kept when its outcome first became unknown. From now on
leaving those two statuses for good clears it (commerce.placement_outcomes,
commerce.sub_order_compensation); this clears the rows ended before. Down: nothing to undo (the
values cleared said nothing true any more), so the rows stay as they are.

Revision ID: 0026_ended_unresolved_since
Revises: 0025_cancel_sweep_claims
Create Date: 2026-12-07 06:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026_ended_unresolved_since"
down_revision: str | Sequence[str] | None = "0025_cancel_sweep_claims"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The statuses whose outcome may still be unknown (commerce.order_models.SubOrderStatus).
UNRESOLVED_STATUSES = ("placing", "reconciling")


def upgrade() -> None:
    """Apply this revision."""
    marketplace_orders = sa.table(
        "marketplace_orders",
        sa.column("status", sa.String),
        sa.column("unresolved_since", sa.DateTime(timezone=True)),
    )
    op.execute(
        marketplace_orders.update()
        .where(
            marketplace_orders.c.unresolved_since.is_not(None),
            marketplace_orders.c.status.not_in(UNRESOLVED_STATUSES),
        )
        .values(unresolved_since=None)
    )


def downgrade() -> None:
    """Revert this revision: the cleared values are not restored (see the docstring)."""

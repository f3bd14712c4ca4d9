"""A marketplace's own refunds of part of a placed sub-order, passed on to the shopper: the
cumulative amount it reported that OneCart passed on (marketplace currency) and what of the
sub-order's share that gave back (payment currency), both 0 until it refunds anything.

Revision ID: 0012_marketplace_refunds
Revises: 0011_flag_resolutions
Create Date: 2026-12-06 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_marketplace_refunds"
down_revision: str | Sequence[str] | None = "0011_flag_resolutions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "marketplace_refunded_minor", sa.BigInteger(), nullable=False, server_default="0"
            )
        )
        batch_op.add_column(
            sa.Column("passed_on_charge_minor", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.drop_column("passed_on_charge_minor")
        batch_op.drop_column("marketplace_refunded_minor")

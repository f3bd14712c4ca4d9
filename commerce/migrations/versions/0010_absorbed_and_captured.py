"""Shipping and tax a marketplace added that OneCart paid (within the marketplace's allowance),
recorded on the sub-order; when a card hold in doubt was found captured without an order, so it
is listed for an operator once instead of logged on every sweep; and what of a disputed top-up's
wallet hold stands in for a refund of the same top-up; who acknowledged a dispute or an unowned
card hold on the attention list, and when.

Revision ID: 0010_absorbed_and_captured
Revises: 0009_disputes_and_unowned_holds
Create Date: 2026-12-06 01:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_absorbed_and_captured"
down_revision: str | Sequence[str] | None = "0009_disputes_and_unowned_holds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("absorbed_shipping_minor", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("absorbed_tax_minor", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("card_holds_in_doubt", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("captured_without_order_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("payment_disputes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "wallet_refund_covered_minor", sa.BigInteger(), nullable=False, server_default="0"
            )
        )
    for table in ("payment_disputes", "unowned_card_holds"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True)
            )
            batch_op.add_column(sa.Column("acknowledged_by", sa.String(length=120), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    for table in ("unowned_card_holds", "payment_disputes"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("acknowledged_by")
            batch_op.drop_column("acknowledged_at")
    with op.batch_alter_table("payment_disputes", schema=None) as batch_op:
        batch_op.drop_column("wallet_refund_covered_minor")
    with op.batch_alter_table("card_holds_in_doubt", schema=None) as batch_op:
        batch_op.drop_column("captured_without_order_at")
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.drop_column("absorbed_tax_minor")
        batch_op.drop_column("absorbed_shipping_minor")

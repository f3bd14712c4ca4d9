"""A marketplace's order id and tracking link are stored whole: `marketplace_orders.
marketplace_order_id` (VARCHAR(120)) and `tracking_url` (VARCHAR(1000)) become TEXT. SQLite
stored longer ones anyway; PostgreSQL refused them with the transaction that carried them (a
placement the marketplace accepted was never recorded; a tracking answer never applied).

Revision ID: 0017_whole_marketplace_texts
Revises: 0016_whole_flag_reasons
Create Date: 2026-12-06 14:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_whole_marketplace_texts"
down_revision: str | Sequence[str] | None = "0016_whole_flag_reasons"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.alter_column(
            "marketplace_order_id",
            existing_type=sa.String(length=120),
            type_=sa.Text(),
            existing_nullable=True,
        )
        batch_op.alter_column(
            "tracking_url",
            existing_type=sa.String(length=1000),
            type_=sa.Text(),
            existing_nullable=True,
        )


def downgrade() -> None:
    """Revert this revision (a longer tracking link is dropped; a longer order id is kept cut,
    which an operator must correct: the column cannot hold it)."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.alter_column(
            "tracking_url",
            existing_type=sa.Text(),
            type_=sa.String(length=1000),
            existing_nullable=True,
            postgresql_using="CASE WHEN length(tracking_url) <= 1000 THEN tracking_url END",
        )
        batch_op.alter_column(
            "marketplace_order_id",
            existing_type=sa.Text(),
            type_=sa.String(length=120),
            existing_nullable=True,
            postgresql_using="left(marketplace_order_id, 120)",
        )

"""The units a marketplace accepted of each order line (`order_items.accepted_quantity`).

A placement the marketplace accepted only part of (1 of 3) was recorded as a refund of the rest
and a note, but each line kept only its quantity ordered, so the order page listed "3 × …" at
the price of three. The placement now records the units accepted per line
(commerce.placement_outcomes). Lines before this revision stay NULL, read as their whole
quantity: the note and the refund already told what was left out.

Revision ID: 0029_accepted_quantity
Revises: 0028_refusal_told_by_name
Create Date: 2026-12-07 13:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0029_accepted_quantity"
down_revision: str | Sequence[str] | None = "0028_refusal_told_by_name"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("accepted_quantity", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("order_items", schema=None) as batch_op:
        batch_op.drop_column("accepted_quantity")

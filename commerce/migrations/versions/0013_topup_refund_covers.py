"""What of each refund of a disputed top-up the dispute's hold stood in for, so a refund Stripe
later reports failed gives exactly that back (to the hold, or to the wallet once the hold was
given back).

Revision ID: 0013_topup_refund_covers
Revises: 0012_marketplace_refunds
Create Date: 2026-12-06 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_topup_refund_covers"
down_revision: str | Sequence[str] | None = "0012_marketplace_refunds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "topup_refund_covers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dispute_row_id", sa.Integer(), nullable=False),
        sa.Column("refund_id", sa.String(length=120), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dispute_row_id"],
            ["payment_disputes.id"],
            name=op.f("fk_topup_refund_covers_dispute_row_id_payment_disputes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_topup_refund_covers")),
        sa.UniqueConstraint("dispute_row_id", "refund_id", name="uq_topup_refund_covers_refund"),
    )
    with op.batch_alter_table("topup_refund_covers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_topup_refund_covers_refund_id"), ["refund_id"])


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("topup_refund_covers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_topup_refund_covers_refund_id"))
    op.drop_table("topup_refund_covers")

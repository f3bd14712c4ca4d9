"""Card holds in doubt: a card authorization whose outcome checkout could not learn is recorded,
so the sweeper asks Stripe and releases the hold unless an order uses it.

Revision ID: 0008_card_holds_in_doubt
Revises: 0007_order_tracking
Create Date: 2026-12-04 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_card_holds_in_doubt"
down_revision: str | Sequence[str] | None = "0007_order_tracking"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "card_holds_in_doubt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("validation_token", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=80), nullable=False),
        sa.Column("intent_id", sa.String(length=120), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.String(length=200), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_card_holds_in_doubt_user_id", "card_holds_in_doubt", ["user_id"])
    op.create_index("ix_card_holds_in_doubt_resolved_at", "card_holds_in_doubt", ["resolved_at"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_card_holds_in_doubt_resolved_at", table_name="card_holds_in_doubt")
    op.drop_index("ix_card_holds_in_doubt_user_id", table_name="card_holds_in_doubt")
    op.drop_table("card_holds_in_doubt")

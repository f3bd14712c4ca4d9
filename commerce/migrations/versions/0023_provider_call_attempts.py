"""Which attempt of a PaymentIntent's cancel or capture is current (`provider_call_attempts`):
the attempt's number is part of the Stripe idempotency key, moved on when an attempt is refused,
so a release after a refusal is not answered with the refusal Stripe stored under the key.

Revision ID: 0023_provider_call_attempts
Revises: 0022_flag_times
Create Date: 2026-12-06 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0023_provider_call_attempts"
down_revision: str | Sequence[str] | None = "0022_flag_times"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "provider_call_attempts",
        sa.Column("call", sa.String(length=200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("refused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_refusal", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("call", name=op.f("pk_provider_call_attempts")),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("provider_call_attempts")

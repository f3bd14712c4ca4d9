"""When a waiting e-mail change was asked for: `users.pending_email_since`, so the profile stops
showing a change whose link has expired (commerce.email_change.waiting_email_change).

A change already waiting when this runs is given the migration's time: it shows for at most
another day, as long as its link may still work.

Revision ID: 0020_pending_email_since
Revises: 0019_offer_stock_holds
Create Date: 2026-12-06 17:10:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0020_pending_email_since"
down_revision: str | Sequence[str] | None = "0019_offer_stock_holds"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("pending_email_since", sa.DateTime(timezone=True), nullable=True)
        )
    now = datetime.now(UTC)
    users = sa.table(
        "users",
        sa.column("pending_email", sa.String),
        sa.column("pending_email_since", sa.DateTime(timezone=True)),
    )
    # SQLite stores the naive UTC time (commerce.models.UTCDateTime), PostgreSQL the aware one.
    since = now.replace(tzinfo=None) if op.get_bind().dialect.name == "sqlite" else now
    op.execute(
        users.update().where(users.c.pending_email.is_not(None)).values(pending_email_since=since)
    )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("pending_email_since")

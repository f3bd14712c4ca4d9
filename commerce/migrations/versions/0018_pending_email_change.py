"""An e-mail change waits for the new address to confirm: `users.pending_email` and
`users.pending_email_nonce` (both NULL when no change is waiting). The account keeps its address
until the link e-mailed to the new one is opened.

Revision ID: 0018_pending_email_change
Revises: 0017_whole_marketplace_texts
Create Date: 2026-12-06 15:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_pending_email_change"
down_revision: str | Sequence[str] | None = "0017_whole_marketplace_texts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_email", sa.String(length=254), nullable=True))
        batch_op.add_column(sa.Column("pending_email_nonce", sa.String(length=32), nullable=True))


def downgrade() -> None:
    """Revert this revision (changes still waiting for confirmation are forgotten)."""
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("pending_email_nonce")
        batch_op.drop_column("pending_email")

"""The shopping assistant's prompt history: ai_prompts.

Revision ID: 0003_ai_prompts
Revises: 0002_orders
Create Date: 2026-11-25 06:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_ai_prompts"
down_revision: str | Sequence[str] | None = "0002_orders"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "ai_prompts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("prompt_text", sa.String(length=500), nullable=False),
        sa.Column("response_json", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_ai_prompts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_prompts")),
    )
    with op.batch_alter_table("ai_prompts", schema=None) as batch_op:
        batch_op.create_index("ix_ai_prompts_user_created", ["user_id", "created_at"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("ai_prompts", schema=None) as batch_op:
        batch_op.drop_index("ix_ai_prompts_user_created")
    op.drop_table("ai_prompts")

"""Disputes of our card charges (chargebacks and inquiries), and uncaptured card holds that name
no account of this shop: both listed for an operator at /admin/attention.

Revision ID: 0009_disputes_and_unowned_holds
Revises: 0008_card_holds_in_doubt
Create Date: 2026-12-05 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_disputes_and_unowned_holds"
down_revision: str | Sequence[str] | None = "0008_card_holds_in_doubt"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "payment_disputes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dispute_id", sa.String(length=120), nullable=False),
        sa.Column("charge_id", sa.String(length=120), nullable=False),
        sa.Column("payment_intent_id", sa.String(length=120), nullable=True),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reason", sa.String(length=60), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evidence_due_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column("funds_withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("funds_reinstated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("wallet_held_minor", sa.BigInteger(), nullable=True),
        sa.Column("wallet_short_minor", sa.BigInteger(), nullable=False),
        sa.Column("wallet_released_minor", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name=op.f("fk_payment_disputes_order_id_orders"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_payment_disputes_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_disputes")),
        sa.UniqueConstraint("dispute_id", name=op.f("uq_payment_disputes_dispute_id")),
    )
    with op.batch_alter_table("payment_disputes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_payment_disputes_payment_intent_id"), ["payment_intent_id"]
        )
        batch_op.create_index(batch_op.f("ix_payment_disputes_order_id"), ["order_id"])
        batch_op.create_index(batch_op.f("ix_payment_disputes_user_id"), ["user_id"])
        batch_op.create_index(batch_op.f("ix_payment_disputes_closed_at"), ["closed_at"])
    op.create_table(
        "unowned_card_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("intent_id", sa.String(length=120), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("named_user", sa.String(length=40), nullable=False),
        sa.Column("hold_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gone_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unowned_card_holds")),
        sa.UniqueConstraint("intent_id", name=op.f("uq_unowned_card_holds_intent_id")),
    )
    with op.batch_alter_table("unowned_card_holds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_unowned_card_holds_gone_at"), ["gone_at"])


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("unowned_card_holds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_unowned_card_holds_gone_at"))
    op.drop_table("unowned_card_holds")
    with op.batch_alter_table("payment_disputes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_disputes_closed_at"))
        batch_op.drop_index(batch_op.f("ix_payment_disputes_user_id"))
        batch_op.drop_index(batch_op.f("ix_payment_disputes_order_id"))
        batch_op.drop_index(batch_op.f("ix_payment_disputes_payment_intent_id"))
    op.drop_table("payment_disputes")

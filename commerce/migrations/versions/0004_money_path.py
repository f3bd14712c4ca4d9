"""The money path's new states and columns: sub-orders and payments that are reconciling or need
an operator, placement claims with an owner and a lease, what the marketplace accepted, refunds'
processing start, and the operator flag on orders.

Revision ID: 0004_money_path
Revises: 0003_ai_prompts
Create Date: 2026-12-02 05:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_money_path"
down_revision: str | Sequence[str] | None = "0003_ai_prompts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUB_ORDER_STATUSES = (
    "pending",
    "placing",
    "placed",
    "processing",
    "shipped",
    "delivered",
    "cancelled",
    "failed",
    "handoff",
)
NEW_SUB_ORDER_STATUSES = ("reconciling", "needs_attention")
PAYMENT_STATUSES = (
    "authorized",
    "capturing",
    "captured",
    "partially_refunded",
    "refunded",
    "voided",
    "failed",
)
NEW_PAYMENT_STATUSES = ("reconciling",)


def _enum(values: Sequence[str], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=24)


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.alter_column(
            "status",
            existing_type=_enum(SUB_ORDER_STATUSES, "sub_order_status"),
            type_=_enum(SUB_ORDER_STATUSES + NEW_SUB_ORDER_STATUSES, "sub_order_status"),
            existing_nullable=False,
        )
        batch_op.add_column(sa.Column("claim_token", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("claim_expires_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("accepted_amount_minor", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("accepted_charge_minor", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.alter_column(
            "status",
            existing_type=_enum(PAYMENT_STATUSES, "payment_status"),
            type_=_enum(PAYMENT_STATUSES + NEW_PAYMENT_STATUSES, "payment_status"),
            existing_nullable=False,
        )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("processing_started_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attention_reason", sa.String(length=500), nullable=True))


def downgrade() -> None:
    """Revert this revision (rows in the new states must be resolved first)."""
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("attention_reason")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_column("processing_started_at")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.alter_column(
            "status",
            existing_type=_enum(PAYMENT_STATUSES + NEW_PAYMENT_STATUSES, "payment_status"),
            type_=_enum(PAYMENT_STATUSES, "payment_status"),
            existing_nullable=False,
        )
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.drop_column("accepted_charge_minor")
        batch_op.drop_column("accepted_amount_minor")
        batch_op.drop_column("claim_expires_at")
        batch_op.drop_column("claim_token")
        batch_op.alter_column(
            "status",
            existing_type=_enum(SUB_ORDER_STATUSES + NEW_SUB_ORDER_STATUSES, "sub_order_status"),
            type_=_enum(SUB_ORDER_STATUSES, "sub_order_status"),
            existing_nullable=False,
        )

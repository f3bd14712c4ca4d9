"""Price alerts: price_watches, price_alerts, and a link on notifications that are not about an
order (a price alert opens the product page).

Revision ID: 0005_price_alerts
Revises: 0004_money_path
Create Date: 2026-12-02 09:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_price_alerts"
down_revision: str | Sequence[str] | None = "0004_money_path"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "price_watches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("target_minor", sa.BigInteger(), nullable=True),
        sa.Column("target_currency", sa.String(length=3), nullable=True),
        sa.Column("drop_percent", sa.Integer(), nullable=True),
        sa.Column("reference_minor", sa.BigInteger(), nullable=True),
        sa.Column("reference_currency", sa.String(length=3), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_alert_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_price_watches_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_watches")),
        sa.UniqueConstraint("user_id", "group_id", name="uq_price_watches_user_group"),
    )
    with op.batch_alter_table("price_watches", schema=None) as batch_op:
        batch_op.create_index("ix_price_watches_group_id", ["group_id"], unique=False)
    op.create_table(
        "price_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("watch_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("notification_id", sa.Integer(), nullable=True),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("marketplace_name", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("price_minor", sa.BigInteger(), nullable=False),
        sa.Column("previous_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["watch_id"],
            ["price_watches.id"],
            name=op.f("fk_price_alerts_watch_id_price_watches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["notifications.id"],
            name=op.f("fk_price_alerts_notification_id_notifications"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_price_alerts_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_price_alerts")),
        sa.UniqueConstraint("watch_id", "sequence", name="uq_price_alerts_watch_sequence"),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("link_path", sa.String(length=300), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("link_path")
    op.drop_table("price_alerts")
    with op.batch_alter_table("price_watches", schema=None) as batch_op:
        batch_op.drop_index("ix_price_watches_group_id")
    op.drop_table("price_watches")

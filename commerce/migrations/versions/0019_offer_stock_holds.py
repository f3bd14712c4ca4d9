"""OneCart's own count of the units its live orders hold, per offer, at marketplaces whose order
API takes no stock (DummyJSON, Fake Store; commerce.offer_stock): the `offer_stock_holds` table
and `marketplace_orders.stock_held` (whether a sub-order's units are counted there).

The orders already made are counted as they stand: every live sub-order at such a marketplace
(every order-taking kind but Shopify and WooCommerce, whose orders take their stock) holds its
items' units, so the first checkout after the upgrade sees the units already sold.

Revision ID: 0019_offer_stock_holds
Revises: 0018_pending_email_change
Create Date: 2026-12-06 17:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_offer_stock_holds"
down_revision: str | Sequence[str] | None = "0018_pending_email_change"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# commerce.order_models.LIVE_SUB_ORDER_STATUSES as stored (values), written out: a migration
# must not change with the code.
_LIVE_STATUSES = (
    "pending",
    "placing",
    "reconciling",
    "needs_attention",
    "placed",
    "processing",
    "shipped",
    "delivered",
)
# The formats whose orders take the marketplace's stock (adapters' `order_takes_stock`).
_STOCK_TAKING_KINDS = ("shopify", "woocommerce")


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "offer_stock_holds",
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("held_units", sa.Integer(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "held_units >= 0", name=op.f("ck_offer_stock_holds_held_units_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_offer_stock_holds_product_id_products"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_offer_stock_holds")),
    )
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stock_held", sa.Boolean(), server_default=sa.false(), nullable=False)
        )

    sub_orders = sa.table(
        "marketplace_orders",
        sa.column("id", sa.Integer),
        sa.column("marketplace_id", sa.Integer),
        sa.column("status", sa.String),
        sa.column("stock_held", sa.Boolean),
    )
    marketplaces = sa.table(
        "marketplaces",
        sa.column("id", sa.Integer),
        sa.column("kind", sa.String),
    )
    items = sa.table(
        "order_items",
        sa.column("sub_order_id", sa.Integer),
        sa.column("product_id", sa.Integer),
        sa.column("quantity", sa.Integer),
    )
    holds = sa.table(
        "offer_stock_holds",
        sa.column("product_id", sa.Integer),
        sa.column("held_units", sa.Integer),
    )
    # Hand-off sub-orders are `handoff`, never live: only orders placed through OneCart count.
    op.execute(
        sub_orders.update()
        .where(
            sub_orders.c.status.in_(_LIVE_STATUSES),
            sub_orders.c.marketplace_id.in_(
                sa.select(marketplaces.c.id).where(marketplaces.c.kind.not_in(_STOCK_TAKING_KINDS))
            ),
        )
        .values(stock_held=True)
    )
    op.execute(
        holds.insert().from_select(
            ["product_id", "held_units"],
            sa.select(items.c.product_id, sa.func.sum(items.c.quantity))
            .select_from(items.join(sub_orders, sub_orders.c.id == items.c.sub_order_id))
            .where(sub_orders.c.stock_held.is_(True))
            .group_by(items.c.product_id),
        )
    )


def downgrade() -> None:
    """Revert this revision (the counts are forgotten; the orders stay)."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.drop_column("stock_held")
    op.drop_table("offer_stock_holds")

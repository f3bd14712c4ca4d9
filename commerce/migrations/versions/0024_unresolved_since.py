"""When a sub-order's placement outcome first became unresolved, and when a card authorization
first met Stripe's own failure.

`marketplace_orders.unresolved_since`: set by the first placement claim (`placing`) and kept
while the part flips between `placing` (an attempt asking the marketplace again) and
`reconciling` (no answer); cleared when an attempt gives it back as `pending` (nothing was
sent). The long-unresolved flag (commerce.sweep_steps) counts from it, whatever the status is at
the moment a sweep looks. Rows in flight before this revision fall back to their creation.

`card_holds_in_doubt.stripe_failed_since`: the first time Stripe answered the authorization with
its own error (a 5xx, stored under the key and replayed to every resubmit of the form), kept
when a resubmit reopens the row; `flagged_at`: when the sweeper put the row before an operator,
Stripe's search still showing no PaymentIntent for it (commerce.card_holds).

Revision ID: 0024_unresolved_since
Revises: 0023_provider_call_attempts
Create Date: 2026-12-07 03:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024_unresolved_since"
down_revision: str | Sequence[str] | None = "0023_provider_call_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("unresolved_since", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("card_holds_in_doubt", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("stripe_failed_since", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("card_holds_in_doubt", schema=None) as batch_op:
        batch_op.drop_column("flagged_at")
        batch_op.drop_column("stripe_failed_since")
    with op.batch_alter_table("marketplace_orders", schema=None) as batch_op:
        batch_op.drop_column("unresolved_since")

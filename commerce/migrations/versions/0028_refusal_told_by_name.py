"""A refused part counts as told by an order's refusal notice only when that notice names it.

0027 backfilled `marketplace_orders.cancel_refusal_told_at` from the first `cancellation_refused`
notice of the part or of its order. The order's notice ("These marketplaces could not cancel
their part of your order, so it goes ahead: A, B.") names only the parts refused when it was
sent; a part refused after it (a later run of the cancellation job, the abandoned-cancellation
sweep, before 0027 both read "told?" from the notices) was never told, and 0027 kept it so.
Here a refused part told by no notice of its own, whose order's refusal notices do not name its
marketplace, is marked untold again: the abandoned-cancellation sweep tells it once (its
compare-and-set from NULL). A part named by the order's notice or told by a notice of its own
stays told. A marketplace renamed since its notice is not recognised and its part is told again:
said twice rather than never.

And the other way: before the job's message kept no part id, a cancelled part's sentence merged
into it gave it that part's id, so 0027 (which read only the order's notices without a part id
and the part's own) left a refused part it names untold, to be told again by the sweep. A
refused part named by any refusal notice of its order counts as told (its first such notice's
time).

Down restores 0027's reading for the parts left untold (an untold refused part with a refusal
notice for its order counts as told at that notice's time); a part found told here stays told.

Revision ID: 0028_refusal_told_by_name
Revises: 0027_cancel_refusal_told
Create Date: 2026-12-07 13:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028_refusal_told_by_name"
down_revision: str | Sequence[str] | None = "0027_cancel_refusal_told"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# commerce.cancellation.CANCELLATION_REFUSED at this revision.
REFUSED_KIND = "cancellation_refused"

parts = sa.table(
    "marketplace_orders",
    sa.column("id", sa.Integer),
    sa.column("order_id", sa.Integer),
    sa.column("marketplace_id", sa.Integer),
    sa.column("cancel_outcome", sa.String),
    sa.column("cancel_refusal_told_at", sa.DateTime(timezone=True)),
)
notices = sa.table(
    "notifications",
    sa.column("order_id", sa.Integer),
    sa.column("sub_order_id", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("message", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
marketplaces = sa.table(
    "marketplaces",
    sa.column("id", sa.Integer),
    sa.column("name", sa.String),
)


# LIKE's escape character: a name's own "%", "_" (and this character) are preceded by it, so
# that they match themselves, not any run of characters or any one.
LIKE_ESCAPE = "\\"


def _like_literal(text: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    """`text` as a LIKE pattern that matches only itself (the escape character first)."""
    for special in (LIKE_ESCAPE, "%", "_"):
        text = sa.func.replace(text, special, LIKE_ESCAPE + special)
    return text


def _names_it(
    message: sa.ColumnElement[str], name: sa.ColumnElement[str]
) -> sa.ColumnElement[bool]:
    """Whether the order's notice lists this marketplace name: the list follows "goes ahead: ",
    separated by ", " and ended by "." (a name inside a longer one is not a match; a "%" or "_"
    in a name is that character, not a wildcard)."""
    escaped = _like_literal(name)
    return sa.or_(
        *(
            message.contains(sa.literal(before) + escaped + sa.literal(after), escape=LIKE_ESCAPE)
            for before in (": ", ", ")
            for after in (",", ".")
        )
    )


def upgrade() -> None:
    """Apply this revision."""
    own_notice = (
        sa.select(notices.c.created_at)
        .where(
            notices.c.kind == REFUSED_KIND,
            notices.c.order_id == parts.c.order_id,
            notices.c.sub_order_id == parts.c.id,
        )
        .exists()
    )
    # Any part id: before the job's message kept none, a cancelled part's sentence merged into
    # it gave it that part's id.
    naming_it = sa.and_(
        notices.c.kind == REFUSED_KIND,
        notices.c.order_id == parts.c.order_id,
        marketplaces.c.id == parts.c.marketplace_id,
        _names_it(notices.c.message, marketplaces.c.name),
    )
    named_by_order = sa.select(notices.c.created_at).where(naming_it).exists()
    first_naming_it = sa.select(sa.func.min(notices.c.created_at)).where(naming_it)
    op.execute(
        parts.update()
        .where(
            parts.c.cancel_outcome == "refused",
            parts.c.cancel_refusal_told_at.is_not(None),
            ~own_notice,
            ~named_by_order,
        )
        .values(cancel_refusal_told_at=None)
    )
    op.execute(
        parts.update()
        .where(
            parts.c.cancel_outcome == "refused",
            parts.c.cancel_refusal_told_at.is_(None),
            named_by_order,
        )
        .values(cancel_refusal_told_at=first_naming_it.scalar_subquery())
    )


def downgrade() -> None:
    """Revert this revision."""
    first_notice = (
        sa.select(sa.func.min(notices.c.created_at))
        .where(
            notices.c.order_id == parts.c.order_id,
            notices.c.kind == REFUSED_KIND,
            sa.or_(notices.c.sub_order_id.is_(None), notices.c.sub_order_id == parts.c.id),
        )
        .scalar_subquery()
    )
    op.execute(
        parts.update()
        .where(parts.c.cancel_outcome == "refused", parts.c.cancel_refusal_told_at.is_(None))
        .values(cancel_refusal_told_at=first_notice)
    )

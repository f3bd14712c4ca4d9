"""What operators did in the admin area (`operator_actions`): who, when, to what, and what it did,
for the actions that move a shopper's money on an operator's word (a part marked placed, so the
payment is captured; refunded; recorded cancelled) and those that decide where the workers send
a marketplace's key and which offers shoppers see (a marketplace added, edited, disabled,
enabled). A flag's resolution and a dispute's or card hold's acknowledgement keep their own
"by whom" (commerce.flag_resolution, commerce.acknowledgements).

Each action is one row, written in the transaction that does it, and one line on the
`onecart.operator` logger. Rows are never updated; they keep their subject's words when the
order or marketplace they name is gone. A key's value is never written: only that it changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from commerce.models import Base, Marketplace, utc_now
from commerce.order_models import Order

# The logger every action is written to (written as JSON with the site's other lines: storefront.site_logging).
OPERATOR_LOGGER = "onecart.operator"
logger = logging.getLogger(OPERATOR_LOGGER)

OPERATOR_MAX_LENGTH = 120
SUBJECT_MAX_LENGTH = 200
DETAIL_MAX_LENGTH = 1000

# The marketplace fields an admin sets (commerce.marketplace_admin), as a change lists them;
# the key is compared apart (its value is never written).
MARKETPLACE_FIELDS = (
    "name",
    "kind",
    "api_base_url",
    "currency",
    "country",
    "relation_identifier",
    "description",
    "logo",
    "rating",
    "active",
    "api_key_env",
)
# A field's value in a change, cut (a description is long; the record says it changed).
VALUE_SHOWN_MAX_LENGTH = 80


class OperatorAction(Base):
    """One thing an operator did in the admin area."""

    __tablename__ = "operator_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    acted_at: Mapped[datetime] = mapped_column(default=utc_now, index=True)
    # The admin's username (usernames are unique; kept as text so the record outlives the user).
    operator: Mapped[str] = mapped_column(sa.String(OPERATOR_MAX_LENGTH))
    # What was done: sub_order_marked_placed, sub_order_refunded, marketplace_edited, …
    action: Mapped[str] = mapped_column(sa.String(40))
    # What it was done to, as the admin pages name it ("OC-…: DummyMart", "Lagos Deals (lagos-deals)").
    subject: Mapped[str] = mapped_column(sa.String(SUBJECT_MAX_LENGTH))
    detail: Mapped[str] = mapped_column(sa.String(DETAIL_MAX_LENGTH), default="")
    order_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("orders.id", ondelete="SET NULL"), index=True
    )
    marketplace_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("marketplaces.id", ondelete="SET NULL"), index=True
    )


def record_operator_action(
    session: Session,
    *,
    operator: str,
    action: str,
    subject: str,
    detail: str = "",
    order_id: int | None = None,
    marketplace_id: int | None = None,
) -> OperatorAction:
    """Add the action to `session` (the caller's transaction commits it with what it did) and
    log it on `onecart.operator`."""
    row = OperatorAction(
        operator=operator[:OPERATOR_MAX_LENGTH],
        action=action,
        subject=subject[:SUBJECT_MAX_LENGTH],
        detail=detail[:DETAIL_MAX_LENGTH],
        order_id=order_id,
        marketplace_id=marketplace_id,
        acted_at=utc_now(),
    )
    session.add(row)
    session.flush()
    logger.info(
        "%s: %s %s: %s",
        row.operator,
        row.action,
        row.subject,
        row.detail,
        extra={
            "fields": {
                "event": "operator_action",
                "operator": row.operator,
                "action": row.action,
                "order_id": order_id,
                "marketplace_id": marketplace_id,
            }
        },
    )
    return row


def marketplace_subject(marketplace: Marketplace) -> str:
    """A marketplace as an action names it: "Lagos Deals (lagos-deals)"."""
    return f"{marketplace.name} ({marketplace.slug})"


def marketplace_state(marketplace: Marketplace) -> dict[str, object]:
    """The admin-set fields of a marketplace, and its stored key as a value to compare (never
    shown), before or after a change."""
    state: dict[str, object] = {field: getattr(marketplace, field) for field in MARKETPLACE_FIELDS}
    state["api_key_encrypted"] = marketplace.api_key_encrypted
    return state


def describe_marketplace_change(before: dict[str, object], after: dict[str, object]) -> str:
    """The fields a change set, with their new values ("api_base_url=https://…; API key
    replaced"); the key's value never appears. Empty when nothing changed."""
    parts = []
    for field in MARKETPLACE_FIELDS:
        if before.get(field) != after.get(field):
            shown = "" if after.get(field) is None else str(after.get(field))
            if len(shown) > VALUE_SHOWN_MAX_LENGTH:
                shown = shown[: VALUE_SHOWN_MAX_LENGTH - 1] + "…"
            parts.append(f"{field}={shown}")
    old_key, new_key = before.get("api_key_encrypted"), after.get("api_key_encrypted")
    if old_key != new_key:
        if new_key is None:
            parts.append("API key removed")
        elif old_key is None:
            parts.append("API key set")
        else:
            parts.append("API key replaced")
    return "; ".join(parts)


# The longest order-number filter the actions page reads: numbers are 12 characters
# (OC-XXXX-XXXX), a typed one may carry spaces or a pasted prefix; anything longer is cut.
ORDER_NUMBER_FILTER_MAX_LENGTH = 40


@dataclass(frozen=True)
class OperatorActionsPage:
    """One page of operator actions, newest first, and where it is in the whole list."""

    actions: list[OperatorAction]
    total: int
    page: int
    pages: int


def list_operator_actions(
    session: Session,
    *,
    order_number: str = "",
    marketplace_id: int | None = None,
    page: int = 1,
    page_size: int = 50,
) -> OperatorActionsPage:
    """Operator actions newest first, `page_size` at a time; a page past the end is the last.

    `order_number` finds the actions on that order (case ignored), those whose order has been
    deleted since included: their subject still opens with the number ("OC-…: Shop"); LIKE's
    wildcards in it are plain characters. `marketplace_id` keeps one marketplace's."""
    query = sa.select(OperatorAction)
    number = order_number.strip().upper()[:ORDER_NUMBER_FILTER_MAX_LENGTH]
    if number:
        query = query.where(
            sa.or_(
                OperatorAction.order_id.in_(sa.select(Order.id).where(Order.number == number)),
                OperatorAction.subject.startswith(f"{number}:", autoescape=True),
            )
        )
    if marketplace_id is not None:
        query = query.where(OperatorAction.marketplace_id == marketplace_id)
    total = session.scalar(sa.select(sa.func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // page_size))
    page = max(1, min(page, pages))
    actions = list(
        session.scalars(
            query.order_by(OperatorAction.acted_at.desc(), OperatorAction.id.desc())
            .offset((page - 1) * page_size)
            .limit(page_size)
        )
    )
    return OperatorActionsPage(actions=actions, total=total, page=page, pages=pages)

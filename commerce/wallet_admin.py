"""What an operator sees of one shopper's wallet: the balance, the ledger newest first (each line
named by its cause: card top-up, top-up refunded on the card, dispute hold, ...) and the
shopper's disputes. Read-only; the admin area (storefront.admin) shows it."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.dispute_holds import HOLD_REFERENCE_PREFIX, RELEASE_REFERENCE_PREFIX
from commerce.dispute_models import PaymentDispute
from commerce.models import User, WalletEntry, WalletEntryKind
from commerce.topup_refunds import FAILED_REFUND_REFERENCE_PREFIX, TOPUP_REFUND_REFERENCE_PREFIX
from commerce.wallet import list_wallet_entries, wallet_balance
from commerce.wallet_topup import CARD_TOPUP_REFERENCE_PREFIX
from onecart.money import Money

# Ledger lines per page of an operator's wallet view (`?page=N`, newest first).
LEDGER_PAGE_SIZE = 100
SEARCH_LIMIT = 20
# Reference prefixes of the lines Stripe's side writes (commerce.wallet_topup and
# commerce.dispute_holds), longest first: a top-up refund's prefix also starts with a top-up's.
CAUSES = tuple(
    sorted(
        (
            (TOPUP_REFUND_REFERENCE_PREFIX, "top-up refunded on the card: taken back"),
            (FAILED_REFUND_REFERENCE_PREFIX, "top-up refund failed at the card: given back"),
            (CARD_TOPUP_REFERENCE_PREFIX, "card top-up"),
            (RELEASE_REFERENCE_PREFIX, "dispute won: credit given back"),
            (HOLD_REFERENCE_PREFIX, "dispute: credit held"),
        ),
        key=lambda cause: -len(cause[0]),
    )
)


@dataclass(frozen=True, slots=True)
class WalletOverview:
    """One shopper's wallet as the operator sees it: one page of the ledger."""

    user: User
    balance: Money
    entries: list[WalletEntry]
    disputes: list[PaymentDispute]
    entry_count: int
    page: int
    pages: int


def ledger_cause(entry: WalletEntry) -> str:
    """What caused a ledger line, in an operator's words."""
    for prefix, cause in CAUSES:
        if entry.reference.startswith(prefix):
            return cause
    if entry.kind == WalletEntryKind.TOPUP:
        return "top-up (sandbox: no payment)"
    return {
        WalletEntryKind.PAYMENT: "order payment",
        WalletEntryKind.REFUND: "order refund",
        WalletEntryKind.ADJUSTMENT: "adjustment",
    }.get(entry.kind, str(entry.kind))


def wallet_overview(session: Session, user: User, *, page: int = 1) -> WalletOverview:
    """The balance (the sum of every line), page `page` of the ledger newest first
    (LEDGER_PAGE_SIZE lines; a page past the last is the last), and the disputes."""
    entry_count = (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(WalletEntry)
            .where(WalletEntry.user_id == user.id)
        )
        or 0
    )
    pages = max(1, -(-entry_count // LEDGER_PAGE_SIZE))
    page = min(max(1, page), pages)
    entries = list_wallet_entries(
        session, user, limit=LEDGER_PAGE_SIZE, offset=(page - 1) * LEDGER_PAGE_SIZE
    )
    disputes = list(
        session.scalars(
            sa.select(PaymentDispute)
            .where(PaymentDispute.user_id == user.id)
            .order_by(PaymentDispute.created_at.desc())
        )
    )
    return WalletOverview(
        user=user,
        balance=wallet_balance(session, user),
        entries=entries,
        disputes=disputes,
        entry_count=entry_count,
        page=page,
        pages=pages,
    )


@dataclass(frozen=True, slots=True)
class ShopperSearch:
    """The first SEARCH_LIMIT shoppers matching a query, by id, and how many match in all."""

    users: list[User]
    total: int


def find_shoppers(session: Session, query: str) -> ShopperSearch:
    """Shoppers whose username or e-mail contains `query` (or whose id it is)."""
    query = query.strip()[:254]
    if not query:
        return ShopperSearch([], 0)
    needle = query.lower()
    conditions = [
        sa.func.lower(User.username).contains(needle, autoescape=True),
        User.email.contains(needle, autoescape=True),  # stored lower-case
    ]
    if query.isascii() and query.isdigit() and len(query) < 19:  # int() refuses "²"
        conditions.append(User.id == int(query))
    matching = sa.or_(*conditions)
    users = list(
        session.scalars(sa.select(User).where(matching).order_by(User.id).limit(SEARCH_LIMIT))
    )
    total = len(users)
    if total == SEARCH_LIMIT:
        # More may match: the operator is told to narrow the search (storefront template).
        total = session.scalar(sa.select(sa.func.count()).select_from(User).where(matching)) or 0
    return ShopperSearch(users, total)

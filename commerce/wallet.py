"""The wallet: an append-only ledger per user; the balance is the sum of its lines.

Every line is in the user's wallet currency and references its cause; (kind, reference) is
unique, so retrying a top-up, payment or refund with the same reference never counts twice.
There is no cached balance column: :func:`wallet_balance` sums the ledger (indexed by user).
Amounts are integer minor units. Services flush; the caller commits.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.models import User, WalletEntry, WalletEntryKind
from onecart.money import (
    Money,
    MoneyError,
    currency_exponent,
    from_minor_units,
    to_minor_units,
)

# The largest single top-up, in major units of the wallet currency (a demo-sized limit).
TOPUP_LIMIT_MAJOR = Decimal("10000")
# The sandbox "payment provider" used in the demo; real providers come with the payments issue.
SANDBOX_PROVIDER = "sandbox"


class WalletError(ValueError):
    """A wallet operation that cannot happen, with a message fit for the shopper."""


class InsufficientFunds(WalletError):
    """The balance does not cover a payment."""


@dataclass(frozen=True, slots=True)
class TopUpReceipt:
    """What a top-up produced; `created` is False when the reference had already been used."""

    entry: WalletEntry
    created: bool


def new_topup_reference() -> str:
    """A fresh reference for one top-up form; resubmitting the same form reuses it."""
    return f"{SANDBOX_PROVIDER}-topup-{secrets.token_urlsafe(12)}"


def too_many_decimals_message(currency: str) -> str:
    """What to enter instead of an amount finer than the currency's minor unit: the number of
    decimal places it has (USD 2, KWD 3), or a whole number for currencies without (JPY)."""
    places = currency_exponent(currency)
    if places == 0:
        return f"Enter a whole number of {currency}: {currency} amounts have no decimals."
    unit = "decimal place" if places == 1 else "decimal places"
    return f"Enter an amount in {currency} with at most {places} {unit}."


def topup_limit(currency: str) -> Money:
    """The largest single top-up in `currency`."""
    return Money(to_minor_units(TOPUP_LIMIT_MAJOR, currency), currency)


def topup_minor_units(amount: Decimal, currency: str) -> int:
    """A top-up `amount` (major units) in minor units of `currency`, checked to be exact in the
    currency and positive; WalletError with the message the form shows otherwise. The card
    top-up checks its card steps next, then both check the limit (check_topup_limit)."""
    try:
        minor = to_minor_units(amount, currency)
    except MoneyError as exc:
        raise WalletError(too_many_decimals_message(currency)) from exc
    if minor <= 0:
        raise WalletError("Enter an amount greater than zero.")
    return minor


def check_topup_limit(minor: int, currency: str) -> None:
    """WalletError when `minor` is more than a single top-up in `currency` may be."""
    limit = topup_limit(currency)
    if minor > limit.minor:
        raise WalletError(f"A single top-up can be at most {limit.amount:,} {currency}.")


def wallet_balance(session: Session, user: User) -> Money:
    """The balance: the sum of the user's ledger lines, in the wallet currency."""
    total = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(WalletEntry.amount_minor), 0)).where(
            WalletEntry.user_id == user.id, WalletEntry.currency == user.wallet_currency
        )
    )
    return Money(int(total or 0), user.wallet_currency)


def list_wallet_entries(
    session: Session, user: User, *, limit: int = 50, offset: int = 0
) -> list[WalletEntry]:
    """The user's newest ledger lines first (`offset` lines skipped: a later page)."""
    return list(
        session.scalars(
            sa.select(WalletEntry)
            .where(WalletEntry.user_id == user.id)
            .order_by(WalletEntry.created_at.desc(), WalletEntry.id.desc())
            .offset(offset)
            .limit(limit)
        )
    )


def _existing_entry(session: Session, kind: WalletEntryKind, reference: str) -> WalletEntry | None:
    return session.scalar(
        sa.select(WalletEntry).where(WalletEntry.kind == kind, WalletEntry.reference == reference)
    )


def lock_wallet(session: Session, user: User) -> None:
    """Take the wallet's lock for the rest of the transaction (see _lock_user): for a caller
    that must read something else consistently with the balance changes it then makes."""
    _lock_user(session, user)


def _lock_user(session: Session, user: User) -> None:
    """Serialize balance-changing writes for one user, whatever the caller did before: the
    balance is read and the line written under this lock, so two debits can never both spend
    the same money.

    PostgreSQL: SELECT … FOR UPDATE on the user's row. SQLite reads outside a write transaction,
    so a read-then-insert could act on a stale balance there: a no-op UPDATE of the user's row
    takes SQLite's write lock (waiting up to the busy timeout) before the balance is read."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(User.id).where(User.id == user.id).with_for_update())
    else:
        session.execute(
            sa.update(User)
            .where(User.id == user.id)
            .values(id=User.id)
            .execution_options(synchronize_session=False)
        )


def record_wallet_entry(
    session: Session,
    user: User,
    *,
    kind: WalletEntryKind,
    amount: Money,
    reference: str,
    description: str = "",
) -> TopUpReceipt:
    """Append one ledger line, or return the earlier line with the same (kind, reference).

    A repeat must match the first line's user and amount; anything else is a WalletError rather
    than a silent second movement of money. Payments are negative amounts and may not take the
    balance below zero.
    """
    if amount.currency != user.wallet_currency:
        raise WalletError(f"The wallet holds {user.wallet_currency}, not {amount.currency}.")
    if not reference:
        raise WalletError("A wallet entry needs a reference to its cause.")
    _lock_user(session, user)
    existing = _existing_entry(session, kind, reference)
    if existing is not None:
        if existing.user_id != user.id or existing.amount_minor != amount.minor:
            raise WalletError(f"Reference {reference!r} was already used for a different {kind}.")
        return TopUpReceipt(entry=existing, created=False)
    if amount.minor < 0 and wallet_balance(session, user).minor + amount.minor < 0:
        raise InsufficientFunds("Your wallet balance does not cover this payment.")
    entry = WalletEntry(
        user_id=user.id,
        kind=kind,
        amount_minor=amount.minor,
        currency=amount.currency,
        reference=reference,
        description=description,
    )
    session.add(entry)
    session.flush()
    return TopUpReceipt(entry=entry, created=True)


def top_up(session: Session, user: User, amount: Decimal, *, reference: str) -> TopUpReceipt:
    """Add money to the wallet for free: the sandbox-mode top-up (commerce.wallet_topup guards it;
    outside sandbox mode a top-up is a card payment).

    `amount` is in major units of the wallet currency, positive and at most the limit.
    """
    currency = user.wallet_currency
    minor = topup_minor_units(amount, currency)
    check_topup_limit(minor, currency)
    return record_wallet_entry(
        session,
        user,
        kind=WalletEntryKind.TOPUP,
        amount=Money(minor, currency),
        reference=reference,
        description="Top-up (sandbox: no payment taken)",
    )


def pay_from_wallet(session: Session, user: User, amount: Money, *, reference: str) -> TopUpReceipt:
    """Debit `amount` (positive) for a purchase; InsufficientFunds when the balance is short."""
    if amount.minor <= 0:
        raise WalletError("A payment must be greater than zero.")
    return record_wallet_entry(
        session,
        user,
        kind=WalletEntryKind.PAYMENT,
        amount=Money(-amount.minor, amount.currency),
        reference=reference,
        description="Payment",
    )


def refund_to_wallet(
    session: Session, user: User, amount: Money, *, reference: str, description: str = "Refund"
) -> TopUpReceipt:
    """Credit `amount` (positive) back for a refunded purchase; `description` says why on the
    ledger line (an operator's refund names its cause)."""
    if amount.minor <= 0:
        raise WalletError("A refund must be greater than zero.")
    return record_wallet_entry(
        session,
        user,
        kind=WalletEntryKind.REFUND,
        amount=amount,
        reference=reference,
        description=description[:200],
    )


def take_back(
    session: Session, user: User, amount: Money, *, reference: str, description: str
) -> int:
    """Debit up to `amount` (positive, or 0 to record that a cause takes nothing) that the
    shopper got back elsewhere (an ADJUSTMENT line), once per reference; returns what the line
    takes.

    Never below zero: what the balance no longer covers (it was spent) is not taken, and the
    caller reports it. The line is written even when it takes nothing, so a repeat returns what
    the first one took whatever the balance is by then (a later top-up is not taken instead)."""
    if amount.currency != user.wallet_currency:
        raise WalletError(f"The wallet holds {user.wallet_currency}, not {amount.currency}.")
    if amount.minor < 0 or not reference:
        raise WalletError("A wallet adjustment needs an amount of at least 0 and a reference.")
    _lock_user(session, user)
    existing = _existing_entry(session, WalletEntryKind.ADJUSTMENT, reference)
    if existing is not None:
        if existing.user_id != user.id:
            raise WalletError(f"Reference {reference!r} was already used for another wallet.")
        return -existing.amount_minor
    covered = max(0, min(amount.minor, wallet_balance(session, user).minor))
    session.add(
        WalletEntry(
            user_id=user.id,
            kind=WalletEntryKind.ADJUSTMENT,
            amount_minor=-covered,
            currency=amount.currency,
            reference=reference,
            description=description,
        )
    )
    session.flush()
    return covered


def format_wallet_amount(minor: int, currency: str) -> Decimal:
    """The exact decimal amount of a ledger line, for templates."""
    return from_minor_units(minor, currency)

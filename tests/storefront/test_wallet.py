"""The wallet ledger: the balance is always the sum of its lines, and retries never double."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.models import User, WalletEntry, WalletEntryKind
from commerce.wallet import (
    InsufficientFunds,
    WalletError,
    list_wallet_entries,
    pay_from_wallet,
    refund_to_wallet,
    top_up,
    wallet_balance,
)
from onecart.money import Money


def _ledger_sum(session: Session, user: User) -> int:
    return sum(
        session.scalars(sa.select(WalletEntry.amount_minor).where(WalletEntry.user_id == user.id))
    )


def test_balance_equals_the_ledger_after_topups_payments_and_refunds(
    db_session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user()
    top_up(db_session, user, Decimal("50.00"), reference="sandbox-topup-aaaaaaaa1")
    top_up(db_session, user, Decimal("25.25"), reference="sandbox-topup-aaaaaaaa2")
    pay_from_wallet(db_session, user, Money(3000, "USD"), reference="order-1")
    refund_to_wallet(db_session, user, Money(1000, "USD"), reference="order-1-sub-2")
    db_session.commit()

    balance = wallet_balance(db_session, user)
    assert balance == Money(5000 + 2525 - 3000 + 1000, "USD")
    assert balance.minor == _ledger_sum(db_session, user)
    kinds = [entry.kind for entry in list_wallet_entries(db_session, user)]
    assert sorted(kinds) == sorted(
        [
            WalletEntryKind.TOPUP,
            WalletEntryKind.TOPUP,
            WalletEntryKind.PAYMENT,
            WalletEntryKind.REFUND,
        ]
    )


def test_a_retried_topup_with_the_same_reference_counts_once(
    db_session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user()
    first = top_up(db_session, user, Decimal("10"), reference="sandbox-topup-retry0001")
    again = top_up(db_session, user, Decimal("10"), reference="sandbox-topup-retry0001")
    db_session.commit()

    assert first.created and not again.created
    assert again.entry.id == first.entry.id
    assert wallet_balance(db_session, user) == Money(1000, "USD")


def test_a_reference_reused_for_a_different_amount_is_refused(
    db_session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user()
    top_up(db_session, user, Decimal("10"), reference="sandbox-topup-reused001")
    with pytest.raises(WalletError):
        top_up(db_session, user, Decimal("99"), reference="sandbox-topup-reused001")


def test_the_database_refuses_a_duplicate_kind_and_reference(
    db_session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user()
    for _ in range(2):
        db_session.add(
            WalletEntry(
                user_id=user.id,
                kind=WalletEntryKind.TOPUP,
                amount_minor=100,
                currency="USD",
                reference="dup",
            )
        )
    with pytest.raises(sa.exc.IntegrityError):
        db_session.flush()


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (Decimal("0"), "greater than zero"),
        (Decimal("-5"), "greater than zero"),
        (Decimal("10.001"), "at most 2 decimal places"),
        (Decimal("10000.01"), "at most"),
    ],
)
def test_topup_amount_rules(
    db_session: Session, make_user: Callable[..., User], amount: Decimal, message: str
) -> None:
    user = make_user()
    with pytest.raises(WalletError, match=message):
        top_up(db_session, user, amount, reference="sandbox-topup-rules0001")
    assert wallet_balance(db_session, user) == Money(0, "USD")


def test_a_payment_larger_than_the_balance_is_refused(
    db_session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user()
    top_up(db_session, user, Decimal("5"), reference="sandbox-topup-small0001")
    with pytest.raises(InsufficientFunds):
        pay_from_wallet(db_session, user, Money(501, "USD"), reference="order-too-big")
    assert wallet_balance(db_session, user) == Money(500, "USD")


def test_entries_in_another_currency_are_refused(
    db_session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user()
    with pytest.raises(WalletError, match="holds USD"):
        refund_to_wallet(db_session, user, Money(100, "EUR"), reference="eur-refund")


def test_a_jpy_wallet_uses_whole_units(db_session: Session, make_user: Callable[..., User]) -> None:
    user = make_user(wallet_currency="JPY")
    top_up(db_session, user, Decimal("1500"), reference="sandbox-topup-yen00001")
    with pytest.raises(WalletError, match="decimals"):
        top_up(db_session, user, Decimal("1.5"), reference="sandbox-topup-yen00002")
    assert wallet_balance(db_session, user) == Money(1500, "JPY")

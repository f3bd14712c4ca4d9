"""Wallet debits are atomic on their own: concurrent debits of one wallet never spend the same
money twice, whatever the callers do, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import sqlalchemy as sa

from commerce.models import User, WalletEntry
from commerce.orders import wallet_books_problems
from commerce.wallet import (
    InsufficientFunds,
    pay_from_wallet,
    refund_to_wallet,
    take_back,
    top_up,
    wallet_balance,
)
from onecart.money import Money
from tests.checkout.shop import Shop
from tests.faults.conftest import check_invariants


def test_concurrent_debits_never_overdraw_the_wallet(faults: Shop) -> None:
    user = faults.make_user(wallet=Decimal("10.00"))
    attempts = 10
    barrier = threading.Barrier(attempts)

    def debit(index: int) -> bool:
        barrier.wait()
        with faults.session() as session:
            shopper = session.get(User, user.id)
            assert shopper is not None
            # Read the balance first, as a careless caller would: the debit must still hold.
            wallet_balance(session, shopper)
            try:
                pay_from_wallet(
                    session, shopper, Money(300, "USD"), reference=f"concurrent-{index}"
                )
            except InsufficientFunds:
                session.rollback()
                return False
            session.commit()
            return True

    with ThreadPoolExecutor(max_workers=attempts) as executor:
        results = list(executor.map(debit, range(attempts)))

    assert results.count(True) == 3
    with faults.session() as session:
        shopper = session.get(User, user.id)
        assert shopper is not None
        assert wallet_balance(session, shopper).minor == 100
        assert wallet_books_problems(session, shopper) == []
    check_invariants(faults)


def test_checkouts_a_refund_a_top_up_and_a_taken_back_refund_at_once_keep_the_books(
    faults: Shop,
) -> None:
    """Two debits, a refund credit sent twice (a retry racing the first), a top-up and a card
    refund taken back, all at once on one wallet: every credit counts once, the debits never
    spend the same money, and the balance never goes below zero."""
    user = faults.make_user(wallet=Decimal("10.00"))
    work: list[tuple[str, int]] = [
        ("debit", 600),
        ("debit", 600),
        ("refund", 200),
        ("refund", 200),  # the same refund retried: one credit
        ("topup", 500),
        ("take_back", 300),
    ]
    barrier = threading.Barrier(len(work))

    def run(index: int) -> bool:
        kind, minor = work[index]
        barrier.wait()
        with faults.session() as session:
            shopper = session.get(User, user.id)
            assert shopper is not None
            try:
                if kind == "debit":
                    pay_from_wallet(
                        session, shopper, Money(minor, "USD"), reference=f"mixed-debit-{index}"
                    )
                elif kind == "refund":
                    refund_to_wallet(
                        session, shopper, Money(minor, "USD"), reference="mixed-refund"
                    )
                elif kind == "topup":
                    top_up(session, shopper, Decimal(minor) / 100, reference="mixed-topup")
                else:
                    take_back(
                        session,
                        shopper,
                        Money(minor, "USD"),
                        reference="mixed-take-back",
                        description="Top-up refunded on the card",
                    )
            except InsufficientFunds:
                session.rollback()
                return False
            session.commit()
            return True

    with ThreadPoolExecutor(max_workers=len(work)) as executor:
        results = list(executor.map(run, range(len(work))))

    assert results[2:] == [True] * 4
    with faults.session() as session:
        shopper = session.get(User, user.id)
        assert shopper is not None
        lines = session.scalars(sa.select(WalletEntry).where(WalletEntry.user_id == user.id)).all()
        by_reference = {line.reference: line.amount_minor for line in lines}
        assert by_reference["mixed-refund"] == 200 and by_reference["mixed-topup"] == 500
        taken = -by_reference["mixed-take-back"]
        debits = results[:2].count(True)
        assert debits >= 1
        balance = wallet_balance(session, shopper).minor
        assert balance == 1000 + 200 + 500 - 600 * debits - taken >= 0
        assert wallet_books_problems(session, shopper) == []
    check_invariants(faults)

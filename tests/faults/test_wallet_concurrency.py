"""Wallet debits are atomic on their own: concurrent debits of one wallet never spend the same
money twice, whatever the callers do, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from commerce.models import User
from commerce.orders import wallet_books_problems
from commerce.wallet import InsufficientFunds, pay_from_wallet, wallet_balance
from onecart.money import Money
from tests.checkout.conftest import Shop
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

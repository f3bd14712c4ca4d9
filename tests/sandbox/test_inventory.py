"""The sandbox's stock ledger (sandbox.inventory) and the order book that keeps it: what orders
draw, what cancellations give back, and that concurrent placements never oversell."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest

from sandbox.inventory import OutOfStock, StockClaim, StockLedger
from sandbox.orders import OrderBook, OrderLine


def claim(index: int, quantity: int, on_hand: int, position: int = 0) -> StockClaim:
    return StockClaim(position, index, quantity, on_hand)


def test_a_claim_draws_and_a_release_gives_back_once() -> None:
    ledger = StockLedger()
    ledger.claim("kiondo", 1, [claim(7, 3, 10)])
    assert ledger.left("kiondo", 7, 10) == 7
    assert ledger.left("shopwave", 7, 10) == 10  # another store's offer 7

    ledger.release("kiondo", 1)
    ledger.release("kiondo", 1)

    assert ledger.left("kiondo", 7, 10) == 10


def test_lines_of_one_offer_add_up_and_a_short_order_draws_nothing() -> None:
    ledger = StockLedger()
    with pytest.raises(OutOfStock) as short:
        ledger.claim("kiondo", 1, [claim(7, 3, 5, 0), claim(8, 1, 5, 1), claim(7, 3, 5, 2)])

    [shortage] = short.value.shortages
    assert (shortage.position, shortage.left, shortage.quantity) == (2, 2, 3)
    assert ledger.left("kiondo", 7, 5) == 5 and ledger.left("kiondo", 8, 5) == 5


def test_a_check_without_a_draw_takes_nothing() -> None:
    ledger = StockLedger()
    ledger.claim("kiondo", 1, [claim(7, 5, 5)], draw=False)
    assert ledger.left("kiondo", 7, 5) == 5
    with pytest.raises(OutOfStock):
        ledger.claim("kiondo", 2, [claim(7, 6, 5)], draw=False)


def test_a_restock_forgets_what_every_order_held() -> None:
    ledger = StockLedger()
    ledger.claim("kiondo", 1, [claim(7, 4, 5)])

    ledger.restock()
    ledger.release("kiondo", 1)  # held nothing any more

    assert ledger.left("kiondo", 7, 5) == 5


def test_the_listener_hears_which_offers_moved() -> None:
    ledger = StockLedger()
    heard: list[tuple[str, frozenset[int]]] = []

    def listen(slug: str, indexes: frozenset[int], at: datetime) -> None:
        assert at.microsecond == 0
        heard.append((slug, indexes))

    ledger.listen(listen)
    ledger.claim("kiondo", 1, [claim(7, 1, 5), claim(9, 1, 5, 1)])
    ledger.claim("kiondo", 2, [claim(7, 1, 5)], draw=False)
    ledger.release("kiondo", 1)
    ledger.restock()  # nothing drawn: nothing moves

    assert heard == [("kiondo", frozenset({7, 9})), ("kiondo", frozenset({7, 9}))]


def _line(index: int, quantity: int) -> OrderLine:
    return OrderLine(index, str(index), f"Offer {index}", f"M-{index}", quantity, 100)


def test_concurrent_placements_never_take_more_than_the_stock() -> None:
    book = OrderBook(seed=1)
    start = threading.Barrier(16)

    def buy(n: int) -> bool:
        start.wait()
        try:
            book.place(
                "kiondo",
                idempotency_key=f"key-{n}",
                reference=None,
                currency="KES",
                lines=[_line(3, 1)],
                cancel_rate=0.0,
                stock_claims=[claim(3, 1, 5)],
            )
        except OutOfStock:
            return False
        return True

    with ThreadPoolExecutor(max_workers=16) as pool:
        bought = list(pool.map(buy, range(16)))

    assert sum(bought) == 5
    assert len(book.list("kiondo")) == 5
    assert book.stock.left("kiondo", 3, 5) == 0


def test_a_replayed_key_draws_nothing_again_and_a_refused_order_uses_no_number() -> None:
    book = OrderBook(seed=1)

    def place(key: str, quantity: int) -> int:
        order, _ = book.place(
            "kiondo",
            idempotency_key=key,
            reference=None,
            currency="KES",
            lines=[_line(3, quantity)],
            cancel_rate=0.0,
            stock_claims=[claim(3, quantity, 5)],
        )
        return order.number

    first = place("a", 2)
    assert place("a", 2) == first
    with pytest.raises(OutOfStock):
        place("b", 4)
    assert place("c", 3) == first + 1
    assert book.stock.left("kiondo", 3, 5) == 0


def test_a_cancel_restocks_unless_told_not_to() -> None:
    book = OrderBook(seed=1)
    orders = []
    for key in ("a", "b"):
        order, _ = book.place(
            "shopwave",
            idempotency_key=key,
            reference=None,
            currency="USD",
            lines=[_line(3, 2)],
            cancel_rate=0.0,
            stock_claims=[claim(3, 2, 5)],
        )
        orders.append(order)

    book.cancel(orders[0], 30.0, restock=False)
    assert book.stock.left("shopwave", 3, 5) == 1
    book.cancel(orders[1], 30.0)
    assert book.stock.left("shopwave", 3, 5) == 3


def test_an_order_the_store_declines_gives_its_units_back() -> None:
    clock = [0.0]
    book = OrderBook(seed=1, clock=lambda: clock[0])
    order, _ = book.place(
        "kiondo",
        idempotency_key="a",
        reference=None,
        currency="KES",
        lines=[_line(3, 2)],
        cancel_rate=1.0,  # doomed: declined when it would have shipped
        stock_claims=[claim(3, 2, 5)],
    )
    assert book.stock.left("kiondo", 3, 5) == 3

    clock[0] = 100.0
    assert book.progress(order, 30.0).status == "cancelled"

    assert book.stock.left("kiondo", 3, 5) == 5

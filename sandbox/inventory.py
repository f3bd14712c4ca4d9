"""What the sandbox's orders have taken from the stores' stock, and given back.

The world gives every offer the stock it had when the sandbox started (sandbox.world); a store
that tracks the offer's stock (sandbox.stock says which platforms do, and when) then has that
less what its orders hold. The ledger keeps, per (marketplace, offer index), the units drawn,
and per order the units it holds, so a cancellation gives back exactly what its order took,
once.

The sandbox is one process (a threaded werkzeug server: sandbox.__main__) whose orders live in
memory, and the ledger is kept beside them: the OrderBook calls it under its own lock, so a
placement's check and draw are one step against every other placement and cancellation. Catalog
reads only read one count (a dict lookup, atomic in CPython) and take no lock.

`restock` (the control API's reset) puts every store's inventory back to the world's figures,
for test isolation; orders placed before it hold no units any more, so cancelling one later
gives nothing back twice. Every change is reported to the listener (the catalog's change log:
a record whose stock moved was modified then, as the platforms date it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

# (marketplace, the offers whose stock moved, when): the catalog's change log listens.
StockListener = Callable[[str, frozenset[int], datetime], None]


@dataclass(frozen=True, slots=True)
class StockClaim:
    """Units one order line takes from an offer whose store tracks its stock."""

    position: int  # the line's position in the request, for the refusal to name it
    index: int
    quantity: int
    # The offer's stock before any sandbox order took from it (the world's figure).
    on_hand: int


@dataclass(frozen=True, slots=True)
class Shortage:
    """A line the store cannot fill: its position, and how many units were left for it."""

    position: int
    index: int
    left: int
    quantity: int


class OutOfStock(Exception):
    """A placement asked for more than is left; nothing was drawn."""

    def __init__(self, shortages: Sequence[Shortage]) -> None:
        super().__init__(f"{len(shortages)} line(s) beyond the stock")
        self.shortages = tuple(shortages)


class StockLedger:
    """Units drawn per offer and held per order, for every marketplace of the sandbox."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._drawn: dict[tuple[str, int], int] = {}
        # (marketplace, order number) -> {offer index: units it holds}
        self._held: dict[tuple[str, int], dict[int, int]] = {}
        self._listeners: list[StockListener] = []

    def listen(self, listener: StockListener) -> None:
        """Call `listener` after every change of some offers' stock."""
        self._listeners.append(listener)

    def left(self, slug: str, index: int, on_hand: int) -> int:
        """Units of offer `index` left now, from the `on_hand` it started with. One dict read,
        atomic without the lock: catalog pages call this for every record."""
        return max(0, on_hand - self._drawn.get((slug, index), 0))

    def claim(
        self, slug: str, number: int, claims: Iterable[StockClaim], *, draw: bool = True
    ) -> None:
        """Check that every claim fits what is left (lines of one offer add up), then, when
        `draw`, take the units for order `number`; OutOfStock (nothing taken) otherwise."""
        claims = list(claims)
        touched: set[int] = set()
        with self._lock:
            wanted: dict[int, int] = {}
            shortages: list[Shortage] = []
            for claim in claims:
                left = max(0, claim.on_hand - self._drawn.get((slug, claim.index), 0))
                before = wanted.get(claim.index, 0)
                if before + claim.quantity > left:
                    shortages.append(
                        Shortage(claim.position, claim.index, max(0, left - before), claim.quantity)
                    )
                wanted[claim.index] = before + claim.quantity
            if shortages:
                raise OutOfStock(shortages)
            if not draw or not wanted:
                return
            held = self._held.setdefault((slug, number), {})
            for index, quantity in wanted.items():
                self._drawn[(slug, index)] = self._drawn.get((slug, index), 0) + quantity
                held[index] = held.get(index, 0) + quantity
                touched.add(index)
        self._tell(slug, touched)

    def release(self, slug: str, number: int) -> None:
        """Give back every unit order `number` holds (none when it holds none, or already gave
        them back)."""
        with self._lock:
            held = self._held.pop((slug, number), None)
            if not held:
                return
            for index, quantity in held.items():
                self._drawn[(slug, index)] -= quantity
        self._tell(slug, frozenset(held))

    def restock(self) -> None:
        """Every store's inventory back to the world's figures; no order holds any unit."""
        with self._lock:
            moved: dict[str, set[int]] = {}
            for (slug, index), drawn in self._drawn.items():
                if drawn:
                    moved.setdefault(slug, set()).add(index)
            self._drawn.clear()
            self._held.clear()
        for slug, indexes in moved.items():
            self._tell(slug, indexes)

    def _tell(self, slug: str, indexes: Iterable[int]) -> None:
        touched = frozenset(indexes)
        if not touched:
            return
        # Whole seconds, as the platforms store modification times.
        now = datetime.now(UTC).replace(microsecond=0)
        for listener in self._listeners:
            listener(slug, touched, now)

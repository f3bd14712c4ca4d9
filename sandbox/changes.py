"""When each sandbox record last changed: what Shopify's `updated_at` and WooCommerce's
`date_modified` say, and what their changed-since filters (`updated_at_min`, `after` with
`date_column=modified_gmt`) select.

Besides the catalog state, orders move stock (sandbox.inventory): the ledger reports the records
whose stock moved, and :meth:`ChangeLog.touch` notes them as changed at that moment, as
WooCommerce saves a product whose stock an order reduced and Shopify updates the product.

A catalog record is a pure function of the world and of the marketplace's catalog state (its
price epoch and malformed rate), so a record changes exactly when a change of that state changes
it: an epoch step re-prices the offers whose phase comes round (sandbox.world), a new malformed
rate breaks or mends the records whose malformation differs. The sandbox notes the state every
time a marketplace's catalog is served (:meth:`ChangeLog.observe`); a new state is a change at
that moment, the moment a real store would have saved the edit: no client can have read the new
content before it. A record's modification time is then the latest change that touched it, or
the world's own (past) `updated_at` when none did.

Changes are kept for the sandbox's lifetime (a handful per benchmark or test run; one per
price epoch of the clock, three a day in the demo; one per order or cancellation that moves
stock, each touching only its own records).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sandbox.world import EPOCH_ZERO, PRICE_EPOCH_PERIOD, World

# The latest `updated_at` the world gives a record at epoch 0 (sandbox.world.World.offer: the
# product's creation day < 600, plus < 1 day, plus < 120 days and < 1 day); each price version
# adds 7 days.
_STATIC_DAYS = 600 + 1 + 120 + 1
_DAYS_PER_VERSION = 7


@dataclass(frozen=True, slots=True)
class CatalogState:
    """What a marketplace's catalog records are a function of, besides the world."""

    price_epoch: int
    malformed_rate: float
    # Records off the catalog (the unlisted_products knob): leaving and coming back are changes.
    unlisted: frozenset[int] = frozenset()


@dataclass
class CatalogChange:
    """One change of a marketplace's catalog state, and the records it touched."""

    at: datetime
    # The catalog state before and after; the same one (or None, before any was served) for a
    # change of stock, which moves records without changing the state.
    before: CatalogState | None
    after: CatalogState | None
    touched: frozenset[int] = field(default_factory=frozenset)


def latest_static_update(price_epoch: int) -> datetime:
    """No record's own `updated_at` (without changes seen by this sandbox) is later than this."""
    versions = (max(0, price_epoch) + PRICE_EPOCH_PERIOD - 1) // PRICE_EPOCH_PERIOD
    return EPOCH_ZERO + timedelta(days=_STATIC_DAYS + _DAYS_PER_VERSION * versions)


class ChangeLog:
    """Per marketplace: the catalog state last served, and every change of it, oldest first."""

    def __init__(self, world: World) -> None:
        self.world = world
        self._state: dict[str, CatalogState] = {}
        self._changes: dict[str, list[CatalogChange]] = {}
        self._phases: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def observe(self, slug: str, state: CatalogState, now: datetime) -> None:
        """The catalog is served in `state` now: a state other than the last one is a change."""
        if self._state.get(slug) == state:
            return
        with self._lock:
            before = self._state.get(slug)
            if before == state:
                return
            self._state[slug] = state
            if before is None:
                return
            touched = self._touched(slug, before, state)
            self._changes.setdefault(slug, []).append(CatalogChange(now, before, state, touched))

    def touch(self, slug: str, indexes: frozenset[int], now: datetime) -> None:
        """Records `indexes` changed now without the catalog state changing (their stock)."""
        with self._lock:
            state = self._state.get(slug)
            self._changes.setdefault(slug, []).append(CatalogChange(now, state, state, indexes))

    def changes(self, slug: str) -> list[CatalogChange]:
        """Every change of the marketplace's catalog this sandbox saw, oldest first."""
        return list(self._changes.get(slug, ()))

    def last_change(self, slug: str, index: int) -> datetime | None:
        """When record `index` last changed while this sandbox ran, or None."""
        for change in reversed(self._changes.get(slug, ())):
            if index in change.touched:
                return change.at
        return None

    def changed_since(self, slug: str, moment: datetime, *, inclusive: bool) -> list[int]:
        """Indexes of the records a change at or after (`inclusive`) or after `moment` touched,
        ascending. Only complete when `moment` is later than every record's own updated_at
        (:func:`latest_static_update`); the caller scans otherwise."""
        touched: set[int] = set()
        for change in self._changes.get(slug, ()):
            if change.at > moment or (inclusive and change.at == moment):
                touched |= change.touched
        return sorted(touched)

    def price_phases(self, slug: str) -> bytes:
        """Every record's price phase (sandbox.world.World.price_phase), computed once."""
        phases = self._phases.get(slug)
        if phases is None:
            count = self.world.offer_count(slug)
            phases = bytes(self.world.price_phase(slug, i) for i in range(count))
            self._phases[slug] = phases
        return phases

    def _touched(self, slug: str, before: CatalogState, after: CatalogState) -> frozenset[int]:
        touched: set[int] = set()
        if before.price_epoch != after.price_epoch:
            old, new = max(0, before.price_epoch), max(0, after.price_epoch)
            period = PRICE_EPOCH_PERIOD
            touched.update(
                index
                for index, phase in enumerate(self.price_phases(slug))
                if (old + phase) // period != (new + phase) // period
            )
        if before.malformed_rate != after.malformed_rate:
            malformation = self.world.malformation
            touched.update(
                index
                for index in range(self.world.offer_count(slug))
                if malformation(slug, index, before.malformed_rate)
                != malformation(slug, index, after.malformed_rate)
            )
        touched.update(before.unlisted ^ after.unlisted)
        return frozenset(touched)

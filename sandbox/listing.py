"""What the Shopify and WooCommerce services share to filter their catalog listings: which
records are on the catalog (the unlisted_products knob), which are listed under an id (a
duplicate_id record repeats its neighbour's), and which changed since a moment (sandbox.changes).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import datetime

from sandbox.changes import latest_static_update
from sandbox.service import MarketplaceService


def on_catalog(count: int, unlisted: frozenset[int]) -> Sequence[int]:
    """The indexes on the catalog, ascending (a range while nothing is unlisted)."""
    if not unlisted:
        return range(count)
    return [i for i in range(count) if i not in unlisted]


def id_values(raw: Iterable[str]) -> set[int]:
    """The whole numbers among `raw` (ids as query parameters carry them)."""
    return {int(part) for part in raw if part.strip().isdigit()}


class FilteredCatalog(MarketplaceService, ABC):
    """A marketplace service whose listings filter by id and modification time. Each platform
    numbers its products its own way: it says how, the filtering is shared."""

    @abstractmethod
    def index_of(self, product_id: int) -> int | None:
        """The offer index behind a product id, or None."""

    @abstractmethod
    def product_id_of(self, index: int) -> int:
        """The product id of offer `index`."""

    def listed_id(self, index: int) -> int:
        """The id record `index` is listed with (a duplicate_id record repeats its neighbour's)."""
        kind = self.ctx.malformation(self.slug, index)
        return self.product_id_of(index - 1 if kind == "duplicate_id" else index)

    def listed_as(self, ids: Iterable[int]) -> set[int]:
        """The indexes of the records listed with one of `ids`."""
        found: set[int] = set()
        for value in ids:
            index = self.index_of(value)
            if index is not None:
                found.update(
                    i for i in (index, index + 1) if i < self.count and self.listed_id(i) == value
                )
        return found

    def observe(self) -> frozenset[int]:
        """Note the catalog state served now (sandbox.changes); the indexes off the catalog."""
        ids = self.ctx.knobs.get(self.slug).unlisted_products
        unlisted = frozenset(self.listed_as(id_values(ids))) if ids else frozenset()
        self.ctx.observe_catalog(self.slug, unlisted)
        return unlisted

    def modified_since(
        self, selected: Sequence[int], moment: datetime, *, inclusive: bool
    ) -> list[int]:
        """The indexes of `selected` modified at or after (`inclusive`) or after `moment`:
        only those a change touched when `moment` is past every record's own updated_at, else
        every record is looked at."""
        if moment > latest_static_update(self.ctx.price_epoch(self.slug)):
            changed = set(self.ctx.changes.changed_since(self.slug, moment, inclusive=inclusive))
            return [i for i in selected if i in changed]

        def recent(index: int) -> bool:
            modified = self.ctx.modified_at(self.slug, self.ctx.offer(self.slug, index))
            return modified > moment or (inclusive and modified == moment)

        return [i for i in selected if recent(i)]

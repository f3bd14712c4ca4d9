"""The sandbox's deterministic world: real-looking products, and each marketplace's offers of them.

Nothing is materialized. An offer is addressed by (marketplace, index) and computed on demand
from the seed, so a catalog page costs only its own records and ``--offers 1000000`` starts as fast
as ``--offers 1200``:

* **Which product an offer sells.** In every block of 10 offers of a marketplace, 4 are *shared*
  products and 6 are the marketplace's own. Shared product ``k`` is listed on the subset
  ``SUBSETS[k % 56]`` of marketplaces, where ``SUBSETS`` is every 2-, 3-, 4- and 5-marketplace
  subset of the six (shuffled by the seed). Each marketplace belongs to exactly 30 of those 56
  subsets, so the j-th shared offer of a marketplace is product
  ``(j // 30) * 56 + positions[j % 30]``: O(1), and all marketplaces walk the shared products at
  the same pace, which is what makes the catalogs overlap (3.2 marketplaces per shared product
  on average, three quarters of them on 3 or more).
* **What a product is.** A product key (``s<k>`` shared, ``u<m>-<u>`` own) gives a serial number
  and a private random stream: category, brand, line, descriptor, colour, a model number from
  the brand's template and a GTIN-13 with a valid check digit, both injective in the serial so
  no two products share either (sandbox/world_products.py invents them).
* **How a store lists it.** Price (base USD price, converted at a realistic rate, with local noise
  and local price endings), stock, rating and a title in the store's own style come from the
  offer's own random stream.

Price epochs: ``price_epoch`` N (the ``--price-epoch`` flag or the ``price_epoch`` knob) changes
the price of about 1% of the offers per epoch, deterministically: an offer with phase ``p`` (0-99,
from the seed) has changed ``(N + p) // 100`` times by epoch N, so going from epoch N to N+1
changes exactly the offers whose ``(N + 1 + p) % 100 == 0``. Benchmarks use it to measure an
incremental pipeline run.

Malformed records are placed by :meth:`World.malformation`: with rate r, the records are cut into
slots of 1/r and exactly one record per slot (chosen by the seed) is malformed, cycling through
the kinds in :data:`MALFORMATION_KINDS`, so every kind shows up even in small catalogs.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from sandbox.assortment import CATEGORIES_BY_SLUG
from sandbox.assortment_schema import Category
from sandbox.draws import Draws, hash64, unit_interval
from sandbox.malformations import MALFORMATION_KINDS
from sandbox.marketplaces import (
    AFFILIATE_COUNT_DIVISOR,
    AFFILIATE_MARKETPLACES,
    AFFILIATE_SHARED_PER_BLOCK,
    BAZAAR_GBP_SHARE,
    GBP_PER_USD,
    MARKETPLACES,
    MARKETPLACES_BY_SLUG,
    NGN_PER_USD,
    SOKONI_NGN_SHARE,
)
from sandbox.store_habits import compose_title, price_unit, rescale_price, round_local_price
from sandbox.world_products import WorldProduct, WorldProducts

# --- Constants of the arithmetic ------------------------------------------------------------

OFFER_BLOCK = 10
SHARED_PER_BLOCK = 4
# Every 2..5-subset of the six marketplaces: 15 + 20 + 15 + 6 = 56, each marketplace in 30.
SUBSET_SIZES = (2, 3, 4, 5)
PRICE_EPOCH_PERIOD = 100  # each offer's price changes once every 100 epochs (~1% per epoch)
EPOCH_ZERO = datetime(2024, 1, 1, tzinfo=UTC)
# Offers whose store does not track stock (Shopify inventory not tracked, WooCommerce
# manage_stock off): no stock figure is a limit there, and orders of any quantity are taken.
UNTRACKED_STOCK_SHARE = 0.1


def slugify(text: str) -> str:
    """Lower-case ASCII words joined by '-', as stores build URL handles."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "item"


# --- Offers ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListedOffer:
    """One marketplace's listing of a world product, with the store's own price and title."""

    slug: str
    index: int
    product: WorldProduct
    title: str
    currency: str
    price_minor: int
    # The higher "was" price when the offer is on sale (compare-at / regular price), else None.
    list_price_minor: int | None
    stock: int
    # The store counts this offer's stock and refuses orders beyond it (see sandbox/stock.py).
    tracks_stock: bool
    rating_centi: int
    review_count: int
    shows_gtin: bool
    created_at: datetime
    updated_at: datetime
    price_version: int
    title_style: int
    # Units the sandbox's orders have taken from `stock` since it started (sandbox.inventory):
    # the world's offers have none; SandboxContext.offer publishes what is left.
    drawn: int = 0

    @property
    def initial_stock(self) -> int:
        """The stock the offer had before any sandbox order drew on it."""
        return self.stock + self.drawn

    @property
    def available(self) -> bool:
        """In stock right now."""
        return self.stock > 0

    @property
    def rating(self) -> float:
        """The rating as a 0-5 number with two decimals (ratings are not money)."""
        return self.rating_centi / 100


# --- The world ------------------------------------------------------------------------------


class World:
    """Every marketplace's offers for one (seed, total offers), computed lazily by index.

    `total_offers` is split over the six; each affiliate marketplace adds a third of one share."""

    def __init__(self, seed: int, total_offers: int, *, product_cache: int | None = 65_536) -> None:
        """`product_cache`: how many built products to keep (None: every one built)."""
        if total_offers < 0:
            raise ValueError("the number of offers cannot be negative")
        self.seed = seed
        self.total_offers = total_offers
        base, extra = divmod(total_offers, len(MARKETPLACES))
        self._counts = {m.slug: base + (1 if m.position < extra else 0) for m in MARKETPLACES}
        for m in AFFILIATE_MARKETPLACES:
            self._counts[m.slug] = base // AFFILIATE_COUNT_DIVISOR
        rng = random.Random(hash64(seed, "world"))
        subsets = [
            frozenset(combo)
            for size in SUBSET_SIZES
            for combo in itertools.combinations(range(len(MARKETPLACES)), size)
        ]
        rng.shuffle(subsets)
        self._subsets: tuple[frozenset[int], ...] = tuple(subsets)
        self._subset_positions = {
            m.position: tuple(i for i, subset in enumerate(subsets) if m.position in subset)
            for m in MARKETPLACES
        }
        self._shared_slots = {
            m.position: tuple(sorted(rng.sample(range(OFFER_BLOCK), SHARED_PER_BLOCK)))
            for m in MARKETPLACES
        }
        # Drawn from streams of their own, after the six's, so the six never change.
        self._affiliate_shared_slots = {
            m.slug: tuple(
                sorted(
                    random.Random(hash64(seed, "affiliate-slots", m.slug)).sample(
                        range(OFFER_BLOCK), AFFILIATE_SHARED_PER_BLOCK
                    )
                )
            )
            for m in AFFILIATE_MARKETPLACES
        }
        self._products = WorldProducts(
            seed,
            total_offers,
            subset_count=len(self._subsets),
            affiliate_counts={m.slug: self._counts[m.slug] for m in AFFILIATE_MARKETPLACES},
        )
        self.product = lru_cache(maxsize=product_cache)(self._products.build)
        # A few malformed rates at a time (a test or bench moves between two or three).
        self.malformations = lru_cache(maxsize=16)(self._malformations)

    # -- sizes and addressing --

    def offer_count(self, slug: str) -> int:
        """How many offers marketplace `slug` lists."""
        return self._counts[slug]

    def locate_offer(self, global_index: int) -> tuple[str, int]:
        """(marketplace, index) of offer number `global_index` counted across all marketplaces."""
        if not 0 <= global_index < self.total_offers:
            raise IndexError(f"offer {global_index} is outside 0..{self.total_offers - 1}")
        for m in MARKETPLACES:
            if global_index < self._counts[m.slug]:
                return m.slug, global_index
            global_index -= self._counts[m.slug]
        raise AssertionError("unreachable")  # pragma: no cover

    def product_key(self, slug: str, index: int) -> str:
        """The key of the world product that offer `index` of `slug` sells."""
        position = MARKETPLACES_BY_SLUG[slug].position
        if slug in self._affiliate_shared_slots:
            return self._affiliate_product_key(slug, position, index)
        block, slot = divmod(index, OFFER_BLOCK)
        shared_slots = self._shared_slots[position]
        if slot in shared_slots:
            shared_number = block * SHARED_PER_BLOCK + shared_slots.index(slot)
            cycle, rank = divmod(shared_number, len(self._subset_positions[position]))
            return f"s{cycle * len(self._subsets) + self._subset_positions[position][rank]}"
        own_before = sum(1 for s in shared_slots if s < slot)
        own_number = block * (OFFER_BLOCK - SHARED_PER_BLOCK) + slot - own_before
        return f"u{position}-{own_number}"

    def _affiliate_product_key(self, slug: str, position: int, index: int) -> str:
        """An affiliate marketplace walks the shared products in order (k = 0, 1, 2, …), well
        within what the six reach, and numbers its own products `a<position>-<n>`."""
        block, slot = divmod(index, OFFER_BLOCK)
        shared_slots = self._affiliate_shared_slots[slug]
        if slot in shared_slots:
            return f"s{block * AFFILIATE_SHARED_PER_BLOCK + shared_slots.index(slot)}"
        own_before = sum(1 for s in shared_slots if s < slot)
        own_number = block * (OFFER_BLOCK - AFFILIATE_SHARED_PER_BLOCK) + slot - own_before
        return f"a{position}-{own_number}"

    def shared_product_marketplaces(self, k: int) -> tuple[str, ...]:
        """The marketplaces whose offer plan includes shared product `k` (some may have fewer
        offers than it takes to reach it)."""
        subset = self._subsets[k % len(self._subsets)]
        return tuple(m.slug for m in MARKETPLACES if m.position in subset)

    # -- products --

    @property
    def products_built(self) -> int:
        """How many products the world has invented (each cache miss of `product`)."""
        return self._products.built

    def product_for_image(self, name: str) -> WorldProduct | None:
        """The product an image name refers to (image names are product keys), or None."""
        if not re.fullmatch(r"s\d{1,9}|u[0-5]-\d{1,9}|a[67]-\d{1,9}", name):
            return None
        return self.product(name)

    # -- offers --

    def offer(
        self, slug: str, index: int, *, price_epoch: int = 0, price_drift: float = 0.0
    ) -> ListedOffer:
        """Offer `index` of marketplace `slug` at price epoch `price_epoch`.

        `price_drift` (0..1) is the share of offers whose LIVE price differs from the catalog:
        lookups pass the knob, catalog pages pass 0.
        """
        if not 0 <= index < self._counts[slug]:
            raise IndexError(f"{slug} has no offer #{index}")
        profile = MARKETPLACES_BY_SLUG[slug]
        product = self.product(self.product_key(slug, index))
        rng = Draws(self.seed, "offer", slug, index)
        currency = profile.currency
        rate = profile.usd_rate
        if slug == "bazaar" and rng.random() < BAZAAR_GBP_SHARE:
            currency, rate = "GBP", GBP_PER_USD
        elif slug == "sokoni" and rng.random() < SOKONI_NGN_SHARE:
            currency, rate = "NGN", NGN_PER_USD
        noise_permille = rng.randint(880, 1150)
        ending = rng.below(12)
        amount = (
            Decimal(product.base_price_cents)
            * rate
            * profile.markup_permille
            * noise_permille
            / Decimal(100_000_000)
        )
        price = round_local_price(currency, amount, ending)
        on_sale = rng.random() < 0.2
        sale_permille = rng.randint(1100, 1400)
        stock = 0 if rng.random() < 0.08 else int(math.exp(rng.uniform(0, math.log(250))))
        rating_centi = max(100, min(500, product.rating_centi + rng.randint(-25, 25)))
        review_count = max(1, int(product.review_count * rng.uniform(0.05, 0.6)))
        shows_gtin = product.shared or rng.random() < 0.85
        title_style = rng.below(1000)
        created_at = EPOCH_ZERO + timedelta(days=product.created_day, seconds=rng.below(86_400))
        updated_at = created_at + timedelta(days=rng.below(120), seconds=rng.below(86_400))

        phase = self.price_phase(slug, index)
        version = (max(0, price_epoch) + phase) // PRICE_EPOCH_PERIOD
        for step in range(1, version + 1):
            permille = self._epoch_step_permille(slug, index, step)
            price = rescale_price(currency, price, permille, ending)
        if version:
            updated_at += timedelta(days=7 * version)
        if price_drift > 0 and unit_interval(self.seed, "drift", slug, index) < price_drift:
            up = hash64(self.seed, "drift-direction", slug, index) % 3 != 0
            permille = 1000 + (40 + hash64(self.seed, "drift-size", slug, index) % 110) * (
                1 if up else -1
            )
            price = rescale_price(currency, price, permille, ending)
        list_price = None
        if on_sale:
            list_price = round_local_price(
                currency, Decimal(price) * sale_permille / Decimal(100_000), ending
            )
            if list_price <= price:
                list_price = price + price_unit(currency)
        return ListedOffer(
            slug=slug,
            index=index,
            product=product,
            title=compose_title(slug, product, title_style),
            currency=currency,
            price_minor=price,
            list_price_minor=list_price,
            stock=stock,
            # A draw of its own, so the offer's other values stay what they were.
            tracks_stock=unit_interval(self.seed, "tracks-stock", slug, index)
            >= UNTRACKED_STOCK_SHARE,
            rating_centi=rating_centi,
            review_count=review_count,
            shows_gtin=shows_gtin,
            created_at=created_at,
            updated_at=updated_at,
            price_version=version,
            title_style=title_style,
        )

    def price_phase(self, slug: str, index: int) -> int:
        """Offer `index`'s phase (0-99): its price changes at the epochs N with
        (N + phase) % PRICE_EPOCH_PERIOD == 0."""
        return hash64(self.seed, "epoch-phase", slug, index) % PRICE_EPOCH_PERIOD

    def _epoch_step_permille(self, slug: str, index: int, step: int) -> int:
        """The price change of one epoch step: 3-15% down or 3-12% up, never ~0."""
        h = hash64(self.seed, "epoch-step", slug, index, step)
        if h % 2:
            return 850 + (h >> 8) % 121  # 850..970
        return 1030 + (h >> 8) % 91  # 1030..1120

    def offers(
        self, slug: str, start: int = 0, stop: int | None = None, *, price_epoch: int = 0
    ) -> list[ListedOffer]:
        """Offers start..stop-1 of `slug` (clipped to the catalog): one page's worth."""
        end = self._counts[slug] if stop is None else min(stop, self._counts[slug])
        return [self.offer(slug, i, price_epoch=price_epoch) for i in range(max(0, start), end)]

    # -- malformed records --

    def _malformations(self, slug: str, rate: float) -> dict[int, str]:
        """Every malformed record of `slug` at `rate`: index -> kind (what :meth:`malformation`
        says of each index, for the whole catalog at once: one hash per slot of 1/rate records,
        where asking record by record costs a hash and a slot search per record)."""
        count = self._counts[slug]
        if rate <= 0 or count == 0:
            return {}
        if rate >= 1:
            return {index: self.malformation(slug, index, rate) or "" for index in range(count)}
        position = MARKETPLACES_BY_SLUG[slug].position
        found: dict[int, str] = {}
        slot, start = 0, 0
        while start < count:
            end = math.ceil((slot + 1) / rate - 1e-9)
            chosen = start + hash64(self.seed, "malformed", slug, slot) % max(1, end - start)
            if chosen < count:
                kind = MALFORMATION_KINDS[(slot + position) % len(MALFORMATION_KINDS)]
                found[chosen] = "html_title" if kind == "duplicate_id" and chosen == 0 else kind
            slot, start = slot + 1, end
        return found

    def malformation(self, slug: str, index: int, rate: float) -> str | None:
        """The kind of malformation record `index` of `slug` carries at `rate`, or None.

        Exactly one record per slot of 1/rate records is malformed (the seed picks which), and
        consecutive slots cycle through the kinds, so a catalog at the default 2% shows each kind
        within 350 records and the share is exact rather than approximate.
        """
        if rate <= 0 or index < 0:
            return None
        position = MARKETPLACES_BY_SLUG[slug].position
        if rate >= 1:
            slot, chosen = index, index
        else:

            def slot_start(n: int) -> int:
                return math.ceil(n / rate - 1e-9)

            slot = int(index * rate)
            while slot > 0 and slot_start(slot) > index:
                slot -= 1
            while slot_start(slot + 1) <= index:
                slot += 1
            start, end = slot_start(slot), slot_start(slot + 1)
            chosen = start + hash64(self.seed, "malformed", slug, slot) % max(1, end - start)
        if index != chosen:
            return None
        kind = MALFORMATION_KINDS[(slot + position) % len(MALFORMATION_KINDS)]
        if kind == "duplicate_id" and index == 0:
            kind = "html_title"
        return kind


def category_by_slug(slug: str) -> Category | None:
    """The category with this slug, if any."""
    return CATEGORIES_BY_SLUG.get(slug)

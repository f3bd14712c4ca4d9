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
  no two products share either.
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
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from sandbox.assortment import (
    BOOK_ADJECTIVES,
    BOOK_NOUNS,
    BOOK_TITLE_PATTERNS,
    BRAND_PRICE_TIERS,
    CATEGORIES,
    CATEGORIES_BY_SLUG,
    MIN_MODEL_CAPACITY,
    MODEL_LETTERS,
    Category,
    model_template_capacity,
)
from sandbox.draws import Draws, hash64, unit_interval
from sandbox.malformations import MALFORMATION_KINDS
from sandbox.marketplaces import (
    AFFILIATE_COUNT_DIVISOR,
    AFFILIATE_MARKETPLACES,
    AFFILIATE_SHARED_PER_BLOCK,
    AFFILIATE_SLUGS,
    BAZAAR_GBP_SHARE,
    GBP_PER_USD,
    MARKETPLACES,
    MARKETPLACES_BY_SLUG,
    NGN_PER_USD,
    SERVED_MARKETPLACES,
    SOKONI_NGN_SHARE,
)
from sandbox.store_habits import (
    compose_title,
    join_words,
    price_unit,
    rescale_price,
    round_local_price,
)

# --- Constants of the arithmetic ------------------------------------------------------------

OFFER_BLOCK = 10
SHARED_PER_BLOCK = 4
# Every 2..5-subset of the six marketplaces: 15 + 20 + 15 + 6 = 56, each marketplace in 30.
SUBSET_SIZES = (2, 3, 4, 5)
SERIAL_STRIDE = 7  # shared k -> 7k; own product u of marketplace m -> 7u + 1 + m
GTIN_BODY_MODULUS = 10**9
GTIN_MULTIPLIER = 387_420_489  # 3**18: coprime with 10**9, so the GTIN body is injective
MODEL_MULTIPLIER = 2_147_483_647  # prime: coprime with every template capacity (2, 3, 5 only)
PRICE_EPOCH_PERIOD = 100  # each offer's price changes once every 100 epochs (~1% per epoch)
EPOCH_ZERO = datetime(2024, 1, 1, tzinfo=UTC)
# Offers whose store does not track stock (Shopify inventory not tracked, WooCommerce
# manage_stock off): no stock figure is a limit there, and orders of any quantity are taken.
UNTRACKED_STOCK_SHARE = 0.1


def gtin_check_digit(body: str) -> int:
    """The GS1 check digit for the digits before it (weights 3, 1, 3, … from the right)."""
    total = sum(int(digit) * (3 if pos % 2 == 0 else 1) for pos, digit in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def is_valid_gtin13(code: str) -> bool:
    """True for 13 digits whose last digit is the GS1 check digit of the first 12."""
    return len(code) == 13 and code.isdigit() and gtin_check_digit(code[:12]) == int(code[12])


def slugify(text: str) -> str:
    """Lower-case ASCII words joined by '-', as stores build URL handles."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "item"


# --- Products and offers --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorldProduct:
    """A real-world product that one or several marketplaces sell."""

    key: str
    serial: int
    shared: bool
    category: Category
    brand: str
    line: str
    descriptor: str
    spec: str
    colour: str
    model: str
    gtin: str
    base_price_cents: int
    rating_centi: int
    review_count: int
    gift: bool
    features: tuple[str, ...]
    created_day: int

    @property
    def short_noun(self) -> str:
        """The noun a terse title uses ("Headphones"), or the descriptor when there is none."""
        return self.category.short_noun or self.descriptor

    @property
    def display_name(self) -> str:
        """Brand, line, model and descriptor: the name a product page heads with."""
        if self.category.is_book:
            return f"{self.descriptor} by {self.line}"
        return join_words(self.brand, self.line, self.model, self.descriptor)

    def description_sentences(self) -> list[str]:
        """Plain-text description sentences every store builds its own description from."""
        if self.category.is_book:
            intro = f"{self.descriptor} by {self.line}, published by {self.brand} ({self.colour})."
        else:
            intro = f"The {join_words(self.brand, self.line, self.model)} {self.descriptor}."
        sentences = [intro, *self.features]
        if self.spec and not self.category.is_book:
            sentences.append(f"Variant: {join_words(self.spec, self.colour)}.")
        if self.gift:
            sentences.append("A thoughtful gift for birthdays and the holidays.")
        return sentences


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
        # Affiliate marketplaces' own products are numbered past every shared product the six can
        # reach (shared k stays below total_offers + 56), so no serial, GTIN or model repeats.
        self._affiliate_serial_base = total_offers + 2 * 56 + 1
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
        self._category_tables = {"shared": self._category_table(())}
        for m in SERVED_MARKETPLACES:
            self._category_tables[m.slug] = self._category_table(m.category_bias)
        self._gtin_offset = hash64(seed, "gtin") % GTIN_BODY_MODULUS
        self._model_offset = hash64(seed, "model")
        self._check_model_capacity()
        self.products_built = 0
        self.product = lru_cache(maxsize=product_cache)(self._build_product)
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

    def _category_table(
        self, bias: Sequence[tuple[str, float]]
    ) -> tuple[list[float], list[Category]]:
        multipliers = dict(bias)
        cumulative: list[float] = []
        total = 0.0
        for category in CATEGORIES:
            total += category.weight * multipliers.get(category.slug, 1.0)
            cumulative.append(total)
        return cumulative, list(CATEGORIES)

    def _affiliate_serial(self, position: int, number: int) -> int:
        first = MARKETPLACES_BY_SLUG[AFFILIATE_SLUGS[0]].position
        return SERIAL_STRIDE * (
            self._affiliate_serial_base + len(AFFILIATE_SLUGS) * number + position - first
        )

    def _check_model_capacity(self) -> None:
        largest_serial = SERIAL_STRIDE * (self.total_offers + len(self._subsets)) + SERIAL_STRIDE
        largest_affiliate = max(
            (
                self._affiliate_serial(m.position, self._counts[m.slug])
                for m in AFFILIATE_MARKETPLACES
            ),
            default=0,
        )
        largest_serial = max(largest_serial, largest_affiliate)
        for category in CATEGORIES:
            for brand in category.brands:
                if category.is_book:
                    continue
                capacity = model_template_capacity(brand.model_template)
                if capacity < MIN_MODEL_CAPACITY or capacity <= largest_serial:
                    raise ValueError(
                        f"model template {brand.model_template!r} of {brand.name} cannot number "
                        f"{largest_serial} products"
                    )

    def _build_product(self, key: str) -> WorldProduct:
        """Invent product `key` from the seed (cached; the same key always gives the same product)."""
        self.products_built += 1
        shared = key.startswith("s")
        if shared:
            serial = SERIAL_STRIDE * int(key[1:])
            table = self._category_tables["shared"]
        elif key.startswith("a"):
            position_text, number_text = key[1:].split("-")
            position = int(position_text)
            serial = self._affiliate_serial(position, int(number_text))
            table = self._category_tables[SERVED_MARKETPLACES[position].slug]
        else:
            position_text, number_text = key[1:].split("-")
            position = int(position_text)
            serial = SERIAL_STRIDE * int(number_text) + 1 + position
            table = self._category_tables[MARKETPLACES[position].slug]
        rng = Draws(self.seed, "product", key)
        cumulative, categories = table
        category = categories[bisect_right(cumulative, rng.random() * cumulative[-1])]
        brand = rng.choice(category.brands)
        line_number = rng.below(len(brand.lines))
        line = brand.lines[line_number]
        spec, spec_multiplier = rng.choice(category.specs)
        colour = rng.choice(category.colours)
        gtin_body = (GTIN_MULTIPLIER * serial + self._gtin_offset) % GTIN_BODY_MODULUS
        gtin12 = f"{brand.gs1_prefix}{gtin_body:09d}"
        gtin = f"{gtin12}{gtin_check_digit(gtin12)}"
        if category.is_book:
            descriptor = rng.choice(BOOK_TITLE_PATTERNS).format(
                adjective=rng.choice(BOOK_ADJECTIVES), noun=rng.choice(BOOK_NOUNS)
            )
            model = gtin
        else:
            descriptor = rng.choice(brand.descriptors or category.descriptors)
            model = self._model_number(brand.model_template, serial, spec)
        # Where in the category's price range: premium brands and later (pricier) lines sit
        # higher, with noise, so a Galaxy S24 Ultra rarely costs less than a Galaxy A15.
        line_tier = (line_number + 0.5) / len(brand.lines)
        brand_tier = BRAND_PRICE_TIERS.get(brand.name, 0.5)
        position = min(1.0, max(0.0, 0.5 * brand_tier + 0.5 * line_tier + rng.uniform(-0.22, 0.22)))
        low, high = category.price_usd
        dollars = low * (high / low) ** position * spec_multiplier
        base_price_cents = max(199, int(dollars * 100))
        rating_centi = int(rng.triangular(280, 495, 440))
        review_count = int(math.exp(rng.uniform(0, math.log(5000))))
        gift = category.gift and (rng.random() < 0.6 or "Gift" in descriptor)
        features = tuple(rng.sample(category.features, min(3, len(category.features))))
        return WorldProduct(
            key=key,
            serial=serial,
            shared=shared,
            category=category,
            brand=brand.name,
            line=line,
            descriptor=descriptor,
            spec=spec,
            colour=colour,
            model=model,
            gtin=gtin,
            base_price_cents=base_price_cents,
            rating_centi=rating_centi,
            review_count=review_count,
            gift=gift,
            features=features,
            created_day=rng.below(600),
        )

    def _model_number(self, template: str, serial: int, spec: str) -> str:
        capacity = model_template_capacity(template)
        value = (MODEL_MULTIPLIER * serial + self._model_offset) % capacity
        size = re.sub(r"\D", "", spec)
        out: list[str] = []
        for char in reversed(template.replace("{S}", "\0")):
            if char == "#":
                value, digit = divmod(value, 10)
                out.append(str(digit))
            elif char == "@":
                value, letter = divmod(value, len(MODEL_LETTERS))
                out.append(MODEL_LETTERS[letter])
            elif char == "\0":
                out.append(size)
            else:
                out.append(char)
        return "".join(reversed(out))

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

"""The sandbox world's products: what product key ``s<k>``, ``u<m>-<u>`` or ``a<m>-<n>`` is.

A key gives a serial number and a private random stream: category (weighted by the listing
marketplace's bias), brand, line, descriptor, colour, a model number from the brand's template and
a GTIN-13 with a valid check digit, both injective in the serial so no two products share either,
and a base USD price placed in the category's range by brand and line. sandbox.world decides which
key each offer sells and how a store lists it.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sandbox.assortment import (
    BOOK_ADJECTIVES,
    BOOK_NOUNS,
    BOOK_TITLE_PATTERNS,
    BRAND_PRICE_TIERS,
    CATEGORIES,
)
from sandbox.assortment_schema import (
    MIN_MODEL_CAPACITY,
    MODEL_LETTERS,
    Category,
    model_template_capacity,
)
from sandbox.draws import Draws, hash64
from sandbox.marketplaces import (
    AFFILIATE_MARKETPLACES,
    AFFILIATE_SLUGS,
    MARKETPLACES,
    MARKETPLACES_BY_SLUG,
    SERVED_MARKETPLACES,
)
from sandbox.store_habits import join_words

SERIAL_STRIDE = 7  # shared k -> 7k; own product u of marketplace m -> 7u + 1 + m
GTIN_BODY_MODULUS = 10**9
GTIN_MULTIPLIER = 387_420_489  # 3**18: coprime with 10**9, so the GTIN body is injective
MODEL_MULTIPLIER = 2_147_483_647  # prime: coprime with every template capacity (2, 3, 5 only)


def gtin_check_digit(body: str) -> int:
    """The GS1 check digit for the digits before it (weights 3, 1, 3, … from the right)."""
    total = sum(int(digit) * (3 if pos % 2 == 0 else 1) for pos, digit in enumerate(reversed(body)))
    return (10 - total % 10) % 10


def is_valid_gtin13(code: str) -> bool:
    """True for 13 digits whose last digit is the GS1 check digit of the first 12."""
    return len(code) == 13 and code.isdigit() and gtin_check_digit(code[:12]) == int(code[12])


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


class WorldProducts:
    """Every product of one (seed, total offers), invented from the seed by key: the same key
    always gives the same product. `subset_count` is how many marketplace subsets share products
    (shared keys reach below total_offers + subset_count); `affiliate_counts` is each affiliate
    marketplace's number of offers (its own products are numbered after every shared one)."""

    def __init__(
        self,
        seed: int,
        total_offers: int,
        *,
        subset_count: int,
        affiliate_counts: Mapping[str, int],
    ) -> None:
        self.seed = seed
        # Affiliate marketplaces' own products are numbered past every shared product the six can
        # reach (shared k stays below total_offers + 56), so no serial, GTIN or model repeats.
        self._affiliate_serial_base = total_offers + 2 * 56 + 1
        self._category_tables = {"shared": self._category_table(())}
        for m in SERVED_MARKETPLACES:
            self._category_tables[m.slug] = self._category_table(m.category_bias)
        self._gtin_offset = hash64(seed, "gtin") % GTIN_BODY_MODULUS
        self._model_offset = hash64(seed, "model")
        self._check_model_capacity(total_offers, subset_count, affiliate_counts)
        # How many products build() has invented (the world caches them; tests count misses).
        self.built = 0

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

    def _check_model_capacity(
        self, total_offers: int, subset_count: int, affiliate_counts: Mapping[str, int]
    ) -> None:
        largest_serial = SERIAL_STRIDE * (total_offers + subset_count) + SERIAL_STRIDE
        largest_affiliate = max(
            (
                self._affiliate_serial(m.position, affiliate_counts[m.slug])
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

    def build(self, key: str) -> WorldProduct:
        """Invent product `key` from the seed (cached; the same key always gives the same product)."""
        self.built += 1
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

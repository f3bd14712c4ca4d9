"""Deterministic intent parsing: a shopper's request becomes constraints plus the words left over.

"cheapest 65-inch TV with good reviews, not from ShopWave, under 500 dollars" becomes: category
televisions, size 65-inch, rating 4+, marketplace ShopWave excluded, budget at most USD 500.00,
sorted by price; nothing is left for free-text search. "something to keep my coffee hot" has no
constraint at all and goes to search as it is, with the product that use implies (an insulated
mug or flask, assistant.glossary) as more words to rank by.

The parser is a pure function of the text, the catalog vocabulary (brands and marketplaces the
index knows) and the shopper's display currency, so it is tested table-driven without services.
Every piece of the text is consumed by at most one rule; what no rule consumed is the free text.
Money is parsed exactly (Decimal to integer minor units), never through floats.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Final

from babel.numbers import format_currency

from assistant.glossary import products_for_uses, translate
from assistant.spelling import (
    Correction,
    allowed_typos,
    category_words,
    correct_prompt,
    damerau_distance,
)
from assistant.vocabulary import (
    CATEGORIES,
    FUZZY_STOPLIST,
    SPECIFIC_PHRASES,
    STOPWORDS,
    CatalogVocabulary,
    category_label,
    fold,
)
from onecart.money import currency_exponent, from_minor_units, is_iso_currency

MAX_PROMPT_CHARS: Final = 500
MAX_QUANTITY: Final = 99
GOOD_REVIEWS_STARS: Final = Decimal("4.0")
AROUND_SPREAD: Final = Decimal("0.2")

SORT_PRICE_ASC: Final = "price_asc"
SORT_PRICE_DESC: Final = "price_desc"
SORT_RATING: Final = "rating"

# --- Money -------------------------------------------------------------------------------------

# (pattern, ISO code). Alphabetic tokens are matched as whole words.
_CURRENCY_TOKENS: Final[tuple[tuple[str, str], ...]] = (
    (r"us\$|\$|usd|us dollars?|dollars?|bucks", "USD"),
    (r"€|eur|euros?", "EUR"),
    (r"£|gbp|pounds? sterling|pounds?|quid", "GBP"),
    (r"₦|ngn|naira", "NGN"),
    (r"kshs?\.?|kes|kenyan shillings?|shillings?|bob", "KES"),
)
_CUR = "|".join(f"(?:{pattern})" for pattern, _ in _CURRENCY_TOKENS)
_CUR_GROUP = rf"(?<![a-z])(?:{_CUR})(?![a-z])"
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?"
_MULT = r"k|thousand|million|m"

# Words after a number that make it a measurement, not an amount of money.
_UNIT_WORDS: Final = (
    r"inch(?:es)?|\"|gb|tb|mb|l\b|liters?|litres?|ml|oz|w\b|watts?|mah|mm|cm|kg|g\b|lbs?|"
    r"hours?|hrs?|h\b|minutes?|mins?|years?|yrs?|months?|days?|packs?|pcs|pieces?|people|"
    r"persons?|kids?|children|stars?|mp\b|megapixels?|hz|km|%|x\b|pairs?|units?|sets?|mugs?|"
    r"bottles?"
)
_NOT_MONEY_TAIL = re.compile(rf"\s*(?:-\s*)?(?:{_UNIT_WORDS})", re.IGNORECASE)


def _money(prefix: str) -> str:
    return (
        rf"(?:(?P<{prefix}c1>{_CUR_GROUP})\s*)?"
        rf"(?P<{prefix}n>{_NUM})"
        rf"(?:\s*(?P<{prefix}m>{_MULT})(?![a-z]))?"
        rf"(?:\s*(?P<{prefix}c2>{_CUR_GROUP}))?"
    )


_MAX_CUES = (
    r"under|below|less than|cheaper than|lower than|no more than|not more than|at most|"
    r"maximum(?: of)?|max\.?|up to|upto|within|not over|no higher than|<=|<|≤|"
    r"budget(?: of| is)?|for under|for less than|not exceeding"
)
_MIN_CUES = r"over|above|more than|at least|minimum(?: of)?|min\.?|starting (?:at|from)|>=|>|≥"
_AROUND_CUES = r"around|about|roughly|approximately|approx\.?|~"

_RANGE_RE = re.compile(
    rf"(?:\b(?:between|from)\s+)?{_money('a')}\s*(?:and|to|-)\s*{_money('b')}", re.IGNORECASE
)
_MAX_RE = re.compile(rf"(?:{_MAX_CUES})\s*{_money('a')}", re.IGNORECASE)
_MIN_RE = re.compile(rf"(?:{_MIN_CUES})\s*{_money('a')}", re.IGNORECASE)
_AROUND_RE = re.compile(rf"(?:{_AROUND_CUES})\s*{_money('a')}", re.IGNORECASE)
_BARE_RE = re.compile(_money("a"), re.IGNORECASE)


def currency_for_token(token: str | None) -> str | None:
    """The ISO code a currency word or symbol stands for ("naira" -> NGN, "€" -> EUR)."""
    if not token:
        return None
    text = token.strip().lower()
    for pattern, code in _CURRENCY_TOKENS:
        if re.fullmatch(pattern, text):
            return code
    return None


def format_amount(minor: int, currency: str) -> str:
    """ "$1,234.50" / "NGN 20,000.00": exact, for constraint labels and answers."""
    return format_currency(from_minor_units(minor, currency), currency, locale="en_US")


@dataclass(frozen=True, slots=True)
class Budget:
    """A price range in one currency, in integer minor units (either bound may be open)."""

    currency: str
    min_minor: int | None = None
    max_minor: int | None = None
    currency_assumed: bool = False

    def describe(self) -> str:
        """ "under $40.00", "$10.00 to $20.00", "at least €5.00"."""
        if self.min_minor is not None and self.max_minor is not None:
            low = format_amount(self.min_minor, self.currency)
            high = format_amount(self.max_minor, self.currency)
            return f"between {low} and {high}"
        if self.max_minor is not None:
            return f"at most {format_amount(self.max_minor, self.currency)}"
        if self.min_minor is not None:
            return f"at least {format_amount(self.min_minor, self.currency)}"
        return "any price"

    def contains(self, minor: int) -> bool:
        """True when an amount in this budget's currency is inside the range (bounds included)."""
        if self.min_minor is not None and minor < self.min_minor:
            return False
        return not (self.max_minor is not None and minor > self.max_minor)


def _parse_amount(number: str, multiplier: str | None, currency: str) -> int | None:
    """ "10", "k", "NGN" -> 1000000 (10,000.00 naira in kobo); None when it is not an amount."""
    try:
        amount = Decimal(number.replace(",", ""))
    except InvalidOperation:
        return None
    word = (multiplier or "").lower()
    if word in {"k", "thousand"}:
        amount *= 1000
    elif word in {"m", "million"}:
        amount *= 1_000_000
    exponent = currency_exponent(currency)
    scaled = amount.scaleb(exponent).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    minor = int(scaled)
    return minor if minor > 0 else None


# --- Other rules -------------------------------------------------------------------------------

_RATING_RES: Final = (
    re.compile(
        r"(?:\b(?:at least|min(?:imum)?|over|above|more than|no less than)\s+)?"
        r"(?P<r>[1-5](?:\.\d)?)\s*(?:\+\s*)?(?:-\s*)?stars?"
        r"(?:\s*(?:and up|or more|or better|and above|\+|plus))?(?:\s+rating)?",
        re.IGNORECASE,
    ),
    re.compile(
        r"\brated\s+(?:at least\s+|above\s+|over\s+)?(?P<r>[1-5](?:\.\d)?)"
        r"(?:\s*(?:\+|or more|and up|or better|or higher))?",
        re.IGNORECASE,
    ),
)
_GOOD_REVIEWS_RE = re.compile(
    r"\b(?:with\s+)?(?:good|great|positive|excellent|high|strong)\s+(?:reviews?|ratings?)\b|"
    r"\b(?:well|highly)[- ](?:rated|reviewed)\b",
    re.IGNORECASE,
)
_SORT_RES: Final = (
    (
        SORT_RATING,
        re.compile(
            r"\b(?:the\s+)?(?:best|top|highest)[- ]rated\b|\bbest[- ]reviewed\b|\bbest reviews\b|"
            r"\bmost popular\b",
            re.IGNORECASE,
        ),
    ),
    (
        SORT_PRICE_DESC,
        re.compile(
            r"\b(?:the\s+)?(?:most expensive|priciest|premium|high[- ]end|top[- ]of[- ]the[- ]line|"
            r"luxury|luxurious)\b",
            re.IGNORECASE,
        ),
    ),
    (
        SORT_PRICE_ASC,
        re.compile(
            r"\b(?:the\s+)?(?:cheapest|lowest[- ]priced|lowest price|least expensive|lowest cost)\b",
            re.IGNORECASE,
        ),
    ),
)
# A wish for a low price without an amount: the best matches are shown cheapest first. "to"
# stands for "too" as often as not; misspelt words were corrected before (assistant.spelling).
_PRICE_PREFERENCE_RE = re.compile(
    r"\b(?:not|nothing|isn'?t|without being)\s+(?:too?|very|that|so|overly|super|crazy|too much)?\s*"
    r"(?:expensive|pricey|pricy|costly|dear)\b|"
    r"\b(?:cheap(?:er|ish)?|inexpensive|affordable|budget(?:[- ](?:friendly|priced|range))?|"
    r"bargains?|low[- ](?:cost|priced|price)|reasonably priced|wallet[- ]friendly|"
    r"good value|value for money|on a budget)\b",
    re.IGNORECASE,
)
_INCLUDE_UNAVAILABLE_RE = re.compile(
    r"\b(?:even if|including|include|incl\.?)\s+(?:out of stock|sold out|unavailable)(?: ones| items)?\b|"
    r"\b(?:out of stock|sold out) (?:is |are )?(?:ok|okay|fine)\b",
    re.IGNORECASE,
)
_AVAILABLE_RE = re.compile(
    r"\b(?:in stock|available now|available today|ready to ship|ships now|available)\b",
    re.IGNORECASE,
)

_NUMBER_WORDS: Final = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "a couple of": 2,
    "a pair of": 1,
    "a dozen": 12,
}
_QTY_WORD = r"\d{1,2}|" + "|".join(
    re.escape(w) for w in sorted(_NUMBER_WORDS, key=len, reverse=True)
)
_QUANTITY_RES: Final = (
    re.compile(
        rf"\b(?P<q>{_QTY_WORD})\s*(?:x\b|pairs? of\b|units? of\b|pieces? of\b|sets? of\b|"
        r"packs? of\b)",
        re.IGNORECASE,
    ),
    re.compile(r"(?<![a-z0-9])x\s*(?P<q>\d{1,2})\b", re.IGNORECASE),
    re.compile(r"\bquantity(?: of)?\s*:?\s*(?P<q>\d{1,2})\b", re.IGNORECASE),
)
_LEADING_QUANTITY_RE = re.compile(rf"\b(?P<q>{_QTY_WORD})\s*$", re.IGNORECASE)

_SPEC_RES: Final = (
    ("inch", re.compile(r"\b(?P<n>\d{2,3})\s*(?:-\s*)?(?:inch(?:es)?\b|in\b|\"|'')")),
    ("storage", re.compile(r"\b(?P<n>\d{2,4})\s*(?P<u>gb|tb)\b", re.IGNORECASE)),
    ("volume", re.compile(r"\b(?P<n>\d{1,4}(?:\.\d)?)\s*(?P<u>ml|oz|l|litres?|liters?)\b")),
)

_NEGATION_CUE = re.compile(
    r"(?:\bnot|\bno|\bnon|\bexcept(?:\s+for)?|\bexcluding|\bexclude|\bwithout|\bavoid(?:ing)?|"
    r"\banything but|\bother than|\bbut not|\bnothing from|\bnever|\bdon'?t want|"
    r"\bdo not want)\s*(?:-\s*)?(?:(?:from|on|at|by|sold by|sold on|made by|the)\s+)?$"
)
_INCLUDE_CUE = re.compile(
    r"(?:\bfrom|\bon|\bat|\bsold by|\bsold on|\bvia|\bonly|\bmade by|\bby)\s+(?:the\s+)?$"
)
_BRAND_CUE = re.compile(r"(?:\bby|\bfrom|\bbrand|\bmade by)\s+$")
_LIST_GAP = re.compile(r"^\s*(?:,|or|and|nor|/|&)\s*(?:(?:from|on|at|by)\s+)?$")
_ONLY_AFTER = re.compile(r"\s*only\b")
_WATCH_VERB_BEFORE = re.compile(r"\b(?:to|and|i|we|can|will|while|or)\s+$")
_WATCH_VERB_AFTER = re.compile(
    r"^\s+(?:movies?|films?|tv|netflix|shows?|series|sports?|football|the|my|videos?)\b"
)
# Product names that say both brand and category; the word also stays in the keywords.
_BRAND_IMPLYING_WORDS: Final = {
    "iphone": "Apple",
    "iphones": "Apple",
    "macbook": "Apple",
    "macbooks": "Apple",
    "airpods": "Apple",
}
_FOR_GAP = re.compile(
    r"\s+(?:for|para|pour|fur|to carry|to hold|that fits|which fits)(?:\s+(?:my|a|an|the|mi|un|una|el|la|mon|ma|mein|meinen|einen))?\s+"
)
# "a phone with a great camera": the first is the product, the second one of its features.
_WITH_GAP = re.compile(
    r"\s+(?:with|that has|which has|having)(?:\s+(?:a|an|the))?"
    r"(?:\s+(?:good|great|nice|decent|big|large|long|excellent|better|best|built-in|amazing))?\s+"
)
# "carry my laptop to the office": what is carried or held is not what is wanted.
_CARRIED_BEFORE = re.compile(
    r"\b(?:carry|carrying|hold|holding|protect|protecting|store|storing|transport|bring)"
    r"(?:\s+(?:my|a|an|the|your|our|his|her|their))?\s+$"
)
_TOKEN_RE = re.compile(r"[a-z0-9][a-z0-9'&+.\-]*[a-z0-9]|[a-z0-9]")


# --- The result --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Constraint:
    """One thing the request asked for, as a shopper would say it ("at most $40.00")."""

    kind: str
    label: str


@dataclass(frozen=True, slots=True)
class Intent:
    """What a request asks for. Brands and marketplaces are the index's own values; categories
    are canonical keys of :mod:`assistant.vocabulary`; `specs` are sizes like "65-inch"."""

    text: str
    corrections: tuple[Correction, ...] = ()
    price_preference: bool = False
    budget: Budget | None = None
    categories: tuple[str, ...] = ()
    # What the wanted thing carries or holds ("carry my laptop"): not itself the product.
    excluded_categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    excluded_brands: tuple[str, ...] = ()
    marketplaces: tuple[str, ...] = ()
    excluded_marketplaces: tuple[str, ...] = ()
    marketplace_names: tuple[tuple[str, str], ...] = ()
    available_only: bool = True
    availability_stated: bool = False
    min_rating: Decimal | None = None
    sort: str | None = None
    quantity: int = 1
    specs: tuple[str, ...] = ()
    keywords: str = ""
    semantic_text: str = ""
    # Product words the request implies without naming them (assistant.glossary): the product
    # for a use ("boil water" -> electric kettle), English for other languages' words. They rank,
    # never filter.
    implied_words: str = ""
    notes: tuple[str, ...] = ()

    def constraints(self) -> list[Constraint]:
        """Every hard constraint, in the order an answer lists them."""
        names = dict(self.marketplace_names)
        out: list[Constraint] = []
        for key in self.categories:
            out.append(Constraint("category", category_label(key)))
        for key in self.excluded_categories:
            out.append(Constraint("exclude_category", f"not {category_label(key).lower()}"))
        for spec in self.specs:
            out.append(Constraint("spec", spec))
        for brand in self.brands:
            out.append(Constraint("brand", brand))
        for brand in self.excluded_brands:
            out.append(Constraint("exclude_brand", f"not {brand}"))
        if self.budget is not None:
            out.append(Constraint("budget", self.budget.describe()))
        if self.min_rating is not None:
            out.append(Constraint("rating", f"rated {self.min_rating}★ or more"))
        if self.marketplaces:
            shops = " or ".join(names.get(slug, slug) for slug in self.marketplaces)
            out.append(Constraint("marketplace", f"sold on {shops}"))
        for slug in self.excluded_marketplaces:
            out.append(Constraint("exclude_marketplace", f"not from {names.get(slug, slug)}"))
        if self.available_only:
            out.append(Constraint("available", "in stock"))
        return out

    @property
    def has_free_text(self) -> bool:
        """True when words are left for relevance ranking (beyond sizes)."""
        return bool(self.keywords.strip())

    def to_json(self) -> dict[str, Any]:
        """A JSON-safe dict for AIPrompt.response_json (money stays integer minor units)."""
        budget = None
        if self.budget is not None:
            budget = {
                "currency": self.budget.currency,
                "min_minor": self.budget.min_minor,
                "max_minor": self.budget.max_minor,
                "currency_assumed": self.budget.currency_assumed,
            }
        return {
            "budget": budget,
            "categories": list(self.categories),
            "excluded_categories": list(self.excluded_categories),
            "brands": list(self.brands),
            "excluded_brands": list(self.excluded_brands),
            "marketplaces": list(self.marketplaces),
            "excluded_marketplaces": list(self.excluded_marketplaces),
            "available_only": self.available_only,
            "min_rating": str(self.min_rating) if self.min_rating is not None else None,
            "sort": self.sort,
            "quantity": self.quantity,
            "specs": list(self.specs),
            "keywords": self.keywords,
            "semantic_text": self.semantic_text,
            "implied_words": self.implied_words,
            "notes": list(self.notes),
            "price_preference": self.price_preference,
            "corrections": [[c.written, c.meant] for c in self.corrections],
        }


# --- The parser --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Text:
    """The folded request and which characters rules have consumed (by kind)."""

    original: str
    folded: str
    owner: list[str | None] = field(default_factory=list)

    @classmethod
    def of(cls, text: str) -> _Text:
        folded_chars: list[str] = []
        original_chars: list[str] = []
        for ch in text:
            folded = fold(ch)
            # Keep one folded character per original one so spans line up with the original.
            folded_chars.append(folded[:1] if folded else " ")
            original_chars.append(ch)
        folded_text = "".join(folded_chars)
        return cls(original=text, folded=folded_text, owner=[None] * len(folded_text))

    def free(self, start: int, end: int) -> bool:
        return all(owner is None for owner in self.owner[start:end])

    def take(self, start: int, end: int, kind: str) -> None:
        for index in range(start, end):
            self.owner[index] = kind

    def remaining(self, keep: Iterable[str] = ()) -> str:
        kept = set(keep)
        chars = [
            ch if owner is None or owner in kept else " "
            for ch, owner in zip(self.folded, self.owner, strict=True)
        ]
        return "".join(chars)

    def remaining_original(self, keep: Iterable[str] = ()) -> str:
        kept = set(keep)
        chars = [
            ch if owner is None or owner in kept else " "
            for ch, owner in zip(self.original, self.owner, strict=True)
        ]
        return "".join(chars)


@dataclass(frozen=True, slots=True)
class _Mention:
    start: int
    end: int
    kind: str  # "brand" or "marketplace"
    value: str


def clean_prompt(text: str) -> str:
    """Control characters removed, whitespace collapsed, cut to MAX_PROMPT_CHARS."""
    cleaned = re.sub(r"[\x00-\x1f\x7f]", " ", text or "")
    return " ".join(cleaned.split())[:MAX_PROMPT_CHARS]


def parse_intent(
    text: str,
    vocabulary: CatalogVocabulary | None = None,
    *,
    default_currency: str = "USD",
) -> Intent:
    """Read a shopper's request into an :class:`Intent` (see the module docstring).

    `default_currency` is the shopper's display currency: an amount written without a currency
    ("under 40") is taken to be in it, and the intent notes that assumption.
    """
    vocabulary = vocabulary or CatalogVocabulary()
    if not is_iso_currency(default_currency):
        default_currency = "USD"
    prompt = clean_prompt(text)
    corrected, corrections = correct_prompt(prompt, vocabulary)
    state = _Text.of(corrected)
    notes: list[str] = []
    if corrections:
        read_as = ", ".join(f"“{c.written}” as “{c.meant}”" for c in corrections)
        notes.append(f"Read {read_as}.")

    # Ratings first: "4 stars" must not be read as a budget of 4.
    min_rating = _parse_rating(state)
    if _take_first(state, _GOOD_REVIEWS_RE, "rating") and min_rating is None:
        min_rating = GOOD_REVIEWS_STARS
    sort = _parse_sort(state)
    budget = _parse_budget(state, default_currency)
    if budget is not None and budget.currency_assumed:
        notes.append(f"Amounts without a currency were read as {default_currency}.")
    # After the budget: "budget" in "budget of $40" is the amount's cue, not a wish.
    price_preference = bool(_take_first(state, _PRICE_PREFERENCE_RE, "price-preference"))
    if price_preference and sort is None:
        sort = SORT_PRICE_ASC
    available_only = True
    availability_stated = False
    if _take_first(state, _INCLUDE_UNAVAILABLE_RE, "availability"):
        available_only = False
        availability_stated = True
    elif _take_first(state, _AVAILABLE_RE, "availability"):
        availability_stated = True
    specs = _parse_specs(state)

    mentions = _find_mentions(state, vocabulary)
    brands, excluded_brands, marketplaces, excluded_marketplaces = _resolve_mentions(
        state, mentions
    )
    categories, implied_brands, carried = _parse_categories(state)
    excluded_categories = [key for key in carried if key not in categories]
    for brand in implied_brands:
        if (
            brand in vocabulary.brands
            and brand not in brands
            and brand not in excluded_brands
            and not brands
        ):
            brands.append(brand)
    quantity = _parse_quantity(state)
    if quantity > 1 and budget is not None:
        notes.append("The budget is read as a price per item.")

    keywords = _keywords(state.remaining(keep=("category-modifier", "descriptive")))
    semantic = " ".join(
        state.remaining_original(
            keep=("category", "category-modifier", "descriptive", "brand", "spec")
        ).split()
    )
    semantic = re.sub(r"(?:[\s,;]+(?:and|or|but|with|nor))+[\s,.;:!?-]*$", "", semantic)
    semantic = re.sub(r"^[\s,.;:!?-]+|[\s,.;:!?-]+$", "", semantic)
    if not semantic:
        semantic = " ".join([*(category_label(c) for c in categories), *brands]) or corrected
    semantic, implied_words = _implied_words(state, semantic, keywords, categories)
    return Intent(
        text=prompt,
        corrections=corrections,
        price_preference=price_preference,
        budget=budget,
        categories=tuple(categories),
        excluded_categories=tuple(excluded_categories),
        brands=tuple(brands),
        excluded_brands=tuple(excluded_brands),
        marketplaces=tuple(marketplaces),
        excluded_marketplaces=tuple(excluded_marketplaces),
        marketplace_names=tuple(sorted(vocabulary.marketplaces.items())),
        available_only=available_only,
        availability_stated=availability_stated,
        min_rating=min_rating,
        sort=sort,
        quantity=quantity,
        specs=tuple(specs),
        keywords=keywords,
        semantic_text=semantic,
        implied_words=implied_words,
        notes=tuple(notes),
    )


def _implied_words(
    state: _Text, semantic: str, keywords: str, categories: Sequence[str]
) -> tuple[str, str]:
    """The text to embed, and the product words the request implies beyond its keywords: the
    English of other languages' words, and, when no product is named, the products for the
    uses it describes ("boil water quickly for tea" is embedded as "electric kettle")."""
    implied: list[str] = []
    translated_keywords = translate(keywords)
    if translated_keywords:
        implied.extend(_keywords(translated_keywords).split())
    english = translate(fold(semantic))
    if english:
        semantic = english
    if not categories:
        free = " ".join(state.remaining(keep=("category-modifier", "descriptive")).split())
        products = products_for_uses(free)
        if products:
            implied.extend(word for product in products for word in product.split())
            # The product is embedded, not the chore: the English model reads "make smoothies
            # for breakfast" as near coffee machines, "blender" as blenders. The shopper's
            # own words still rank on the keyword side.
            semantic = ", ".join(products)
    kept = set(keywords.split())
    words: list[str] = []
    for word in implied:
        if word not in kept and word not in words:
            words.append(word)
    return semantic, " ".join(words)


def _take_first(state: _Text, pattern: re.Pattern[str], kind: str) -> re.Match[str] | None:
    for match in pattern.finditer(state.folded):
        if match.end() > match.start() and state.free(match.start(), match.end()):
            state.take(match.start(), match.end(), kind)
            return match
    return None


def _parse_rating(state: _Text) -> Decimal | None:
    for pattern in _RATING_RES:
        match = _take_first(state, pattern, "rating")
        if match:
            return Decimal(match.group("r"))
    return None


def _parse_sort(state: _Text) -> str | None:
    for sort, pattern in _SORT_RES:
        if _take_first(state, pattern, "sort"):
            return sort
    return None


def _money_parts(match: re.Match[str], prefix: str) -> tuple[str, str | None, str | None]:
    currency = currency_for_token(match.group(f"{prefix}c1")) or currency_for_token(
        match.group(f"{prefix}c2")
    )
    return match.group(f"{prefix}n"), match.group(f"{prefix}m"), currency


def _looks_like_measurement(state: _Text, match: re.Match[str], *currencies: str | None) -> bool:
    if any(currencies):
        return False
    return bool(_NOT_MONEY_TAIL.match(state.folded, match.end()))


def _parse_budget(state: _Text, default_currency: str) -> Budget | None:
    text = state.folded
    for match in _RANGE_RE.finditer(text):
        if not state.free(match.start(), match.end()):
            continue
        low_n, low_m, low_cur = _money_parts(match, "a")
        high_n, high_m, high_cur = _money_parts(match, "b")
        has_cue = bool(re.match(r"\s*(?:between|from)\b", match.group(0)))
        if not has_cue and not (low_cur or high_cur):
            continue  # "2-3" or "43-55" alone is not a budget
        if _looks_like_measurement(state, match, low_cur, high_cur):
            continue
        currency = high_cur or low_cur or default_currency
        # "10k and 20k naira": a multiplier written once applies to both ends.
        low_mult = low_m or (high_m if low_m is None and high_m and not low_cur else None)
        low = _parse_amount(low_n, low_mult, currency)
        high = _parse_amount(high_n, high_m, currency)
        if low is None or high is None:
            continue
        if low > high:
            low, high = high, low
        state.take(match.start(), match.end(), "budget")
        return Budget(currency, low, high, currency_assumed=not (low_cur or high_cur))
    for pattern, bound in ((_MAX_RE, "max"), (_MIN_RE, "min"), (_AROUND_RE, "around")):
        for match in pattern.finditer(text):
            if not state.free(match.start(), match.end()):
                continue
            number, multiplier, currency = _money_parts(match, "a")
            if _looks_like_measurement(state, match, currency):
                continue
            chosen = currency or default_currency
            amount = _parse_amount(number, multiplier, chosen)
            if amount is None:
                continue
            state.take(match.start(), match.end(), "budget")
            assumed = currency is None
            if bound == "max":
                return Budget(chosen, None, amount, currency_assumed=assumed)
            if bound == "min":
                return Budget(chosen, amount, None, currency_assumed=assumed)
            spread = (Decimal(amount) * AROUND_SPREAD).to_integral_value()
            return Budget(
                chosen, max(1, amount - int(spread)), amount + int(spread), currency_assumed=assumed
            )
    for match in _BARE_RE.finditer(text):
        if not state.free(match.start(), match.end()):
            continue
        number, multiplier, currency = _money_parts(match, "a")
        if currency is None:
            continue  # a bare number is only money when a currency says so
        amount = _parse_amount(number, multiplier, currency)
        if amount is None:
            continue
        state.take(match.start(), match.end(), "budget")
        return Budget(currency, None, amount)
    return None


def _parse_specs(state: _Text) -> list[str]:
    specs: list[str] = []
    for kind, pattern in _SPEC_RES:
        for match in pattern.finditer(state.folded):
            if not state.free(match.start(), match.end()):
                continue
            number = match.group("n")
            if kind == "inch":
                spec = f"{number}-inch"
            elif kind == "storage":
                spec = f"{number}{match.group('u').upper()}"
            else:
                unit = match.group("u").lower()
                unit = "L" if unit.startswith(("l", "litre", "liter")) and unit != "ml" else unit
                spec = f"{number}{unit}"
            state.take(match.start(), match.end(), "spec")
            if spec not in specs:
                specs.append(spec)
    return specs


def spec_pattern(spec: str) -> re.Pattern[str]:
    """How a size appears in a title or description ("65-inch" matches 65", 65 inch, 65-inch)."""
    match = re.fullmatch(r"(\d+(?:\.\d)?)(-inch|GB|TB|ml|oz|L)", spec)
    if not match:
        return re.compile(re.escape(spec), re.IGNORECASE)
    number, unit = match.groups()
    units = {
        "-inch": r"(?:inch(?:es)?\b|in\b|\"|'')",
        "GB": r"gb\b",
        "TB": r"tb\b",
        "ml": r"ml\b",
        "oz": r"oz\b",
        "L": r"(?:l|litres?|liters?)\b",
    }[unit]
    return re.compile(rf"(?<![\d.]){re.escape(number)}\s*-?\s*{units}", re.IGNORECASE)


# --- Brands and marketplaces -------------------------------------------------------------------


def _name_variants(name: str) -> set[str]:
    """Ways a shopper writes a name: "De'Longhi" -> de'longhi, delonghi, de longhi."""
    base = fold(name).strip()
    variants = {base}
    variants.add(base.replace("'", ""))
    variants.add(base.replace("'", " "))
    variants.add(base.replace("-", " "))
    variants.add(base.replace("-", ""))
    variants.add(base.replace(" ", ""))
    variants.add(re.sub(r"[^a-z0-9 ]", "", base))
    if base.startswith("the "):
        variants.add(base[4:])
    # CamelCase names ("ShopWave", "DummyMart") are also written as two words.
    split = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name)
    if split != name:
        variants.add(fold(split))
    words = base.split()
    if len(words) > 1 and ("'" in words[0] or len(words[0]) >= 6):
        variants.add(words[0])
        variants.add(words[0].replace("'", ""))
    return {" ".join(v.split()) for v in variants if len(v.strip()) >= 2}


def _marketplace_variants(slug: str, name: str) -> set[str]:
    variants = _name_variants(name) | {slug, slug.replace("-", " ")}
    words = fold(name).split()
    # "Kiondo Market" is also just "Kiondo"; "Euro Bazaar" just "Bazaar" (its slug).
    if len(words) > 1 and len(words[0]) >= 4 and words[0] not in {"euro", "fake", "the"}:
        variants.add(words[0])
    return variants


def _find_mentions(state: _Text, vocabulary: CatalogVocabulary) -> list[_Mention]:
    candidates: list[tuple[str, str, str]] = []  # (variant, kind, value)
    for slug, name in vocabulary.marketplaces.items():
        for variant in _marketplace_variants(slug, name):
            candidates.append((variant, "marketplace", slug))
    for brand in vocabulary.brands:
        for variant in _name_variants(brand):
            candidates.append((variant, "brand", brand))
    # Longest first, marketplaces before brands at equal length.
    candidates.sort(key=lambda c: (-len(c[0]), c[1] != "marketplace"))
    mentions: list[_Mention] = []
    text = state.folded
    for variant, kind, value in candidates:
        pattern = re.compile(rf"(?<![a-z0-9]){re.escape(variant)}(?![a-z0-9])")
        for match in pattern.finditer(text):
            start, end = match.span()
            if not state.free(start, end) or any(m.start < end and start < m.end for m in mentions):
                continue
            if kind == "brand" and _is_generic_use(state, start, end, variant):
                continue
            mentions.append(_Mention(start, end, kind, value))
    mentions.extend(_fuzzy_mentions(state, vocabulary, mentions))
    return sorted(mentions, key=lambda m: m.start)


def _is_generic_use(state: _Text, start: int, end: int, variant: str) -> bool:
    """A brand name that is also a product word ("a thermos for tea") is the product word unless
    it is capitalised or introduced as a brand ("by Thermos", "Thermos brand")."""
    if variant not in category_words():
        return False
    capitalised = state.original[start : start + 1].isupper()
    cue_before = bool(_BRAND_CUE.search(state.folded[:start]))
    cue_after = bool(re.match(r"\s+brand\b", state.folded[end:]))
    return not (capitalised or cue_before or cue_after)


def _fuzzy_mentions(
    state: _Text, vocabulary: CatalogVocabulary, found: Sequence[_Mention]
) -> list[_Mention]:
    """Misspelled single-word brands and marketplaces ("addidas", "samsnug", "shopwav")."""
    targets: list[tuple[str, str, str]] = []
    for slug, name in vocabulary.marketplaces.items():
        for variant in _marketplace_variants(slug, name):
            if " " not in variant and len(variant) >= 4:
                targets.append((variant, "marketplace", slug))
    for brand in vocabulary.brands:
        for variant in _name_variants(brand):
            if " " not in variant and len(variant) >= 4:
                targets.append((variant, "brand", brand))
    product_words = category_words()
    mentions: list[_Mention] = []
    for match in _TOKEN_RE.finditer(state.folded):
        word = match.group(0)
        start, end = match.span()
        allowed = allowed_typos(word)
        if (
            not allowed
            or word in FUZZY_STOPLIST
            or word in STOPWORDS
            or word in product_words
            or not state.free(start, end)
            or any(m.start < end and start < m.end for m in found)
        ):
            continue
        best: tuple[int, str, str] | None = None
        for variant, kind, value in targets:
            distance = damerau_distance(word, variant, allowed)
            if 0 < distance <= min(allowed, allowed_typos(variant) or 1) and (
                best is None or distance < best[0]
            ):
                best = (distance, kind, value)
        if best is not None:
            mentions.append(_Mention(start, end, best[1], best[2]))
    return mentions


def _resolve_mentions(
    state: _Text, mentions: Sequence[_Mention]
) -> tuple[list[str], list[str], list[str], list[str]]:
    """Sort mentions into included and excluded brands and marketplaces, reading the cue words
    before each one ("not from X or Y" excludes both) and consuming them."""
    brands: list[str] = []
    excluded_brands: list[str] = []
    marketplaces: list[str] = []
    excluded_marketplaces: list[str] = []
    previous: _Mention | None = None
    previous_negated = False
    for mention in mentions:
        window_start = max(0, mention.start - 40)
        if previous is not None:
            window_start = max(window_start, previous.end)
        before = state.folded[window_start : mention.start]
        negation = _NEGATION_CUE.search(before)
        include = _INCLUDE_CUE.search(before)
        negated = bool(negation)
        cue_start = negation.start() if negation else (include.start() if include else None)
        if previous is not None and _LIST_GAP.match(before):
            negated = previous_negated
            cue_start = 0
        if cue_start is not None:
            start = window_start + cue_start
            state.take(start, mention.start, "constraint-cue")
        state.take(mention.start, mention.end, mention.kind)
        only = _ONLY_AFTER.match(state.folded, mention.end)
        if only:
            state.take(mention.end, only.end(), "constraint-cue")
        if mention.kind == "marketplace":
            target = excluded_marketplaces if negated else marketplaces
        else:
            target = excluded_brands if negated else brands
            if negated:
                state.take(mention.start, mention.end, "excluded-brand")
        if mention.value not in target:
            target.append(mention.value)
        previous, previous_negated = mention, negated
    # A value both wanted and excluded is excluded: the negation is the more specific wish.
    brands = [b for b in brands if b not in excluded_brands]
    marketplaces = [m for m in marketplaces if m not in excluded_marketplaces]
    return brands, excluded_brands, marketplaces, excluded_marketplaces


# --- Categories and quantity -------------------------------------------------------------------


def _category_phrases() -> list[tuple[str, str]]:
    phrases = [(fold(phrase), c.key) for c in CATEGORIES for phrase in c.phrases]
    return sorted(phrases, key=lambda item: -len(item[0]))


def _parse_categories(state: _Text) -> tuple[list[str], list[str], list[str]]:
    """Category phrases in the text; of two adjacent ones ("laptop backpack") the last is the
    product and the first a description of it, which stays in the keywords. Returns the
    categories, the brands product words imply, and the categories of things to be carried."""
    found: list[tuple[int, int, str, str]] = []  # start, end, key, phrase
    text = state.folded
    for phrase, key in _category_phrases():
        pattern = re.compile(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])")
        for match in pattern.finditer(text):
            start, end = match.span()
            if not state.free(start, end) or any(s < end and start < e for s, e, _, _ in found):
                continue
            if phrase in {"watch", "watches"} and (
                _WATCH_VERB_BEFORE.search(text[:start]) or _WATCH_VERB_AFTER.match(text[end:])
            ):
                continue
            found.append((start, end, key, phrase))
    found.extend(_fuzzy_categories(state, found))
    found.sort()
    chosen: list[tuple[int, int, str, str]] = []
    carried: list[str] = []
    skip_next = False
    for index, item in enumerate(found):
        if skip_next:
            skip_next = False
            state.take(item[0], item[1], "category-modifier")
            continue
        following = found[index + 1] if index + 1 < len(found) else None
        gap = text[item[1] : following[0]] if following is not None else ""
        if following is not None and not gap.strip():
            state.take(item[0], item[1], "category-modifier")
            continue
        if _CARRIED_BEFORE.search(text[: item[0]]):
            state.take(item[0], item[1], "category-modifier")
            carried.append(item[2])
            continue
        # "a backpack for my laptop", "mochila para portatil", "a phone with a great camera":
        # the first is the product.
        if following is not None and (_FOR_GAP.fullmatch(gap) or _WITH_GAP.fullmatch(gap)):
            skip_next = True
        chosen.append(item)
    categories: list[str] = []
    implied_brands: list[str] = []
    for start, end, key, phrase in chosen:
        descriptive = phrase in _BRAND_IMPLYING_WORDS or phrase in SPECIFIC_PHRASES
        state.take(start, end, "descriptive" if descriptive else "category")
        if key not in categories:
            categories.append(key)
        if phrase in _BRAND_IMPLYING_WORDS:
            implied_brands.append(_BRAND_IMPLYING_WORDS[phrase])
    return categories, implied_brands, carried


def _fuzzy_categories(
    state: _Text, found: Sequence[tuple[int, int, str, str]]
) -> list[tuple[int, int, str, str]]:
    """Misspelled one-word category names ("headphnes", "televsion", "sneekers")."""
    singles = [(phrase, key) for phrase, key in _category_phrases() if " " not in phrase]
    fuzzy: list[tuple[int, int, str, str]] = []
    for match in _TOKEN_RE.finditer(state.folded):
        word = match.group(0)
        start, end = match.span()
        if (
            len(word) < 6
            or word in FUZZY_STOPLIST
            or word in STOPWORDS
            or not state.free(start, end)
            or any(s < end and start < e for s, e, _, _ in found)
        ):
            continue
        allowed = allowed_typos(word)
        best: tuple[int, str, str] | None = None
        for phrase, key in singles:
            if len(phrase) < 6:
                continue
            distance = damerau_distance(word, phrase, allowed)
            if 0 < distance <= allowed and (best is None or distance < best[0]):
                best = (distance, key, phrase)
        if best is not None:
            fuzzy.append((start, end, best[1], best[2]))
    return fuzzy


def _quantity_value(word: str) -> int | None:
    word = word.lower().strip()
    value = int(word) if word.isdigit() else _NUMBER_WORDS.get(" ".join(word.split()), 0)
    return value if 1 <= value <= MAX_QUANTITY else None


def _parse_quantity(state: _Text) -> int:
    for pattern in _QUANTITY_RES:
        for match in pattern.finditer(state.folded):
            if not state.free(match.start(), match.end()):
                continue
            value = _quantity_value(match.group("q"))
            if value is not None:
                state.take(match.start(), match.end(), "quantity")
                return value
    # "two mugs", "3 Sony phones": a number right before the category word (and its brand).
    for index, owner in enumerate(state.owner):
        if owner in {"category", "descriptive"} and (index == 0 or state.owner[index - 1] != owner):
            start = index
            while start > 0 and (
                state.owner[start - 1] in {"brand", "category-modifier"}
                or state.folded[start - 1].isspace()
            ):
                start -= 1
            if start == index:
                continue
            match = _LEADING_QUANTITY_RE.search(state.folded[:start])
            if match and state.free(match.start(), match.end()):
                value = _quantity_value(match.group("q"))
                if value is not None:
                    state.take(match.start(), match.end(), "quantity")
                    return value
    return 1


def _keywords(remaining: str) -> str:
    words = [w.strip(".-'") for w in _TOKEN_RE.findall(remaining)]
    return " ".join(w for w in words if w and w not in STOPWORDS)

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

The rules live by job: amounts and budgets in assistant.budget; brands, marketplaces and
categories named (or excluded) in assistant.mentions; sizes in assistant.specs; a wish to
compare prices in assistant.comparison; the catalog's words for what a person named does in
assistant.catalog_words; the text they consume in assistant.prompt_text. This module holds the result (Intent) and the order the rules run in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from assistant.budget import Budget, parse_budget
from assistant.catalog_words import activity_words
from assistant.comparison import parse_compare
from assistant.exclusions import (
    parse_excluded_substances,
    parse_excluded_words,
    substance_label,
)
from assistant.glossary import products_for_uses, translate
from assistant.mentions import find_mentions, parse_categories, resolve_mentions
from assistant.number_words import QUANTITY_WORDS_PATTERN, quantity_words_value
from assistant.prompt_text import TOKEN_RE, PromptText, take_first
from assistant.specs import parse_specs
from assistant.spelling import (
    Correction,
    correct_prompt,
)
from assistant.vocabulary import (
    STOPWORDS,
    CatalogVocabulary,
    category_label,
    fold,
)
from onecart.money import is_iso_currency

MAX_PROMPT_CHARS: Final = 500
MAX_QUANTITY: Final = 99
GOOD_REVIEWS_STARS: Final = Decimal("4.0")
AROUND_SPREAD: Final = Decimal("0.2")

SORT_PRICE_ASC: Final = "price_asc"
SORT_PRICE_DESC: Final = "price_desc"
SORT_RATING: Final = "rating"


# --- Other rules -------------------------------------------------------------------------------

_RATING_RES: Final = (
    re.compile(
        # "rated 4 stars or more": "rated" too, or it was left to be read as a word excluded.
        r"(?:\b(?:rated|at least|min(?:imum)?|over|above|more than|no less than)\s+)?"
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
            r"\bmost popular\b(?:\s+first\b)?",
            re.IGNORECASE,
        ),
    ),
    (
        SORT_PRICE_DESC,
        re.compile(
            r"\b(?:the\s+)?(?:most expensive|priciest|premium|high[- ]end|top[- ]of[- ]the[- ]line|"
            r"luxury|luxurious)\b(?:\s+first\b)?",
            re.IGNORECASE,
        ),
    ),
    (
        SORT_PRICE_ASC,
        re.compile(
            r"\b(?:the\s+)?(?:cheapest|lowest[- ]priced|lowest price|least expensive|lowest cost)\b"
            r"(?:\s+first\b)?",
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
    r"good value|value for money|on a budget|"
    # Spanish, Portuguese, French, German, Italian (folded): "auriculares baratos".
    r"barat[oa]s?|econ[oô]mic[oa]s?|pas cher|bon marche|gunstig(?:e[nrs]?)?|billig(?:e[nrs]?)?|"
    r"preiswert(?:e[nrs]?)?|a buon mercato)\b",
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

_QTY_WORD = rf"\d{{1,2}}|{QUANTITY_WORDS_PATTERN}"
_QUANTITY_RES: Final = (
    re.compile(
        rf"\b(?P<q>{_QTY_WORD})\s*(?:x\b|pairs? of\b|units? of\b|pieces? of\b|sets? of\b|"
        r"packs? of\b)",
        re.IGNORECASE,
    ),
    # "running shoes, two pairs": pairs of what the request names.
    re.compile(rf"\b(?P<q>{_QTY_WORD})\s+pairs\b", re.IGNORECASE),
    re.compile(r"(?<![a-z0-9])x\s*(?P<q>\d{1,2})\b", re.IGNORECASE),
    re.compile(r"\bquantity(?: of)?\s*:?\s*(?P<q>\d{1,2})\b", re.IGNORECASE),
)
# Not the end of a hyphenated name: "a 2-in-1 laptop" is one laptop of a kind.
# Nor the end of a decimal ("size 9.5 running shoes" is one pair, not five).
_LEADING_QUANTITY_RE = re.compile(rf"(?<![\w.,-])(?P<q>{_QTY_WORD})\s*$", re.IGNORECASE)


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
    # The shopper asked to compare each product's offers across marketplaces.
    compare: bool = False
    budget: Budget | None = None
    categories: tuple[str, ...] = ()
    # What the wanted thing carries or holds ("carry my laptop"): not itself the product.
    excluded_categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    excluded_brands: tuple[str, ...] = ()
    marketplaces: tuple[str, ...] = ()
    excluded_marketplaces: tuple[str, ...] = ()
    # Substances the product must not contain ("BPA-free", "without sulfates"), canonical form.
    excluded_substances: tuple[str, ...] = ()
    # Words said not to be wanted that name no brand or substance ("not the Revolution").
    excluded_words: tuple[str, ...] = ()
    excluded_specs: tuple[str, ...] = ()
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
    # The products the request's uses imply, each as listings name it ("electric kettle").
    implied_products: tuple[str, ...] = ()
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
        for spec in self.excluded_specs:
            out.append(Constraint("exclude_spec", f"not {spec}"))
        for brand in self.brands:
            out.append(Constraint("brand", brand))
        for brand in self.excluded_brands:
            out.append(Constraint("exclude_brand", f"not {brand}"))
        for term in self.excluded_substances:
            out.append(Constraint("exclude_substance", substance_label(term)))
        for word in self.excluded_words:
            out.append(Constraint("exclude_word", f"not “{word}”"))
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
    def asks_for_anything(self) -> bool:
        """False when no rule read anything and no word is left ("!!!", words in a script the
        parser does not read): then every product would match, so nothing is suggested."""
        constrained = any(c.kind != "available" for c in self.constraints())
        return bool(
            constrained
            or self.keywords.strip()
            or self.implied_words.strip()
            or self.sort
            or self.price_preference
            or not self.available_only
        )

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
            "excluded_substances": list(self.excluded_substances),
            "excluded_words": list(self.excluded_words),
            "excluded_specs": list(self.excluded_specs),
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
            "compare": self.compare,
            "corrections": [[c.written, c.meant] for c in self.corrections],
        }


# --- The parser --------------------------------------------------------------------------------


# A no-break, figure or thin space between thousands ("5\u202f000"): kept (as a narrow no-break
# space) so the budget reads the amount whole, where a plain space may be a model number's end.
_GROUPING_SPACE_RE = re.compile(r"(?<=\d)[\u00a0\u2007\u202f\u2009](?=\d{3}(?!\d))")


def clean_prompt(text: str) -> str:
    """Control characters removed, whitespace collapsed (but for spaces between thousands),
    cut to MAX_PROMPT_CHARS."""
    cleaned = re.sub(r"[\x00-\x1f\x7f]", " ", text or "")
    # NUL stands in for the kept spaces while the others collapse (control characters are gone).
    cleaned = _GROUPING_SPACE_RE.sub("\x00", cleaned)
    return " ".join(cleaned.split()).replace("\x00", "\u202f")[:MAX_PROMPT_CHARS]


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
    state = PromptText.of(corrected)
    notes: list[str] = []
    if corrections:
        read_as = ", ".join(f"“{c.written}” as “{c.meant}”" for c in corrections)
        notes.append(f"Read {read_as}.")

    # Before the order: "which shop is cheapest" compares, and before exclusions: "not Sony,
    # compare prices" excludes Sony alone.
    compare = parse_compare(state)
    # Ratings first: "4 stars" must not be read as a budget of 4.
    min_rating = _parse_rating(state)
    if take_first(state, _GOOD_REVIEWS_RE, "rating") and min_rating is None:
        min_rating = GOOD_REVIEWS_STARS
    sort = _parse_sort(state, notes)
    budget = parse_budget(state, default_currency, notes)
    if budget is not None and budget.currency_assumed:
        notes.append(f"Amounts without a currency were read as {default_currency}.")
    # After the budget: "budget" in "budget of $40" is the amount's cue, not a wish.
    price_preference = bool(take_first(state, _PRICE_PREFERENCE_RE, "price-preference"))
    if price_preference and sort is None:
        sort = SORT_PRICE_ASC
    available_only = True
    availability_stated = False
    if take_first(state, _INCLUDE_UNAVAILABLE_RE, "availability"):
        available_only = False
        availability_stated = True
    elif take_first(state, _AVAILABLE_RE, "availability"):
        availability_stated = True
    specs, excluded_specs = parse_specs(state)

    mentions = find_mentions(state, vocabulary)
    brands, excluded_brands, marketplaces, excluded_marketplaces = resolve_mentions(state, mentions)
    excluded_substances = parse_excluded_substances(state)
    categories, implied_brands, carried, negated = parse_categories(state)
    excluded_categories = [key for key in carried if key not in categories]
    negated_words: list[str] = []
    for product in negated:
        # "no iphone": not Apple; "not a laptop": not the category; "headphones but no
        # earbuds": the category is wanted, only products named so are not.
        if product.brand is not None and product.brand in vocabulary.brands:
            if product.brand not in excluded_brands:
                excluded_brands.append(product.brand)
            brands = [b for b in brands if b != product.brand]
        elif product.key not in categories:
            if product.key not in excluded_categories:
                excluded_categories.append(product.key)
        else:
            negated_words.append(product.phrase)
    for brand in implied_brands:
        if (
            brand in vocabulary.brands
            and brand not in brands
            and brand not in excluded_brands
            and not brands
        ):
            brands.append(brand)
    quantity = _parse_quantity(state)
    excluded_words = list(dict.fromkeys([*negated_words, *parse_excluded_words(state)]))
    if quantity > 1 and budget is not None:
        notes.append("The budget is read as a price per item.")

    keywords = _keywords(state.remaining(keep=("category-modifier", "descriptive")))
    left = state.remaining_original(
        keep=("category", "category-modifier", "descriptive", "brand", "spec")
    )
    # Two spaces or more are text a rule took (clean_prompt collapsed the shopper's own): a
    # connector right after it joins nothing ("headphones under fifty and in black").
    left = re.sub(r"(?<=\S)\s{2,}(?:and|or|but|nor)(?=\s)", " ", left, flags=re.IGNORECASE)
    semantic = " ".join(left.split())
    semantic = re.sub(
        r"(?:[\s,;]+(?:and|or|but|with|nor|for|that|which|who|in|of|to|at|from|is|are))+"
        r"[\s,.;:!?-]*$",
        "",
        semantic,
        flags=re.IGNORECASE,
    )
    semantic = re.sub(r"^[\s,.;:!?-]+|[\s,.;:!?-]+$", "", semantic)
    semantic = re.sub(r"\s+(?=[,;:])", "", semantic)  # "headphones , black" after "not Sony"
    # A connector the shopper's first words (taken by a rule) led into joins nothing either:
    # "compare prices for a Thermos mug" is embedded as "a Thermos mug".
    leading = re.match(r"(?:(?:for|of|and|or|on|at|with|to|from)\s+)+", semantic, re.IGNORECASE)
    if leading and not fold(prompt).startswith(fold(leading.group(0))):
        semantic = semantic[leading.end() :]
    if not semantic:
        semantic = " ".join([*(category_label(c) for c in categories), *brands]) or corrected
    semantic, implied_words, implied_products = _implied_words(
        state, semantic, keywords, categories, vocabulary
    )
    return Intent(
        text=prompt,
        corrections=corrections,
        price_preference=price_preference,
        compare=compare,
        budget=budget,
        categories=tuple(categories),
        excluded_categories=tuple(excluded_categories),
        brands=tuple(brands),
        excluded_brands=tuple(excluded_brands),
        marketplaces=tuple(marketplaces),
        excluded_marketplaces=tuple(excluded_marketplaces),
        excluded_substances=tuple(excluded_substances),
        excluded_words=tuple(excluded_words),
        excluded_specs=tuple(excluded_specs),
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
        implied_products=implied_products,
        notes=tuple(notes),
    )


def _implied_words(
    state: PromptText,
    semantic: str,
    keywords: str,
    categories: Sequence[str],
    vocabulary: CatalogVocabulary,
) -> tuple[str, str, tuple[str, ...]]:
    """The text to embed, and the product words the request implies beyond its keywords: the
    English of other languages' words, and, when no product is named, the products for the
    uses it describes ("boil water quickly for tea" is embedded as "electric kettle") or, for
    none, the catalog's words for what the people it names do ("a gift for a runner": running,
    assistant.catalog_words)."""
    implied: list[str] = []
    products: tuple[str, ...] = ()
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
        else:
            products = activity_words(keywords.split(), vocabulary)
            implied.extend(products)
            if products:
                # "a gift for a runner" alone is nearest to gift sets: what they do says more.
                semantic = f"{semantic}, {', '.join(products)}"
    kept = set(keywords.split())
    words: list[str] = []
    for word in implied:
        if word not in kept and word not in words:
            words.append(word)
    return semantic, " ".join(words), products


def _parse_rating(state: PromptText) -> Decimal | None:
    for pattern in _RATING_RES:
        match = take_first(state, pattern, "rating")
        if match:
            return Decimal(match.group("r"))
    return None


def _parse_sort(state: PromptText, notes: list[str]) -> str | None:
    """The order asked for. Of two ("cheapest ..., actually the most expensive"), the last one
    said counts, as a limit said again does (assistant.budget), and the note says so; the
    other is taken too, so it is no search word."""
    said: list[tuple[int, str, str]] = []  # start, sort, words
    for sort, pattern in _SORT_RES:
        for match in pattern.finditer(state.folded):
            if match.end() > match.start() and state.free(match.start(), match.end()):
                state.take(match.start(), match.end(), "sort")
                words = re.sub(r"^the\s+", "", match.group(0).strip(), flags=re.IGNORECASE)
                said.append((match.start(), sort, words))
    if not said:
        return None
    said.sort()
    _start, last, words = said[-1]
    if len({sort for _, sort, _ in said}) > 1:
        notes.append(f"Of the orders you asked for, the last one (“{words}”) counts.")
    return last


# --- Quantity and free text -------------------------------------------------------------------


def _quantity_value(word: str) -> int | None:
    word = word.lower().strip()
    value = int(word) if word.isdigit() else quantity_words_value(word)
    return value if value is not None and 1 <= value <= MAX_QUANTITY else None


def _parse_quantity(state: PromptText) -> int:
    for pattern in _QUANTITY_RES:
        for match in pattern.finditer(state.folded):
            if not state.free(match.start(), match.end()):
                continue
            value = _quantity_value(match.group("q"))
            if value is not None:
                state.take(match.start(), match.end(), "quantity")
                return value
    # "two mugs", "3 Sony phones", "two 65-inch TVs": a number right before the category word
    # (and its brand or size).
    for index, owner in enumerate(state.owner):
        if owner in {"category", "descriptive"} and (index == 0 or state.owner[index - 1] != owner):
            start = index
            while start > 0 and (
                state.owner[start - 1] in {"brand", "category-modifier", "spec"}
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
    words = [w.strip(".-'") for w in TOKEN_RE.findall(remaining)]
    return " ".join(w for w in words if w and w not in STOPWORDS)

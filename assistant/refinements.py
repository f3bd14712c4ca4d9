"""Follow-up suggestions for a vague request: ways to narrow it that the parser understands.

"a gift for my dad" names no product; "headphones" names nothing but the product. For such
requests the answer offers a few refined requests built from what the suggestions themselves
show: the categories they fall in, a budget around their middle price, good reviews, the brand
most of them share, or a lower price. Each refinement is the shopper's own request with a few
words added, and is kept only when parsing it again yields the constraint it promises, so
clicking one always narrows the answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from assistant.amounts import format_amount
from assistant.answer import Suggestion
from assistant.intent import Intent, parse_intent
from assistant.vocabulary import CatalogVocabulary, category_key_for_value, category_label
from onecart.money import currency_exponent, from_minor_units, to_minor_units

MAX_REFINEMENTS: Final = 4


@dataclass(frozen=True, slots=True)
class Refinement:
    """One follow-up: a short label ("Under $25.00") and the full request it asks."""

    label: str
    prompt: str

    def to_json(self) -> dict[str, str]:
        return {"label": self.label, "prompt": self.prompt}


def is_vague(intent: Intent) -> bool:
    """No product named, or a product and nothing else about it."""
    product = bool(intent.categories or intent.brands or intent.specs)
    if not product:
        return True
    narrowed = (
        intent.budget is not None
        or intent.price_preference
        or intent.min_rating is not None
        or intent.sort is not None
        or intent.marketplaces
        or intent.excluded_marketplaces
        or intent.excluded_brands
        or intent.keywords
    )
    return not narrowed


def _round_amount(minor: int, currency: str) -> int:
    """A friendly round budget near `minor`: two significant digits, in minor units."""
    amount = from_minor_units(minor, currency)
    if amount <= 0:
        return minor
    # Never finer than the currency's minor unit (a yen has none).
    step = max(
        Decimal(10) ** (amount.adjusted() - 1), Decimal(1).scaleb(-currency_exponent(currency))
    )
    rounded = (amount / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step
    return to_minor_units(rounded, currency)


def suggest_refinements(
    intent: Intent,
    suggestions: Sequence[Suggestion],
    vocabulary: CatalogVocabulary,
    display_currency: str,
) -> list[Refinement]:
    """Up to MAX_REFINEMENTS follow-ups for a vague request that found something."""
    if not suggestions or not is_vague(intent):
        return []
    base = intent.text.rstrip(" .!?")
    proposals: list[tuple[Refinement, str]] = []

    if not intent.categories:
        keys = Counter(
            key
            for s in suggestions
            if s.category and (key := category_key_for_value(s.category)) is not None
        )
        for key, _count in keys.most_common(2):
            label = category_label(key)
            proposals.append((Refinement(label, f"{base}, {label.lower()}"), f"category:{key}"))

    if intent.budget is None and not intent.price_preference:
        prices = sorted(
            s.display_price_minor for s in suggestions if s.display_price_minor is not None
        )
        if len(prices) >= 2:
            middle = _round_amount(prices[len(prices) // 2], display_currency)
            amount = format_amount(middle, display_currency)
            proposals.append((Refinement(f"Under {amount}", f"{base} under {amount}"), "budget"))
        proposals.append(
            (Refinement("Cheaper first", f"{base}, not too expensive"), "price_preference")
        )

    if intent.min_rating is None:
        proposals.append((Refinement("Rated 4★ or more", f"{base} with good reviews"), "rating"))

    if not intent.brands:
        brands = Counter(s.brand for s in suggestions if s.brand)
        if len(brands) >= 2:
            brand, _count = brands.most_common(1)[0]
            proposals.append((Refinement(f"Only {brand}", f"{base} by {brand}"), f"brand:{brand}"))

    refinements: list[Refinement] = []
    for refinement, promise in proposals:
        if _keeps_promise(refinement.prompt, promise, vocabulary, display_currency):
            refinements.append(refinement)
        if len(refinements) == MAX_REFINEMENTS:
            break
    return refinements


def _keeps_promise(
    prompt: str, promise: str, vocabulary: CatalogVocabulary, display_currency: str
) -> bool:
    """Does the refined request parse into the constraint the refinement offers?"""
    parsed = parse_intent(prompt, vocabulary, default_currency=display_currency)
    kind, _, value = promise.partition(":")
    if kind == "category":
        return value in parsed.categories
    if kind == "brand":
        return value in parsed.brands
    if kind == "budget":
        return parsed.budget is not None
    if kind == "price_preference":
        return parsed.price_preference
    if kind == "rating":
        return parsed.min_rating is not None
    return False

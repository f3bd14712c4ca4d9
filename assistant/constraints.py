"""A request's constraints as Meilisearch filter clauses, and the exact check of one suggestion.

The filter narrows what the index may return (a budget as a USD range rounded outwards, so
nothing is lost to rounding); the check then holds each suggestion to the request exactly, in
the budget's own currency and against the product document it was matched by
(assistant.retrieval uses both; bench/assistant_eval measures constraint satisfaction with the
check).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

from assistant.budget import Budget
from assistant.exclusions import names_substance, names_word
from assistant.intent import Intent
from assistant.specs import spec_pattern
from assistant.vocabulary import CatalogVocabulary, category_key_for_value, fold
from commerce.fx import FxRateMissing, FxTable
from search_index.filters import display_to_usd_minor, quote_filter_value

USD: Final = "USD"
# A category the index does not hold filters on this value, which nothing has.
NO_SUCH_CATEGORY: Final = "onecart:no-such-category"


# --- Filters -----------------------------------------------------------------------------------


def budget_usd_bounds(budget: Budget, fx: FxTable) -> tuple[int | None, int | None]:
    """The budget as an inclusive USD-cents range for the index filter, rounded outwards."""
    per_usd = fx.rate(USD, budget.currency)
    low = high = None
    if budget.min_minor is not None:
        amount = Decimal(budget.min_minor).scaleb(-_exponent(budget.currency))
        low = display_to_usd_minor(amount, budget.currency, per_usd, round_up=False)
    if budget.max_minor is not None:
        amount = Decimal(budget.max_minor).scaleb(-_exponent(budget.currency))
        high = display_to_usd_minor(amount, budget.currency, per_usd, round_up=True)
    return low, high


def _exponent(currency: str) -> int:
    from onecart.money import currency_exponent

    return currency_exponent(currency)


def build_filter_clauses(
    intent: Intent, vocabulary: CatalogVocabulary, fx: FxTable
) -> dict[str, str]:
    """Each constraint as one Meilisearch filter clause, keyed by its kind.

    A category the index does not hold becomes a clause nothing matches, so the answer says that
    category is missing instead of silently showing something else.
    """
    clauses: dict[str, str] = {}
    if intent.categories:
        values = [v for key in intent.categories for v in vocabulary.category_values.get(key, ())]
        clauses["category"] = (
            _in_clause("category", values)
            if values
            else f"category = {quote_filter_value(NO_SUCH_CATEGORY)}"
        )
    excluded_values = [
        v for key in intent.excluded_categories for v in vocabulary.category_values.get(key, ())
    ]
    lists = {
        "exclude_category": ("category", excluded_values, True),
        "brand": ("brand", intent.brands, False),
        "exclude_brand": ("brand", intent.excluded_brands, True),
        "marketplace": ("marketplace", intent.marketplaces, False),
        "exclude_marketplace": ("marketplace", intent.excluded_marketplaces, True),
    }
    for kind, (attribute, values, excluded) in lists.items():
        if values:
            clauses[kind] = _in_clause(attribute, values, excluded=excluded)
    if intent.budget is not None:
        low, high = budget_usd_bounds(intent.budget, fx)
        parts = []
        if low is not None:
            parts.append(f"price_usd_minor >= {low}")
        if high is not None:
            parts.append(f"price_usd_minor <= {high}")
        if parts:
            clauses["budget"] = " AND ".join(parts)
    if intent.min_rating is not None:
        clauses["rating"] = f"rating >= {intent.min_rating}"
    if intent.available_only:
        clauses["available"] = "available = true"
    return clauses


def _in_clause(attribute: str, values: Iterable[str], *, excluded: bool = False) -> str:
    listed = ", ".join(quote_filter_value(value) for value in values)
    return f"{attribute} {'NOT IN' if excluded else 'IN'} [{listed}]"


def join_clauses(clauses: Mapping[str, str], *, only: frozenset[str] | None = None) -> str | None:
    """AND of the clauses (of the kinds in `only`, when given)."""
    parts = [f"({clause})" for kind, clause in clauses.items() if only is None or kind in only]
    return " AND ".join(parts) if parts else None


# --- Checking one suggestion -------------------------------------------------------------------


def offer_meets_budget(offer: Mapping[str, Any], budget: Budget, fx: FxTable) -> bool:
    """The offer's price, converted exactly into the budget's currency, is inside the budget."""
    try:
        converted = fx.convert(int(offer["price_minor"]), str(offer["currency"]), budget.currency)
    except (FxRateMissing, KeyError, TypeError, ValueError):
        return False
    return budget.contains(converted)


def text_has_spec(document: Mapping[str, Any], spec: str) -> bool:
    """The size ("65-inch", "256GB") appears in the title or description."""
    text = f"{document.get('title') or ''} {document.get('description') or ''}"
    return bool(spec_pattern(spec).search(fold(text)))


def _names_excluded_brand(document: Mapping[str, Any], excluded: set[str]) -> bool:
    """A listing without a brand field that names an excluded brand in its title ("LG OLED65
    TV" on a marketplace that sends no brand) is that brand all the same."""
    if document.get("brand"):
        return False
    title = fold(str(document.get("title") or ""))
    return any(
        re.search(rf"(?<![a-z0-9]){re.escape(name)}(?![a-z0-9])", title) for name in excluded
    )


def unmet_constraints(
    intent: Intent,
    offer: Mapping[str, Any],
    product: Mapping[str, Any],
    fx: FxTable,
) -> list[str]:
    """Which constraint kinds a suggestion breaks: offer-level ones are read from the offer,
    product-level ones (category, brand, size) from the product document it was matched by.
    Used to drop rounding edge cases and, by the evaluation, to measure constraint satisfaction.
    """
    broken: list[str] = []
    # Meilisearch compares facet values case-insensitively; so does this check.
    if intent.categories and (
        category_key_for_value(str(product.get("category") or "")) not in intent.categories
    ):
        broken.append("category")
    if intent.excluded_categories and (
        category_key_for_value(str(product.get("category") or "")) in intent.excluded_categories
    ):
        broken.append("exclude_category")
    wanted = {fold(b) for b in intent.brands}
    if wanted and fold(str(product.get("brand") or "")) not in wanted:
        broken.append("brand")
    excluded = {fold(b) for b in intent.excluded_brands}
    if excluded and (
        fold(str(product.get("brand") or "")) in excluded
        or fold(str(offer.get("brand") or "")) in excluded
        or _names_excluded_brand(product, excluded)
        or _names_excluded_brand(offer, excluded)
    ):
        broken.append("exclude_brand")
    if any(
        names_substance(document, term)
        for term in intent.excluded_substances
        for document in (product, offer)
    ):
        broken.append("exclude_substance")
    if any(
        names_word(document, word)
        for word in intent.excluded_words
        for document in (product, offer)
    ):
        broken.append("exclude_word")
    if any(
        text_has_spec(document, spec)
        for spec in intent.excluded_specs
        for document in (product, offer)
    ):
        broken.append("exclude_spec")
    for spec in intent.specs:
        if not (text_has_spec(product, spec) or text_has_spec(offer, spec)):
            broken.append("spec")
            break
    if product.get("group_id") != offer.get("group_id"):
        broken.append("group")
    if intent.budget is not None and not offer_meets_budget(offer, intent.budget, fx):
        broken.append("budget")
    if intent.marketplaces and offer.get("marketplace") not in intent.marketplaces:
        broken.append("marketplace")
    if intent.excluded_marketplaces and offer.get("marketplace") in intent.excluded_marketplaces:
        broken.append("exclude_marketplace")
    if intent.available_only and offer.get("available") is not True:
        broken.append("available")
    if intent.min_rating is not None:
        rating = offer.get("rating")
        if rating is None or Decimal(str(rating)) < intent.min_rating:
            broken.append("rating")
    return broken

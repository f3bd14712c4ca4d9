"""The answer to “which is better, X or Y?”: each side found as its own request (its best
match), the facts the comparison needs read from the offers index, and the verdict of
assistant.verdict. Nothing is claimed that the index does not hold.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from decimal import Decimal
from typing import Any

import meilisearch

from assistant.answer import AssistantAnswer, Suggestion
from assistant.index_profile import search_index
from assistant.intent import Intent
from assistant.matched_words import searchable_text, words_mentioned
from assistant.verdict import SCOPE_NOTE, ProductFacts, compare_products
from assistant.vocabulary import category_key_for_value, category_label, fold
from search_index.filters import quote_filter_value, withheld_marketplaces_clause
from search_index.groups import group_rating
from search_index.settings import SEARCHABLE_ATTRIBUTES

# A product's offers read for its rating and stock: more than any product has in the catalog.
MAX_OFFERS_READ = 200


def _group_offers(
    client: meilisearch.Client,
    index_uid: str,
    found: list[tuple[str, Suggestion]],
    withheld: Collection[str],
) -> list[list[dict[str, Any]]]:
    """Every offer of each found product (one multi-search): its rating, stock and text."""
    withheld_clause = withheld_marketplaces_clause(withheld)
    queries = []
    for _name, suggestion in found:
        clause = f"group_id = {quote_filter_value(suggestion.group_id)}"
        queries.append(
            {
                "indexUid": index_uid,
                "q": "",
                "filter": f"({clause}) AND ({withheld_clause})" if withheld_clause else clause,
                "limit": MAX_OFFERS_READ,
                "attributesToRetrieve": [
                    "rating", "rating_count", "available", "marketplace", *SEARCHABLE_ATTRIBUTES,
                ],
            }
        )  # fmt: skip
    return [list(result.get("hits") or []) for result in search_index(client, queries)]


def _facts(
    found: list[tuple[str, Suggestion]], offers_of: list[list[dict[str, Any]]]
) -> list[ProductFacts]:
    """Each found product's rating, reviews and offers in stock, from all its offers, with its
    suggested offer's price."""
    facts = []
    for (name, suggestion), offers in zip(found, offers_of, strict=True):
        rating, reviews = group_rating(offers)
        in_stock = [offer for offer in offers if offer.get("available")]
        facts.append(
            ProductFacts(
                name=name,
                title=suggestion.title,
                price_minor=suggestion.display_price_minor,
                marketplace_name=suggestion.marketplace_name,
                rating=Decimal(rating) if rating is not None else None,
                reviews=reviews,
                offers_in_stock=len(in_stock),
                marketplaces_in_stock=len({offer.get("marketplace") for offer in in_stock}),
            )
        )
    return facts


def answer_which_is_better(
    prompt: str,
    sides: tuple[str, str],
    *,
    ask: Callable[[str], AssistantAnswer],
    client: meilisearch.Client,
    index_uid: str,
    display_currency: str,
    withheld: Collection[str] = (),
) -> AssistantAnswer:
    """Find each side (`ask` answers one request with its best match) and compare them."""
    answers = [ask(side) for side in sides]
    found = [
        (side, answer.suggestions[0], answer.intent.keywords)
        for side, answer in zip(sides, answers, strict=True)
        if answer.found
    ]
    offers_of = _group_offers(client, index_uid, [(s, g) for s, g, _ in found], withheld)
    # Found only when its products mention every word the shopper named it by: the best match
    # for "Sony WH-1000XM5" may be other Sony earbuds, which is not that product.
    named = [
        (side, suggestion, offers)
        for (side, suggestion, words), offers in zip(found, offers_of, strict=True)
        if not words_mentioned(words, searchable_text(*offers))[1]
    ]
    missing = [side for side in sides if side not in {n[0] for n in named}]
    found_pairs = [(side, suggestion) for side, suggestion, _ in named]
    kinds = [_kind(suggestion) for _side, suggestion in found_pairs]
    notes: list[str] = []
    if len(found_pairs) == 2 and found_pairs[0][1].group_id == found_pairs[1][1].group_id:
        found_pairs = found_pairs[:1]
        message = (
            f"“{sides[0]}” and “{sides[1]}” are the same product in the catalog, so there is "
            "nothing to choose between."
        )
    elif len(found_pairs) == 2 and None not in kinds and kinds[0] != kinds[1]:
        message = (
            f"“{sides[0]}” and “{sides[1]}” found different kinds of product "
            f"({' and '.join(category_label(k) for k in kinds if k)}), so I do not compare "
            "them. Name the two products you are choosing between."
        )
    elif len(found_pairs) == 2:
        facts = _facts(found_pairs, [offers for _s, _g, offers in named])
        message = compare_products(facts[0], facts[1], display_currency)
        notes = [f.describe(display_currency) for f in facts] + [SCOPE_NOTE]
    elif found_pairs:
        message = (
            f"I found no “{missing[0]}” in the catalog, so I cannot compare it with "
            f"“{found_pairs[0][0]}”. Here is “{found_pairs[0][0]}”."
        )
    else:
        message = f"I found neither “{sides[0]}” nor “{sides[1]}” in the catalog to compare."
    first = answers[0]
    return AssistantAnswer(
        prompt=prompt,
        intent=Intent(text=prompt, available_only=False),
        path=first.path,
        message=message,
        suggestions=[suggestion for _side, suggestion in found_pairs],
        notes=notes,
        display_currency=display_currency,
        semantic_available=first.semantic_available,
        fallback_reason=first.fallback_reason,
    )


def _kind(suggestion: Suggestion) -> str | None:
    """The product's category as the lexicon keys it ("Televisions", "televisions" alike)."""
    if not suggestion.category:
        return None
    return category_key_for_value(suggestion.category) or fold(suggestion.category)

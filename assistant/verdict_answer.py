"""The answer to “which is better, X or Y?”: each side found as its own request (its best
match), the facts the comparison needs read from the offers index, and the verdict of
assistant.verdict. Nothing is claimed that the index does not hold.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from decimal import Decimal

import meilisearch

from assistant.answer import AssistantAnswer, Suggestion
from assistant.index_profile import search_index
from assistant.intent import Intent
from assistant.verdict import SCOPE_NOTE, ProductFacts, compare_products
from search_index.filters import quote_filter_value, withheld_marketplaces_clause
from search_index.groups import group_rating

# A product's offers read for its rating and stock: more than any product has in the catalog.
MAX_OFFERS_READ = 200


def _facts(
    client: meilisearch.Client,
    index_uid: str,
    found: list[tuple[str, Suggestion]],
    withheld: Collection[str],
) -> list[ProductFacts]:
    """Each found product's rating, reviews and offers in stock, from all its offers (one
    multi-search), with its suggested offer's price."""
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
                "attributesToRetrieve": ["rating", "rating_count", "available", "marketplace"],
            }
        )
    facts = []
    for (name, suggestion), result in zip(found, search_index(client, queries), strict=True):
        offers = list(result.get("hits") or [])
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
        (side, answer.suggestions[0])
        for side, answer in zip(sides, answers, strict=True)
        if answer.found
    ]
    missing = [side for side, answer in zip(sides, answers, strict=True) if not answer.found]
    notes: list[str] = []
    if len(found) == 2 and found[0][1].group_id == found[1][1].group_id:
        found = found[:1]
        message = (
            f"“{sides[0]}” and “{sides[1]}” are the same product in the catalog, so there is "
            "nothing to choose between."
        )
    elif len(found) == 2:
        facts = _facts(client, index_uid, found, withheld)
        message = compare_products(facts[0], facts[1], display_currency)
        notes = [f.describe(display_currency) for f in facts] + [SCOPE_NOTE]
    elif found:
        message = (
            f"I found no “{missing[0]}” in the catalog, so I cannot compare it with "
            f"“{found[0][0]}”. Here is “{found[0][0]}”."
        )
    else:
        message = f"I found neither “{sides[0]}” nor “{sides[1]}” in the catalog to compare."
    first = answers[0]
    return AssistantAnswer(
        prompt=prompt,
        intent=Intent(text=prompt, available_only=False),
        path=first.path,
        message=message,
        suggestions=[suggestion for _side, suggestion in found],
        notes=notes,
        display_currency=display_currency,
        semantic_available=first.semantic_available,
        fallback_reason=first.fallback_reason,
    )

"""The hint of a "nothing fits" answer whose budget is what stands in the way: what the
cheapest product that fits the rest of the request costs, as its marketplace lists it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import meilisearch

from assistant.amounts import format_amount
from assistant.index_profile import search_index
from assistant.intent import Intent
from commerce.fx import FxRateMissing, FxTable


def cheapest_match_hint(
    client: meilisearch.Client,
    index_uid: str,
    query: Mapping[str, Any],
    cheapest_usd_minor: int,
    intent: Intent,
    fx: FxTable,
) -> str:
    """ "the cheapest match costs KES21,000.00": the cheapest offer's own price, not its USD
    price converted back (which said KES20,999.72 of an offer listed at KES21,000.00), with
    the budget's currency beside it when listed in another."""
    if intent.budget is None:
        return ""
    bound = f"price_usd_minor <= {cheapest_usd_minor}"
    filter_ = f"({query['filter']}) AND {bound}" if query.get("filter") else bound
    found = (
        search_index(
            client,
            [
                {
                    **{
                        k: v for k, v in query.items() if k not in {"facets", "hitsPerPage", "page"}
                    },
                    "filter": filter_,
                    "limit": 1,
                    "attributesToRetrieve": ["price_minor", "currency"],
                }
            ],
        )[0].get("hits")
        or []
    )
    if (
        not found
        or not isinstance(found[0].get("price_minor"), int)
        or not found[0].get("currency")
    ):
        return ""
    price, currency = int(found[0]["price_minor"]), str(found[0]["currency"])
    said = f"the cheapest match costs {format_amount(price, currency)}"
    if currency == intent.budget.currency:
        return said
    try:
        converted = fx.convert(price, currency, intent.budget.currency)
    except FxRateMissing:
        return said
    return f"{said}, about {format_amount(converted, intent.budget.currency)}"

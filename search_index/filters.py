"""Filters and sorts of a product listing, as Meilisearch expressions over the product index.

A listing's filters mean the same thing on every card: a marketplace filter keeps the products
with an offer there; availability keeps those with an offer in stock (there); the price range and
the price sort use the product's cheapest offer under those filters (the same rule as
:func:`search_index.groups.cheapest_matching_offer`, which picks the offer a card shows). Prices
arrive in the shopper's display currency and are converted to USD minor units with an exact
decimal rate.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Final

from onecart.money import convert_minor, currency_exponent
from search_index.groups import market_key
from search_index.params import LIST_FACETS, SearchParams

USD: Final = "USD"

# Which attribute each product-level facet filters on.
FACET_FIELDS: Final[Mapping[str, str]] = {
    "marketplace": "marketplaces",
    "category": "category",
    "brand": "brand",
}


def quote_filter_value(value: str) -> str:
    """A string literal for a Meilisearch filter expression, with quotes and backslashes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def display_to_usd_minor(
    amount: Decimal, display_currency: str, display_per_usd: Decimal, *, round_up: bool
) -> int:
    """A display-currency amount as USD minor units for a price filter.

    A lower bound rounds down and an upper bound rounds up, so an offer priced exactly at the
    typed bound is never lost to rounding.
    """
    if display_per_usd <= 0:
        raise ValueError("exchange rate must be positive")
    usd = amount / display_per_usd
    scaled = usd.scaleb(currency_exponent(USD))
    return int(scaled.to_integral_value(rounding=ROUND_CEILING if round_up else ROUND_FLOOR))


@dataclass(frozen=True, slots=True)
class PriceScale:
    """How the shopper's display currency relates to USD (units of display currency per 1 USD)."""

    currency: str = USD
    per_usd: Decimal = Decimal(1)

    def usd_minor_to_display_minor(self, usd_minor: int) -> int:
        """Convert an index USD price into display-currency minor units (half-even, once)."""
        return convert_minor(usd_minor, USD, self.currency, self.per_usd)


def _in_list(attribute: str, values: tuple[str, ...]) -> str:
    return f"{attribute} IN [" + ", ".join(quote_filter_value(v) for v in values) + "]"


def in_stock_clause(marketplaces: tuple[str, ...]) -> str:
    """Products with an offer in stock (on one of `marketplaces`, when any are chosen)."""
    if marketplaces:
        return _in_list("available_marketplaces", marketplaces)
    return "available = true"


def price_fields(params: SearchParams) -> list[str]:
    """The attribute(s) holding each product's price under the listing's filters.

    One attribute without a marketplace filter (the cheapest offer, in stock if asked) or with
    one marketplace (that marketplace's cheapest offer); one per marketplace with several, whose
    smallest is the product's price.
    """
    in_stock = params.available is True
    if not params.marketplaces:
        return ["available_price_usd_minor" if in_stock else "price_usd_minor"]
    prefix = "available_market_prices" if in_stock else "market_prices"
    return [f"{prefix}.{market_key(slug)}" for slug in params.marketplaces]


def stocked_price_field(params: SearchParams) -> str:
    """The in-stock price of the one field :func:`price_fields` gives (no marketplace or one)."""
    if not params.marketplaces:
        return "available_price_usd_minor"
    return f"available_market_prices.{market_key(params.marketplaces[0])}"


def price_clause(params: SearchParams, low: int | None, high: int | None) -> str | None:
    """The product's price (the smallest of :func:`price_fields`) within [low, high]."""
    fields = price_fields(params)
    if low is None and high is None:
        return None
    if len(fields) == 1:
        return range_clause(fields[0], low, high)
    # min(p_a, p_b, …) >= low: every present price is at least low; <= high: one of them is.
    parts = []
    if low is not None:
        parts.extend(f"({field} >= {low} OR {field} NOT EXISTS)" for field in fields)
    if high is not None:
        parts.append("(" + " OR ".join(f"{field} <= {high}" for field in fields) + ")")
    return " AND ".join(parts)


def usd_price_bounds(params: SearchParams, scale: PriceScale) -> tuple[int | None, int | None]:
    """The shopper's price range as USD minor units (None where no bound was typed)."""
    low = high = None
    if params.min_price is not None:
        low = display_to_usd_minor(params.min_price, scale.currency, scale.per_usd, round_up=False)
    if params.max_price is not None:
        high = display_to_usd_minor(params.max_price, scale.currency, scale.per_usd, round_up=True)
    return low, high


def range_clause(field: str, low: int | None, high: int | None) -> str:
    """`field` within [low, high] (at least one bound given)."""
    parts = []
    if low is not None:
        parts.append(f"{field} >= {low}")
    if high is not None:
        parts.append(f"{field} <= {high}")
    return " AND ".join(parts)


def build_filter_clauses(params: SearchParams, scale: PriceScale) -> dict[str, str]:
    """Each active filter as one clause on the product index, keyed by the dimension it narrows.

    Keyed so a facet's own clause can be left out when counting that facet (disjunctive facets).
    """
    clauses: dict[str, str] = {}
    for facet, attribute in FACET_FIELDS.items():
        values = params.selected(facet)
        if values:
            clauses[facet] = _in_list(attribute, values)
    if params.available is True:
        clauses["available"] = in_stock_clause(params.marketplaces)
    elif params.available is False:
        clauses["available"] = f"NOT ({in_stock_clause(params.marketplaces)})"
    low, high = usd_price_bounds(params, scale)
    price = price_clause(params, low, high)
    if price:
        clauses["price"] = price
    rating_parts = []
    if params.min_rating:
        rating_parts.append(f"rating >= {int(params.min_rating)}")
    if params.unrated:
        rating_parts.append("rated = false")
    if rating_parts:
        clauses["rating"] = " OR ".join(rating_parts)
    return clauses


def join_clauses(clauses: Mapping[str, str], *, without: str | None = None) -> str | None:
    """The clauses ANDed together (leaving out one dimension), or None when there are none."""
    parts = [f"({clause})" for key, clause in clauses.items() if key != without]
    return " AND ".join(parts) if parts else None


def sort_for(params: SearchParams) -> list[str]:
    """Meilisearch's sort for the listing (empty: relevance, then the index's tie-breakers).

    A price sort with several marketplaces chosen is not one Meilisearch sort (the product's
    price is the smallest of several fields): the listing merges one stream per marketplace
    instead (search_index.price_order), and this returns no sort for it.
    """
    if params.sort in ("price_asc", "price_desc"):
        fields = price_fields(params)
        if len(fields) > 1:
            return []
        direction = "asc" if params.sort == "price_asc" else "desc"
        if params.available is None:
            # In-stock products first, then the out-of-stock ones, each by price (a cheap product
            # nobody can buy was the first card of "price: low to high"). The in-stock price
            # field is empty (null) on a product with no offer in stock, which Meilisearch sorts
            # after every value in either direction; where it is set it equals the price field
            # (the card's offer is in stock when one is: search_index.groups.market_offer).
            stocked = stocked_price_field(params)
            return [f"{stocked}:{direction}", f"{fields[0]}:{direction}"]
        return [f"{fields[0]}:{direction}"]
    if params.sort == "rating":
        return ["rating_score:desc", "rating_count:desc"]
    return []


def withheld_marketplaces_clause(disabled: Collection[str]) -> str | None:
    """The offers-index filter clause that leaves out disabled marketplaces' offers (None when
    none is disabled, so the usual query is unchanged and costs nothing more)."""
    if not disabled:
        return None
    listed = ", ".join(quote_filter_value(slug) for slug in sorted(disabled))
    return f"marketplace NOT IN [{listed}]"


__all__ = [
    "FACET_FIELDS",
    "LIST_FACETS",
    "PriceScale",
    "build_filter_clauses",
    "display_to_usd_minor",
    "in_stock_clause",
    "join_clauses",
    "price_clause",
    "price_fields",
    "quote_filter_value",
    "range_clause",
    "sort_for",
    "stocked_price_field",
    "usd_price_bounds",
    "withheld_marketplaces_clause",
]

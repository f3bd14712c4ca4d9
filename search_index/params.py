"""Listing URLs: what a shopper's query string asks for, validated and written back canonically.

Nothing here talks to Meilisearch; :class:`SearchParams` is the one value the filters, the listing
and the templates read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final, Protocol

from onecart.params import MAX_NUMBER_CHARS, ParameterError, bounded_decimal, bounded_int

SORTS: Final = ("relevance", "price_asc", "price_desc", "rating")
SORT_LABELS: Final[Mapping[str, str]] = {
    "relevance": "Best match",
    "price_asc": "Price: low to high",
    "price_desc": "Price: high to low",
    "rating": "Highest rated",
}
PER_PAGE_CHOICES: Final = (12, 24, 48)
DEFAULT_PER_PAGE: Final = 24
# Meilisearch's pagination.maxTotalHits (search_index.settings): pages past it are empty.
MAX_TOTAL_HITS: Final = 10_000
MAX_QUERY_CHARS: Final = 200
MAX_FILTER_VALUES: Final = 20
MAX_FILTER_VALUE_CHARS: Final = 120
MIN_RATING_CHOICES: Final = (1, 2, 3, 4)
# The largest price filter accepted, in major units of the display currency.
MAX_PRICE_FILTER: Final = Decimal("1000000000000")

# Multi-select facets (OR inside a facet, AND between facets) and how the URL names them.
LIST_FACETS: Final[Mapping[str, str]] = {
    "marketplace": "marketplace",
    "category": "category",
    "brand": "brand",
}

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class QueryArgs(Protocol):
    """What `from_query_args` reads: Werkzeug's MultiDict (request.args) or anything like it."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def getlist(self, key: str) -> list[Any]: ...


def _clean_text(value: object, limit: int) -> str:
    text = _CONTROL_CHARS.sub(" ", str(value or "")).strip()
    return " ".join(text.split())[:limit]


def _parse_positive_int(raw: object) -> int | None:
    # Bounded by length before conversion (onecart.params).
    try:
        return bounded_int(raw, minimum=0, maximum=999_999_999, max_chars=9)
    except ParameterError:
        return None


def _parse_price(raw: object) -> Decimal | None:
    text = str(raw).strip() if raw is not None else ""
    if not text:
        return None
    # Bounded by length, form and range before any arithmetic (onecart.params); a ValueError
    # (ParameterError is one) makes the caller ignore the bound with a note.
    return bounded_decimal(text, minimum=Decimal(0), maximum=MAX_PRICE_FILTER)


def _parse_rating(raw: object) -> Decimal:
    """A rating as typed, any plain decimal of at most 20 characters (clamped by the caller)."""
    limit = Decimal(10) ** MAX_NUMBER_CHARS
    return bounded_decimal(raw, minimum=-limit, maximum=limit, max_places=MAX_NUMBER_CHARS)


@dataclass(frozen=True, slots=True)
class SearchParams:
    """One listing request, already validated: what the URL asked for, corrected where it was bad.

    Prices are decimal amounts in the shopper's display currency (what they typed); ratings are
    0–5 stars. `corrections` says, in words a shopper understands, what was ignored or fixed.
    """

    q: str = ""
    marketplaces: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    available: bool | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    min_rating: int | None = None
    sort: str = "relevance"
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE
    # The rating facet's "no rating published" value: products none of whose marketplaces
    # publish a rating are kept (alone, or beside the minimum rating) instead of dropped.
    unrated: bool = False
    corrections: tuple[str, ...] = ()

    @classmethod
    def from_query_args(cls, args: QueryArgs | Mapping[str, Any]) -> SearchParams:
        """Read a listing URL's query string, ignoring or correcting whatever is malformed.

        Never raises: a shopper who edits the URL by hand gets the closest sensible listing and
        a note, not an error page.
        """
        corrections: list[str] = []

        def getlist(name: str) -> list[Any]:
            if hasattr(args, "getlist"):
                # Asked only for names the URL has: MultiDict.getlist answers a missing one
                # from a KeyError it raises and catches (some twenty per listing).
                bracketed = f"{name}[]"
                return [
                    *(args.getlist(name) if name in args else ()),
                    *(args.getlist(bracketed) if bracketed in args else ()),
                ]
            value = args.get(name, args.get(f"{name}[]"))
            if value is None:
                return []
            return list(value) if isinstance(value, list | tuple) else [value]

        def get(name: str) -> Any:
            values = getlist(name)
            return values[0] if values else None

        q = _clean_text(get("q"), MAX_QUERY_CHARS)
        if len(str(get("q") or "").strip()) > MAX_QUERY_CHARS:
            corrections.append(f"The search text was shortened to {MAX_QUERY_CHARS} characters.")

        facet_values: dict[str, tuple[str, ...]] = {}
        for url_name in LIST_FACETS.values():
            seen: dict[str, None] = {}
            for raw in getlist(url_name):
                value = _clean_text(raw, MAX_FILTER_VALUE_CHARS)
                if value:
                    seen.setdefault(value, None)
            values = tuple(seen)
            if len(values) > MAX_FILTER_VALUES:
                corrections.append(
                    f"Only the first {MAX_FILTER_VALUES} {url_name} filters are used."
                )
                values = values[:MAX_FILTER_VALUES]
            facet_values[url_name] = values

        available: bool | None = None
        raw_available = get("available")
        if raw_available not in (None, ""):
            word = str(raw_available).strip().lower()
            if word in _TRUE_WORDS:
                available = True
            elif word in _FALSE_WORDS:
                available = False
            else:
                corrections.append("The availability filter was not understood and is ignored.")

        prices: dict[str, Decimal | None] = {}
        for bound in ("min_price", "max_price"):
            try:
                prices[bound] = _parse_price(get(bound))
            except ValueError:
                prices[bound] = None
                label = "minimum" if bound == "min_price" else "maximum"
                corrections.append(f"The {label} price was not a valid amount and is ignored.")
        min_price, max_price = prices["min_price"], prices["max_price"]
        if min_price is not None and max_price is not None and min_price > max_price:
            min_price, max_price = max_price, min_price
            corrections.append("The minimum and maximum prices were swapped.")

        min_rating: int | None = None
        raw_rating = get("min_rating")
        if raw_rating not in (None, ""):
            try:
                rating_value = _parse_rating(raw_rating)
            except ParameterError:
                corrections.append("The minimum rating was not a number and is ignored.")
            else:
                clamped = min(max(int(rating_value), 0), 5)
                if clamped != rating_value:
                    corrections.append(f"The minimum rating was set to {clamped} stars.")
                min_rating = clamped or None

        sort = str(get("sort") or "relevance").strip()
        if sort not in SORTS:
            corrections.append("That sort order does not exist; showing the best matches first.")
            sort = "relevance"

        per_page = DEFAULT_PER_PAGE
        raw_per_page = get("per_page")
        if raw_per_page not in (None, ""):
            parsed = _parse_positive_int(raw_per_page)
            if parsed in PER_PAGE_CHOICES:
                per_page = parsed
            else:
                corrections.append(f"Showing {DEFAULT_PER_PAGE} results per page.")

        page = 1
        raw_page = get("page")
        if raw_page not in (None, ""):
            parsed = _parse_positive_int(raw_page)
            if parsed is None or parsed < 1:
                corrections.append("That page number does not exist; showing the first page.")
            else:
                page = parsed
        max_page = max_page_for(per_page)
        if page > max_page:
            corrections.append(deep_page_note(max_page))
            page = max_page

        unrated = str(get("unrated") or "").strip().lower() in _TRUE_WORDS

        return cls(
            q=q,
            marketplaces=facet_values["marketplace"],
            categories=facet_values["category"],
            brands=facet_values["brand"],
            available=available,
            min_price=min_price,
            max_price=max_price,
            min_rating=min_rating,
            sort=sort,
            page=page,
            per_page=per_page,
            unrated=unrated,
            corrections=tuple(corrections),
        )

    def selected(self, facet: str) -> tuple[str, ...]:
        """The values chosen for one multi-select facet (by its attribute name)."""
        return {
            "marketplace": self.marketplaces,
            "category": self.categories,
            "brand": self.brands,
        }.get(facet, ())

    @property
    def has_filters(self) -> bool:
        """True when anything narrows the listing besides the search text."""
        return bool(
            self.marketplaces
            or self.categories
            or self.brands
            or self.available is not None
            or self.min_price is not None
            or self.max_price is not None
            or self.min_rating
            or self.unrated
        )

    def to_query_args(self, **changes: Any) -> list[tuple[str, str]]:
        """The canonical query string for these parameters (with `changes` applied).

        Default values are left out so URLs stay short and shareable; changing any filter resets
        the page to 1 unless a page is given explicitly.
        """
        params = self
        if changes:
            if "page" not in changes:
                changes["page"] = 1
            params = replace(self, **changes)
        pairs: list[tuple[str, str]] = []
        if params.q:
            pairs.append(("q", params.q))
        for value in params.marketplaces:
            pairs.append(("marketplace", value))
        for value in params.categories:
            pairs.append(("category", value))
        for value in params.brands:
            pairs.append(("brand", value))
        if params.available is not None:
            pairs.append(("available", "1" if params.available else "0"))
        if params.min_price is not None:
            pairs.append(("min_price", _plain_decimal(params.min_price)))
        if params.max_price is not None:
            pairs.append(("max_price", _plain_decimal(params.max_price)))
        if params.min_rating:
            pairs.append(("min_rating", str(params.min_rating)))
        if params.sort != "relevance":
            pairs.append(("sort", params.sort))
        if params.per_page != DEFAULT_PER_PAGE:
            pairs.append(("per_page", str(params.per_page)))
        if params.unrated:
            pairs.append(("unrated", "1"))
        if params.page != 1:
            pairs.append(("page", str(params.page)))
        return pairs

    def toggled(self, facet: str, value: str) -> list[tuple[str, str]]:
        """The query string with one facet value switched on or off (for facet links)."""
        current = self.selected(facet)
        updated = tuple(v for v in current if v != value) if value in current else (*current, value)
        field_name = {"marketplace": "marketplaces", "category": "categories", "brand": "brands"}[
            facet
        ]
        return self.to_query_args(**{field_name: updated})


def _plain_decimal(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text


def max_page_for(per_page: int) -> int:
    """The last page Meilisearch can serve at this page size (maxTotalHits caps deep paging)."""
    return max(1, MAX_TOTAL_HITS // per_page)


def deep_page_note(max_page: int) -> str:
    """The note for a page beyond what Meilisearch serves. The listing replaces it when the
    results end sooner (search_index.listings.past_last_page_note), so the shopper is not told
    of two different last pages."""
    return f"Results stop at page {max_page}; showing it instead."


# --- Filters -----------------------------------------------------------------------------------

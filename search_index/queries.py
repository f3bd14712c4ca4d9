"""The storefront's questions to the Meilisearch `products` index.

Everything the site asks the index goes through here, so the views stay thin and the rules
(which filters exist, how a bad URL is corrected, how a title is highlighted safely) are tested
without Flask. Prices in filters arrive in the shopper's display currency and are converted to the
index's `price_usd_minor` (the one sortable price) with an exact decimal rate.

Listings show one card per real product on each page (offers of one group collapsed), with
"N offers from X" taken from the document's group fields. Facet counts are counted over *offers*
and are disjunctive: selecting a marketplace still shows the counts of the other marketplaces.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

import meilisearch
from markupsafe import Markup, escape

from onecart.money import currency_exponent
from onecart.params import MAX_NUMBER_CHARS, ParameterError, bounded_decimal, bounded_int

# --- Vocabulary --------------------------------------------------------------------------------

SORTS: Final[Mapping[str, tuple[str, ...]]] = {
    "relevance": (),
    "price_asc": ("price_usd_minor:asc",),
    "price_desc": ("price_usd_minor:desc",),
    "rating": ("rating:desc", "rating_count:desc"),
}
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
FACET_ATTRIBUTES: Final = ("marketplace", "category", "brand", "available")
PRICE_ATTRIBUTE: Final = "price_usd_minor"

# What a listing card needs from a document (the description stays on the server).
_CARD_FIELDS: Final = (
    "id",
    "title",
    "marketplace",
    "marketplace_name",
    "marketplace_logo",
    "price_minor",
    "currency",
    "price_usd_minor",
    "image_url",
    "product_url",
    "category",
    "brand",
    "rating",
    "rating_count",
    "available",
    "group_id",
    "group_size",
    "group_marketplaces",
    "group_min_price_usd_minor",
    "previous_price_minor",
    "price_dropped_at",
    "updated_at",
)

# A listing's hits need less: no URL, category, brand or history on a card.
_LISTING_FIELDS: Final = tuple(
    name
    for name in _CARD_FIELDS
    if name
    not in {
        "product_url",
        "category",
        "brand",
        "updated_at",
        "previous_price_minor",
        "price_dropped_at",
    }
)

# Sentinels that cannot occur in HTML-escaped text; swapped for <mark> after escaping.
HIGHLIGHT_PRE: Final = "\x00mark\x00"
HIGHLIGHT_POST: Final = "\x00/mark\x00"

SEARCH_TIMEOUT_S: Final = 5
USD: Final = "USD"

_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


class QueryArgs(Protocol):
    """What `from_query_args` reads: Werkzeug's MultiDict (request.args) or anything like it."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def getlist(self, key: str) -> list[Any]: ...


class SearchUnavailable(RuntimeError):
    """The index cannot answer (server down, timed out, index not built yet).

    The site turns this into a friendly 503 while the pages that don't need search keep working.
    `reason` is one of "unreachable", "timeout", "index_missing", "error".
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


# --- Parameters --------------------------------------------------------------------------------


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
    group: bool = True
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
                return [*args.getlist(name), *args.getlist(f"{name}[]")]
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
            corrections.append(f"Results stop at page {max_page}; showing it instead.")
            page = max_page

        group_word = str(get("group") or "1").strip().lower()
        group = group_word not in _FALSE_WORDS

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
            group=group,
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
        if not params.group:
            pairs.append(("group", "0"))
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


# --- Filters -----------------------------------------------------------------------------------


def quote_filter_value(value: str) -> str:
    """A string literal for a Meilisearch filter expression, with quotes and backslashes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def display_to_usd_minor(
    amount: Decimal, display_currency: str, display_per_usd: Decimal, *, round_up: bool
) -> int:
    """A display-currency amount as USD minor units for the `price_usd_minor` filter.

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
        from onecart.money import convert_minor

        return convert_minor(usd_minor, USD, self.currency, self.per_usd)


def build_filter_clauses(params: SearchParams, scale: PriceScale) -> dict[str, str]:
    """Each active filter as one Meilisearch clause, keyed by the dimension it narrows.

    Keyed so a facet's own clause can be left out when counting that facet (disjunctive facets).
    """
    clauses: dict[str, str] = {}
    for facet in LIST_FACETS:
        values = params.selected(facet)
        if values:
            clauses[facet] = (
                f"{facet} IN [" + ", ".join(quote_filter_value(v) for v in values) + "]"
            )
    if params.available is not None:
        clauses["available"] = f"available = {'true' if params.available else 'false'}"
    price_parts = []
    if params.min_price is not None:
        low = display_to_usd_minor(params.min_price, scale.currency, scale.per_usd, round_up=False)
        price_parts.append(f"{PRICE_ATTRIBUTE} >= {low}")
    if params.max_price is not None:
        high = display_to_usd_minor(params.max_price, scale.currency, scale.per_usd, round_up=True)
        price_parts.append(f"{PRICE_ATTRIBUTE} <= {high}")
    if price_parts:
        clauses["price"] = " AND ".join(price_parts)
    if params.min_rating:
        clauses["rating"] = f"rating >= {int(params.min_rating)}"
    return clauses


def _join_clauses(clauses: Mapping[str, str], *, without: str | None = None) -> str | None:
    parts = [f"({clause})" for key, clause in clauses.items() if key != without]
    return " AND ".join(parts) if parts else None


# --- Results -----------------------------------------------------------------------------------


def render_highlight(formatted: str | None, fallback: str = "") -> Markup:
    """Escape a highlighted title, then turn the sentinel tags into <mark> elements.

    Marketplace titles may contain markup (even `<script>`); escaping the whole text first and only
    then inserting our own tags means nothing a marketplace sent is ever rendered as HTML.
    """
    text = formatted if isinstance(formatted, str) else fallback
    escaped = str(escape(text))
    html = escaped.replace(HIGHLIGHT_PRE, "<mark>").replace(HIGHLIGHT_POST, "</mark>")
    # A stray NUL in a marketplace's title must not reach the page.
    return Markup(html.replace("\x00", ""))


def _optional_int(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _optional_rating(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        rating = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        return None
    return rating.quantize(Decimal("0.1")) if rating.is_finite() else None


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One offer as a listing card needs it (plain data; money in integer minor units)."""

    id: str
    title: str
    title_html: Markup
    marketplace: str
    marketplace_name: str
    marketplace_logo: str | None
    price_minor: int
    currency: str
    price_usd_minor: int
    image_url: str | None
    product_url: str | None
    category: str | None
    brand: str | None
    rating: Decimal | None
    rating_count: int | None
    available: bool
    group_id: str
    group_size: int
    group_marketplaces: int
    group_min_price_usd_minor: int
    previous_price_minor: int | None
    price_dropped_at: int | None
    description: str

    @property
    def has_other_offers(self) -> bool:
        """Sold on several marketplaces: the card says "N offers from X"."""
        return self.group_size > 1

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> SearchHit:
        """Build a hit from an index document, tolerating missing optional fields."""
        formatted = document.get("_formatted") or {}
        title = str(document.get("title") or "")
        price_usd = _optional_int(document.get("price_usd_minor")) or 0
        group_size = _optional_int(document.get("group_size")) or 1
        return cls(
            id=str(document.get("id", "")),
            title=title,
            title_html=render_highlight(formatted.get("title"), title),
            marketplace=str(document.get("marketplace") or ""),
            marketplace_name=str(
                document.get("marketplace_name") or document.get("marketplace") or ""
            ),
            marketplace_logo=document.get("marketplace_logo") or None,
            price_minor=_optional_int(document.get("price_minor")) or 0,
            currency=str(document.get("currency") or USD),
            price_usd_minor=price_usd,
            image_url=document.get("image_url") or None,
            product_url=document.get("product_url") or None,
            category=document.get("category") or None,
            brand=document.get("brand") or None,
            rating=_optional_rating(document.get("rating")),
            rating_count=_optional_int(document.get("rating_count")),
            available=bool(document.get("available", True)),
            group_id=str(document.get("group_id") or document.get("id") or ""),
            group_size=group_size,
            group_marketplaces=_optional_int(document.get("group_marketplaces")) or 1,
            group_min_price_usd_minor=_optional_int(document.get("group_min_price_usd_minor"))
            or price_usd,
            previous_price_minor=_optional_int(document.get("previous_price_minor")),
            price_dropped_at=_optional_int(document.get("price_dropped_at")),
            description=str(document.get("description") or ""),
        )


@dataclass(frozen=True, slots=True)
class FacetValue:
    """One value of a facet with how many offers carry it, and whether it is selected."""

    value: str
    count: int
    selected: bool = False


@dataclass(frozen=True, slots=True)
class SearchPage:
    """What a listing page shows: hits, counts, facets and the price range of the result."""

    params: SearchParams
    hits: list[SearchHit]
    total_hits: int
    page: int
    total_pages: int
    facets: dict[str, list[FacetValue]]
    price_min_usd_minor: int | None
    price_max_usd_minor: int | None
    processing_ms: int
    corrections: tuple[str, ...] = field(default=())

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.total_pages

    def page_numbers(self, window: int = 2) -> list[int | None]:
        """Page links around the current one, with None where a gap ("…") goes."""
        if self.total_pages <= 1:
            return [1] if self.total_pages == 1 else []
        shown = {1, self.total_pages, *range(self.page - window, self.page + window + 1)}
        numbers = sorted(n for n in shown if 1 <= n <= self.total_pages)
        result: list[int | None] = []
        previous = 0
        for number in numbers:
            if number - previous > 1:
                result.append(None)
            result.append(number)
            previous = number
        return result


# --- Talking to Meilisearch --------------------------------------------------------------------


def make_client(
    url: str, api_key: str | None, *, timeout: int = SEARCH_TIMEOUT_S
) -> meilisearch.Client:
    """A Meilisearch client with a timeout, so a hung server cannot hold a web worker forever."""
    return meilisearch.Client(url, api_key, timeout=timeout)


class ResultCache:
    """A small per-process cache of multi-search answers, keyed by the exact request body.

    The index changes only when the pipeline runs (every 30 minutes by default), while the same
    listings (home categories, popular searches, page 1 of a query typed by many shoppers) are
    asked again and again; a short time-to-live bounds how stale an answer can be. Thread-safe;
    least recently used entries go first once `max_entries` is reached.
    """

    def __init__(self, ttl_seconds: float, max_entries: int = 512) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Any:
        """The cached answer for `key`, or None when absent or expired."""
        if self.ttl_seconds <= 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored_at, results = entry
            if time.monotonic() - stored_at > self.ttl_seconds:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return results

    def put(self, key: bytes, results: Any) -> None:
        """Remember an answer (raw results or a parsed form; nobody may mutate it afterwards)."""
        if self.ttl_seconds <= 0:
            return
        with self._lock:
            self._entries[key] = (time.monotonic(), results)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


def _post_multi_search(client: meilisearch.Client, body: bytes) -> dict[str, Any]:
    """POST /multi-search on a fresh connection, with the client's URL, key and timeout.

    Why not `client.multi_search`: the Python client builds a `requests` session per call (about
    2 ms of Python per search), and a kept-alive connection would be worse: Meilisearch writes
    its answer in two segments, and the delayed ACK then adds ~40 ms. A fresh loopback
    connection costs a fraction of a millisecond.
    """
    config = client.config
    parts = urlsplit(config.url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(
        parts.hostname or "127.0.0.1", parts.port, timeout=config.timeout or SEARCH_TIMEOUT_S
    )
    headers = {"Content-Type": "application/json", "User-Agent": "OneCart storefront"}
    if config.api_key:
        headers["Authorization"] = f"Bearer {config.api_key}"
    try:
        connection.request("POST", parts.path.rstrip("/") + "/multi-search", body, headers)
        response = connection.getresponse()
        data = response.read()
    except TimeoutError as exc:
        raise SearchUnavailable("the search service timed out", reason="timeout") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise SearchUnavailable("the search service is unreachable", reason="unreachable") from exc
    finally:
        connection.close()
    try:
        answer = json.loads(data) if data else {}
    except ValueError as exc:
        raise SearchUnavailable("the search service answered garbage", reason="error") from exc
    if response.status >= 400:
        code = answer.get("code") if isinstance(answer, dict) else None
        if code == "index_not_found":
            raise SearchUnavailable("the product index is not built yet", reason="index_missing")
        message = answer.get("message") if isinstance(answer, dict) else None
        raise SearchUnavailable(
            f"the search service refused the query ({response.status}): {message or data[:200]!r}",
            reason="error",
        )
    if not isinstance(answer, dict):
        raise SearchUnavailable("the search service answered garbage", reason="error")
    return answer


def run_multi_search(
    client: meilisearch.Client,
    queries: Sequence[Mapping[str, Any]],
    cache: ResultCache | None = None,
) -> list[dict[str, Any]]:
    """Send `queries` as one multi-search and return Meilisearch's results in order.

    Raises SearchUnavailable (with a reason) for every way it can fail; with a `cache`, an
    identical request within its time-to-live is answered without Meilisearch.
    """
    body = json.dumps({"queries": list(queries)}, separators=(",", ":")).encode()
    if cache is not None:
        cached = cache.get(body)
        if cached is not None:
            return cached
    results = list(_post_multi_search(client, body).get("results", []))
    if cache is not None:
        cache.put(body, results)
    return results


def _facet_query(
    index_uid: str, q: str, filter_expression: str | None, facets: Iterable[str]
) -> dict[str, Any]:
    query: dict[str, Any] = {
        "indexUid": index_uid,
        "q": q,
        "facets": list(facets),
        # page/hitsPerPage (not limit) so totalHits is exact rather than estimated.
        "page": 1,
        "hitsPerPage": 0,
    }
    if filter_expression:
        query["filter"] = filter_expression
    return query


# Which filter dimension each counted facet belongs to (see listing_plan).
_DIMENSION_OF: Final[Mapping[str, str]] = {
    "marketplace": "marketplace",
    "category": "category",
    "brand": "brand",
    "available": "available",
}


@dataclass(frozen=True, slots=True)
class ListingPlan:
    """The multi-search one listing sends, in this order: the page of hits, the cheapest and the
    dearest offer (the price range), then the facet queries with the attributes each counts."""

    queries: list[dict[str, Any]]
    facet_attributes: list[list[str]]


def _price_bound_query(
    index_uid: str, q: str, filter_expression: str | None, direction: str
) -> dict[str, Any]:
    query: dict[str, Any] = {
        "indexUid": index_uid,
        "q": q,
        "limit": 1,
        "sort": [f"{PRICE_ATTRIBUTE}:{direction}"],
        "attributesToRetrieve": [PRICE_ATTRIBUTE],
    }
    if filter_expression:
        query["filter"] = filter_expression
    return query


def listing_plan(
    index_uid: str, params: SearchParams, scale: PriceScale = PriceScale()
) -> ListingPlan:
    """The exact Meilisearch queries of a listing (also what the benchmark sends to raw Meilisearch).

    Cost shapes the plan (measured on 100,000 offers): Meilisearch's `distinct` costs 30–170 ms
    on broad queries, so offers of one product are collapsed on the page instead (see
    :func:`collapse_groups`); a facet distribution over `price_usd_minor` costs 5–20 ms, so the
    price range comes from two one-hit sorted queries (under a millisecond). Facets no filter
    touches are counted in one query under the full filter; a facet that is itself filtered is
    counted without its own clause, so the other choices stay visible. The price range ignores
    the price filter for the same reason.
    """
    clauses = build_filter_clauses(params, scale)
    full_filter = _join_clauses(clauses)
    hits_query: dict[str, Any] = {
        "indexUid": index_uid,
        "q": params.q,
        "page": params.page,
        "hitsPerPage": params.per_page,
        "attributesToHighlight": ["title"],
        "highlightPreTag": HIGHLIGHT_PRE,
        "highlightPostTag": HIGHLIGHT_POST,
        "attributesToRetrieve": list(_LISTING_FIELDS),
    }
    if full_filter:
        hits_query["filter"] = full_filter
    if SORTS[params.sort]:
        hits_query["sort"] = list(SORTS[params.sort])
    without_price = _join_clauses(clauses, without="price")
    shared = [attr for attr, dim in _DIMENSION_OF.items() if dim not in clauses]
    separate = [attr for attr, dim in _DIMENSION_OF.items() if dim in clauses]
    queries = [
        hits_query,
        _price_bound_query(index_uid, params.q, without_price, "asc"),
        _price_bound_query(index_uid, params.q, without_price, "desc"),
        _facet_query(index_uid, params.q, full_filter, shared),
    ]
    for attribute in separate:
        without_own = _join_clauses(clauses, without=_DIMENSION_OF[attribute])
        queries.append(_facet_query(index_uid, params.q, without_own, [attribute]))
    return ListingPlan(queries=queries, facet_attributes=[shared, *[[a] for a in separate]])


def collapse_groups(hits: Iterable[SearchHit]) -> list[SearchHit]:
    """One card per product on a page: the best-ranked offer of each group, in rank order.

    Pages still partition the offers (page 2 starts where page 1's offers end), so nothing is
    skipped; a product whose offers rank far apart can appear on two pages, each card saying
    "N offers from X".
    """
    seen: set[str] = set()
    collapsed = []
    for hit in hits:
        if hit.group_id not in seen:
            seen.add(hit.group_id)
            collapsed.append(hit)
    return collapsed


@dataclass(frozen=True, slots=True)
class _ListingAnswer:
    """Meilisearch's answer to one listing plan, parsed once (and cached in that form)."""

    hits: list[SearchHit]
    total_hits: int
    total_pages: int
    distributions: dict[str, dict[str, int]]
    price_min_usd_minor: int | None
    price_max_usd_minor: int | None
    processing_ms: int


def _fetch_listing(
    client: meilisearch.Client, plan: ListingPlan, cache: ResultCache | None
) -> _ListingAnswer:
    key = json.dumps({"listing": plan.queries}, separators=(",", ":")).encode()
    if cache is not None:
        cached = cache.get(key)
        if cached is not None:
            return cached
    results = run_multi_search(client, plan.queries)
    hits_result = results[0]
    distributions: dict[str, dict[str, int]] = {}
    for result, attributes in zip(results[3:], plan.facet_attributes, strict=True):
        for attribute in attributes:
            distribution = (result.get("facetDistribution") or {}).get(attribute) or {}
            distributions[attribute] = {str(k): int(v) for k, v in distribution.items()}
    answer = _ListingAnswer(
        hits=[SearchHit.from_document(doc) for doc in hits_result.get("hits", [])],
        total_hits=int(hits_result.get("totalHits") or 0),
        total_pages=int(hits_result.get("totalPages") or 0),
        distributions=distributions,
        price_min_usd_minor=_bound(results[1]),
        price_max_usd_minor=_bound(results[2]),
        processing_ms=sum(int(r.get("processingTimeMs") or 0) for r in results),
    )
    if cache is not None:
        cache.put(key, answer)
    return answer


def search_offers(
    client: meilisearch.Client,
    index_uid: str,
    params: SearchParams,
    *,
    scale: PriceScale = PriceScale(),
    cache: ResultCache | None = None,
) -> SearchPage:
    """Run one listing: a page of offers (collapsed by product unless `group` is off), disjunctive
    facet counts and the price range, in one multi-search request.

    With a `cache`, the parsed answer is reused for identical listings. A page past the last one
    is corrected to the last page (one extra request, only then).
    """
    answer = _fetch_listing(client, listing_plan(index_uid, params, scale), cache)
    if answer.total_pages and params.page > answer.total_pages:
        note = f"There are only {answer.total_pages} pages; showing the last one."
        params = replace(params, page=answer.total_pages, corrections=(*params.corrections, note))
        answer = _fetch_listing(client, listing_plan(index_uid, params, scale), cache)

    facets: dict[str, list[FacetValue]] = {}
    for attribute in FACET_ATTRIBUTES:
        chosen = set(params.selected(attribute))
        if attribute == "available" and params.available is not None:
            chosen = {"true" if params.available else "false"}
        counts = dict(answer.distributions.get(attribute, {}))
        for value in chosen:
            counts.setdefault(value, 0)  # a chosen value with no offers stays un-selectable
        facets[attribute] = [
            FacetValue(value=value, count=count, selected=value in chosen)
            for value, count in sorted(counts.items(), key=lambda item: (-item[1], item[0].lower()))
        ]

    return SearchPage(
        params=params,
        hits=collapse_groups(answer.hits) if params.group else list(answer.hits),
        total_hits=answer.total_hits,
        page=params.page,
        total_pages=answer.total_pages,
        facets=facets,
        price_min_usd_minor=answer.price_min_usd_minor,
        price_max_usd_minor=answer.price_max_usd_minor,
        processing_ms=answer.processing_ms,
        corrections=params.corrections,
    )


def _bound(result: Mapping[str, Any]) -> int | None:
    hits = result.get("hits") or []
    return _optional_int(hits[0].get(PRICE_ATTRIBUTE)) if hits else None


# --- One product group -------------------------------------------------------------------------

MAX_GROUP_OFFERS: Final = 100


def offers_in_group(client: meilisearch.Client, index_uid: str, group_id: str) -> list[SearchHit]:
    """Every offer of one product group, cheapest (in USD) first.

    The product page reads offers from the storefront DB when it has them; this is its source
    when the DB sync has not run yet, and the way to fetch a group's documents for previews.
    """
    query = {
        "indexUid": index_uid,
        "q": "",
        "filter": f"group_id = {quote_filter_value(group_id)}",
        "sort": ["price_usd_minor:asc"],
        "limit": MAX_GROUP_OFFERS,
    }
    result = run_multi_search(client, [query])[0]
    return [SearchHit.from_document(doc) for doc in result.get("hits", [])]


# --- Home page ---------------------------------------------------------------------------------

# How many documents the home page scans to find deals: the index cannot compare two fields of a
# document, so candidates are read back (only the few fields needed) and ranked here.
DEAL_SCAN_LIMIT: Final = 1000
# Price drops come from the index newest first (`price_dropped_at` is filterable and sortable);
# reading a few per featured card leaves room for several drops in one product group.
DROP_SCAN_PER_CARD: Final = 8
TOP_RATED_MIN_STARS: Final = 4
TOP_RATED_SCAN_LIMIT: Final = 200
# "Top rated" weighs each rating by its number of reviews, as if every product also had this
# many reviews at the prior mean: a single 5-star review does not beat 300 reviews at 4.8.
RATING_PRIOR_REVIEWS: Final = 20
RATING_PRIOR_MEAN: Final = Decimal("3.5")


@dataclass(frozen=True, slots=True)
class Deal:
    """A product sold at very different prices: its cheapest offer and how much it saves."""

    hit: SearchHit
    highest_price_usd_minor: int
    saving_usd_minor: int

    @property
    def saving_percent(self) -> int:
        """The saving against the dearest offer, in whole percent (rounded down)."""
        if self.highest_price_usd_minor <= 0:
            return 0
        return self.saving_usd_minor * 100 // self.highest_price_usd_minor


@dataclass(frozen=True, slots=True)
class HomeShowcase:
    """What the signed-in home page features."""

    categories: list[FacetValue]
    best_deals: list[Deal]
    price_drops: list[SearchHit]
    top_rated: list[SearchHit]
    total_offers: int


def rank_deals(documents: Iterable[Mapping[str, Any]], limit: int) -> list[tuple[str, int, int]]:
    """(group_id, highest USD price, gap) of the groups with the largest price gap, largest first.

    A group's gap is its dearest offer minus its cheapest (`group_min_price_usd_minor`).
    """
    best: dict[str, tuple[int, int]] = {}
    for document in documents:
        group_id = document.get("group_id")
        price = _optional_int(document.get("price_usd_minor"))
        cheapest = _optional_int(document.get("group_min_price_usd_minor"))
        if not group_id or price is None or cheapest is None:
            continue
        gap = price - cheapest
        if gap > 0 and gap > best.get(group_id, (0, 0))[1]:
            best[group_id] = (price, gap)
    ranked = sorted(best.items(), key=lambda item: (-item[1][1], item[0]))
    return [(group_id, high, gap) for group_id, (high, gap) in ranked[:limit]]


def pick_price_drops(documents: Iterable[Mapping[str, Any]], limit: int) -> list[SearchHit]:
    """Offers whose price fell (previous price above the current one), most recent drop first,
    one per product group."""
    dropped = []
    for document in documents:
        previous = _optional_int(document.get("previous_price_minor"))
        current = _optional_int(document.get("price_minor"))
        when = _optional_int(document.get("price_dropped_at"))
        if previous is None or current is None or when is None or previous <= current:
            continue
        dropped.append((when, document))
    dropped.sort(key=lambda item: (-item[0], str(item[1].get("id"))))
    seen: set[str] = set()
    picked: list[SearchHit] = []
    for _when, document in dropped:
        hit = SearchHit.from_document(document)
        if hit.group_id in seen:
            continue
        seen.add(hit.group_id)
        picked.append(hit)
        if len(picked) == limit:
            break
    return picked


def rated_score(rating: Decimal, reviews: int) -> Decimal:
    """A rating pulled towards the prior mean when it rests on few reviews (Bayesian average)."""
    return (rating * reviews + RATING_PRIOR_MEAN * RATING_PRIOR_REVIEWS) / (
        reviews + RATING_PRIOR_REVIEWS
    )


def rank_top_rated(hits: Iterable[SearchHit], limit: int) -> list[SearchHit]:
    """The best-rated hits by :func:`rated_score`, one per product group, best first."""
    scored = [
        (rated_score(hit.rating, hit.rating_count or 0), hit)
        for hit in hits
        if hit.rating is not None
    ]
    scored.sort(key=lambda item: (-item[0], -(item[1].rating_count or 0), item[1].id))
    picked: list[SearchHit] = []
    seen: set[str] = set()
    for _score, hit in scored:
        if hit.group_id not in seen:
            seen.add(hit.group_id)
            picked.append(hit)
        if len(picked) == limit:
            break
    return picked


def home_showcase(
    client: meilisearch.Client,
    index_uid: str,
    *,
    limit: int = 8,
    cache: ResultCache | None = None,
) -> HomeShowcase:
    """Categories with counts, best deals, recent price drops and top-rated products.

    Two multi-search round trips: the candidates, then the cheapest offer of each deal's group.
    """
    queries = [
        _facet_query(index_uid, "", None, ["category"]),
        {
            "indexUid": index_uid,
            "q": "",
            "filter": "group_size >= 2 AND available = true",
            "sort": ["price_usd_minor:desc"],
            "limit": DEAL_SCAN_LIMIT,
            "attributesToRetrieve": ["group_id", "price_usd_minor", "group_min_price_usd_minor"],
        },
        {
            "indexUid": index_uid,
            "q": "",
            # A numeric comparison skips the null `price_dropped_at` of offers that never fell.
            "filter": "available = true AND price_dropped_at > 0",
            "sort": ["price_dropped_at:desc"],
            "limit": limit * DROP_SCAN_PER_CARD,
            "attributesToRetrieve": list(_CARD_FIELDS),
        },
        {
            "indexUid": index_uid,
            "q": "",
            "filter": f"available = true AND rating >= {TOP_RATED_MIN_STARS}",
            "sort": ["rating:desc", "rating_count:desc"],
            "limit": TOP_RATED_SCAN_LIMIT,
            "attributesToRetrieve": list(_CARD_FIELDS),
        },
    ]
    categories_result, deals_result, drops_result, top_result = run_multi_search(
        client, queries, cache
    )
    distribution = (categories_result.get("facetDistribution") or {}).get("category") or {}
    categories = [
        FacetValue(value=value, count=int(count))
        for value, count in sorted(distribution.items(), key=lambda item: (-item[1], item[0]))
    ]

    ranked = rank_deals(deals_result.get("hits", []), limit)
    deals: list[Deal] = []
    if ranked:
        group_filter = (
            "group_id IN [" + ", ".join(quote_filter_value(g) for g, _, _ in ranked) + "]"
        )
        cheapest = run_multi_search(
            client,
            [
                {
                    "indexUid": index_uid,
                    "q": "",
                    "filter": f"({group_filter}) AND available = true",
                    "sort": ["price_usd_minor:asc"],
                    "distinct": "group_id",
                    "limit": len(ranked),
                    "attributesToRetrieve": list(_CARD_FIELDS),
                }
            ],
            cache,
        )[0]
        by_group = {doc.get("group_id"): doc for doc in cheapest.get("hits", [])}
        for group_id, high, _gap in ranked:
            document = by_group.get(group_id)
            if document is None:
                continue
            hit = SearchHit.from_document(document)
            deals.append(
                Deal(
                    hit=hit,
                    highest_price_usd_minor=high,
                    saving_usd_minor=high - hit.price_usd_minor,
                )
            )

    return HomeShowcase(
        categories=categories,
        best_deals=deals,
        price_drops=pick_price_drops(drops_result.get("hits", []), limit),
        top_rated=rank_top_rated(
            [SearchHit.from_document(doc) for doc in top_result.get("hits", [])], limit
        ),
        total_offers=int(categories_result.get("totalHits") or 0),
    )


def marketplace_offer_counts(client: meilisearch.Client, index_uid: str) -> dict[str, int]:
    """Offers per marketplace slug in the index (the stores page falls back to the DB)."""
    result = run_multi_search(client, [_facet_query(index_uid, "", None, ["marketplace"])])[0]
    distribution = (result.get("facetDistribution") or {}).get("marketplace") or {}
    return {slug: int(count) for slug, count in distribution.items()}

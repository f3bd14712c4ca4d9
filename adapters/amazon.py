"""Amazon through the Creators API, the successor of PA-API 5.0 (retired 2026-04-30).

What the API is (checked against Amazon's Creators API documentation and the maintained wrapper
``python-amazon-paapi`` 7.x, module ``amazon_creatorsapi``):

* OAuth 2.0 client credentials. A credential has an id, a secret and a *version* naming its
  region and auth family: 3.x credentials ask Login with Amazon (JSON body, scope
  ``creatorsapi::default``, header ``Authorization: Bearer <token>``), 2.x credentials ask
  Cognito (form body, scope ``creatorsapi/default``, header ``Bearer <token>, Version <v>``).
  A token lives about an hour; it is cached and refreshed a minute early, or at once after a 401.
* One API host (``https://creatorsapi.amazon``) for every marketplace, chosen by the
  ``x-marketplace`` header (``www.amazon.com``, ``www.amazon.de`` …). Operations are POSTs of
  lowerCamelCase JSON: ``/catalog/v1/searchItems`` (keywords or a browse node, ``itemCount``
  ≤ 10 × ``itemPage`` ≤ 10, so at most 100 items per query) and ``/catalog/v1/getItems`` (≤ 10
  ASINs). Every request names the associate's ``partnerTag``.
* An item: ``asin``, ``detailPageURL`` (carries the tag), ``itemInfo.title.displayValue``,
  ``itemInfo.byLineInfo.brand``, ``itemInfo.externalIds.eans/upcs.displayValues``,
  ``itemInfo.manufactureInfo.model``, ``itemInfo.features.displayValues``,
  ``images.primary.large.url``, ``browseNodeInfo.browseNodes[]``, and the offers under
  ``offersV2.listings[]`` with ``price.money {amount (a JSON number), currency}``,
  ``availability.type`` and ``isBuyBoxWinner``. No customer reviews in general (a
  ``customerReviews`` container is read when an account gets one).
* No order API, ever: Amazon is catalog + hand-off. The hand-off is Amazon's add-to-cart form URL
  (``/gp/aws/cart/add.html?AssociateTag=…&ASIN.1=…&Quantity.1=…``), built by
  :func:`amazon_cart_add_url`.

Why not the wrapper: it returns pydantic models (the pipeline stores the raw JSON records), posts
its token request through ``requests`` outside our HTTP client (no injected transport for tests,
no shared retry policy or Retry-After), sleeps a fixed throttle in-process and maps a 429 to an
exception without the server's hint. The format is small, so this module speaks it with httpx
through :class:`~adapters.base.MarketplaceHttp`. See docs/amazon-and-affiliate-feeds.md.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from adapters.base import (
    BadPayload,
    Capability,
    CatalogPage,
    MarketplaceConfig,
    NotFound,
    Offer,
    Rejected,
    parse_rating,
)
from adapters.fields import (
    decode_json_body,
    description_text,
    dig,
    first_of,
    marketplace_message,
    naming_the_record,
    optional_count,
    optional_text,
    optional_url,
    reject,
    require_decimal_price,
    require_external_id,
    require_mapping,
    require_title,
)
from adapters.gtin import normalize_gtin
from adapters.http_adapter import HttpMarketplaceAdapter
from adapters.registry import MarketplaceConfigError

DEFAULT_API_HOST = "https://creatorsapi.amazon"
SEARCH_ITEMS_PATH = "catalog/v1/searchItems"
GET_ITEMS_PATH = "catalog/v1/getItems"
DEFAULT_CREDENTIAL_VERSION = "3.1"
# Token endpoints by credential version (Amazon's list, as the wrapper ships it).
TOKEN_ENDPOINTS: Mapping[str, str] = {
    "2.1": "https://creatorsapi.auth.us-east-1.amazoncognito.com/oauth2/token",
    "2.2": "https://creatorsapi.auth.eu-south-2.amazoncognito.com/oauth2/token",
    "2.3": "https://creatorsapi.auth.us-west-2.amazoncognito.com/oauth2/token",
    "3.1": "https://api.amazon.com/auth/o2/token",
    "3.2": "https://api.amazon.co.uk/auth/o2/token",
    "3.3": "https://api.amazon.co.jp/auth/o2/token",
}
LWA_SCOPE = "creatorsapi::default"
COGNITO_SCOPE = "creatorsapi/default"
TOKEN_DEFAULT_LIFETIME_S = 3600
TOKEN_REFRESH_MARGIN_S = 60
# Amazon starts every account at one request per second (more as affiliate sales grow).
DEFAULT_MIN_REQUEST_INTERVAL_S = 1.0
MAX_ITEM_COUNT = 10
MAX_ITEM_PAGE = 10
MAX_CART_LINES = 50
MAX_CART_QUANTITY = 999
ASIN_PATTERN = re.compile(r"[A-Z0-9]{10}")
AVAILABLE_TYPES = frozenset({"IN_STOCK", "IN_STOCK_SCARCE", "LEADTIME", "AVAILABLE_DATE"})
SEARCH_RESOURCES = (
    "browseNodeInfo.browseNodes",
    "images.primary.large",
    "itemInfo.byLineInfo",
    "itemInfo.classifications",
    "itemInfo.externalIds",
    "itemInfo.features",
    "itemInfo.manufactureInfo",
    "itemInfo.title",
    "offersV2.listings.availability",
    "offersV2.listings.condition",
    "offersV2.listings.isBuyBoxWinner",
    "offersV2.listings.merchantInfo",
    "offersV2.listings.price",
)
_KNOWN_OPTIONS = frozenset(
    {
        "marketplace",
        "partner_tag",
        "credential_version",
        "auth_url",
        "browse_nodes",
        "keywords",
        "search_index",
        "item_count",
        "max_pages",
        "cart_url",
        "min_request_interval_s",
        # The HTTP client's (adapters.http_adapter), as for every format.
        "read_timeout_s",
        "deadline_s",
    }
)


@dataclass(frozen=True, slots=True)
class AmazonOptions:
    """The validated `[marketplace.options]` of an Amazon marketplace."""

    marketplace: str
    partner_tag: str
    credential_version: str
    auth_url: str
    queries: tuple[tuple[str, str], ...]  # ("browseNodeId" | "keywords", value)
    search_index: str | None
    item_count: int
    max_pages: int
    cart_url: str
    min_request_interval_s: float


def parse_amazon_options(config: MarketplaceConfig) -> AmazonOptions:
    """Validate the options; every error names the marketplace and the option."""
    options = config.options
    slug = config.slug

    def fail(option: str, problem: str) -> MarketplaceConfigError:
        return MarketplaceConfigError(f"marketplace {slug}: options.{option}: {problem}")

    unknown = sorted(set(options) - _KNOWN_OPTIONS)
    if unknown:
        raise fail(unknown[0], "unknown option (a typo?)")

    def text(name: str, default: str | None = None) -> str:
        value = options.get(name, default)
        if not isinstance(value, str) or not value.strip():
            raise fail(name, "is required" if value is None else f"must be text, not {value!r}")
        return value.strip()

    def bounded(name: str, default: int, maximum: int) -> int:
        value = options.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
            raise fail(name, f"must be an integer from 1 to {maximum}, not {value!r}")
        return value

    def text_list(name: str) -> list[str]:
        value = options.get(name, [])
        if not isinstance(value, list) or not all(
            isinstance(v, str | int) and not isinstance(v, bool) and str(v).strip() for v in value
        ):
            raise fail(name, "must be a list of non-empty strings")
        return [str(v).strip() for v in value]

    marketplace = text("marketplace")
    if not re.fullmatch(r"www\.amazon\.[a-z.]{2,10}", marketplace):
        raise fail("marketplace", f"{marketplace!r} is not an Amazon host like 'www.amazon.com'")
    partner_tag = text("partner_tag")
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", partner_tag):
        raise fail("partner_tag", f"{partner_tag!r} is not an associate tag like 'mystore-20'")
    version = text("credential_version", DEFAULT_CREDENTIAL_VERSION)
    if version.partition(".")[0] not in ("2", "3"):
        raise fail("credential_version", f"{version!r}: only 2.x (Cognito) and 3.x (LWA)")
    auth_url = options.get("auth_url") or TOKEN_ENDPOINTS.get(version)
    if not isinstance(auth_url, str) or not auth_url.strip():
        raise fail("auth_url", f"is required for credential version {version}")
    queries = [("browseNodeId", node) for node in text_list("browse_nodes")]
    queries += [("keywords", words) for words in text_list("keywords")]
    if not queries:
        raise fail(
            "browse_nodes",
            "the Creators API cannot list a whole catalog: configure browse_nodes or keywords",
        )
    search_index = options.get("search_index")
    if search_index is not None and (not isinstance(search_index, str) or not search_index):
        raise fail("search_index", f"must be text like 'All', not {search_index!r}")
    interval = options.get("min_request_interval_s", DEFAULT_MIN_REQUEST_INTERVAL_S)
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not 0 <= interval <= 60
    ):
        raise fail("min_request_interval_s", f"must be 0 to 60 seconds, not {interval!r}")
    base = config.base_url.rstrip("/") + "/"
    cart_url = options.get("cart_url") or f"https://{marketplace}/gp/aws/cart/add.html"
    if not isinstance(cart_url, str):
        raise fail("cart_url", f"must be a URL, not {cart_url!r}")
    return AmazonOptions(
        marketplace=marketplace,
        partner_tag=partner_tag,
        credential_version=version,
        auth_url=urljoin(base, auth_url.strip()),
        queries=tuple(queries),
        search_index=search_index,
        item_count=bounded("item_count", MAX_ITEM_COUNT, MAX_ITEM_COUNT),
        max_pages=bounded("max_pages", MAX_ITEM_PAGE, MAX_ITEM_PAGE),
        cart_url=urljoin(base, cart_url.strip()),
        min_request_interval_s=float(interval),
    )


# --- Pure functions: links ------------------------------------------------------------------


def amazon_cart_add_url(cart_url: str, associate_tag: str, lines: Sequence[tuple[str, int]]) -> str:
    """Amazon's add-to-cart form as one URL: every line as ``ASIN.n``/``Quantity.n`` (n from 1),
    after ``AssociateTag``, so the shopper lands in one pre-filled Amazon cart credited to us.

    The same ASIN twice becomes one line with the quantities added. Raises ValueError for no
    lines, more than 50, an ASIN that is not ten capitals/digits, or a quantity outside 1-999.
    """
    if not associate_tag:
        raise ValueError("an associate tag is required")
    merged: dict[str, int] = {}
    for asin, quantity in lines:
        if not isinstance(asin, str) or not ASIN_PATTERN.fullmatch(asin):
            raise ValueError(f"not an ASIN: {asin!r}")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise ValueError(f"quantity of {asin} must be a positive integer, not {quantity!r}")
        merged[asin] = merged.get(asin, 0) + quantity
        if merged[asin] > MAX_CART_QUANTITY:
            raise ValueError(f"quantity of {asin} is above Amazon's {MAX_CART_QUANTITY}")
    if not merged:
        raise ValueError("a cart needs at least one item")
    if len(merged) > MAX_CART_LINES:
        raise ValueError(f"Amazon's cart form takes at most {MAX_CART_LINES} items")
    params: list[tuple[str, str]] = [("AssociateTag", associate_tag)]
    for number, (asin, quantity) in enumerate(merged.items(), start=1):
        params += [(f"ASIN.{number}", asin), (f"Quantity.{number}", str(quantity))]
    return f"{cart_url}?{urlencode(params)}"


def with_associate_tag(url: str, associate_tag: str) -> str:
    """`url` with its ``tag`` query parameter set to our associate tag (added, or replacing
    someone else's), so every product link earns the associate's commission."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "tag"]
    query.insert(0, ("tag", associate_tag))
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- The adapter ----------------------------------------------------------------------------


class AmazonCreatorsAdapter(HttpMarketplaceAdapter):
    """Catalog by configured searches, live offers by ASIN, and the add-to-cart hand-off."""

    capabilities = frozenset({Capability.CATALOG, Capability.LIVE_OFFER})

    # Sends no writes (catalog and live offers; purchases are handed off only), so there is
    # nothing a key could make safe to resend; a format that gains an order API must decide
    # this anew.
    honours_idempotency_keys = False

    def __init__(
        self,
        config: MarketplaceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = parse_amazon_options(config)
        super().__init__(config, transport=transport, sleep=sleep)
        self._clock = clock
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._throttle_lock = threading.Lock()
        self._last_request_at: float | None = None
        self.tokens_issued = 0

    # --- Auth ---------------------------------------------------------------------------

    @property
    def _lwa(self) -> bool:
        return self.options.credential_version.startswith("3.")

    def _credentials(self) -> tuple[str, str]:
        key = self.require_api_key()
        credential_id, _, secret = key.partition(":")
        if not credential_id or not secret:
            raise Rejected(
                f"{self.slug}: the API key must be 'credential_id:credential_secret'",
                marketplace=self.slug,
            )
        return credential_id, secret

    def access_token(self, *, renew: bool = False) -> str:
        """A bearer token, from the cache while it has more than a minute left."""
        with self._token_lock:
            now = self._clock()
            if not renew and self._token and now < self._token_expires_at:
                return self._token
            credential_id, secret = self._credentials()
            fields = {
                "grant_type": "client_credentials",
                "client_id": credential_id,
                "client_secret": secret,
                "scope": LWA_SCOPE if self._lwa else COGNITO_SCOPE,
            }
            try:
                # Cognito wants a form body; either way the request has the client's retries
                # and deadline (a token endpoint trickling its answer held the worker).
                if self._lwa:
                    response = self.http.request("POST", self.options.auth_url, json=fields)
                else:
                    response = self.http.request("POST", self.options.auth_url, data=fields)
            except Rejected as exc:
                raise Rejected(
                    f"{self.slug}: the token endpoint refused the credentials "
                    f"({marketplace_message(exc.response_text) or exc})",
                    marketplace=self.slug,
                    status=exc.status,
                    response_text=exc.response_text,
                ) from exc
            body = decode_json_body(response, marketplace=self.slug)
            token = body.get("access_token") if isinstance(body, Mapping) else None
            if not isinstance(token, str) or not token:
                raise BadPayload("bad_token", detail="no access_token", marketplace=self.slug)
            lifetime = optional_count(body.get("expires_in")) or TOKEN_DEFAULT_LIFETIME_S
            self._token = token
            self._token_expires_at = now + max(lifetime - TOKEN_REFRESH_MARGIN_S, 1)
            self.tokens_issued += 1
            return token

    def _headers(self, token: str) -> dict[str, str]:
        authorization = (
            f"Bearer {token}"
            if self._lwa
            else f"Bearer {token}, Version {self.options.credential_version}"
        )
        return {
            "Authorization": authorization,
            "Content-Type": "application/json; charset=utf-8",
            "x-marketplace": self.options.marketplace,
        }

    def _throttle(self) -> None:
        """Keep to the account's request rate (one per second for a new account)."""
        interval = self.options.min_request_interval_s
        if interval <= 0:
            return
        with self._throttle_lock:
            now = self._clock()
            if self._last_request_at is not None:
                wait = self._last_request_at + interval - now
                if wait > 0:
                    self._sleep(wait)
                    now += wait
            self._last_request_at = now

    def _call(self, path: str, body: Mapping[str, Any]) -> Any:
        """POST one operation; a 401 renews the token once (it may have been revoked early).
        429s and 5xx are retried by the HTTP client (Retry-After honoured), then RateLimited."""
        for attempt in (1, 2):
            token = self.access_token(renew=attempt == 2)
            self._throttle()
            try:
                response = self.http.request("POST", path, json=body, headers=self._headers(token))
            except Rejected as exc:
                if exc.status == 401 and attempt == 1:
                    continue
                raise Rejected(
                    f"{self.slug} refused {path}: {marketplace_message(exc.response_text) or exc}",
                    marketplace=self.slug,
                    status=exc.status,
                    response_text=exc.response_text,
                ) from exc
            return decode_json_body(response, marketplace=self.slug)
        raise AssertionError("unreachable")  # pragma: no cover

    # --- Catalog ------------------------------------------------------------------------

    def fetch_catalog_pages(self) -> Iterator[CatalogPage]:
        """Every configured browse node and keyword search, page by page (at most 10 pages of
        10 items each, Amazon's limit). An ASIN found by an earlier query is not repeated."""
        seen: set[str] = set()
        page_number = 0
        for field, value in self.options.queries:
            for item_page in range(1, self.options.max_pages + 1):
                body: dict[str, Any] = {
                    field: value,
                    "itemCount": self.options.item_count,
                    "itemPage": item_page,
                    "partnerTag": self.options.partner_tag,
                    "resources": list(SEARCH_RESOURCES),
                }
                if self.options.search_index:
                    body["searchIndex"] = self.options.search_index
                try:
                    answer = self._call(SEARCH_ITEMS_PATH, body)
                except NotFound:  # NoResults: the query has no (more) items
                    break
                items = dig(answer, "searchResult.items")
                if not isinstance(items, list):
                    raise BadPayload(
                        "bad_page",
                        detail=f"{field}={value!r} page {item_page}: no searchResult.items",
                        marketplace=self.slug,
                    )
                fresh = []
                for item in items:
                    asin = item.get("asin") if isinstance(item, Mapping) else None
                    if isinstance(asin, str) and asin in seen:
                        continue  # the same item, found again by another query
                    if isinstance(asin, str):
                        seen.add(asin)
                    fresh.append(item)
                if fresh:
                    page_number += 1
                    yield CatalogPage(records=fresh, page=page_number)
                total = optional_count(dig(answer, "searchResult.totalResultCount"))
                if len(items) < self.options.item_count or (
                    total is not None and item_page * self.options.item_count >= total
                ):
                    break

    # --- Normalization ------------------------------------------------------------------

    @staticmethod
    def _chosen_listing(item: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The buy-box winner among `offersV2.listings`, else the first listing."""
        listings = dig(item, "offersV2.listings")
        if not isinstance(listings, list):
            return None
        candidates = [listing for listing in listings if isinstance(listing, Mapping)]
        for listing in candidates:
            if listing.get("isBuyBoxWinner") is True:
                return listing
        return candidates[0] if candidates else None

    def _price(self, listing: Mapping[str, Any] | None) -> tuple[int, str]:
        money = dig(listing, "price.money") if listing is not None else None
        if not isinstance(money, Mapping) or money.get("amount") in (None, ""):
            raise reject(
                "missing_price", "no offersV2 listing with price.money", marketplace=self.slug
            )
        currency = money.get("currency")
        if not isinstance(currency, str) or not currency.strip():
            raise reject("unknown_currency", repr(currency)[:100], marketplace=self.slug)
        currency = currency.strip().upper()
        amount = money["amount"]
        if isinstance(amount, bool) or not isinstance(amount, int | float | str):
            raise reject("bad_price", f"amount {amount!r}"[:200], marketplace=self.slug)
        return require_decimal_price(amount, currency, marketplace=self.slug), currency

    @staticmethod
    def _gtin(info: Mapping[str, Any]) -> str | None:
        """The first valid EAN, else the first valid UPC, from `itemInfo.externalIds`."""
        for kind in ("eans", "upcs"):
            values = dig(info, f"externalIds.{kind}.displayValues")
            for value in values if isinstance(values, list) else []:
                gtin = normalize_gtin(value)
                if gtin:
                    return gtin
        return None

    def normalize_record(self, record: Mapping[str, Any]) -> Offer:
        """One Creators API item as an Offer: ASIN as the id, the buy-box price, EAN/UPC."""
        item = require_mapping(record, marketplace=self.slug)
        asin = require_external_id(item.get("asin"), marketplace=self.slug)
        with naming_the_record(asin):
            if not ASIN_PATTERN.fullmatch(asin):
                raise reject("bad_record", f"not an ASIN: {asin!r}"[:120], marketplace=self.slug)
            info = item.get("itemInfo")
            info = info if isinstance(info, Mapping) else {}
            title = require_title(dig(info, "title.displayValue"), marketplace=self.slug)
            listing = self._chosen_listing(item)
            price_minor, currency = self._price(listing)
            availability = dig(listing, "availability.type") if listing is not None else None
            available = (
                True
                if availability in (None, "")
                else str(availability).strip().upper() in AVAILABLE_TYPES
            )
            detail_url = optional_url(item.get("detailPageURL"))
            product_url = with_associate_tag(
                detail_url or f"https://{self.options.marketplace}/dp/{asin}",
                self.options.partner_tag,
            )
            image = first_of(
                [
                    dig(item, f"images.primary.{size}.url")
                    for size in ("large", "medium", "small")
                    if dig(item, f"images.primary.{size}.url")
                ]
            )
            nodes = dig(item, "browseNodeInfo.browseNodes")
            node = nodes[0] if isinstance(nodes, list) and nodes else None
            category = optional_text(dig(node, "displayName")) or optional_text(
                dig(info, "classifications.productGroup.displayValue")
            )
            features = dig(info, "features.displayValues")
            description = (
                "\n".join(str(line) for line in features if isinstance(line, str))
                if isinstance(features, list)
                else None
            )
            return Offer(
                marketplace=self.slug,
                external_id=asin,
                title=title,
                price_minor=price_minor,
                currency=currency,
                description=description_text(description),
                image_url=optional_url(image),
                product_url=product_url,
                category=category,
                brand=optional_text(dig(info, "byLineInfo.brand.displayValue"))
                or optional_text(dig(info, "byLineInfo.manufacturer.displayValue")),
                model=optional_text(dig(info, "manufactureInfo.model.displayValue")),
                gtin=self._gtin(info),
                mpn=optional_text(dig(info, "manufactureInfo.itemPartNumber.displayValue")),
                sku=asin,
                rating=parse_rating(dig(item, "customerReviews.starRating.value")),
                rating_count=optional_count(dig(item, "customerReviews.count")),
                available=available,
            )

    # --- Live offer and hand-off --------------------------------------------------------

    def lookup_offer(self, external_id: str) -> Offer:
        """The live buy-box offer of one ASIN through getItems (the cart's price re-check)."""
        if not ASIN_PATTERN.fullmatch(external_id):
            raise NotFound(f"{self.slug}: {external_id!r} is not an ASIN", marketplace=self.slug)
        body = {
            "itemIds": [external_id],
            "partnerTag": self.options.partner_tag,
            "resources": list(SEARCH_RESOURCES),
        }
        answer = self._call(GET_ITEMS_PATH, body)
        items = dig(answer, "itemsResult.items")
        for item in items if isinstance(items, list) else []:
            if isinstance(item, Mapping) and item.get("asin") == external_id:
                return self.normalize_record(item)
        raise NotFound(f"{self.slug}: {external_id} not found", marketplace=self.slug)

    def handoff_cart_url(self, lines: Sequence[tuple[str, int]]) -> str:
        """One Amazon cart pre-filled with these (ASIN, quantity) lines, credited to our tag."""
        return amazon_cart_add_url(self.options.cart_url, self.options.partner_tag, lines)

"""WooCommerce: the public Store API for the catalog and live prices, REST v3 for orders (the
order documents sent and read: adapters/woocommerce_orders.py).

Store API prices are minor-unit strings with their own scale (`currency_minor_unit`), and carry
their currency, so a Kenyan store's "110500" at scale 2 is KES 1,105.00. Stock: see
`store_stock`. Orders carry our
reference in the `_onecart_reference` meta field, so a retried placement can be found again.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from adapters.base import (
    FULL_ORDER_API,
    BadPayload,
    CannotConfirmAbsence,
    CatalogPage,
    MarketplaceConfig,
    NotFound,
    Offer,
    OrderRequest,
    OrderState,
    PlacedOrder,
    Rejected,
    Transient,
    parse_rating,
)
from adapters.changed_since import (
    CatalogChanges,
    clocked_catalog_pages,
    collect_changed,
    listed_ids,
    server_time,
)
from adapters.fields import (
    description_text,
    naming_the_record,
    optional_count,
    optional_int,
    optional_text,
    optional_url,
    reject,
    require_external_id,
    require_mapping,
    require_minor_unit_price,
    require_title,
)
from adapters.gtin import normalize_gtin
from adapters.http_adapter import HttpMarketplaceAdapter
from adapters.registry import MarketplaceConfigError
from adapters.woocommerce_orders import (
    INVALID_ORDER_ID_CODE,
    order_payload,
    order_state,
    orders_with_reference,
    placed_order,
    rest_error_code,
)

STORE_API = "wp-json/wc/store/v1"
REST_API = "wp-json/wc/v3"
MAX_PAGE_SIZE = 100  # the Store API's and REST API's cap on `per_page`
# The Store API's `add_to_cart.maximum` when nothing lowers it: no stock figure.
STORE_API_CART_LIMIT = 9999
# find_order lists at most this many pages of recent orders before giving up (unknown).
MAX_SCAN_PAGES = 20
DEFAULT_ORDER_LOOKBACK_HOURS = 72
# Orders are listed from this long before the first attempt could have been sent: the store's
# clock may be behind ours, and it dates an order when it receives it.
SEND_TIME_MARGIN = timedelta(minutes=15)


def _entity_text(value: object) -> str | None:
    """WordPress sends names with HTML entities ("Home &amp; Kitchen"): decode them to text."""
    return optional_text(html.unescape(value)) if isinstance(value, str) else None


def _first_name(items: object) -> str | None:
    if isinstance(items, list):
        for item in items:
            if isinstance(item, Mapping) and _entity_text(item.get("name")):
                return _entity_text(item.get("name"))
    return None


def store_stock(product: Mapping[str, Any]) -> int | None:
    """How many units of the product can be bought, where the record says (None: no limit
    known). REST v3 products carry `stock_quantity` (null unless the product manages its stock)
    whatever the store shows shoppers. The Store API has no such field; it tells the stock in
    `add_to_cart.maximum`, the most a cart may hold: the remaining stock of a product that
    manages it without backorders, capped at 9999 (QuantityLimits), 1 for a product sold
    individually; and in `low_stock_remaining` once the stock is at or below the store's
    low-stock threshold (ProductSchema), the only figure older Store APIs send."""
    if product.get("stock_quantity") is not None:
        return optional_count(product.get("stock_quantity"))
    cart = product.get("add_to_cart")
    maximum = optional_count(cart.get("maximum")) if isinstance(cart, Mapping) else None
    if (
        maximum is not None
        and maximum < STORE_API_CART_LIMIT
        and product.get("sold_individually") is not True
    ):
        return maximum
    return optional_count(product.get("low_stock_remaining"))


def _as_utc(moment: datetime) -> datetime:
    # The protocol's moments are UTC; a caller's naive one is read as UTC, not as local time.
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _lookback_hours(config: MarketplaceConfig) -> float:
    raw = config.options.get("order_lookback_hours", DEFAULT_ORDER_LOOKBACK_HOURS)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not 1 <= raw <= 24 * 90:
        raise MarketplaceConfigError(
            f"marketplace {config.slug}: options.order_lookback_hours must be 1..2160 hours"
        )
    return float(raw)


class WooCommerceAdapter(HttpMarketplaceAdapter):
    """A WooCommerce store: Store API catalog and lookups, REST v3 orders with Basic auth."""

    capabilities = FULL_ORDER_API
    # Its orders take the stock and refuse what is not there: OneCart holds none of its own.
    order_takes_stock = True

    @property
    def honours_idempotency_keys(self) -> bool:
        """As configured (default True, as the sandbox honours keys). Real WooCommerce ignores
        Idempotency-Key: configure it with `retry_unknown_writes = false`. Orders carry our
        reference in their meta, so a placement in doubt is looked up before anything else."""
        return self.keys_honoured_as_configured

    def __init__(
        self,
        config: MarketplaceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(config, transport=transport, sleep=sleep)
        self.page_size = max(1, min(config.page_size, MAX_PAGE_SIZE))
        self.order_lookback = timedelta(hours=_lookback_hours(config))
        # The store's clock when the last catalog fetch began.
        self.catalog_started_at: datetime | None = None

    # --- Catalog ----------------------------------------------------------------------------

    fetches_changes = True

    def _store_pages(
        self, params: Mapping[str, str | int]
    ) -> Iterator[tuple[list[dict[str, Any]], httpx.Response]]:
        """Store API pages for `params` until X-WP-TotalPages (or an empty or short page when
        the header is absent)."""
        page = 1
        per_page = int(params.get("per_page", self.page_size))
        while True:
            body, response = self.get_json(
                f"{STORE_API}/products", params={**params, "page": page, "per_page": per_page}
            )
            if not isinstance(body, list):
                raise BadPayload(
                    "bad_page", detail=f"page {page}: not a product list", marketplace=self.slug
                )
            self.pages_answered += 1
            yield body, response
            if not body:
                return
            total_pages = optional_int(response.headers.get("X-WP-TotalPages"))
            if total_pages is not None and page >= total_pages:
                return
            if total_pages is None and len(body) < per_page:
                return
            page += 1

    def fetch_catalog_pages(self) -> Iterator[CatalogPage]:
        """Store API pages until X-WP-TotalPages (or an empty page when the header is absent)."""
        yield from clocked_catalog_pages(self, self._store_pages({}))

    def fetch_catalog_changes(self, since: datetime, *, at_most: int) -> CatalogChanges:
        """Products modified since `since`, then every product's id (adapters/changed_since.py).

        The Store API's `after` with `date_column=modified_gmt` compares with the products'
        GMT modification time (WooCommerce src/StoreApi/Routes/V1/Products.php; REST v3's
        `modified_after` needs credentials and sends another record shape); `_fields=id` is
        WordPress's own response filter (rest_filter_response_fields), on every REST route."""
        started: list[datetime] = []
        after = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")

        def changed_pages() -> Iterator[list[dict[str, Any]]]:
            params = {"after": after, "date_column": "modified_gmt", "per_page": MAX_PAGE_SIZE}
            for body, response in self._store_pages(params):
                if not started:
                    started.append(server_time(response))
                yield body

        changed = collect_changed(changed_pages(), at_most=at_most)
        ids = listed_ids(
            body for body, _ in self._store_pages({"_fields": "id", "per_page": MAX_PAGE_SIZE})
        )
        return CatalogChanges(changed, ids, self.page_size, started[0])

    def fetch_records_by_id(self, ids: list[str]) -> list[dict[str, Any]]:
        """Every product listed with one of `ids` (Store API `include`), in listing order."""
        records: list[dict[str, Any]] = []
        for start in range(0, len(ids), MAX_PAGE_SIZE):
            include = ",".join(ids[start : start + MAX_PAGE_SIZE])
            for body, _ in self._store_pages({"include": include, "per_page": MAX_PAGE_SIZE}):
                records.extend(body)
        return records

    def normalize_record(self, record: Mapping[str, Any]) -> Offer:
        """One Store API product as an Offer; the price's currency and scale come with it."""
        product = require_mapping(record, marketplace=self.slug)
        external_id = require_external_id(product.get("id"), marketplace=self.slug)
        with naming_the_record(external_id):
            name = product.get("name")
            title = require_title(
                html.unescape(name) if isinstance(name, str) else name, marketplace=self.slug
            )
            prices = product.get("prices")
            if prices is None:
                raise reject("missing_price", "no prices", marketplace=self.slug)
            if not isinstance(prices, Mapping):
                raise reject("bad_record", "prices is not an object", marketplace=self.slug)
            # The Store API always names its currency; fall back to the configured one only if absent.
            currency_code = prices.get("currency_code")
            if currency_code is None:
                currency = self.config.currency
            elif isinstance(currency_code, str):
                currency = currency_code.strip()
            else:
                raise reject("unknown_currency", repr(currency_code), marketplace=self.slug)
            price_minor = require_minor_unit_price(
                prices.get("price"),
                prices.get("currency_minor_unit"),
                currency,
                marketplace=self.slug,
            )
            rating_count = optional_count(product.get("review_count"))
            in_stock = product.get("is_in_stock")
            purchasable = product.get("is_purchasable")
            sku = optional_text(product.get("sku"))
            images = product.get("images")
            first_image = images[0] if isinstance(images, list) and images else None
            return Offer(
                marketplace=self.slug,
                external_id=external_id,
                title=title,
                price_minor=price_minor,
                currency=currency,
                description=description_text(
                    product.get("description") or product.get("short_description")
                ),
                image_url=optional_url(first_image.get("src"))
                if isinstance(first_image, Mapping)
                else None,
                product_url=optional_url(product.get("permalink")),
                category=_first_name(product.get("categories")),
                brand=_first_name(product.get("brands")),
                model=sku,
                # Core WooCommerce 9.2+ has a GTIN field; the Store API of most stores sends none.
                gtin=normalize_gtin(product.get("global_unique_id")),
                sku=sku,
                # "0" with no reviews means unrated, not rated zero.
                rating=parse_rating(product.get("average_rating")) if rating_count != 0 else None,
                rating_count=rating_count,
                available=(in_stock is not False) and (purchasable is not False),
                stock=store_stock(product),
            )

    # --- Live offer -------------------------------------------------------------------------

    def lookup_offer(self, external_id: str) -> Offer:
        """The Store API's current product (404 -> NotFound)."""
        body, _ = self.get_json(f"{STORE_API}/products/{quote(external_id, safe='')}")
        return self.normalize_record(body)

    # --- Orders (REST v3) -------------------------------------------------------------------

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        """A paid order with our reference in `_onecart_reference` meta (woocommerce_orders)."""
        payload = order_payload(request, slug=self.slug)
        body, _ = self.send_write(
            "POST",
            f"{REST_API}/orders",
            json=payload,
            idempotency_key=request.idempotency_key,
            not_found_is_refusal=True,
            headers=self.basic_auth_header(),
        )
        return self._placed(self._order_body(body, written="POST orders"))

    def find_order(
        self, reference: str, *, sent_since: datetime | None = None
    ) -> PlacedOrder | None:
        """The oldest order whose `_onecart_reference` meta equals `reference`, or None when no
        order created since `sent_since` (less a margin for the clocks) carries it.

        First `search=REF` (cheap where the store adds the meta to its order search with the
        `woocommerce_shop_order_search_fields` filter, as the sandbox does). Core WooCommerce
        search does not cover meta, so an empty search proves nothing: the answer "no such
        order" comes only from listing every order created since the attempt could first have
        been sent (`after`, oldest first, 100 a page) and reading each one's meta. That listing
        reaches back at most the look-back window (option `order_lookback_hours`, default 72):
        when the attempt may be older than that, or its send time is not given, the absence
        cannot be confirmed and CannotConfirmAbsence (an Unsupported) says so: the caller keeps
        the outcome unknown.
        """
        headers = self.basic_auth_header()
        found = orders_with_reference(self._order_list({"search": reference}, headers), reference)
        if found:
            return self._placed(found[0])
        earliest = datetime.now(UTC) - self.order_lookback
        if sent_since is None:
            raise CannotConfirmAbsence(
                f"{self.slug}: without the time of the first attempt, no listing can confirm "
                f"that no order carries {reference!r}",
                marketplace=self.slug,
            )
        since = _as_utc(sent_since) - SEND_TIME_MARGIN
        if since < earliest:
            raise CannotConfirmAbsence(
                f"{self.slug}: the first attempt for {reference!r} ({since:%Y-%m-%d %H:%M} UTC) "
                f"is older than the {self.order_lookback} look-back: its absence cannot be "
                "confirmed",
                marketplace=self.slug,
            )
        for page in range(1, MAX_SCAN_PAGES + 1):
            params = {
                "after": since.strftime("%Y-%m-%dT%H:%M:%S"),
                "dates_are_gmt": "true",
                "orderby": "id",
                "order": "asc",
                "per_page": MAX_PAGE_SIZE,
                "page": page,
            }
            orders = self._order_list(params, headers)
            found = orders_with_reference(orders, reference)
            if found:
                return self._placed(found[0])
            if len(orders) < MAX_PAGE_SIZE:
                return None
        raise Transient(
            f"{self.slug}: more than {MAX_SCAN_PAGES * MAX_PAGE_SIZE} orders since "
            f"{since:%Y-%m-%d %H:%M} UTC: cannot confirm that none carries {reference!r}",
            marketplace=self.slug,
        )

    def _order_list(self, params: Mapping[str, Any], headers: Mapping[str, str]) -> list[Any]:
        body, _ = self.get_json(f"{REST_API}/orders", params=params, headers=headers)
        if not isinstance(body, list):
            raise BadPayload(
                "bad_response", detail="order list is not a list", marketplace=self.slug
            )
        return body

    def order_status(self, marketplace_order_id: str) -> OrderState:
        """The order's status, with tracking from the Shipment Tracking meta once completed."""
        body, _ = self.get_json(
            f"{REST_API}/orders/{quote(marketplace_order_id, safe='')}",
            headers=self.basic_auth_header(),
        )
        return order_state(self._order_body(body))

    def check_orders_api(self) -> None:
        """REST v3's order list, one order's id (`per_page=1`, WordPress's `_fields=id`), with
        the same key as a status poll: a list answered (empty or not), the order API works."""
        body, _ = self.get_json(
            f"{REST_API}/orders",
            params={"per_page": 1, "_fields": "id"},
            headers=self.basic_auth_header(),
        )
        if not isinstance(body, list):
            raise BadPayload(
                "bad_response", detail="GET orders gave no list", marketplace=self.slug
            )

    def cancel_order(self, marketplace_order_id: str) -> OrderState:
        """Set the status to cancelled (the store refuses once the order has shipped). An
        unknown order is NotFound, whether the store says so with 404 or, as REST v3 updates
        do, with 400 `woocommerce_rest_shop_order_invalid_id`."""
        try:
            body, _ = self.send_write(
                "PUT",
                f"{REST_API}/orders/{quote(marketplace_order_id, safe='')}",
                json={"status": "cancelled"},
                idempotency_key=f"onecart-cancel-{self.slug}-{marketplace_order_id}",
                headers=self.basic_auth_header(),
            )
        except Rejected as exc:
            if rest_error_code(exc.response_text) != INVALID_ORDER_ID_CODE:
                raise
            raise NotFound(
                f"{self.slug}: order {marketplace_order_id} does not exist",
                marketplace=self.slug,
                status=exc.status,
                response_text=exc.response_text,
            ) from exc
        return order_state(self._order_body(body, written="PUT orders/{id} (cancel)"))

    def _order_body(self, body: Any, *, written: str | None = None) -> Mapping[str, Any]:
        """The order in a reply; `written` names the write it answers, whose unreadable reply
        is an unknown outcome rather than a bad payload."""
        if not isinstance(body, Mapping) or optional_int(body.get("id")) is None:
            if written:
                raise self.unreadable_write(written, "the reply is not an order")
            raise BadPayload("bad_response", detail="not an order", marketplace=self.slug)
        return body

    def _placed(self, order: Mapping[str, Any]) -> PlacedOrder:
        """The order as the store holds it (woocommerce_orders.placed_order)."""
        return placed_order(order, fallback_currency=self.config.currency)

"""Kiondo Market: a WooCommerce store (KES). Store API catalog (prices as minor-unit strings,
totals in X-WP-* headers; `after`/`before` with `date_column`, `include`, and WordPress's
`_fields`) and REST v3 orders with HTTP Basic consumer key/secret.

Order statuses: ``processing`` right after a paid REST order (``pending`` when set_paid is
false), ``completed`` once shipped (tracking in the ``_wc_shipment_tracking_items`` meta, as the
Shipment Tracking plugin stores it), then the custom ``delivered`` status; ``cancelled`` when
the customer or the store cancels before shipping.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from html import escape
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from onecart.money import MoneyError, parse_decimal, to_minor_units
from sandbox.assortment import CATEGORIES
from sandbox.draws import hash64
from sandbox.knobs import PlacementPlan
from sandbox.listing import FilteredCatalog, id_values, on_catalog
from sandbox.malformations import huge_text, malformed_title
from sandbox.orders import CANCELLED, DELIVERED, PENDING, SHIPPED, OrderLine, SandboxOrder
from sandbox.pages import format_amount, product_page
from sandbox.refunds import refunded_minor, woocommerce_refunds
from sandbox.service import JsonError, json_response, query_int, read_json_body
from sandbox.stock import short_of_stock, woocommerce_stock_error
from sandbox.world import ListedOffer, slugify

PRODUCT_ID_BASE = 1000
PRODUCT_ID_STRIDE = 3
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10
# The Store API's `date_column` values (WooCommerce src/StoreApi/Routes/V1/Products.php).
DATE_COLUMNS = ("date", "date_gmt", "modified", "modified_gmt")
REFERENCE_META_KEY = "_onecart_reference"
TRACKING_META_KEY = "_wc_shipment_tracking_items"
STORE_TIMEZONE = timezone(timedelta(hours=3))  # Africa/Nairobi
UNKNOWN_CURRENCY_CODE = "KSH"  # what a sloppy plugin writes instead of ISO "KES"
CATEGORY_IDS = {category.slug: 15 + position for position, category in enumerate(CATEGORIES)}


def product_id(index: int) -> int:
    """The WooCommerce post id of offer `index`."""
    return PRODUCT_ID_BASE + index * PRODUCT_ID_STRIDE


def _error(status: int, code: str, message: str) -> JsonError:
    return JsonError(status, {"code": code, "message": message, "data": {"status": status}})


def _local(moment: datetime | None) -> str | None:
    return moment.astimezone(STORE_TIMEZONE).strftime("%Y-%m-%dT%H:%M:%S") if moment else None


def _date_param(request: Request, name: str, gmt: bool) -> datetime | None:
    """An ISO 8601 `after`/`before` filter: in the store's time zone unless dates_are_gmt."""
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _error(400, "rest_invalid_param", f"Invalid parameter(s): {name}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC if gmt else STORE_TIMEZONE)
    return moment


def _gmt(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if moment else None


class WooCommerceService(FilteredCatalog):
    """The WooCommerce-format marketplace."""

    slug = "kiondo"
    routes = (
        ("/wp-json/wc/store/v1/products", "list_products", ("GET",)),
        ("/wp-json/wc/store/v1/products/<int:product_id>", "get_product", ("GET",)),
        ("/product/<product_slug>/", "product_page", ("GET",)),
        ("/wp-json/wc/v3/orders", "create_order", ("POST",)),
        ("/wp-json/wc/v3/orders", "list_orders", ("GET",)),
        ("/wp-json/wc/v3/orders/<int:order_id>", "get_order", ("GET",)),
        ("/wp-json/wc/v3/orders/<int:order_id>", "update_order", ("PUT", "POST", "PATCH")),
    )

    def index_of(self, wc_id: int) -> int | None:
        """The offer index behind a product id, or None."""
        offset = wc_id - PRODUCT_ID_BASE
        if offset < 0 or offset % PRODUCT_ID_STRIDE or offset // PRODUCT_ID_STRIDE >= self.count:
            return None
        return offset // PRODUCT_ID_STRIDE

    # -- Store API --

    def product_record(self, request: Request, index: int, *, live: bool = False) -> dict[str, Any]:
        """Offer `index` as a Store API product, malformed when its slot says so."""
        offer = self.ctx.offer(self.slug, index, live=live)
        kind = self.ctx.malformation(self.slug, index)
        product = offer.product
        wc_id = product_id(index - 1 if kind == "duplicate_id" else index)
        sentences = product.description_sentences()
        description = "".join(f"<p>{escape(sentence)}</p>" for sentence in sentences)
        if kind == "huge_description":
            description = f"<p>{escape(huge_text(sentences))}</p>"
        name = malformed_title(offer.title, index, kind)
        slug = f"{slugify(offer.title)}-{product_id(index)}"
        base = self.base_url(request)
        image = self.ctx.image_url(request, offer)
        on_sale = offer.list_price_minor is not None
        regular = offer.list_price_minor if on_sale else offer.price_minor
        prices: dict[str, Any] = {
            "price": str(offer.price_minor),
            "regular_price": str(regular),
            "sale_price": str(offer.price_minor),
            "price_range": None,
            "currency_code": offer.currency,
            "currency_symbol": "KSh",
            "currency_minor_unit": 2,
            "currency_decimal_separator": ".",
            "currency_thousand_separator": ",",
            "currency_prefix": "KSh ",
            "currency_suffix": "",
        }
        if kind == "missing_price":
            del prices["price"]
        elif kind == "negative_price":
            prices["price"] = f"-{prices['price']}"
        elif kind == "unknown_currency":
            prices["currency_code"] = UNKNOWN_CURRENCY_CODE
        category = product.category
        brand_id = 200 + hash64("brand", product.brand) % 800
        return {
            "id": wc_id,
            "name": name,
            "slug": slug,
            "parent": 0,
            "type": "simple",
            "variation": "",
            "permalink": f"{base}/product/{slug}/",
            "sku": product.model,
            "short_description": f"<p>{escape(sentences[0])}</p>",
            "description": description,
            "on_sale": on_sale,
            "prices": prices,
            "price_html": f'<span class="woocommerce-Price-amount amount">KSh&nbsp;{format_amount(offer.price_minor, offer.currency)}</span>',
            "average_rating": f"{offer.rating_centi / 100:.2f}",
            "review_count": offer.review_count,
            "images": [
                {
                    "id": wc_id + 1,
                    "src": image,
                    "thumbnail": image,
                    "srcset": "",
                    "sizes": "",
                    "name": f"{product.key}.svg",
                    "alt": product.display_name,
                }
            ],
            "categories": [
                {
                    "id": CATEGORY_IDS[category.slug],
                    "name": category.name,
                    "slug": category.slug,
                    "link": f"{base}/product-category/{category.slug}/",
                }
            ],
            "tags": [
                {"id": 900 + n, "name": tag, "slug": slugify(tag)}
                for n, tag in enumerate(category.tags)
            ],
            "brands": [
                {
                    "id": brand_id,
                    "name": product.brand,
                    "slug": slugify(product.brand),
                    "link": f"{base}/brand/{slugify(product.brand)}/",
                }
            ],
            "attributes": [],
            "variations": [],
            "has_options": False,
            "is_purchasable": True,
            "is_in_stock": offer.available,
            "is_on_backorder": False,
            "low_stock_remaining": (
                offer.stock if offer.tracks_stock and 0 < offer.stock < 5 else None
            ),
            "sold_individually": False,
            "add_to_cart": {
                "text": "Add to cart",
                "description": f"Add “{offer.title}” to your cart",
                "url": f"{base}/?add-to-cart={wc_id}",
                "minimum": 1,
                "maximum": 9999,
                "multiple_of": 1,
            },
        }

    def list_products(self, request: Request) -> Response:
        """GET /wp-json/wc/store/v1/products?page=&per_page= with X-WP-Total/TotalPages and Link.

        As the Store API: `after`/`before` (ISO 8601) compare with `date_column` (date,
        date_gmt, modified or modified_gmt; dates without an offset are the store's time, or
        GMT for the *_gmt columns), `include` keeps the listed ids; and as every WordPress REST
        route, `_fields` keeps only the named fields. Pages count what the filters keep."""
        unlisted = self.observe()
        per_page = query_int(
            request, "per_page", DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE
        )
        page = query_int(request, "page", 1, minimum=1)
        selected = self._selection(request, unlisted)
        total = len(selected)
        total_pages = math.ceil(total / per_page) if total else 0
        start = (page - 1) * per_page
        chosen = selected[start : start + per_page]
        fields = [name.strip() for name in request.args.get("_fields", "").split(",")]
        fields = [name for name in fields if name]
        if fields == ["id"]:
            records: list[dict[str, Any]] = [{"id": self.listed_id(i)} for i in chosen]
        else:
            records = [self.product_record(request, i) for i in chosen]
            if fields:
                records = [{k: v for k, v in r.items() if k in fields} for r in records]
        url = f"{self.base_url(request)}/wp-json/wc/store/v1/products"
        kept = [(name, value) for name, value in request.args.items(multi=True) if name != "page"]
        links = []
        if page > 1:
            previous = urlencode([*kept, ("page", min(page - 1, max(total_pages, 1)))])
            links.append(f'<{url}?{previous}>; rel="prev"')
        if page < total_pages:
            links.append(f'<{url}?{urlencode([*kept, ("page", page + 1)])}>; rel="next"')
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(total_pages)}
        if links:
            headers["Link"] = ", ".join(links)
        return json_response(records, headers=headers)

    def product_id_of(self, index: int) -> int:
        """The WooCommerce post id of offer `index`."""
        return product_id(index)

    def _selection(self, request: Request, unlisted: frozenset[int]) -> Sequence[int]:
        """The indexes the request's filters keep, in listing order."""
        selected: Sequence[int] = on_catalog(self.count, unlisted)
        include = request.args.get("include")
        if include:
            selected = sorted(self.listed_as(id_values(include.split(","))) - unlisted)
        column = request.args.get("date_column", "date")
        if column not in DATE_COLUMNS:
            raise _error(400, "rest_invalid_param", "Invalid parameter(s): date_column")
        gmt = column.endswith("_gmt")
        after = _date_param(request, "after", gmt)
        before = _date_param(request, "before", gmt)
        modified = column.startswith("modified")
        if modified and after is not None:
            selected = self.modified_since(selected, after, inclusive=False)
            after = None
        if after is None and before is None:
            return selected

        def moment(index: int) -> datetime:
            offer = self.ctx.offer(self.slug, index)
            return self.ctx.modified_at(self.slug, offer) if modified else offer.created_at

        return [
            i
            for i in selected
            if (after is None or moment(i) > after) and (before is None or moment(i) < before)
        ]

    def get_product(self, request: Request, product_id: int) -> Response:
        """GET /wp-json/wc/store/v1/products/<id>: the live offer (price_drift applies)."""
        unlisted = self.observe()
        index = self.index_of(product_id)
        if (
            index is None
            or index in unlisted
            or self.ctx.malformation(self.slug, index) == "duplicate_id"
        ):
            raise _error(404, "woocommerce_rest_product_invalid_id", "Invalid product ID.")
        return json_response(self.product_record(request, index, live=True))

    def product_page(self, request: Request, product_slug: str) -> Response:
        """The storefront page behind a permalink (the slug ends with the product id)."""
        tail = product_slug.rsplit("-", 1)[-1]
        index = self.index_of(int(tail)) if tail.isdigit() else None
        if index is None:
            return Response("Not Found", status=404, content_type="text/plain")
        offer = self.ctx.offer(self.slug, index)
        return product_page(self.profile.name, offer, self.ctx.image_url(request, offer))

    # -- REST v3 orders --

    def _require_credentials(self, request: Request) -> None:
        auth = request.authorization
        key = auth.username if auth and auth.type == "basic" else request.args.get("consumer_key")
        secret = (
            auth.password if auth and auth.type == "basic" else request.args.get("consumer_secret")
        )
        if not key or not secret:
            raise _error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")

    def create_order(self, request: Request) -> Response:
        """POST /wp-json/wc/v3/orders (an Idempotency-Key seen before returns the same order)."""
        self._require_credentials(request)
        plan = self.ctx.knobs.plan_placement(self.slug)
        if plan.fail_before:
            raise _error(
                503, "internal_server_error", "Service temporarily unavailable (fail_next_orders)."
            )
        if plan.refuse:
            raise _error(
                400,
                "woocommerce_rest_cannot_create",
                "Sorry, this order cannot be created: a product is out of stock.",
            )
        body = read_json_body(
            request,
            {
                "code": "rest_invalid_json",
                "message": "Invalid JSON body passed.",
                "data": {"status": 400},
            },
        )
        if not isinstance(body, dict):
            raise _error(400, "rest_invalid_param", "Invalid parameter(s): body")
        items = body.get("line_items")
        if not isinstance(items, list) or not items:
            raise _error(400, "rest_invalid_param", "Invalid parameter(s): line_items")
        lines: list[OrderLine] = []
        for item in items:
            if not isinstance(item, dict):
                raise _error(400, "rest_invalid_param", "Invalid parameter(s): line_items")
            wc_id = item.get("product_id")
            index = (
                self.index_of(wc_id)
                if isinstance(wc_id, int) and not isinstance(wc_id, bool)
                else None
            )
            if index is not None and plan.is_delisted(str(wc_id)):
                index = None
            if index is None and plan.drop_unknown_lines:
                continue  # a sloppy store drops what it does not know and still answers 201
            if index is None:
                raise _error(
                    400, "woocommerce_rest_invalid_product_id", f"Invalid product ID {wc_id!r}."
                )
            quantity = item.get("quantity")
            if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
                # WooCommerce's own code and words (WC_REST_Orders_V2_Controller).
                raise _error(
                    400,
                    "woocommerce_rest_invalid_product_quantity",
                    "Product quantity must be a positive float.",
                )
            offer = self.ctx.offer(self.slug, index, live=True)
            if short_of_stock(offer, quantity):
                raise woocommerce_stock_error(offer, quantity)
            lines.append(self._order_line(plan, offer, wc_id, quantity, item))
        meta = body.get("meta_data") if isinstance(body.get("meta_data"), list) else []
        reference = next(
            (
                str(m.get("value"))
                for m in meta
                if isinstance(m, dict) and m.get("key") == REFERENCE_META_KEY
            ),
            None,
        )
        knobs = self.ctx.knobs.get(self.slug)
        order, created = self.ctx.orders.place(
            self.slug,
            idempotency_key=request.headers.get("Idempotency-Key"),
            reference=reference,
            currency=self.profile.currency,
            lines=lines,
            cancel_rate=knobs.cancel_rate,
            delay_rate=knobs.delay_rate,
            shipping_minor=knobs.order_shipping_minor,
            tax_bps=knobs.order_tax_bps,
            extra={
                "set_paid": bool(body.get("set_paid")),
                "payment_method": body.get("payment_method", ""),
                "payment_method_title": body.get("payment_method_title", ""),
                "billing": body.get("billing") if isinstance(body.get("billing"), dict) else {},
                "shipping": body.get("shipping") if isinstance(body.get("shipping"), dict) else {},
                "meta_data": [m for m in meta if isinstance(m, dict)],
            },
        )
        return self.ctx.finish_placement(
            self.slug,
            plan,
            order,
            json_response(self.order_record(order), status=201 if created else 200),
            _error(
                500, "internal_server_error", "There has been a critical error on this website."
            ).get_response(),
        )

    def _order_line(
        self,
        plan: PlacementPlan,
        offer: ListedOffer,
        wc_id: int,
        quantity: int,
        item: dict[str, Any],
    ) -> OrderLine:
        """One order line: REST v3 takes a line `total` (and `subtotal`) as a decimal string,
        which sets what the line costs; without one the store bills its own price."""
        accepted = plan.quantity(quantity)
        sent_total: int | None = None
        raw_total = item.get("total", item.get("subtotal"))
        if raw_total is not None:
            try:
                sent_total = to_minor_units(parse_decimal(str(raw_total)), self.profile.currency)
            except MoneyError:
                raise _error(
                    400, "rest_invalid_param", "Invalid parameter(s): line_items[total]"
                ) from None
            if sent_total < 0:
                raise _error(400, "rest_invalid_param", "Invalid parameter(s): line_items[total]")
        unit = plan.billed_unit_price(
            sent_total // quantity if sent_total is not None else None, offer.price_minor
        )
        line_total = None
        if sent_total is not None and not plan.price_change_pct and accepted == quantity:
            line_total = sent_total  # what was sent, even when not unit × quantity
        return OrderLine(
            offer.index, str(wc_id), offer.title, offer.product.model, accepted, unit, line_total
        )

    def list_orders(self, request: Request) -> Response:
        """GET /wp-json/wc/v3/orders[?search=REF]: orders whose _onecart_reference equals REF."""
        self._require_credentials(request)
        search = request.args.get("search")
        orders = (
            self.ctx.orders.find_by_reference(
                self.slug, search, search_lag_s=self.ctx.knobs.get(self.slug).search_lag_ms / 1000
            )
            if search
            else self.ctx.orders.list(self.slug)
        )
        gmt = request.args.get("dates_are_gmt", "").lower() in {"1", "true"}
        after = _date_param(request, "after", gmt)
        before = _date_param(request, "before", gmt)
        orders = [
            order
            for order in orders
            if (after is None or order.created_at > after)
            and (before is None or order.created_at < before)
        ]
        # REST v3 lists newest first unless asked otherwise (orderby date or id, same order).
        if request.args.get("order", "desc") != "asc":
            orders = list(reversed(orders))
        per_page = query_int(
            request, "per_page", DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE
        )
        page = query_int(request, "page", 1, minimum=1)
        total = len(orders)
        selected = orders[(page - 1) * per_page : page * per_page]
        headers = {"X-WP-Total": str(total), "X-WP-TotalPages": str(math.ceil(total / per_page))}
        return json_response([self.order_record(order) for order in selected], headers=headers)

    def _find(self, order_id: int) -> SandboxOrder:
        order = self.ctx.orders.get(self.slug, order_id)
        if order is None:
            raise _error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        return order

    def get_order(self, request: Request, order_id: int) -> Response:
        """GET /wp-json/wc/v3/orders/<id>: the order with its current status."""
        self._require_credentials(request)
        return json_response(self.order_record(self._find(order_id)))

    def update_order(self, request: Request, order_id: int) -> Response:
        """PUT /wp-json/wc/v3/orders/<id> {"status": "cancelled"}: cancel before shipping. An
        unknown id is a 400 here, not a 404: REST v3 updates answer it that way."""
        self._require_credentials(request)
        order = self.ctx.orders.get(self.slug, order_id)
        if order is None:
            raise _error(400, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
        body = read_json_body(
            request,
            {
                "code": "rest_invalid_json",
                "message": "Invalid JSON body passed.",
                "data": {"status": 400},
            },
        )
        status = body.get("status") if isinstance(body, dict) else None
        if status is None:
            return json_response(self.order_record(order))
        if status != CANCELLED:
            raise _error(
                400,
                "woocommerce_rest_invalid_status",
                f"The sandbox only supports cancelling orders, not status {status!r}.",
            )
        plan = self.ctx.knobs.plan_cancel(self.slug)
        step = self.ctx.knobs.get(self.slug).order_step_seconds
        outcome = self.ctx.orders.cancel(order, step)
        if not outcome.cancelled:
            raise _error(
                400,
                "woocommerce_rest_cannot_cancel",
                f"Order #{order.number} has already been shipped and cannot be cancelled.",
            )
        return self.ctx.finish_cancel(
            plan,
            json_response(self.order_record(order)),
            _error(
                500, "internal_server_error", "There has been a critical error on this website."
            ).get_response(),
        )

    def order_record(self, order: SandboxOrder) -> dict[str, Any]:
        """The order as REST v3 returns it, with its status now."""
        step = self.ctx.knobs.get(self.slug).order_step_seconds
        progress = self.ctx.orders.progress(order, step)
        set_paid = bool(order.extra.get("set_paid"))
        if progress.status == PENDING:
            status = "processing" if set_paid else "pending"
        elif progress.status == SHIPPED:
            status = "completed"
        else:
            status = progress.status  # processing, delivered, cancelled
        if status != CANCELLED and order.refunds and refunded_minor(order) >= order.total_minor:
            # WooCommerce sets `refunded` once the refunds reach the order total (wc_create_refund:
            # woocommerce_order_fully_refunded_status), whatever stage the order was at.
            status = "refunded"
        meta = [
            {"id": 7000 + order.number * 10 + n, "key": m.get("key"), "value": m.get("value")}
            for n, m in enumerate(order.extra.get("meta_data", []))
        ]
        if progress.tracking_number:
            meta.append(
                {
                    "id": 7000 + order.number * 10 + 9,
                    "key": TRACKING_META_KEY,
                    "value": [
                        {
                            "tracking_provider": progress.carrier,
                            "custom_tracking_provider": "",
                            "custom_tracking_link": progress.tracking_url,
                            "tracking_number": progress.tracking_number,
                            "date_shipped": str(int(progress.shipped_at.timestamp()))
                            if progress.shipped_at
                            else "",
                            "tracking_id": f"{hash64('tracking-id', order.number) % 16**32:032x}",
                        }
                    ],
                }
            )
        completed_at = progress.shipped_at if progress.status in (SHIPPED, DELIVERED) else None
        return {
            "id": order.number,
            "parent_id": 0,
            "number": str(order.number),
            "order_key": f"wc_order_{hash64('order-key', order.number) % 16**12:012x}",
            "created_via": "rest-api",
            "version": "9.4.2",
            "status": status,
            "currency": order.currency,
            "date_created": _local(order.created_at),
            "date_created_gmt": _gmt(order.created_at),
            "date_modified": _local(progress.cancelled_at or completed_at or order.created_at),
            "discount_total": "0.00",
            "discount_tax": "0.00",
            "shipping_total": format_amount(order.shipping_minor, order.currency),
            "shipping_tax": format_amount(order.shipping_tax_minor, order.currency),
            "cart_tax": format_amount(order.tax_minor - order.shipping_tax_minor, order.currency),
            "total": format_amount(order.total_minor, order.currency),
            "total_tax": format_amount(order.tax_minor, order.currency),
            "refunds": woocommerce_refunds(order),
            "prices_include_tax": False,
            "customer_id": 0,
            "billing": order.extra.get("billing", {}),
            "shipping": order.extra.get("shipping", {}),
            "payment_method": order.extra.get("payment_method", ""),
            "payment_method_title": order.extra.get("payment_method_title", ""),
            "transaction_id": "",
            "date_paid": _local(order.created_at) if set_paid else None,
            "date_completed": _local(completed_at),
            "meta_data": meta,
            "line_items": [
                {
                    "id": order.number * 100 + n,
                    "name": line.title,
                    "product_id": int(line.external_id),
                    "variation_id": 0,
                    "quantity": line.quantity,
                    "tax_class": "",
                    "subtotal": format_amount(line.total_minor, order.currency),
                    "subtotal_tax": format_amount(order.line_tax_minor(line), order.currency),
                    "total": format_amount(line.total_minor, order.currency),
                    "total_tax": format_amount(order.line_tax_minor(line), order.currency),
                    "taxes": [],
                    "meta_data": [],
                    "sku": line.sku,
                    # WooCommerce computes `price` as total / quantity in PHP floats.
                    "price": float(format_amount(line.total_minor, order.currency))
                    / max(line.quantity, 1),
                }
                for n, line in enumerate(order.lines, start=1)
            ],
            "shipping_lines": [
                {
                    "id": order.number * 100 + 99,
                    "method_title": "Flat rate",
                    "method_id": "flat_rate",
                    "total": format_amount(order.shipping_minor, order.currency),
                    "total_tax": format_amount(order.shipping_tax_minor, order.currency),
                    "taxes": [],
                    "meta_data": [],
                }
            ]
            if order.shipping_minor
            else [],
        }

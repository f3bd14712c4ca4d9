"""Shopify: the catalog from the Admin REST product list when an access token is configured (it
can fetch only what changed: adapters/shopify_catalog.py), else from the public storefront
(`/products.json`); the Admin REST product endpoint for live prices, and the Admin GraphQL API for
orders (`orderCreate`, `order`, `orders`, `orderCancel`).

Shopify sends no currency with storefront prices: the shop's currency is the marketplace's
configured currency. Every order carries our reference as `sourceIdentifier`, so a placement that
was retried after a timeout can be found again instead of being placed twice.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from adapters.accepted import accepted_lines, line_quantity, order_money
from adapters.base import (
    FULL_ORDER_API,
    AcceptedLine,
    BadPayload,
    CatalogPage,
    MarketplaceConfig,
    NotFound,
    Offer,
    OrderRequest,
    OrderState,
    PlacedOrder,
    RateLimited,
    Rejected,
)
from adapters.changed_since import (
    CatalogChanges,
    ChangesUnavailable,
    clocked_catalog_pages,
)
from adapters.fields import (
    category_leaf,
    decode_json_body,
    description_text,
    naming_the_record,
    optional_count,
    optional_int,
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
from adapters.marketplace_http import earlier_attempt_may_have_arrived
from adapters.shopify_catalog import admin_pages, fetch_by_ids, fetch_changes
from adapters.shopify_orders import (
    ORDER_CANCEL_MUTATION,
    ORDER_CREATE_MUTATION,
    ORDER_CREATE_OPTIONS,
    ORDER_QUERY,
    ORDERS_ANSWER_QUERY,
    ORDERS_BY_REFERENCE_QUERY,
    latest_tracking,
    mailing_address,
    map_shopify_order_status,
    numeric_tail,
    order_gid,
    shipment_progress,
    shop_money,
)
from onecart.money import from_minor_units

DEFAULT_API_VERSION = "2024-10"
MAX_PAGE_SIZE = 250  # Shopify's cap on `limit`
ACCESS_TOKEN_HEADER = "X-Shopify-Access-Token"

_SEARCH_SAFE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def _variant_available(variant: Mapping[str, Any]) -> bool:
    """Storefront variants say `available`; Admin variants say it through inventory fields."""
    if isinstance(variant.get("available"), bool):
        return variant["available"]
    if (
        variant.get("inventory_management") in (None, "")
        or variant.get("inventory_policy") == "continue"
    ):
        return True
    quantity = optional_int(variant.get("inventory_quantity"))
    return quantity is None or quantity > 0


def _variant_stock(variant: Mapping[str, Any]) -> int | None:
    """Units left, when they limit what can be ordered: not for a variant whose inventory is
    not tracked (`inventory_management` null) or that may be oversold (policy `continue`)."""
    if "inventory_management" in variant and variant["inventory_management"] in (None, ""):
        return None
    if variant.get("inventory_policy") == "continue":
        return None
    return optional_count(variant.get("inventory_quantity"))


class ShopifyAdapter(HttpMarketplaceAdapter):
    """A Shopify shop: storefront catalog, Admin product lookups, GraphQL orders."""

    capabilities = FULL_ORDER_API
    # Its orders take the stock and refuse what is not there: OneCart holds none of its own.
    order_takes_stock = True

    @property
    def honours_idempotency_keys(self) -> bool:
        """As configured (default True). orderCreate carries our reference (sourceIdentifier), so
        a placement in doubt is looked up by it first; the key matters only when that cannot be
        done."""
        return self.keys_honoured_as_configured

    def __init__(
        self,
        config: MarketplaceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(config, transport=transport, sleep=sleep)
        self.api_version = str(config.options.get("api_version", DEFAULT_API_VERSION))
        self.page_size = max(1, min(config.page_size, MAX_PAGE_SIZE))
        self._variant_ids: dict[str, str] = {}
        # The shop's clock when the last catalog fetch began (the Admin list only).
        self.catalog_started_at: datetime | None = None

    # --- Catalog ----------------------------------------------------------------------------

    @property
    def fetches_changes(self) -> bool:
        """True when the catalog comes from the Admin API, which filters by `updated_at_min`
        (an access token is configured, and options.catalog_api is not "storefront")."""
        return bool(self.config.api_key) and self.config.options.get("catalog_api") != "storefront"

    def fetch_catalog_pages(self) -> Iterator[CatalogPage]:
        """Every product, page by page: the Admin API's list when `fetches_changes` (by id,
        cursor pages), else the storefront's `products.json` until a short or empty page."""
        self.catalog_started_at = None
        if self.fetches_changes:
            yield from clocked_catalog_pages(self, admin_pages(self, {"limit": self.page_size}))
            return
        page = 1
        while True:
            body, _ = self.get_json("products.json", params={"limit": self.page_size, "page": page})
            products = body.get("products") if isinstance(body, Mapping) else None
            if not isinstance(products, list):
                raise BadPayload(
                    "bad_page", detail=f"page {page}: no 'products' list", marketplace=self.slug
                )
            if not products:
                return
            yield CatalogPage(records=products, page=page)
            if len(products) < self.page_size:
                return
            page += 1

    def fetch_catalog_changes(self, since: datetime, *, at_most: int) -> CatalogChanges:
        """Products updated since `since`, and every product's id (adapters/changed_since.py)."""
        if not self.fetches_changes:
            raise ChangesUnavailable("the storefront catalog has no changed-since filter")
        return fetch_changes(self, since, at_most=at_most)

    def fetch_records_by_id(self, ids: list[str]) -> list[dict[str, Any]]:
        """Every product listed with one of `ids`, in listing order."""
        return fetch_by_ids(self, ids)

    def normalize_record(self, record: Mapping[str, Any]) -> Offer:
        """One Shopify product as an Offer: its first available variant sets price and stock."""
        product = require_mapping(record, marketplace=self.slug)
        external_id = require_external_id(product.get("id"), marketplace=self.slug)
        with naming_the_record(external_id):
            title = require_title(product.get("title"), marketplace=self.slug)
            variant = self._offered_variant(product)
            currency = self.config.currency
            price_minor = require_decimal_price(
                variant.get("price"), currency, marketplace=self.slug
            )
            sku = optional_text(variant.get("sku"))
            handle = optional_text(product.get("handle"))
            return Offer(
                marketplace=self.slug,
                external_id=external_id,
                title=title,
                price_minor=price_minor,
                currency=currency,
                description=description_text(product.get("body_html")),
                image_url=self._image_url(product),
                product_url=(
                    f"{self.config.base_url.rstrip('/')}/products/{quote(handle, safe='')}"
                    if handle
                    else None
                ),
                category=category_leaf(product.get("product_type")),
                brand=optional_text(product.get("vendor")),
                model=sku,
                gtin=normalize_gtin(variant.get("barcode")),
                sku=sku,
                rating=None,
                rating_count=None,
                available=_variant_available(variant),
                stock=_variant_stock(variant),
            )

    def _offered_variant(self, product: Mapping[str, Any]) -> Mapping[str, Any]:
        variants = product.get("variants")
        if not isinstance(variants, list) or not variants:
            raise reject("missing_price", "product has no variants", marketplace=self.slug)
        if not all(isinstance(variant, Mapping) for variant in variants):
            raise reject("bad_record", "a variant is not an object", marketplace=self.slug)
        for variant in variants:
            if _variant_available(variant):
                return variant
        return variants[0]

    @staticmethod
    def _image_url(product: Mapping[str, Any]) -> str | None:
        images = product.get("images")
        if isinstance(images, list):
            for image in images:
                if isinstance(image, Mapping) and optional_url(image.get("src")):
                    return optional_url(image.get("src"))
        image = product.get("image")
        return optional_url(image.get("src")) if isinstance(image, Mapping) else None

    # --- Live offer -------------------------------------------------------------------------

    def admin_headers(self) -> dict[str, str]:
        return {ACCESS_TOKEN_HEADER: self.require_api_key()}

    def _admin_product(self, external_id: str) -> Mapping[str, Any]:
        body, _ = self.get_json(
            f"admin/api/{self.api_version}/products/{quote(external_id, safe='')}.json",
            headers=self.admin_headers(),
        )
        product = body.get("product") if isinstance(body, Mapping) else None
        if not isinstance(product, Mapping):
            raise NotFound(f"{self.slug}: product {external_id} not found", marketplace=self.slug)
        return product

    def lookup_offer(self, external_id: str) -> Offer:
        """The Admin API's current product: price and inventory as of now."""
        return self.normalize_record(self._admin_product(external_id))

    # --- Orders (Admin GraphQL) -------------------------------------------------------------

    def _graphql(self, query: str, variables: Mapping[str, Any]) -> Mapping[str, Any]:
        """A GraphQL read: POSTed, but safe to retry without an idempotency key."""
        data, _ = self._graphql_call(query, variables, idempotency_key=None)
        return data

    def _graphql_write(
        self, query: str, variables: Mapping[str, Any], *, idempotency_key: str
    ) -> tuple[Mapping[str, Any], str | None]:
        """A mutation: (data, why an earlier attempt may have taken effect, or None). With a
        reason, a refusal in the reply is not a refusal of the write (see _raise_user_errors)."""
        return self._graphql_call(query, variables, idempotency_key=idempotency_key)

    def _graphql_call(
        self, query: str, variables: Mapping[str, Any], *, idempotency_key: str | None
    ) -> tuple[Mapping[str, Any], str | None]:
        path = f"admin/api/{self.api_version}/graphql.json"
        payload = {"query": query, "variables": dict(variables)}
        uncertain: str | None = None
        if idempotency_key:
            body, response = self.send_write(
                "POST",
                path,
                json=payload,
                idempotency_key=idempotency_key,
                headers=self.admin_headers(),
            )
            uncertain = earlier_attempt_may_have_arrived(response)
        else:
            # A GraphQL read: POSTed, but safe to retry without an idempotency key.
            response = self.http.request("POST", path, json=payload, headers=self.admin_headers())
            body = decode_json_body(response, marketplace=self.slug)
        if not isinstance(body, Mapping):
            if idempotency_key:
                raise self.unreadable_write("GraphQL mutation", "body is not an object")
            raise BadPayload(
                "bad_response", detail="GraphQL body is not an object", marketplace=self.slug
            )
        errors = body.get("errors")
        if errors:
            messages = [
                str(error.get("message")) if isinstance(error, Mapping) else str(error)
                for error in (errors if isinstance(errors, list) else [errors])
            ]
            codes = {
                str(error.get("extensions", {}).get("code"))
                for error in (errors if isinstance(errors, list) else [])
                if isinstance(error, Mapping) and isinstance(error.get("extensions"), Mapping)
            }
            if uncertain:
                raise self.outcome_unknown(
                    "GraphQL mutation",
                    f"refused ({'; '.join(messages)}) after an attempt that may have arrived "
                    f"({uncertain})",
                )
            if "THROTTLED" in codes:
                raise RateLimited(f"{self.slug}: GraphQL throttled", marketplace=self.slug)
            raise Rejected(
                f"{self.slug}: GraphQL errors: {'; '.join(messages)}", marketplace=self.slug
            )
        data = body.get("data")
        if not isinstance(data, Mapping):
            if idempotency_key:
                raise self.unreadable_write("GraphQL mutation", "body has no data")
            raise BadPayload(
                "bad_response", detail="GraphQL body has no data", marketplace=self.slug
            )
        return data, uncertain

    def _variant_gid(self, external_id: str) -> str:
        """The variant to order for a product id: the same variant the catalog priced."""
        if external_id not in self._variant_ids:
            try:
                product = self._admin_product(external_id)
            except NotFound as exc:
                raise Rejected(
                    f"{self.slug}: product {external_id} no longer exists", marketplace=self.slug
                ) from exc
            variant = self._offered_variant(product)
            variant_id = optional_text(variant.get("id"))
            if variant_id is None:
                raise BadPayload("bad_response", detail="variant without id", marketplace=self.slug)
            self._variant_ids[external_id] = (
                variant_id
                if variant_id.startswith("gid://")
                else f"gid://shopify/ProductVariant/{variant_id}"
            )
        return self._variant_ids[external_id]

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        """`orderCreate` with our reference as sourceIdentifier, already paid through OneCart."""
        line_items = [
            {
                "variantId": self._variant_gid(line.external_id),
                "quantity": line.quantity,
                "priceSet": {
                    "shopMoney": {
                        "amount": format(
                            from_minor_units(line.unit_price_minor, line.currency), "f"
                        ),
                        "currencyCode": line.currency,
                    }
                },
            }
            for line in request.lines
        ]
        order_input: dict[str, Any] = {
            "currency": request.currency,
            "sourceIdentifier": request.reference,
            "financialStatus": "PAID",
            "lineItems": line_items,
            "shippingAddress": mailing_address(request.shipping),
        }
        if request.shipping.email:
            order_input["email"] = request.shipping.email
        data, uncertain = self._graphql_write(
            ORDER_CREATE_MUTATION,
            {"order": order_input, "options": ORDER_CREATE_OPTIONS},
            idempotency_key=request.idempotency_key,
        )
        result = data.get("orderCreate")
        if not isinstance(result, Mapping):
            raise self.unreadable_write("orderCreate", "no orderCreate result")
        self._raise_user_errors(result.get("userErrors"), "orderCreate", uncertain)
        order = result.get("order")
        if not isinstance(order, Mapping) or not order.get("id"):
            raise self.unreadable_write("orderCreate", "no order and no userErrors")
        return self._placed(order)

    def find_order(
        self, reference: str, *, sent_since: datetime | None = None
    ) -> PlacedOrder | None:
        """The order whose sourceIdentifier is `reference` (the oldest, if several); Shopify
        searches every order, so `sent_since` does not matter."""
        term = (
            reference
            if _SEARCH_SAFE.match(reference)
            else '"' + reference.replace('"', '\\"') + '"'
        )
        data = self._graphql(ORDERS_BY_REFERENCE_QUERY, {"query": f"source_identifier:{term}"})
        orders = data.get("orders")
        nodes = orders.get("nodes") if isinstance(orders, Mapping) else None
        if nodes is None and isinstance(orders, Mapping) and isinstance(orders.get("edges"), list):
            nodes = [edge.get("node") for edge in orders["edges"] if isinstance(edge, Mapping)]
        matches = [
            node
            for node in (nodes or [])
            if isinstance(node, Mapping)
            and node.get("sourceIdentifier") == reference
            and node.get("id")
        ]
        if not matches:
            return None
        oldest = min(matches, key=lambda node: numeric_tail(str(node["id"])))
        return self._placed(oldest)

    def order_status(self, marketplace_order_id: str) -> OrderState:
        """Fulfillment and shipment status, with the tracking number once shipped."""
        gid = order_gid(marketplace_order_id)
        data = self._graphql(ORDER_QUERY, {"id": gid})
        order = data.get("order")
        if not isinstance(order, Mapping):
            raise NotFound(f"{self.slug}: order {gid} not found", marketplace=self.slug)
        return self._state(order)

    def check_orders_api(self) -> None:
        """The Admin API's `orders(first: 1)`: answered with a list (empty or not), the order
        API works; any failure is a MarketplaceError as a status poll's would be."""
        data = self._graphql(ORDERS_ANSWER_QUERY, {})
        orders = data.get("orders")
        if not isinstance(orders, Mapping) or not isinstance(orders.get("nodes"), list):
            raise BadPayload(
                "bad_response", detail="orders(first: 1) gave no list", marketplace=self.slug
            )

    def cancel_order(self, marketplace_order_id: str) -> OrderState:
        """`orderCancel` with refund and restock; returns the order's state afterwards.

        Shopify cancels in a background job: a real shop may report the old status for a moment.
        """
        gid = order_gid(marketplace_order_id)
        data, uncertain = self._graphql_write(
            ORDER_CANCEL_MUTATION,
            {
                "orderId": gid,
                "reason": "CUSTOMER",
                "refund": True,
                "restock": True,
                "notifyCustomer": False,
            },
            idempotency_key=f"onecart-cancel-{gid}",
        )
        result = data.get("orderCancel")
        if not isinstance(result, Mapping):
            raise self.unreadable_write("orderCancel", "no orderCancel result")
        self._raise_user_errors(result.get("orderCancelUserErrors"), "orderCancel", uncertain)
        return self.order_status(gid)

    def _raise_user_errors(self, errors: object, operation: str, uncertain: str | None) -> None:
        """userErrors refuse the mutation, unless an earlier attempt of it may have taken
        effect (`uncertain`): then the refusal may be about that effect (the item it took is
        now out of stock), so the outcome is unknown."""
        if not errors:
            return
        items = errors if isinstance(errors, list) else [errors]
        messages = [
            str(item.get("message") or item.get("code")) if isinstance(item, Mapping) else str(item)
            for item in items
        ]
        if uncertain:
            raise self.outcome_unknown(
                operation,
                f"refused ({'; '.join(messages)}) after an attempt that may have arrived "
                f"({uncertain})",
            )
        raise Rejected(
            f"{self.slug} refused {operation}: {'; '.join(messages)}", marketplace=self.slug
        )

    def _placed(self, order: Mapping[str, Any]) -> PlacedOrder:
        """The order as the shop holds it: status, total, the lines it recorded, and what it
        added on top of them: `totalShippingPriceSet`, and `totalTaxSet` unless the order is
        `taxesIncluded` (its tax is then inside the prices, nothing added on top)."""
        status, _ = map_shopify_order_status(order)
        total_minor, currency = shop_money(order.get("totalPriceSet"))
        shipping_minor, _ = shop_money(order.get("totalShippingPriceSet"))
        taxes_included = order.get("taxesIncluded")
        tax_minor = (
            0
            if taxes_included is True
            else shop_money(order.get("totalTaxSet"))[0]
            if taxes_included is False
            else None
        )
        line_items = order.get("lineItems")
        if isinstance(line_items, Mapping) and isinstance(line_items.get("edges"), list):
            nodes: object = [
                edge.get("node") for edge in line_items["edges"] if isinstance(edge, Mapping)
            ]
        else:
            nodes = line_items.get("nodes") if isinstance(line_items, Mapping) else None
        return PlacedOrder(
            marketplace_order_id=str(order["id"]),
            status=status,
            total_minor=total_minor,
            currency=currency,
            lines=accepted_lines(nodes, self._accepted_line),
            display_number=optional_text(order.get("name")),
            shipping_minor=shipping_minor,
            tax_minor=tax_minor,
        )

    def _accepted_line(self, node: Mapping[str, Any]) -> AcceptedLine | None:
        """A line item: product id (from the product, else the variant we ordered), the
        quantity still on the order, and the unit price the shop billed."""
        product = node.get("product")
        external_id = (
            str(numeric_tail(str(product["id"])))
            if isinstance(product, Mapping) and product.get("id")
            else None
        )
        if external_id is None:
            variant = node.get("variant")
            variant_gid = str(variant.get("id")) if isinstance(variant, Mapping) else ""
            external_id = next(
                (pid for pid, gid in self._variant_ids.items() if gid == variant_gid), None
            )
        quantity = line_quantity(node.get("currentQuantity", node.get("quantity")))
        if external_id is None or quantity is None:
            return None
        price = node.get("originalUnitPriceSet")
        money = price.get("shopMoney") if isinstance(price, Mapping) else None
        unit = (
            order_money(money.get("amount"), str(money.get("currencyCode") or ""))
            if isinstance(money, Mapping)
            else None
        )
        return AcceptedLine(external_id, quantity, unit)

    def _state(self, order: Mapping[str, Any]) -> OrderState:
        status, raw = map_shopify_order_status(order)
        number, carrier, url = latest_tracking(order)
        shipment, events = shipment_progress(order)
        # Everything refunded so far (PARTIALLY_REFUNDED orders included), in the shop's money
        # like the order's total; absent or unreadable: not reported.
        refunded_minor, refunded_currency = shop_money(order.get("totalRefundedSet"))
        return OrderState(
            marketplace_order_id=str(order.get("id")),
            status=status,
            raw_status=raw,
            tracking_number=number,
            carrier=carrier,
            tracking_url=url,
            display_number=optional_text(order.get("name")),
            shipment_status=shipment,
            shipment_events=events,
            refunded_minor=refunded_minor,
            refunded_currency=refunded_currency,
        )

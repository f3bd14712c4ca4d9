"""Amazon through its Creators API (the successor of PA-API 5.0): an OAuth 2.0 client-credentials
token endpoint, one API host whose operations are POSTs of lowerCamelCase JSON
(``/catalog/v1/searchItems``, ``/catalog/v1/getItems``) with an ``x-marketplace`` header, and the
add-to-cart form URL (``/gp/aws/cart/add.html``) that opens a shopper's items in one Amazon cart.

Like the real API there is no "list everything": the catalog is reached by keyword or browse-node
searches of at most 10 pages of 10 items. Browse nodes are the world's categories
(:func:`browse_node_id`). Amazon never answers two items with one ASIN, so the world's
``duplicate_id`` malformation is served as a valid item here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from functools import lru_cache
from html import escape
from typing import Any
from urllib.parse import parse_qsl, urlencode

from werkzeug.wrappers import Request, Response

from onecart.money import from_minor_units
from sandbox.assortment import CATEGORIES
from sandbox.assortment_schema import Category
from sandbox.malformations import huge_text, malformed_title
from sandbox.pages import format_amount, product_page
from sandbox.service import (
    JsonError,
    MarketplaceService,
    SandboxContext,
    encode_text,
    json_response,
)

# The token lives an hour, like the real one; tests of refresh use the adapter's unit tests.
TOKEN_LIFETIME_S = 3600
TOKEN_SECRET = b"onecart-sandbox-creators-api"
MAX_ITEM_COUNT = 10
MAX_ITEM_PAGE = 10
MAX_ITEM_IDS = 10
MAX_CART_LINES = 50
MAX_CART_QUANTITY = 999
BROWSE_NODE_BASE = 16_225_000
UNKNOWN_CURRENCY_CODE = "USX"  # not an ISO 4217 code
ASIN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MARKETPLACE_HOST = "www.amazon.com"
MERCHANT = {"name": "Amazon.com", "id": "ATVPDKIKX0DER"}


def asin_for(index: int) -> str:
    """The ASIN of offer `index`: "B0" and eight base-36 characters (reversible)."""
    digits = []
    value = index
    for _ in range(8):
        value, digit = divmod(value, 36)
        digits.append(ASIN_ALPHABET[digit])
    return "B0" + "".join(reversed(digits))


def index_for(asin: str) -> int | None:
    """The offer index behind an ASIN this sandbox issued, else None."""
    if len(asin) != 10 or not asin.startswith("B0"):
        return None
    value = 0
    for char in asin[2:]:
        position = ASIN_ALPHABET.find(char)
        if position < 0:
            return None
        value = value * 36 + position
    return value


def browse_node_id(category: Category) -> str:
    """The sandbox browse node of a world category (stable: its position in CATEGORIES)."""
    return str(BROWSE_NODE_BASE + CATEGORIES.index(category))


def _error(status: int, code: str, message: str) -> JsonError:
    return JsonError(status, {"errors": [{"code": code, "message": message}]})


class AmazonCreatorsService(MarketplaceService):
    """The Creators API marketplace, and Amazon's cart-add landing page."""

    slug = "amazon"
    routes = (
        ("/auth/o2/token", "token", ("POST",)),
        ("/catalog/v1/searchItems", "search_items", ("POST",)),
        ("/catalog/v1/getItems", "get_items", ("POST",)),
        ("/gp/aws/cart/add.html", "cart_add", ("GET",)),
        ("/dp/<asin>", "detail_page", ("GET",)),
    )

    def __init__(self, ctx: SandboxContext) -> None:
        super().__init__(ctx)
        self._lock = threading.Lock()
        self._node_indexes: dict[str, list[int]] | None = None
        self._keyword_search = lru_cache(maxsize=128)(self._indexes_matching_keywords)

    # -- auth --

    def token(self, request: Request) -> Response:
        """POST /auth/o2/token: client credentials as JSON (LWA, 3.x) or a form (Cognito, 2.x)."""
        raw = request.get_data(cache=True)
        try:
            fields = (
                json.loads(raw)
                if raw.strip().startswith(b"{")
                else dict(parse_qsl(raw.decode("utf-8", errors="replace")))
            )
        except ValueError:
            fields = {}
        if not isinstance(fields, dict) or fields.get("grant_type") != "client_credentials":
            return json_response(
                {"error": "unsupported_grant_type", "error_description": "client_credentials"}, 400
            )
        if (
            not str(fields.get("client_id") or "").strip()
            or not str(fields.get("client_secret") or "").strip()
        ):
            return json_response(
                {"error": "invalid_client", "error_description": "Client authentication failed"},
                401,
            )
        issued = str(int(time.time()))
        signature = hmac.new(TOKEN_SECRET, issued.encode(), hashlib.sha256).hexdigest()[:32]
        token = base64.urlsafe_b64encode(f"{issued}.{signature}".encode()).decode()
        return json_response(
            {"access_token": token, "token_type": "bearer", "expires_in": TOKEN_LIFETIME_S}
        )

    def _require_auth(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").split(",")[0].strip()
        try:
            issued, signature = base64.urlsafe_b64decode(token.encode()).decode().split(".")
            expected = hmac.new(TOKEN_SECRET, issued.encode(), hashlib.sha256).hexdigest()[:32]
            valid = hmac.compare_digest(signature, expected)
            expired = time.time() - int(issued) > TOKEN_LIFETIME_S
        except (ValueError, UnicodeDecodeError):
            valid, expired = False, False
        if not valid:
            raise _error(401, "InvalidToken", "The access token is missing or invalid.")
        if expired:
            raise _error(401, "ExpiredToken", "The access token has expired.")
        if not request.headers.get("x-marketplace", "").strip():
            raise _error(400, "InvalidParameterValue", "The x-marketplace header is required.")

    def _body(self, request: Request) -> dict[str, Any]:
        try:
            body = json.loads(request.get_data(cache=True) or b"{}")
        except ValueError:
            raise _error(400, "InvalidInput", "The request body is not JSON.") from None
        if not isinstance(body, dict):
            raise _error(400, "InvalidInput", "The request body must be a JSON object.")
        if not str(body.get("partnerTag") or "").strip():
            raise _error(400, "InvalidPartnerTag", "The partnerTag is invalid or not present.")
        return body

    # -- items --

    def item_record(
        self, request: Request, index: int, partner_tag: str, *, live: bool = False
    ) -> dict[str, Any]:
        """Offer `index` as a Creators API item, malformed when its slot says so."""
        offer = self.ctx.offer(self.slug, index, live=live)
        kind = self.ctx.malformation(self.slug, index)
        product = offer.product
        title = malformed_title(offer.title, index, kind)
        asin = asin_for(index)
        amount = from_minor_units(offer.price_minor, offer.currency)
        currency = offer.currency
        if kind == "negative_price":
            amount = -amount
        elif kind == "unknown_currency":
            currency = UNKNOWN_CURRENCY_CODE
        price: dict[str, Any] = {
            "money": {
                "amount": float(amount),
                "currency": currency,
                "displayAmount": f"${format_amount(offer.price_minor, offer.currency)}",
            }
        }
        if offer.list_price_minor:
            basis = from_minor_units(offer.list_price_minor, offer.currency)
            price["savingBasis"] = {
                "money": {"amount": float(basis), "currency": offer.currency},
                "savingBasisType": "LIST_PRICE",
            }
        listing: dict[str, Any] = {
            "availability": {
                "type": "IN_STOCK_SCARCE" if 0 < offer.stock < 5 else "IN_STOCK",
                "message": "In Stock",
                "minOrderQuantity": 1,
                "maxOrderQuantity": min(offer.stock, 30),
            }
            if offer.available
            else {"type": "OUT_OF_STOCK", "message": "Currently unavailable."},
            "condition": {"value": "New", "subCondition": {"value": "New"}},
            "isBuyBoxWinner": True,
            "merchantInfo": MERCHANT,
            "price": price,
            "type": "BUY_BOX_WINNER",
        }
        if kind == "missing_price":
            del listing["price"]
        sentences = product.description_sentences()
        features = [huge_text(sentences)] if kind == "huge_description" else sentences
        category = product.category
        item_info: dict[str, Any] = {
            "title": {"displayValue": title, "label": "Title", "locale": "en_US"},
            "byLineInfo": {
                "brand": {"displayValue": product.brand, "label": "Brand", "locale": "en_US"},
                "manufacturer": {"displayValue": product.brand, "label": "Manufacturer"},
            },
            "classifications": {
                "productGroup": {"displayValue": category.path[0], "label": "ProductGroup"},
                "binding": {"displayValue": category.short_noun or category.name},
            },
            "features": {"displayValues": features, "label": "Features", "locale": "en_US"},
            "manufactureInfo": {
                "model": {"displayValue": product.model, "label": "Model"},
                "itemPartNumber": {"displayValue": product.model, "label": "PartNumber"},
            },
        }
        if offer.shows_gtin:
            external_ids: dict[str, Any] = {
                "eans": {"displayValues": [product.gtin], "label": "EAN", "locale": "en_US"}
            }
            if product.gtin.startswith("0"):  # a US product: its 12-digit UPC too
                external_ids["upcs"] = {"displayValues": [product.gtin[1:]], "label": "UPC"}
            item_info["externalIds"] = external_ids
        image = self.ctx.image_url(request, offer)
        return {
            "asin": asin,
            "detailPageURL": f"{self.base_url(request)}/dp/{asin}?tag={partner_tag}"
            "&linkCode=ogi&th=1&psc=1",
            "images": {
                "primary": {
                    "small": {"url": image, "height": 75, "width": 75},
                    "medium": {"url": image, "height": 160, "width": 160},
                    "large": {"url": image, "height": 500, "width": 500},
                }
            },
            "itemInfo": item_info,
            "offersV2": {"listings": [listing]},
            "browseNodeInfo": {
                "browseNodes": [
                    {
                        "id": browse_node_id(category),
                        "displayName": category.path[-1],
                        "contextFreeName": category.name,
                        "isRoot": False,
                        "salesRank": 1 + index,
                        "ancestor": {"displayName": category.path[0], "contextFreeName": "All"},
                    }
                ]
            },
        }

    def _node_index(self) -> dict[str, list[int]]:
        """Browse node -> offer indexes, built once (the catalog never changes category)."""
        with self._lock:
            if self._node_indexes is None:
                nodes: dict[str, list[int]] = {}
                for index in range(self.count):
                    category = self.ctx.world.product(
                        self.ctx.world.product_key(self.slug, index)
                    ).category
                    nodes.setdefault(browse_node_id(category), []).append(index)
                self._node_indexes = nodes
            return self._node_indexes

    def _indexes_matching_keywords(self, keywords: str) -> tuple[int, ...]:
        words = keywords.lower().split()
        matches = []
        world = self.ctx.world
        for index in range(self.count):
            # The product's own words (not the offer's priced title): cheap at a million offers.
            product = world.product(world.product_key(self.slug, index))
            text = f"{product.display_name} {product.descriptor} {product.category.name}".lower()
            if all(word in text for word in words):
                matches.append(index)
        return tuple(matches)

    @staticmethod
    def _bounded(body: dict[str, Any], name: str, default: int, maximum: int) -> int:
        value = body.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
            raise _error(
                400,
                "InvalidParameterValue",
                f"The value {value!r} provided for {name} is invalid: use 1 to {maximum}.",
            )
        return value

    def search_items(self, request: Request) -> Response:
        """POST /catalog/v1/searchItems: keywords and/or browseNodeId, itemCount x itemPage."""
        self._require_auth(request)
        body = self._body(request)
        item_count = self._bounded(body, "itemCount", MAX_ITEM_COUNT, MAX_ITEM_COUNT)
        item_page = self._bounded(body, "itemPage", 1, MAX_ITEM_PAGE)
        keywords = str(body.get("keywords") or "").strip()
        node = str(body.get("browseNodeId") or "").strip()
        if not keywords and not node:
            raise _error(
                400, "InvalidParameterValue", "Provide keywords, browseNodeId or another search."
            )
        candidates: list[int] | tuple[int, ...] = (
            self._node_index().get(node, []) if node else range(self.count)  # type: ignore[assignment]
        )
        if keywords:
            matching = set(self._keyword_search(keywords.lower()))
            candidates = [index for index in candidates if index in matching]
        start = (item_page - 1) * item_count
        page = list(candidates[start : start + item_count])
        if not page:
            raise _error(404, "NoResults", "No results found for your request.")
        tag = str(body["partnerTag"])
        return json_response(
            {
                "searchResult": {
                    "totalResultCount": len(candidates),
                    "searchURL": f"{self.base_url(request)}/s?"
                    + urlencode({"k": keywords, "node": node}),
                    "items": [self.item_record(request, index, tag) for index in page],
                }
            }
        )

    def get_items(self, request: Request) -> Response:
        """POST /catalog/v1/getItems: up to 10 ASINs, live prices (price_drift applies)."""
        self._require_auth(request)
        body = self._body(request)
        item_ids = body.get("itemIds")
        if (
            not isinstance(item_ids, list)
            or not item_ids
            or len(item_ids) > MAX_ITEM_IDS
            or not all(isinstance(asin, str) for asin in item_ids)
        ):
            raise _error(400, "InvalidParameterValue", "itemIds must list 1 to 10 ASINs.")
        tag = str(body["partnerTag"])
        items, errors = [], []
        for asin in item_ids:
            index = index_for(asin)
            if index is None or not 0 <= index < self.count:
                errors.append(
                    {
                        "code": "InvalidParameterValue",
                        "message": f"The ItemId {asin} provided in the request is invalid.",
                    }
                )
                continue
            items.append(self.item_record(request, index, tag, live=True))
        if not items:
            return json_response({"errors": errors}, 404)
        answer: dict[str, Any] = {"itemsResult": {"items": items}}
        if errors:
            answer["errors"] = errors
        return json_response(answer)

    # -- pages a shopper lands on --

    def cart_add(self, request: Request) -> Response:
        """GET /gp/aws/cart/add.html?AssociateTag=&ASIN.n=&Quantity.n=: the shopper's items in
        one cart (Amazon's add-to-cart form), as a page listing what was added."""
        tag = request.args.get("AssociateTag", "")
        rows, problems = [], []
        numbers = sorted(
            int(key.split(".", 1)[1])
            for key in request.args
            if key.startswith("ASIN.") and key.split(".", 1)[1].isdigit()
        )
        for number in numbers[:MAX_CART_LINES]:
            asin = request.args.get(f"ASIN.{number}", "")
            quantity_text = request.args.get(f"Quantity.{number}", "1")
            quantity = int(quantity_text) if quantity_text.isdigit() else 0
            index = index_for(asin)
            if index is None or not 0 <= index < self.count:
                problems.append(f"{asin}: not a product of this store")
                continue
            if not 1 <= quantity <= MAX_CART_QUANTITY:
                problems.append(f"{asin}: quantity {quantity_text!r} is not 1 to 999")
                continue
            offer = self.ctx.offer(self.slug, index, live=True)
            rows.append(
                f'<tr data-asin="{escape(asin)}" data-quantity="{quantity}">'
                f"<td>{escape(offer.title)}</td><td>{quantity}</td>"
                f"<td>{escape(format_amount(offer.price_minor * quantity, offer.currency))} "
                f"{escape(offer.currency)}</td></tr>"
            )
        status = 200 if rows else 400
        items = "".join(rows) or '<tr><td colspan="3">No items were added.</td></tr>'
        notes = "".join(f"<li>{escape(problem)}</li>" for problem in problems)
        html = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8">'
            "<title>Amazon.com Shopping Cart</title></head><body><main>"
            "<h1>Shopping Cart</h1>"
            f'<p>Added for associate <span id="associate-tag">{escape(tag)}</span>.</p>'
            "<table><thead><tr><th>Item</th><th>Qty</th><th>Price</th></tr></thead>"
            f"<tbody>{items}</tbody></table>"
            f'<ul class="problems">{notes}</ul>'
            "<p><button>Proceed to checkout</button></p></main></body></html>"
        )
        return Response(encode_text(html), status=status, content_type="text/html; charset=utf-8")

    def detail_page(self, request: Request, asin: str) -> Response:
        """The detail page a detailPageURL opens (the hand-off target of one item)."""
        index = index_for(asin)
        if index is None or not 0 <= index < self.count:
            return Response("Not Found", status=404, content_type="text/plain")
        offer = self.ctx.offer(self.slug, index)
        return product_page(self.profile.name, offer, self.ctx.image_url(request, offer))

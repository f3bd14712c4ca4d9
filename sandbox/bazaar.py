"""Euro Bazaar: a custom JSON API (EUR, a few items in GBP) that OneCart reads through the
declarative adapter. Cursor-paginated listings behind an ``X-Api-Key`` header; prices as
"amount CUR" text. Cursors are opaque to clients (base64 of a versioned offset)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.pages import format_amount, product_page
from sandbox.service import JsonError, MarketplaceService, json_response, query_int
from sandbox.world import broken_title, html_title, huge_text

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50
UNKNOWN_CURRENCY_CODE = "EUX"  # not an ISO 4217 code
CURSOR_VERSION = "v1"


def listing_sku(index: int) -> str:
    """The bazaar's external id of offer `index`."""
    return f"BZ-{index + 1:07d}"


def encode_cursor(offset: int) -> str:
    """An opaque cursor for the listing at `offset`."""
    return base64.urlsafe_b64encode(f"{CURSOR_VERSION}:{offset}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The offset inside a cursor, or ValueError."""
    padded = cursor + "=" * (-len(cursor) % 4)
    try:
        version, _, offset = base64.urlsafe_b64decode(padded.encode()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(cursor) from exc
    if version != CURSOR_VERSION or not offset.isdigit():
        raise ValueError(cursor)
    return int(offset)


def _error(status: int, code: str, message: str) -> JsonError:
    return JsonError(status, {"error": {"code": code, "message": message}})


class BazaarService(MarketplaceService):
    """The custom-JSON marketplace for the declarative adapter."""

    slug = "bazaar"
    routes = (
        ("/api/v1/listings", "list_listings", ("GET",)),
        ("/api/v1/listings/<sku>", "get_listing", ("GET",)),
        ("/listings/<sku>", "listing_page", ("GET",)),
    )

    def _require_key(self, request: Request) -> None:
        if not request.headers.get("X-Api-Key", "").strip():
            raise _error(401, "unauthorized", "Missing or invalid X-Api-Key header")

    def _index_of(self, sku: str) -> int | None:
        number = sku.removeprefix("BZ-")
        if not number.isdigit():
            return None
        index = int(number) - 1
        return index if 0 <= index < self.count else None

    def listing_record(self, request: Request, index: int, *, live: bool = False) -> dict[str, Any]:
        """Offer `index` as a bazaar listing, malformed when its slot says so."""
        offer = self.ctx.offer(self.slug, index, live=live)
        kind = self.ctx.malformation(self.slug, index)
        product = offer.product
        category = product.category
        sentences = product.description_sentences()
        name = offer.title
        if kind == "html_title":
            name = html_title(name, index)
        elif kind == "broken_utf8":
            name = broken_title(name)
        amount = format_amount(offer.price_minor, offer.currency)
        pricing: dict[str, str] = {"display": f"{amount} {offer.currency}"}
        if kind == "missing_price":
            pricing = {}
        elif kind == "negative_price":
            pricing = {"display": f"-{amount} {offer.currency}"}
        elif kind == "unknown_currency":
            pricing = {"display": f"{amount} {UNKNOWN_CURRENCY_CODE}"}
        return {
            "sku": listing_sku(index - 1 if kind == "duplicate_id" else index),
            "name": name,
            "summary": huge_text(sentences)
            if kind == "huge_description"
            else " ".join(sentences[:3]),
            "pricing": pricing,
            "media": {"thumb": self.ctx.image_url(request, offer)},
            "url": f"{self.base_url(request)}/listings/{listing_sku(index)}",
            "taxonomy": {"path": list(category.path), "leaf": category.path[-1]},
            "maker": {"name": product.brand, "model": product.model},
            "ean": product.gtin if offer.shows_gtin else None,
            "score": round(offer.rating_centi / 100, 1),
            "votes": offer.review_count,
            "in_stock": offer.available,
            "stock_level": offer.stock,
        }

    def list_listings(self, request: Request) -> Response:
        """GET /api/v1/listings?limit=&cursor= → {data: {items}, next_cursor}."""
        self._require_key(request)
        limit = query_int(request, "limit", DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
        cursor = request.args.get("cursor")
        offset = 0
        if cursor:
            try:
                offset = decode_cursor(cursor)
            except ValueError:
                raise _error(
                    400, "invalid_cursor", "The cursor is not one this API issued"
                ) from None
        stop = min(offset + limit, self.count)
        items = [self.listing_record(request, i) for i in range(offset, stop)]
        next_cursor = encode_cursor(stop) if stop < self.count else None
        return json_response({"data": {"items": items}, "next_cursor": next_cursor})

    def get_listing(self, request: Request, sku: str) -> Response:
        """GET /api/v1/listings/<sku>: the live listing (price_drift applies)."""
        self._require_key(request)
        index = self._index_of(sku)
        if index is None or self.ctx.malformation(self.slug, index) == "duplicate_id":
            raise _error(404, "not_found", f"No listing {sku}")
        return json_response({"data": self.listing_record(request, index, live=True)})

    def listing_page(self, request: Request, sku: str) -> Response:
        """The listing's page (where a shopper is handed off to)."""
        index = self._index_of(sku)
        if index is None:
            return Response("Not Found", status=404, content_type="text/plain")
        offer = self.ctx.offer(self.slug, index)
        return product_page(self.profile.name, offer, self.ctx.image_url(request, offer))

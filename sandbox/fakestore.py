"""Fake Store Berlin: the Fake Store API format (EUR implied). The whole catalog in one unpaged
list, streamed record by record so a 200k-product body is never built in memory; an unknown
product id answers 200 with an empty body, as the real API does. Carts have no status.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.assortment import CATEGORIES
from sandbox.carts import (
    cart_line,
    cart_placement_plan,
    malformed_float_price,
    numbered_product_id,
    numbered_product_index,
    place_cart,
)
from sandbox.malformations import huge_text, malformed_title
from sandbox.orders import OrderLine, SandboxOrder
from sandbox.service import (
    JSON_CONTENT_TYPE,
    JsonError,
    JsonRecordCatalog,
    conditional_catalog,
    join_stream,
    json_response,
    query_int,
    read_json_body,
)
from sandbox.world import ListedOffer


def category_name(slug_or_name: str) -> str:
    """Fake Store writes categories as lower-case names ("running shoes")."""
    return slug_or_name.lower()


CATEGORY_NAMES = tuple(category_name(c.name) for c in CATEGORIES)


def _empty() -> Response:
    return Response(b"", status=200, content_type=JSON_CONTENT_TYPE)


class FakeStoreService(JsonRecordCatalog):
    """The Fake Store API-format marketplace."""

    slug = "fakestore"
    routes = (
        ("/products", "list_products", ("GET",)),
        ("/products/categories", "list_categories", ("GET",)),
        ("/products/category/<name>", "category_products", ("GET",)),
        ("/products/<product_ref>", "get_product", ("GET",)),
        ("/carts", "create_cart", ("POST",)),
        ("/carts", "list_carts", ("GET",)),
        ("/carts/<cart_ref>", "get_cart", ("GET",)),
    )

    def render_record(
        self, request: Request, offer: ListedOffer, kind: str | None
    ) -> dict[str, Any]:
        """`offer` as a Fake Store product, malformed as `kind` says."""
        index = offer.index
        product = offer.product
        sentences = product.description_sentences()
        title = malformed_title(offer.title, index, kind)
        price = malformed_float_price(offer.price_minor, offer.currency, kind, currency_text="{} €")
        record: dict[str, Any] = {
            "id": numbered_product_id(index, kind),
            "title": title,
            "price": price,
            "description": huge_text(sentences)
            if kind == "huge_description"
            else " ".join(sentences),
            "category": category_name(product.category.name),
            "image": self.ctx.image_url(request, offer),
            "rating": {"rate": round(offer.rating_centi / 100, 1), "count": offer.review_count},
        }
        if kind == "missing_price":
            del record["price"]
        return record

    def _stream(self, request: Request, indexes: Iterable[int]) -> Response:
        records = self.ctx.catalog_records(
            request, self.slug, "product", indexes, lambda i: self.rendered_record(request, i)
        )
        return Response(join_stream(b"[", records, b",", b"]"), content_type=JSON_CONTENT_TYPE)

    def list_products(self, request: Request) -> Response:
        """GET /products[?limit=&sort=asc|desc]: every product, streamed."""
        limit = query_int(request, "limit", 0, minimum=0)
        indexes: Iterable[int] = range(self.count)
        if request.args.get("sort", "asc").lower() == "desc":
            indexes = range(self.count - 1, -1, -1)
        if limit:
            indexes = indexes[:limit]
        return conditional_catalog(
            self.ctx, request, self.slug, lambda: self._stream(request, indexes)
        )

    def list_categories(self, request: Request) -> Response:
        """GET /products/categories: the category names."""
        return json_response(list(CATEGORY_NAMES))

    def category_products(self, request: Request, name: str) -> Response:
        """GET /products/category/<name>: the products of one category, streamed."""
        wanted = category_name(name)
        world = self.ctx.world
        indexes = (
            i
            for i in range(self.count)
            if category_name(world.product(world.product_key(self.slug, i)).category.name) == wanted
        )
        return self._stream(request, indexes)

    def get_product(self, request: Request, product_ref: str) -> Response:
        """GET /products/<id>: the live offer (price_drift applies); empty 200 when unknown."""
        index = numbered_product_index(self, product_ref)
        if index is None:
            return _empty()
        return json_response(self.product_record(request, index, live=True))

    def create_cart(self, request: Request) -> Response:
        """POST /carts {userId, date, products: [{productId, quantity}]} → 201 (200 on replay)."""
        plan = cart_placement_plan(
            self,
            unavailable={"status": "error", "message": "Service Unavailable (fail_next_orders)"},
            refused={"status": "error", "message": "cart could not be created"},
        )
        body = read_json_body(request, {"status": "error", "message": "invalid JSON body"})
        items = body.get("products") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise JsonError(400, {"status": "error", "message": "cart products are required"})
        lines: list[OrderLine] = []
        for item in items:
            if not isinstance(item, dict):
                raise JsonError(
                    400, {"status": "error", "message": "each product needs productId and quantity"}
                )
            line = cart_line(
                self,
                plan,
                str(item.get("productId", "")),
                item.get("quantity"),
                unknown=JsonError(
                    400,
                    {"status": "error", "message": f"unknown productId {item.get('productId')!r}"},
                ),
                bad_quantity=JsonError(
                    400, {"status": "error", "message": "quantity must be a positive integer"}
                ),
            )
            if line is not None:  # a sloppy server drops what it does not know, still answers 201
                lines.append(line)
        return place_cart(
            self,
            request,
            plan,
            lines,
            extra={
                "userId": body.get("userId"),
                "date": body.get("date") or datetime.now(UTC).date().isoformat(),
            },
            answer=self.cart_record,
            failure={"status": "error", "message": "Internal Server Error"},
        )

    def list_carts(self, request: Request) -> Response:
        """GET /carts: every cart created through this sandbox."""
        return json_response([self.cart_record(order) for order in self.ctx.orders.list(self.slug)])

    def get_cart(self, request: Request, cart_ref: str) -> Response:
        """GET /carts/<id>; empty 200 when unknown (as for products)."""
        order = self.ctx.orders.get(self.slug, int(cart_ref)) if cart_ref.isdigit() else None
        return json_response(self.cart_record(order)) if order else _empty()

    @staticmethod
    def cart_record(order: SandboxOrder) -> dict[str, Any]:
        """A cart as the Fake Store API answers it."""
        return {
            "id": order.number,
            "userId": order.extra.get("userId"),
            "date": order.extra.get("date"),
            "products": [
                {"productId": int(line.external_id), "quantity": line.quantity}
                for line in order.lines
            ],
            "__v": 0,
        }

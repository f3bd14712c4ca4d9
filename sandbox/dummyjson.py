"""DummyMart: a DummyJSON-style general store (USD implied). Products with skip/limit paging,
search, categories, live lookup, and simulated carts (``POST /carts/add``) without order status.

Barcodes behave like the real DummyJSON's: 13 digits, a valid GTIN-13 only for products that other
marketplaces sell too, a wrong check digit on the store's own products.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from werkzeug.wrappers import Request, Response

from sandbox.assortment import CATEGORIES, REVIEW_COMMENTS, REVIEWER_NAMES
from sandbox.carts import (
    cart_line,
    cart_placement_plan,
    float_price,
    malformed_float_price,
    numbered_product_id,
    numbered_product_index,
    place_cart,
)
from sandbox.draws import hash64, unit_interval
from sandbox.malformations import huge_text, malformed_title
from sandbox.orders import OrderLine, SandboxOrder
from sandbox.service import (
    JSON_CONTENT_TYPE,
    JsonError,
    JsonRecordCatalog,
    conditional_page,
    encode_json,
    join_stream,
    json_response,
    query_int,
    read_json_body,
)
from sandbox.world import ListedOffer

DEFAULT_PAGE_SIZE = 30
# Share of the store's own products listed without a brand (as on the real DummyJSON).
NO_BRAND_SHARE = 0.15
QR_CODE_URL = "https://assets.dummyjson.com/public/qr-code.png"


def _iso_ms(offer_time: Any) -> str:
    return offer_time.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _not_found(ref: object) -> JsonError:
    return JsonError(404, {"message": f"Product with id '{ref}' not found"})


class DummyJsonService(JsonRecordCatalog):
    """The DummyJSON-format marketplace."""

    slug = "dummymart"
    routes = (
        ("/products", "list_products", ("GET",)),
        ("/products/search", "search_products", ("GET",)),
        ("/products/categories", "list_categories", ("GET",)),
        ("/products/category-list", "list_category_slugs", ("GET",)),
        ("/products/category/<category_slug>", "category_products", ("GET",)),
        ("/products/<product_ref>", "get_product", ("GET",)),
        ("/carts/add", "add_cart", ("POST",)),
        ("/carts/<int:cart_id>", "get_cart", ("GET",)),
    )

    def barcode(self, offer: ListedOffer) -> str:
        """A valid GTIN for shared products; 13 digits with a wrong check digit otherwise."""
        gtin = offer.product.gtin
        if offer.product.shared:
            return gtin
        wrong = (int(gtin[12]) + 1 + hash64("barcode", gtin) % 9) % 10
        return gtin[:12] + str(wrong)

    def render_record(
        self, request: Request, offer: ListedOffer, kind: str | None
    ) -> dict[str, Any]:
        """`offer` as a DummyJSON product, malformed as `kind` says."""
        index = offer.index
        product = offer.product
        sentences = product.description_sentences()
        title = malformed_title(offer.title, index, kind)
        price = malformed_float_price(offer.price_minor, offer.currency, kind, currency_text="${}")
        discount = 0.0
        if offer.list_price_minor:
            discount = round(
                100 * (offer.list_price_minor - offer.price_minor) / offer.list_price_minor, 2
            )
        reviews = []
        updated = _iso_ms(offer.updated_at)
        for n in range(3):
            h = hash64(self.ctx.world.seed, "review", self.slug, index, n)
            rating, comment = REVIEW_COMMENTS[h % len(REVIEW_COMMENTS)]
            reviewer = REVIEWER_NAMES[(h >> 8) % len(REVIEWER_NAMES)]
            reviews.append(
                {
                    "rating": rating,
                    "comment": comment,
                    "date": updated,
                    "reviewerName": reviewer,
                    "reviewerEmail": f"{reviewer.split()[0].lower()}.{reviewer.split()[-1].lower()}@x.dummyjson.com",
                }
            )
        stock = offer.stock
        image = self.ctx.image_url(request, offer)
        record: dict[str, Any] = {
            "id": numbered_product_id(index, kind),
            "title": title,
            "description": huge_text(sentences)
            if kind == "huge_description"
            else " ".join(sentences),
            "category": product.category.slug,
            "price": price,
            "discountPercentage": discount,
            "rating": round(offer.rating_centi / 100, 2),
            "stock": stock,
            "tags": list(product.category.tags[:2]) + (["gift"] if product.gift else []),
            "brand": product.brand,
            "sku": product.model,
            "weight": 1 + hash64("weight", product.key) % 9,
            "dimensions": {"width": 20.5, "height": 12.0, "depth": 8.25},
            "warrantyInformation": (
                "1 year warranty",
                "2 year warranty",
                "6 months warranty",
                "No warranty",
            )[hash64("warranty", product.key) % 4],
            "shippingInformation": (
                "Ships in 1-2 business days",
                "Ships overnight",
                "Ships in 1 week",
            )[index % 3],
            "availabilityStatus": "Out of Stock"
            if stock == 0
            else "Low Stock"
            if stock < 10
            else "In Stock",
            "reviews": reviews,
            "returnPolicy": ("30 days return policy", "7 days return policy", "No return policy")[
                index % 3
            ],
            "minimumOrderQuantity": 1,
            "meta": {
                "createdAt": _iso_ms(offer.created_at),
                "updatedAt": updated,
                "barcode": self.barcode(offer),
                "qrCode": QR_CODE_URL,
            },
            "images": [image],
            "thumbnail": image,
        }
        if kind == "missing_price":
            del record["price"]
        if (
            not product.shared
            and unit_interval(self.ctx.world.seed, "no-brand", index) < NO_BRAND_SHARE
        ):
            del record["brand"]
        return record

    @staticmethod
    def _select(record: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
        if not fields:
            return record
        return {"id": record["id"], **{name: record[name] for name in fields if name in record}}

    def _envelope(
        self,
        request: Request,
        indexes: list[int] | range,
        total: int,
        skip: int,
        limit: int,
    ) -> Response:
        """{products, total, skip, limit}; streamed when the page is the whole catalog."""
        fields = [f.strip() for f in request.args.get("select", "").split(",") if f.strip()] or None

        def records() -> Iterator[bytes]:
            if fields is None:
                yield from self.ctx.catalog_records(
                    request,
                    self.slug,
                    "product",
                    indexes,
                    lambda i: self.rendered_record(request, i),
                )
                return
            for index in indexes:
                yield encode_json(self._select(self.product_record(request, index), fields))

        suffix = b"]," + encode_json({"total": total, "skip": skip, "limit": limit})[1:]
        if len(indexes) > 500:
            return Response(
                join_stream(b'{"products":[', records(), b",", suffix),
                content_type=JSON_CONTENT_TYPE,
            )
        return Response(
            b'{"products":[' + b",".join(records()) + suffix, content_type=JSON_CONTENT_TYPE
        )

    def _page(self, request: Request, matches: Callable[[int], bool] | None) -> Response:
        limit = query_int(request, "limit", DEFAULT_PAGE_SIZE, minimum=0)
        skip = query_int(request, "skip", 0, minimum=0)
        if matches is None:
            total = self.count
            stop = total if limit == 0 else min(total, skip + limit)
            page = range(min(skip, total), stop)
            # Express: an ETag on every reply, 304 to a request that holds it.
            return conditional_page(
                self.ctx,
                request,
                self.slug,
                page,
                lambda: self._envelope(
                    request, page, total, skip, len(page) if limit == 0 else limit
                ),
            )
        found = [i for i in range(self.count) if matches(i)]
        total = len(found)
        indexes = found[skip:] if limit == 0 else found[skip : skip + limit]
        return self._envelope(request, indexes, total, skip, len(indexes) if limit == 0 else limit)

    def list_products(self, request: Request) -> Response:
        """GET /products?limit=&skip=&select= (limit=0 returns everything, streamed)."""
        return self._page(request, None)

    def search_products(self, request: Request) -> Response:
        """GET /products/search?q=: case-insensitive substring of title, description, brand, category."""
        needle = request.args.get("q", "").strip().lower()

        def matches(index: int) -> bool:
            if not needle:
                return True
            offer = self.ctx.offer(self.slug, index)
            product = offer.product
            haystack = " ".join(
                (
                    offer.title,
                    product.brand,
                    product.category.slug,
                    *product.description_sentences(),
                )
            ).lower()
            return needle in haystack

        return self._page(request, matches)

    def list_categories(self, request: Request) -> Response:
        """GET /products/categories: [{slug, name, url}]."""
        base = self.base_url(request)
        return json_response(
            [
                {"slug": c.slug, "name": c.name, "url": f"{base}/products/category/{c.slug}"}
                for c in CATEGORIES
            ]
        )

    def list_category_slugs(self, request: Request) -> Response:
        """GET /products/category-list: the category slugs."""
        return json_response([c.slug for c in CATEGORIES])

    def category_products(self, request: Request, category_slug: str) -> Response:
        """GET /products/category/<slug>."""
        world = self.ctx.world
        return self._page(
            request,
            lambda i: world.product(world.product_key(self.slug, i)).category.slug == category_slug,
        )

    def get_product(self, request: Request, product_ref: str) -> Response:
        """GET /products/<id>: the live offer (price_drift applies)."""
        index = numbered_product_index(self, product_ref)
        if index is None:
            raise _not_found(product_ref)
        fields = [f.strip() for f in request.args.get("select", "").split(",") if f.strip()] or None
        return json_response(self._select(self.product_record(request, index, live=True), fields))

    def add_cart(self, request: Request) -> Response:
        """POST /carts/add {userId, products: [{id, quantity}]} → the cart (201; 200 on replay)."""
        plan = cart_placement_plan(
            self,
            unavailable={"message": "Service Unavailable (fail_next_orders)"},
            refused={"message": "Cart could not be created: products unavailable"},
        )
        body = read_json_body(request, {"message": "Invalid JSON body"})
        if not isinstance(body, dict) or body.get("userId") in (None, ""):
            raise JsonError(400, {"message": "User id is required"})
        items = body.get("products")
        if not isinstance(items, list) or not items:
            raise JsonError(400, {"message": "Products can not be empty"})
        lines: list[OrderLine] = []
        for item in items:
            if not isinstance(item, dict):
                raise JsonError(400, {"message": "Each product needs an id and a quantity"})
            # carts/add takes no price: the store bills its own (current) price.
            line = cart_line(
                self,
                plan,
                str(item.get("id", "")),
                item.get("quantity", 1),
                unknown=_not_found(item.get("id")),
                bad_quantity=JsonError(
                    400, {"message": f"Invalid quantity for product '{item.get('id')}'"}
                ),
            )
            if line is not None:  # the real DummyJSON drops unknown ids and still answers 201
                lines.append(line)
        lines.sort(key=lambda line: line.offer_index)  # DummyJSON answers in id order
        return place_cart(
            self,
            request,
            plan,
            lines,
            extra={"userId": body.get("userId")},
            answer=lambda order: self.cart_record(request, order),
            failure={"message": "Internal Server Error"},
        )

    def get_cart(self, request: Request, cart_id: int) -> Response:
        """GET /carts/<id>: a cart created through this sandbox."""
        order = self.ctx.orders.get(self.slug, cart_id)
        if order is None:
            raise JsonError(404, {"message": f"Cart with id '{cart_id}' not found"})
        return json_response(self.cart_record(request, order))

    def cart_record(self, request: Request, order: SandboxOrder) -> dict[str, Any]:
        """A cart as DummyJSON answers it."""
        products = []
        # DummyJSON computes in JavaScript numbers: line totals and the cart total are binary
        # floats, so 89.99 × 3 arrives as 269.96999999999997 (the adapter must round exactly).
        cart_total = 0.0
        for line in order.lines:
            offer = self.ctx.offer(self.slug, line.offer_index)
            total = float_price(line.unit_price_minor, order.currency) * line.quantity
            cart_total += total
            products.append(
                {
                    "id": int(line.external_id),
                    "title": line.title,
                    "price": float_price(line.unit_price_minor, order.currency),
                    "quantity": line.quantity,
                    "total": total,
                    "discountPercentage": 0,
                    "discountedTotal": total,
                    "thumbnail": self.ctx.image_url(request, offer),
                }
            )
        total = cart_total
        return {
            "id": order.number,
            "products": products,
            "total": total,
            "discountedTotal": total,
            "userId": order.extra.get("userId"),
            "totalProducts": len(order.lines),
            "totalQuantity": order.quantity,
        }

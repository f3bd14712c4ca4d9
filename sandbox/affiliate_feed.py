"""Sokoni: a Jumia-style marketplace whose catalog reaches affiliates only as a CSV product feed
(KES for Kenya, NGN for its Nigerian listings), the way affiliate networks publish them: one
unpaged file, a header row with the network's own column names, a separate currency column,
deep links that carry the affiliate's tracking parameters. Catalog only; the feed's links open
product pages here (the hand-off target)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from werkzeug.wrappers import Request, Response

from sandbox.malformations import huge_text, malformed_title
from sandbox.pages import format_amount, product_page
from sandbox.record_cache import record_stamp
from sandbox.service import MarketplaceService, chunked, encode_text
from sandbox.world import ListedOffer, slugify

FEED_CONTENT_TYPE = "text/csv; charset=utf-8"
UNKNOWN_CURRENCY_CODE = "KSH"  # the everyday spelling of KES, not an ISO 4217 code
SKU_PREFIX = "SK"
AFFILIATE_ID = "onecart-sandbox"
# The network's column names, in the order the feed writes them.
FEED_COLUMNS = (
    "product_id",
    "product_name",
    "description",
    "price",
    "sale_price",
    "currency",
    "deeplink",
    "image_url",
    "brand",
    "model",
    "ean",
    "category_path",
    "availability",
    "stock_quantity",
)


def feed_sku(index: int) -> str:
    """The feed's product_id of offer `index`."""
    return f"{SKU_PREFIX}{index + 1:08d}"


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue()


class AffiliateFeedService(MarketplaceService):
    """The CSV affiliate-feed marketplace."""

    slug = "sokoni"
    routes = (
        ("/feeds/onecart/products.csv", "feed", ("GET",)),
        ("/p/<sku>/<product_slug>", "product_page", ("GET",)),
    )

    def row(self, request: Request, index: int) -> list[str]:
        """Offer `index` as one feed row, malformed when its slot says so."""
        offer = self.ctx.offer(self.slug, index)
        return self._row(request, offer, self.ctx.malformation(self.slug, index))

    def _rendered(self, request: Request, index: int) -> tuple[int, bytes]:
        """Feed row `index` as sent (CSV line), and the stamp it was rendered at."""
        offer = self.ctx.offer(self.slug, index)
        kind = self.ctx.malformation(self.slug, index)
        line = _csv_line(self._row(request, offer, kind))
        return record_stamp(offer.price_version, kind), encode_text(line)

    def _row(self, request: Request, offer: ListedOffer, kind: str | None) -> list[str]:
        index = offer.index
        product = offer.product
        title = malformed_title(offer.title, index, kind)
        currency = offer.currency
        if offer.list_price_minor:
            price = format_amount(offer.list_price_minor, currency)
            sale = format_amount(offer.price_minor, currency)
        else:
            price, sale = format_amount(offer.price_minor, currency), ""
        if kind == "missing_price":
            price = sale = ""
        elif kind == "negative_price":
            price, sale = f"-{format_amount(offer.price_minor, currency)}", ""
        elif kind == "unknown_currency":
            currency = UNKNOWN_CURRENCY_CODE
        sentences = product.description_sentences()
        sku = feed_sku(index - 1 if kind == "duplicate_id" else index)
        link = (
            f"{self.base_url(request)}/p/{feed_sku(index)}/{slugify(offer.title)}"
            f"?utm_source=affiliate&aff_id={AFFILIATE_ID}"
        )
        return [
            sku,
            title,
            huge_text(sentences) if kind == "huge_description" else " ".join(sentences),
            price,
            sale,
            currency,
            link,
            self.ctx.image_url(request, offer),
            product.brand,
            product.model,
            product.gtin if offer.shows_gtin else "",
            " > ".join(product.category.path),
            "in stock" if offer.available else "out of stock",
            str(offer.stock),
        ]

    def feed(self, request: Request) -> Response:
        """GET /feeds/onecart/products.csv: the whole catalog, one row per product, streamed."""

        def pieces() -> Iterator[bytes]:
            yield _csv_line(list(FEED_COLUMNS)).encode("utf-8")
            yield from self.ctx.catalog_records(
                request, self.slug, "row", range(self.count), lambda i: self._rendered(request, i)
            )

        return Response(chunked(pieces()), content_type=FEED_CONTENT_TYPE)

    def product_page(self, request: Request, sku: str, product_slug: str) -> Response:
        """The product page a feed deep link opens."""
        number = sku.removeprefix(SKU_PREFIX)
        index = int(number) - 1 if number.isdigit() else -1
        if not 0 <= index < self.count:
            return Response("Not Found", status=404, content_type="text/plain")
        offer = self.ctx.offer(self.slug, index)
        return product_page(self.profile.name, offer, self.ctx.image_url(request, offer))

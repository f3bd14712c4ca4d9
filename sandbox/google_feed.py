"""NaijaMall: an affiliate catalog published as a Google Merchant Center RSS 2.0 feed (NGN).
One unpaged ``feed.xml``, streamed item by item; catalog only (checkout happens on NaijaMall, so
the feed's links open real product pages here)."""

from __future__ import annotations

from collections.abc import Iterator
from xml.sax.saxutils import escape

from werkzeug.wrappers import Request, Response

from sandbox.draws import hash64
from sandbox.malformations import huge_text, malformed_title
from sandbox.pages import format_amount, product_page
from sandbox.record_cache import record_stamp
from sandbox.service import MarketplaceService, chunked, conditional_catalog, encode_text
from sandbox.world import ListedOffer, slugify

ITEM_ID_BASE = 100_001
FEED_CONTENT_TYPE = "application/xml; charset=utf-8"
UNKNOWN_CURRENCY_CODE = "NGR"  # a typo'd code that is not ISO 4217
G_NAMESPACE = "http://base.google.com/ns/1.0"


def item_id(index: int) -> str:
    """The feed's g:id of offer `index`."""
    return f"NM-{ITEM_ID_BASE + index}"


def _element(name: str, value: str) -> str:
    return f"<g:{name}>{escape(value)}</g:{name}>"


class GoogleFeedService(MarketplaceService):
    """The Google Merchant feed marketplace."""

    slug = "naijamall"
    routes = (
        ("/feed.xml", "feed", ("GET",)),
        ("/p/<item_ref>/<product_slug>", "product_page", ("GET",)),
    )

    def availability(self, index: int, stock: int) -> str:
        """g:availability, including the sloppy "in stock" spelling some feeds use."""
        h = hash64(self.ctx.world.seed, "availability", index) % 100
        if stock > 0:
            return "in stock" if h < 10 else "in_stock"
        return "backorder" if h < 15 else "preorder" if h < 25 else "out_of_stock"

    def item_xml(self, request: Request, index: int) -> str:
        """Offer `index` as one feed <item>, malformed when its slot says so."""
        offer = self.ctx.offer(self.slug, index)
        return self._item(request, offer, self.ctx.malformation(self.slug, index))

    def _rendered(self, request: Request, index: int) -> tuple[int, bytes]:
        """Feed item `index` as sent, and the stamp it was rendered at."""
        offer = self.ctx.offer(self.slug, index)
        kind = self.ctx.malformation(self.slug, index)
        item = self._item(request, offer, kind)
        return record_stamp(offer.price_version, kind), encode_text(item)

    def _item(self, request: Request, offer: ListedOffer, kind: str | None) -> str:
        index = offer.index
        product = offer.product
        category = product.category
        sentences = product.description_sentences()
        title = malformed_title(offer.title, index, kind)
        gid = item_id(index - 1 if kind == "duplicate_id" else index)
        currency = offer.currency
        if offer.list_price_minor:
            price, sale = offer.list_price_minor, offer.price_minor
        else:
            price, sale = offer.price_minor, None
        price_text: str | None = f"{format_amount(price, currency)} {currency}"
        sale_text = f"{format_amount(sale, currency)} {currency}" if sale else None
        if kind == "missing_price":
            price_text = sale_text = None
        elif kind == "negative_price":
            price_text, sale_text = (
                f"-{format_amount(offer.price_minor, currency)} {currency}",
                None,
            )
        elif kind == "unknown_currency":
            price_text, sale_text = (
                f"{format_amount(offer.price_minor, currency)} {UNKNOWN_CURRENCY_CODE}",
                None,
            )
        parts = [
            _element("id", gid),
            _element("title", title),
            _element(
                "description",
                huge_text(sentences) if kind == "huge_description" else " ".join(sentences),
            ),
            _element("link", f"{self.base_url(request)}/p/{item_id(index)}/{slugify(offer.title)}"),
            _element("image_link", self.ctx.image_url(request, offer)),
            _element("availability", self.availability(index, offer.stock)),
        ]
        if price_text:
            parts.append(_element("price", price_text))
        if sale_text:
            parts.append(_element("sale_price", sale_text))
        parts.append(_element("brand", product.brand))
        if offer.shows_gtin:
            parts.append(_element("gtin", product.gtin))
        parts += [
            _element("mpn", product.model),
            _element("condition", "new"),
            _element("product_type", " > ".join(category.path)),
            _element("google_product_category", category.google_category),
        ]
        return "<item>" + "".join(parts) + "</item>"

    def feed(self, request: Request) -> Response:
        """GET /feed.xml: the whole catalog as RSS 2.0 with the g: namespace, streamed."""
        base = self.base_url(request)
        header = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<rss version="2.0" xmlns:g="{G_NAMESPACE}"><channel>'
            f"<title>{escape(self.profile.name)}</title><link>{escape(base)}</link>"
            "<description>NaijaMall product feed for affiliates</description>"
        )

        def pieces() -> Iterator[bytes]:
            yield header.encode("utf-8")
            yield from self.ctx.catalog_records(
                request,
                self.slug,
                "feed-item",
                range(self.count),
                lambda i: self._rendered(request, i),
            )
            yield b"</channel></rss>\n"

        return conditional_catalog(
            self.ctx,
            request,
            self.slug,
            lambda: Response(chunked(pieces()), content_type=FEED_CONTENT_TYPE),
        )

    def product_page(self, request: Request, item_ref: str, product_slug: str) -> Response:
        """The product page a feed link opens (the hand-off target)."""
        number = item_ref.removeprefix("NM-")
        index = int(number) - ITEM_ID_BASE if number.isdigit() else -1
        if not 0 <= index < self.count:
            return Response("Not Found", status=404, content_type="text/plain")
        offer = self.ctx.offer(self.slug, index)
        return product_page(self.profile.name, offer, self.ctx.image_url(request, offer))

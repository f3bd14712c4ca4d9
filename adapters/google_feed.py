"""Google Merchant Center product feeds (RSS 2.0 with the `g:` namespace): catalog only.

Many retailers and affiliate networks publish their catalog this way; a feed has no live lookup
and no order API, so shoppers complete such purchases on the marketplace itself. Each `<item>`
becomes one raw record whose keys are the element names as written (`"g:price"`, `"title"`).
"""

from __future__ import annotations

import hashlib
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

import httpx

from adapters.base import BadPayload, Capability, CatalogPage, MarketplaceConfig, Offer
from adapters.fields import (
    availability_from_word,
    category_leaf,
    description_text,
    first_of,
    naming_the_record,
    optional_text,
    optional_url,
    require_amount_currency_price,
    require_external_id,
    require_mapping,
    require_title,
)
from adapters.gtin import normalize_gtin
from adapters.http_adapter import HttpMarketplaceAdapter

GOOGLE_NS = "http://base.google.com/ns/1.0"
ATOM_NS = "http://www.w3.org/2005/Atom"
DEFAULT_FEED_PATH = "feed.xml"
ITEM_TAGS = frozenset({"item", f"{{{ATOM_NS}}}entry"})
FEED_ACCEPT = "application/rss+xml, application/atom+xml, application/xml;q=0.9, text/xml;q=0.8"


def _record_key(tag: str) -> str:
    """`{http://base.google.com/ns/1.0}price` -> "g:price"; other namespaces drop to the name."""
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return f"g:{name}" if namespace == GOOGLE_NS else name
    return tag


# Element tag -> record key (_record_key): a feed repeats a dozen tags in every item. Bounded,
# as the tags are the feed's to choose.
_RECORD_KEYS: dict[str, str] = {}
_RECORD_KEYS_MAX = 4096


def _element_record(element: ET.Element) -> dict[str, Any]:
    """An element's children as a JSON-ready dict; repeated elements become lists. A child with
    children is a nested record; an empty one with an `href` (Atom <link href="..."/>) is its
    URL; any other is its stripped text.

    Inlined (no call per child): this loop is most of a feed's parsing CPU.
    """
    record: dict[str, Any] = {}
    keys = _RECORD_KEYS
    for child in element:
        tag = child.tag
        key = keys.get(tag)
        if key is None:
            key = _record_key(tag)
            if len(keys) < _RECORD_KEYS_MAX:
                keys[tag] = key
        if len(child):
            value: Any = _element_record(child)
        else:
            text = child.text
            value = (child.get("href") or "") if text is None else text.strip()
        if key not in record:
            record[key] = value
        else:
            held = record[key]
            if isinstance(held, list):
                held.append(value)
            else:
                record[key] = [held, value]
    return record


class _ItemParser:
    """An incremental parse of a feed that hands on each `<item>` (or Atom `<entry>`) as a record
    once its end tag is read, then drops it from the tree: a feed of a hundred thousand items
    never exists as one element tree."""

    def __init__(self) -> None:
        self.parser = ET.XMLPullParser(events=("start", "end", "start-ns"))
        self.stack: list[ET.Element] = []
        # The namespace declarations read, (prefix, URI), in document order, until set to None.
        self.namespaces: list[tuple[str, str]] | None = []

    def feed(self, text: str) -> list[dict[str, Any]]:
        """Parse `text` (any piece of the document); the records of the items it completed."""
        self.parser.feed(text)
        return self._completed()

    def close(self) -> list[dict[str, Any]]:
        self.parser.close()
        return self._completed()

    def _completed(self) -> list[dict[str, Any]]:
        records = []
        stack = self.stack
        opened, closed = stack.append, stack.pop  # twice per element: the loop's cost counts
        for event, element in self.parser.read_events():
            if event == "start":
                opened(element)
                continue
            if event == "start-ns":  # a rare event: only where a namespace is declared
                if self.namespaces is not None:
                    self.namespaces.append(element)  # type: ignore[arg-type]
                continue
            closed()
            if element.tag in ITEM_TAGS:
                records.append(_element_record(element))
                if stack:
                    stack[-1].remove(element)
        return records


def parse_feed_items(text: str | Iterable[str], *, marketplace: str) -> Iterator[dict[str, Any]]:
    """Every `<item>` (or Atom `<entry>`) of a feed as a record, in document order.

    `text` is the whole feed or its chunks as they download, parsed incrementally.
    """
    chunks = [text] if isinstance(text, str) else text
    items = _ItemParser()
    try:
        for chunk in chunks:
            yield from items.feed(chunk)
        yield from items.close()
    except ET.ParseError as exc:
        raise BadPayload("invalid_xml", detail=str(exc), marketplace=marketplace) from exc


# Part of every item's source digest: bump it whenever the same item text could give another
# payload (_element_record, _record_key, warehouse.offers.payload_text), so that no digest held
# from the old code is trusted (the refresh after the change then parses every item once).
ITEM_SOURCE_VERSION = "google_feed/1"
_ITEM_OPEN = "<item>"
_ITEM_CLOSE = "</item>"
# Text read before the first `<item` beyond which the feed is parsed without cutting.
_HEAD_MAX_CHARS = 1 << 20


class FeedItem(NamedTuple):
    """One item of a feed in document order: its `record`, or, when the warehouse holds the
    record parsed from the very same item text after the very same document head, only that
    record's payload hash (`held_hash`; `record` is None and the item was not parsed).
    `source` is the item's source digest (None where the feed's text was not cut into items)."""

    source: str | None
    record: dict[str, Any] | None
    held_hash: str | None


def _plain_head(head: str) -> bool:
    """Whether the document before the first `<item` is elements and text only (an XML
    declaration at most): no comment, CDATA, DOCTYPE (entities) or processing instruction in
    which `<item` or `</item>` could stand without being a tag."""
    if head.startswith("<?xml"):
        head = head[head.find("?>") + 2 :] if "?>" in head else "<?"
    return "<!" not in head and "<?" not in head


def _item_context(items: _ItemParser) -> bytes:
    """What, besides its own text, decides what an item parses into once the document's head is
    read (a plain head: no DOCTYPE, so no entities): the elements it sits in and the namespaces
    declared; not the head's other elements (a `<lastBuildDate>` changing on every fetch)."""
    context = [ITEM_SOURCE_VERSION, *(element.tag for element in items.stack)]
    context += (f"xmlns:{prefix}={uri}" for prefix, uri in items.namespaces or ())
    return hashlib.sha256("\n".join(context).encode()).digest()


def _parse_items(items: _ItemParser, text: str, sources: list[str]) -> list[FeedItem]:
    """The records of `text`, whole items cut from the feed (and the text between them), with
    their `sources`: exactly one item each, or the text was not cut as the parser reads it."""
    depth = len(items.stack)
    records = items.feed(text)
    if len(records) != len(sources) or len(items.stack) != depth:  # pragma: no cover
        raise ET.ParseError("the items cut from the feed are not whole elements")
    return [FeedItem(source, record, None) for source, record in zip(sources, records, strict=True)]


def read_feed_items(
    chunks: Iterable[str], *, marketplace: str, held_sources: Mapping[str, str]
) -> Iterator[FeedItem]:
    """Every item of an RSS feed in document order, skipping the parse of items whose text the
    warehouse has seen: `held_sources` maps an item's source digest (SHA-256 of the item's
    context, :func:`_item_context`, and its text) to the payload hash of the record it parsed
    into.

    Items are cut from the text at `<item>` ... the first `</item>`, which is exact when the head
    holds no comment, CDATA, DOCTYPE or processing instruction, only whitespace separates the
    items and an item holds no `<item`, `<!` or `<?`; an item is skipped only then. Otherwise,
    from there on, the text is parsed as :func:`parse_feed_items` parses it (Atom feeds always).
    Every piece not skipped goes through one XML parser, in order, so a malformed item or
    document fails as it does there (BadPayload "invalid_xml"); a skipped item's text parsed
    into one whole item after the same head before, and only whitespace stands between items.
    """
    items = _ItemParser()
    buffer = ""
    head: bytes | None = None  # the items' context (_item_context), once the head is read
    cutting = True

    def parsed(text: str) -> list[FeedItem]:
        return [FeedItem(None, record, None) for record in items.feed(text)]

    try:
        for chunk in chunks:
            buffer += chunk
            if not cutting:
                yield from parsed(buffer)
                buffer = ""
                continue
            if head is None:
                first = buffer.find("<item")
                if first < 0:
                    if len(buffer) > _HEAD_MAX_CHARS:  # an Atom feed, or no items at all
                        cutting = False
                        yield from parsed(buffer)
                        buffer = ""
                    continue  # the head is still arriving
                cutting = _plain_head(buffer[:first])
                yield from parsed(buffer[:first])
                head = _item_context(items)
                items.namespaces = None  # the items' own declarations are in their text
                buffer = buffer[first:]
            # Items not held are parsed together, in one piece of text per run of them (one
            # parser call per item cost a full fetch a third more CPU).
            position = 0  # the text before it is parsed or skipped
            unparsed: list[str] = []  # sources of the items cut from `position` to `cut`
            cut = 0
            # Where the text read holds no comment, CDATA, declaration or instruction (the usual
            # case), its items need not be searched for them one by one.
            marked = "<!" in buffer or "<?" in buffer
            start = buffer.find("<item")
            while cutting and start >= 0:
                end = buffer.find(_ITEM_CLOSE, start)
                if end < 0:
                    break  # the item is still arriving
                end += len(_ITEM_CLOSE)
                following = buffer.find("<item", start + 1)
                text = buffer[start:end]
                previous = cut if unparsed else position
                if (
                    0 <= following < end
                    or not text.startswith(_ITEM_OPEN)
                    or (start != previous and "<" in buffer[previous:start])
                    or (marked and ("<!" in text or "<?" in text))
                ):
                    cutting = False
                    break
                source = hashlib.sha256(head + text.encode()).hexdigest()
                held = held_sources.get(source)
                if held is None:
                    unparsed.append(source)
                    cut = end
                else:
                    if unparsed or start != position:
                        yield from _parse_items(items, buffer[position:start], unparsed)
                        unparsed = []
                    yield FeedItem(source, None, held)
                    position = end
                start = following
            if unparsed:
                yield from _parse_items(items, buffer[position:cut], unparsed)
                position = cut
            buffer = buffer[position:]
            if not cutting:
                yield from parsed(buffer)
                buffer = ""
        yield from parsed(buffer)
        yield from (FeedItem(None, record, None) for record in items.close())
    except ET.ParseError as exc:
        raise BadPayload("invalid_xml", detail=str(exc), marketplace=marketplace) from exc


def sale_price_applies(window: object, now: datetime) -> bool:
    """Whether `g:sale_price_effective_date` ("start/end", ISO 8601) covers `now`. No window, or
    one we cannot read, means the sale price applies (that is what the feed's author intended)."""
    if not isinstance(window, str) or "/" not in window:
        return True
    start_text, end_text = (part.strip() for part in window.split("/", 1))
    try:
        start = datetime.fromisoformat(start_text)
        end = datetime.fromisoformat(end_text)
    except ValueError:
        return True
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    end = end if end.tzinfo else end.replace(tzinfo=UTC)
    return start <= now < end


def effective_price_text(item: Mapping[str, Any], now: datetime) -> object:
    """The price that applies: `g:sale_price` when present (and in its window), else `g:price`."""
    sale = first_of(item.get("g:sale_price"))
    window = first_of(item.get("g:sale_price_effective_date"))
    if isinstance(sale, str) and sale.strip() and sale_price_applies(window, now):
        return sale
    return first_of(item.get("g:price"))


def _field(item: Mapping[str, Any], name: str) -> Any:
    """`g:name`, or the plain RSS element (`title`, `link`, `description`) feeds also use."""
    value = first_of(item.get(f"g:{name}"))
    if value is None or value == "":
        value = first_of(item.get(name))
    return value


class GoogleFeedAdapter(HttpMarketplaceAdapter):
    """A Merchant Center feed: one document, every item an offer; nothing else."""

    capabilities = frozenset({Capability.CATALOG})

    # Sends no writes (catalog only), so there is nothing a key could make safe to resend;
    # a format that gains an order API must decide this anew.
    honours_idempotency_keys = False

    def __init__(
        self,
        config: MarketplaceConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(config, transport=transport, sleep=sleep)
        self.feed_path = str(config.options.get("feed_path", DEFAULT_FEED_PATH))
        self.page_size = max(1, config.page_size)
        # Set (to what the warehouse holds, maybe nothing) by a catalog refresh: items are then
        # cut from the feed, digested, and those seen before are not parsed (read_feed_items).
        self.held_sources: Mapping[str, str] | None = None

    def fetch_catalog_pages(self) -> Iterator[CatalogPage]:
        """The feed from one request, handed on in pages of `page_size` items as it downloads.
        With `held_sources`, each page says every item's source digest, and an item seen before
        comes as its held payload hash instead of a record (CatalogPage.held_hashes)."""
        chunks = self.stream_text(self.feed_path, headers={"Accept": FEED_ACCEPT}, conditional=True)
        if self.held_sources is None:
            yield from self._pages(
                FeedItem(None, record, None)
                for record in parse_feed_items(chunks, marketplace=self.slug)
            )
            return
        yield from self._pages(
            read_feed_items(chunks, marketplace=self.slug, held_sources=self.held_sources),
            with_sources=True,
        )

    def _pages(
        self, items: Iterable[FeedItem], *, with_sources: bool = False
    ) -> Iterator[CatalogPage]:
        batch: list[FeedItem] = []
        page = 1
        for item in items:
            batch.append(item)
            if len(batch) == self.page_size:
                yield _catalog_page(batch, page, with_sources=with_sources)
                batch, page = [], page + 1
        if batch:
            yield _catalog_page(batch, page, with_sources=with_sources)

    def normalize_record(self, record: Mapping[str, Any]) -> Offer:
        """One feed item as an Offer; the price names its own currency ("15000.00 NGN")."""
        item = require_mapping(record, marketplace=self.slug)
        external_id = require_external_id(_field(item, "id"), marketplace=self.slug)
        with naming_the_record(external_id):
            title = require_title(_field(item, "title"), marketplace=self.slug)
            price_minor, currency = require_amount_currency_price(
                effective_price_text(item, datetime.now(UTC)), marketplace=self.slug
            )
            availability = first_of(item.get("g:availability"))
            # No availability element: listed means for sale. A word we do not know: not for sale.
            available = (
                True if availability in (None, "") else bool(availability_from_word(availability))
            )
            mpn = optional_text(_field(item, "mpn"))
            category = category_leaf(_field(item, "product_type"))
            if category is None:
                google_category = optional_text(_field(item, "google_product_category"))
                # A numeric Google taxonomy id means nothing to a shopper.
                category = (
                    None
                    if google_category is None or google_category.isdigit()
                    else category_leaf(google_category)
                )
            return Offer(
                marketplace=self.slug,
                external_id=external_id,
                title=title,
                price_minor=price_minor,
                currency=currency,
                description=description_text(_field(item, "description")),
                image_url=optional_url(_field(item, "image_link")),
                product_url=optional_url(_field(item, "link")),
                category=category,
                brand=optional_text(_field(item, "brand")),
                model=mpn,
                gtin=normalize_gtin(_field(item, "gtin")),
                mpn=mpn,
                available=available,
            )


def _catalog_page(items: list[FeedItem], page: int, *, with_sources: bool) -> CatalogPage:
    if not with_sources:
        return CatalogPage(records=[item.record for item in items], page=page)  # type: ignore[misc]
    return CatalogPage(
        records=[item.record for item in items],  # type: ignore[misc]
        page=page,
        sources=[item.source for item in items],
        held_hashes=[item.held_hash for item in items],
    )

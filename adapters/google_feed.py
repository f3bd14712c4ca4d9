"""Google Merchant Center product feeds (RSS 2.0 with the `g:` namespace): catalog only.

Many retailers and affiliate networks publish their catalog this way; a feed has no live lookup
and no order API, so shoppers complete such purchases on the marketplace itself. Each `<item>`
becomes one raw record whose keys are the element names as written (`"g:price"`, `"title"`).
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from adapters.base import BadPayload, Capability, CatalogPage, MarketplaceConfig, Offer
from adapters.fields import (
    availability_from_word,
    category_leaf,
    description_text,
    first_of,
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


def parse_feed_items(text: str | Iterable[str], *, marketplace: str) -> Iterator[dict[str, Any]]:
    """Every `<item>` (or Atom `<entry>`) of a feed as a record, in document order.

    `text` is the whole feed or its chunks as they download. Parsed incrementally, each item
    dropped from the tree once read, so a feed of a hundred thousand items never exists as one
    element tree.
    """
    chunks = [text] if isinstance(text, str) else text
    parser = ET.XMLPullParser(events=("start", "end"))
    stack: list[ET.Element] = []
    opened, closed = stack.append, stack.pop  # twice per element: the loop's own cost counts
    try:
        for chunk in chunks:
            parser.feed(chunk)
            for event, element in parser.read_events():
                if event == "start":
                    opened(element)
                    continue
                closed()
                if element.tag in ITEM_TAGS:
                    yield _element_record(element)
                    if stack:
                        stack[-1].remove(element)
        parser.close()
        for event, element in parser.read_events():
            if event == "end" and element.tag in ITEM_TAGS:  # pragma: no cover - defensive
                yield _element_record(element)
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

    def fetch_catalog_pages(self) -> Iterator[CatalogPage]:
        """The feed from one request, handed on in pages of `page_size` items as it downloads."""
        chunks = self.stream_text(self.feed_path, headers={"Accept": FEED_ACCEPT}, conditional=True)
        batch: list[dict[str, Any]] = []
        page = 1
        for item in parse_feed_items(chunks, marketplace=self.slug):
            batch.append(item)
            if len(batch) == self.page_size:
                yield CatalogPage(records=batch, page=page)
                batch, page = [], page + 1
        if batch:
            yield CatalogPage(records=batch, page=page)

    def normalize_record(self, record: Mapping[str, Any]) -> Offer:
        """One feed item as an Offer; the price names its own currency ("15000.00 NGN")."""
        item = require_mapping(record, marketplace=self.slug)
        external_id = require_external_id(_field(item, "id"), marketplace=self.slug)
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

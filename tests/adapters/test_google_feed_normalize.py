"""Google Merchant Center feeds: parsing items, sale prices, availability words, rejections."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from adapters.base import BadPayload, Capability, OrderRequest, Unsupported
from adapters.google_feed import (
    FeedItem,
    GoogleFeedAdapter,
    effective_price_text,
    parse_feed_items,
    read_feed_items,
    sale_price_applies,
)
from tests.adapters.configs import RecordingTransport, marketplace_config, offline_transport

# Google's own sample feed (trimmed), plus a second item that uses g:sale_price.
FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss xmlns:g="http://base.google.com/ns/1.0" version="2.0">
<channel>
<title>NaijaMall - Online Store</title>
<link>https://naijamall.example.ng</link>
<description>Sample feed</description>
<item>
<g:id>TV_123456</g:id>
<g:title>LG 22LB4510 - 22" LED TV - 1080p (FullHD)</g:title>
<g:description>Attractively styled &amp; boasting &lt;b&gt;stunning&lt;/b&gt; picture quality.</g:description>
<g:link>https://naijamall.example.ng/electronics/tv/22LB4510.html</g:link>
<g:image_link>https://images.naijamall.example.ng/TV_123456.png</g:image_link>
<g:condition>new</g:condition>
<g:availability>in stock</g:availability>
<g:price>159000.00 NGN</g:price>
<g:shipping>
<g:country>NG</g:country>
<g:service>Standard</g:service>
<g:price>4500.00 NGN</g:price>
</g:shipping>
<g:gtin>71919219405200</g:gtin>
<g:brand>LG</g:brand>
<g:mpn>22LB4510/US</g:mpn>
<g:product_type>Consumer Electronics &gt; TVs &gt; Flat Panel TVs</g:product_type>
<g:google_product_category>Electronics &gt; Video &gt; Televisions</g:google_product_category>
</item>
<item>
<title>Thermos Stainless King 1.2 L Flask</title>
<link>https://naijamall.example.ng/thermos-sk</link>
<g:id>FLASK_9</g:id>
<g:price>25000.00 NGN</g:price>
<g:sale_price>19999.50 NGN</g:sale_price>
<g:availability>preorder</g:availability>
<g:gtin>4006381333932</g:gtin>
<g:google_product_category>2920</g:google_product_category>
</item>
</channel>
</rss>
"""


def adapter(**kwargs: Any) -> GoogleFeedAdapter:
    return GoogleFeedAdapter(
        marketplace_config(
            "google_feed",
            slug="naijamall",
            currency="NGN",
            options={"feed_path": "feed.xml"},
            **kwargs,
        ),
        transport=offline_transport(),
    )


def items() -> list[dict[str, Any]]:
    return list(parse_feed_items(FEED, marketplace="naijamall"))


def test_items_become_records_keyed_by_element_name() -> None:
    first, second = items()
    assert first["g:id"] == "TV_123456"
    assert first["g:price"] == "159000.00 NGN"  # not the nested shipping price
    assert first["g:shipping"] == {
        "g:country": "NG",
        "g:service": "Standard",
        "g:price": "4500.00 NGN",
    }
    assert second["title"] == "Thermos Stainless King 1.2 L Flask"


ATOM_FEED = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:g="http://base.google.com/ns/1.0">
<title>Shop</title>
<entry>
<g:id>A-1</g:id>
<title>  Kettle  </title>
<link href="https://shop.example/a-1"/>
<g:additional_image_link>https://img.example/1.png</g:additional_image_link>
<g:additional_image_link>https://img.example/2.png</g:additional_image_link>
<g:additional_image_link>https://img.example/3.png</g:additional_image_link>
<g:shipping><g:price>5.00 USD</g:price></g:shipping>
<g:shipping><g:price>9.00 USD</g:price></g:shipping>
<g:mpn></g:mpn>
<g:brand/>
</entry>
</feed>
"""


def test_atom_entries_repeated_and_empty_elements_become_records() -> None:
    """Atom `<link href>` is its URL, a repeated element a list (of records when nested), an
    empty element "" and text is stripped."""
    (entry,) = parse_feed_items(ATOM_FEED, marketplace="naijamall")
    assert entry == {
        "g:id": "A-1",
        "title": "Kettle",
        "link": "https://shop.example/a-1",
        "g:additional_image_link": [
            "https://img.example/1.png",
            "https://img.example/2.png",
            "https://img.example/3.png",
        ],
        "g:shipping": [{"g:price": "5.00 USD"}, {"g:price": "9.00 USD"}],
        "g:mpn": "",
        "g:brand": "",
    }


def test_feed_item_becomes_an_offer() -> None:
    offer = adapter().normalize_record(items()[0])
    assert offer.external_id == "TV_123456"
    assert offer.title == 'LG 22LB4510 - 22" LED TV - 1080p (FullHD)'
    assert (offer.price_minor, offer.currency) == (15900000, "NGN")
    assert offer.description == "Attractively styled & boasting stunning picture quality."
    assert offer.brand == "LG"
    assert offer.model == offer.mpn == "22LB4510/US"
    assert offer.gtin == "71919219405200"
    assert offer.category == "Flat Panel TVs"
    assert offer.product_url == "https://naijamall.example.ng/electronics/tv/22LB4510.html"
    assert offer.image_url == "https://images.naijamall.example.ng/TV_123456.png"
    assert offer.available is True
    assert offer.rating is None


def test_sale_price_wins_and_plain_rss_elements_are_read() -> None:
    offer = adapter().normalize_record(items()[1])
    assert offer.price_minor == 1999950
    assert offer.title == "Thermos Stainless King 1.2 L Flask"
    assert offer.product_url == "https://naijamall.example.ng/thermos-sk"
    assert offer.available is True  # pre-orders can be bought now
    assert offer.gtin is None  # bad check digit
    assert offer.category is None  # a numeric taxonomy id is not a category name


def test_sale_price_outside_its_window_does_not_apply() -> None:
    item = {
        "g:price": "25000.00 NGN",
        "g:sale_price": "19999.00 NGN",
        "g:sale_price_effective_date": "2026-02-24T11:07+0100/2026-02-28T23:07+0100",
    }
    assert effective_price_text(item, datetime(2026, 2, 25, tzinfo=UTC)) == "19999.00 NGN"
    assert effective_price_text(item, datetime(2026, 3, 5, tzinfo=UTC)) == "25000.00 NGN"
    assert sale_price_applies("not a window", datetime(2026, 3, 5, tzinfo=UTC))


@pytest.mark.parametrize(
    ("word", "available"),
    [
        ("in_stock", True),
        ("in stock", True),
        ("backorder", True),
        ("preorder", True),
        ("out_of_stock", False),
        ("out of stock", False),
        ("who knows", False),
    ],
)
def test_availability_words(word: str, available: bool) -> None:
    item = {**items()[0], "g:availability": word}
    assert adapter().normalize_record(item).available is available


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"g:id": ""}, "missing_id"),
        ({"g:title": ""}, "missing_title"),
        ({"g:title": "LG \ufffd TV"}, "broken_utf8"),
        ({"g:price": ""}, "missing_price"),
        ({"g:price": "159000.00"}, "bad_price"),
        ({"g:price": "cheap NGN"}, "bad_price"),
        ({"g:price": "159000.00 XYZ"}, "unknown_currency"),
        ({"g:price": "-5.00 NGN"}, "non_positive_price"),
    ],
)
def test_malformed_items_are_rejected(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(BadPayload) as caught:
        adapter().normalize_record({**items()[0], **changes})
    assert caught.value.reason == reason


def test_feed_is_fetched_once_and_paged() -> None:
    transport = RecordingTransport(lambda request: httpx.Response(200, text=FEED))
    feed = GoogleFeedAdapter(
        marketplace_config(
            "google_feed", currency="NGN", page_size=1, options={"feed_path": "feed.xml"}
        ),
        transport=transport,
    )
    pages = list(feed.fetch_catalog_pages())
    assert [[record["g:id"] for record in page.records] for page in pages] == [
        ["TV_123456"],
        ["FLASK_9"],
    ]
    assert len(transport.requests) == 1
    assert transport.requests[0].url.path == "/feed.xml"


def test_a_broken_byte_in_one_title_loses_only_that_item() -> None:
    body = FEED.encode("utf-8").replace(b"LG 22LB4510", b"LG \xff22LB4510")
    transport = RecordingTransport(lambda request: httpx.Response(200, content=body))
    feed = GoogleFeedAdapter(marketplace_config("google_feed", currency="NGN"), transport=transport)
    records = [record for page in feed.fetch_catalog_pages() for record in page.records]
    assert len(records) == 2
    with pytest.raises(BadPayload) as caught:
        feed.normalize_record(records[0])
    assert caught.value.reason == "broken_utf8"
    assert feed.normalize_record(records[1]).external_id == "FLASK_9"


def test_a_feed_that_is_not_xml_is_a_bad_payload() -> None:
    transport = RecordingTransport(lambda request: httpx.Response(200, text="<rss><channel><item>"))
    feed = GoogleFeedAdapter(marketplace_config("google_feed", currency="NGN"), transport=transport)
    with pytest.raises(BadPayload) as caught:
        list(feed.fetch_catalog_pages())
    assert caught.value.reason == "invalid_xml"


def test_a_feed_is_catalog_only() -> None:
    feed = adapter()
    assert feed.capabilities == frozenset({Capability.CATALOG})
    with pytest.raises(Unsupported):
        feed.lookup_offer("TV_123456")
    with pytest.raises(Unsupported):
        feed.place_order(OrderRequest("r", "k", [], None, "NGN"))  # type: ignore[arg-type]
    with pytest.raises(Unsupported):
        feed.order_status("1")


def read(text: str, held: dict[str, str], piece: int = 7) -> list[FeedItem]:
    """The feed's items read in `piece`-character chunks (items straddle them)."""
    chunks = [text[i : i + piece] for i in range(0, len(text), piece)]
    return list(read_feed_items(chunks, marketplace="naijamall", held_sources=held))


def test_items_seen_before_are_not_parsed_and_the_others_are_as_parse_feed_items_reads_them() -> (
    None
):
    first = read(FEED, {})
    assert [item.record for item in first] == items()
    assert all(item.source and item.held_hash is None for item in first)
    assert len({item.source for item in first}) == 2
    again = read(FEED, {first[0].source: "held-hash"}, piece=4096)  # type: ignore[dict-item]
    assert again == [FeedItem(first[0].source, None, "held-hash"), first[1]]


def test_an_item_or_its_namespaces_changed_has_another_source() -> None:
    first = read(FEED, {})
    price_moved = read(FEED.replace("25000.00 NGN", "24000.00 NGN"), {})
    assert price_moved[0].source == first[0].source
    assert price_moved[1].source != first[1].source
    # The head's own elements do not change what items parse into (a build date moves daily).
    dated = FEED.replace("<channel>", "<channel><lastBuildDate>Fri, 04 Dec 2026</lastBuildDate>")
    assert [item.source for item in read(dated, {})] == [item.source for item in first]
    # Another namespace for `g:` does: the same text parses into other keys.
    other = FEED.replace("http://base.google.com/ns/1.0", "http://example.com/g")
    assert [item.record for item in read(other, {})] != [item.record for item in first]
    assert {item.source for item in read(other, {})}.isdisjoint({i.source for i in first})


@pytest.mark.parametrize(
    "change",
    [
        ("<channel>", "<channel>\n<!-- <item><g:id>X</g:id></item> -->"),  # a comment in the head
        ("<g:id>FLASK_9</g:id>", "<g:id><![CDATA[FLASK_9]]></g:id>"),  # CDATA in an item
        ("</item>\n<item>", "</item>\n<title>between</title>\n<item>"),  # markup between items
    ],
)
def test_text_that_cannot_be_cut_safely_is_parsed_whole(change: tuple[str, str]) -> None:
    feed = FEED.replace(*change)
    plain = list(parse_feed_items(feed, marketplace="naijamall"))
    seen = {item.source: "held-hash" for item in read(feed, {}) if item.source}
    again = read(feed, seen)
    # Items before the text in question may be skipped; from it on, every item is parsed.
    for item, record in zip(again, plain, strict=True):
        skipped = FeedItem(item.source, None, "held-hash")
        assert item == (skipped if item.source else FeedItem(None, record, None))
    assert again[-1].source is None


def test_an_atom_feed_is_parsed_whole() -> None:
    read_items = read(ATOM_FEED, {})
    assert [item.record for item in read_items] == list(
        parse_feed_items(ATOM_FEED, marketplace="naijamall")
    )
    assert all(item.source is None for item in read_items)


@pytest.mark.parametrize(
    "broken",
    [
        FEED.replace("<g:brand>LG</g:brand>", "<g:brand>LG</g:brnd>"),  # a changed item
        FEED[: FEED.rindex("</channel>")],  # the document's end, after items held
    ],
)
def test_a_malformed_feed_fails_as_when_every_item_is_parsed(broken: str) -> None:
    seen = {item.source: "held-hash" for item in read(FEED, {})}
    for held in ({}, seen):
        with pytest.raises(BadPayload) as caught:
            read(broken, held)  # type: ignore[arg-type]
        assert caught.value.reason == "invalid_xml"


def test_an_adapter_given_held_sources_pages_digests_and_held_hashes() -> None:
    transport = RecordingTransport(lambda request: httpx.Response(200, text=FEED))
    feed = GoogleFeedAdapter(
        marketplace_config("google_feed", currency="NGN", page_size=1), transport=transport
    )
    plain = list(feed.fetch_catalog_pages())
    assert [page.sources for page in plain] == [None, None]
    first = read(FEED, {})
    feed.held_sources = {first[1].source: "held-hash"}  # type: ignore[dict-item]
    pages = list(feed.fetch_catalog_pages())
    assert [(page.page, page.records, page.sources, page.held_hashes) for page in pages] == [
        (1, [first[0].record], [first[0].source], [None]),
        (2, [None], [first[1].source], ["held-hash"]),
    ]

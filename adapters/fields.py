"""Turning one raw marketplace field into one normalized Offer field, the same way in every adapter.

Each `require_*` function raises :class:`BadPayload` with one of the stable rejection reasons
(``missing_id``, ``missing_title``, ``missing_price``, ``bad_price``, ``non_positive_price``,
``unknown_currency``, ``broken_utf8``, ``bad_record``); each `optional_*` function returns None for
a value it cannot use, because a missing brand or rating is no reason to lose an offer.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import Any

import httpx

from adapters.base import (
    MAX_DESCRIPTION_CHARS,
    MAX_TITLE_CHARS,
    BadPayload,
    clean_text,
    loggable_url,
    minor_units_or_reject,
)
from onecart.money import (
    MoneyError,
    parse_amount_with_currency,
    parse_decimal,
    parse_minor_with_scale,
)

REPLACEMENT_CHARACTER = "\ufffd"
_JSON_WHITESPACE = " \t\r\n"

# --- Response bodies ------------------------------------------------------------------------


def decode_body_text(response: httpx.Response) -> str:
    """The body as text; undecodable bytes become U+FFFD instead of failing the whole page.

    One record with a broken byte in its title must not cost us the other records of its page:
    the bad record is rejected later (``broken_utf8``) when its title contains U+FFFD.
    """
    encoding = response.charset_encoding or "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        encoding = "utf-8"
    return response.content.decode(encoding, errors="replace")


def decode_json_body(response: httpx.Response, *, marketplace: str) -> Any:
    """The JSON body decoded leniently (see :func:`decode_body_text`); None for an empty body.

    Raises BadPayload("invalid_json") when the text is not JSON at all.
    """
    text = decode_body_text(response)
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadPayload(
            "invalid_json",
            detail=f"{loggable_url(response.request.url)}: {exc}",
            marketplace=marketplace,
        ) from exc


def iter_json_array(chunks: Iterable[str], *, marketplace: str) -> Iterator[Any]:
    """The elements of one top-level JSON array arriving as text chunks, one at a time.

    Lets a single huge list (Fake Store's whole catalog) be handed on page by page while it is
    still downloading. Raises BadPayload("invalid_json") when the text is not a JSON array.
    """
    decoder = json.JSONDecoder()
    source = iter(chunks)
    buffer = ""
    position = 0

    def invalid(problem: str) -> BadPayload:
        return BadPayload("invalid_json", detail=problem, marketplace=marketplace)

    def fill() -> bool:
        """Append the next chunk (dropping what was consumed); False at the end of the body."""
        nonlocal buffer, position
        for chunk in source:
            if chunk:
                buffer = buffer[position:] + chunk
                position = 0
                return True
        return False

    def next_char() -> str | None:
        """The next character that is not whitespace, or None at the end of the body."""
        nonlocal position
        while True:
            while position < len(buffer) and buffer[position] in _JSON_WHITESPACE:
                position += 1
            if position < len(buffer):
                return buffer[position]
            if not fill():
                return None

    if next_char() != "[":
        raise invalid(f"not a JSON list: {buffer[position : position + 40]!r}")
    position += 1
    if next_char() == "]":
        position += 1
    else:
        while True:
            if next_char() is None:
                raise invalid("the list ends early")
            while True:
                try:
                    value, end = decoder.raw_decode(buffer, position)
                except ValueError as exc:
                    if not fill():  # incomplete so far, or invalid: more text tells which
                        raise invalid(str(exc)) from exc
                    continue
                if end == len(buffer) and fill():
                    continue  # a number or literal may go on in the next chunk
                break
            yield value
            position = end
            separator = next_char()
            if separator == ",":
                position += 1
            elif separator == "]":
                position += 1
                break
            else:
                raise invalid(f"expected ',' or ']' at {buffer[position : position + 40]!r}")
    if next_char() is not None:
        raise invalid(f"text after the list: {buffer[position : position + 40]!r}")


def marketplace_message(body: str | None) -> str:
    """The human message inside a marketplace's error body (WooCommerce `message`, Shopify
    `errors`, DummyJSON `message`, GraphQL `errors[].message`), else the body's start."""
    if not body:
        return ""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    found = _message_in(parsed)
    return found if found else body.strip()[:300]


def _message_in(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "; ".join(text for text in (_message_in(item) for item in value) if text)
    if isinstance(value, Mapping):
        for key in ("message", "errors", "error", "error_description", "detail"):
            if key in value:
                text = _message_in(value[key])
                if text:
                    return text
        # Shopify REST validation errors: {"errors": {"line_items": ["is invalid"]}}
        parts = [f"{key} {_message_in(item)}" for key, item in value.items() if _message_in(item)]
        return "; ".join(parts)
    return ""


# --- Paths inside records -------------------------------------------------------------------


def dig(value: Any, path: str) -> Any:
    """The value at a dotted path (`images.0.src`), or None when any step is missing.

    Digits index lists; every other segment is a mapping key. An empty path is the value itself.
    """
    if path == "":
        return value
    current = value
    for segment in path.split("."):
        if isinstance(current, Mapping):
            if segment not in current:
                return None
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit():
            index = int(segment)
            if index >= len(current):
                return None
            current = current[index]
        else:
            return None
    return current


def first_of(value: Any) -> Any:
    """The first element of a list (None when empty), or the value itself."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


# --- Required fields ------------------------------------------------------------------------


def reject(reason: str, detail: str, *, marketplace: str) -> BadPayload:
    """The BadPayload for a record we quarantine; `detail` says what was wrong with it."""
    return BadPayload(reason, detail=detail, marketplace=marketplace)


@contextmanager
def naming_the_record(external_id: str) -> Iterator[None]:
    """Every BadPayload raised inside names `external_id`, the id the record was read with: a
    record quarantined for its title or price still claims its id (warehouse.offers)."""
    try:
        yield
    except BadPayload as exc:
        if exc.external_id is None:
            exc.external_id = external_id
        raise


def require_mapping(record: object, *, marketplace: str) -> Mapping[str, Any]:
    """The record itself when it is a JSON object; anything else is ``bad_record``."""
    if not isinstance(record, Mapping):
        raise reject("bad_record", f"record is a {type(record).__name__}", marketplace=marketplace)
    return record


def require_external_id(value: object, *, marketplace: str) -> str:
    """The marketplace's id as text: ints and non-empty strings; absent or empty is ``missing_id``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise reject("missing_id", "no id", marketplace=marketplace)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise reject(
            "bad_record", f"id is not text or an integer: {value!r}", marketplace=marketplace
        )
    text = str(value).strip()
    if REPLACEMENT_CHARACTER in text or not text.isprintable():
        raise reject("bad_record", f"id is not printable text: {text!r}", marketplace=marketplace)
    return text


def require_title(value: object, *, marketplace: str) -> str:
    """The title as stored: plain text, never stripped of markup (the storefront escapes it).

    A title with U+FFFD came from bytes that were not valid UTF-8 (see decode_body_text): the
    marketplace's real title is unknown, so the record is rejected as ``broken_utf8``.
    """
    if value is None:
        raise reject("missing_title", "no title", marketplace=marketplace)
    if not isinstance(value, str):
        raise reject("bad_record", f"title is not text: {value!r}"[:200], marketplace=marketplace)
    if REPLACEMENT_CHARACTER in value:
        raise reject("broken_utf8", f"title {value[:120]!r}", marketplace=marketplace)
    title = clean_text(value, limit=MAX_TITLE_CHARS)
    if not title:
        raise reject("missing_title", "empty title", marketplace=marketplace)
    return title


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def require_decimal_price(value: object, currency: str, *, marketplace: str) -> int:
    """Minor units of a price sent as a JSON number or a decimal string ("19.99")."""
    if _is_missing(value):
        raise reject("missing_price", "no price", marketplace=marketplace)
    try:
        amount = parse_decimal(value)
    except MoneyError as exc:
        raise reject("bad_price", str(exc), marketplace=marketplace) from exc
    return minor_units_or_reject(amount, currency, marketplace=marketplace)


def require_minor_unit_price(
    value: object, scale: object, currency: str, *, marketplace: str
) -> int:
    """Minor units of a price sent WooCommerce-style: an integer string plus its own scale.

    The scale is the marketplace's (a KES store may use 0 decimals); the result is in the ISO
    exponent of `currency`, so "1105" at scale 0 is 110500 KES cents, never a hard-coded /100.
    """
    if _is_missing(value):
        raise reject("missing_price", "no price", marketplace=marketplace)
    if _is_missing(scale):
        raise reject("bad_price", "minor-unit price without its scale", marketplace=marketplace)
    try:
        amount = parse_minor_with_scale(value, scale)
    except MoneyError as exc:
        raise reject("bad_price", str(exc), marketplace=marketplace) from exc
    return minor_units_or_reject(amount, currency, marketplace=marketplace)


_AMOUNT_AND_WORD = re.compile(r"^\s*[+-]?\d+(?:\.\d+)?\s+(\S+)\s*$")


def require_amount_currency_price(value: object, *, marketplace: str) -> tuple[int, str]:
    """(minor units, currency) of a Google-feed style price: "15.00 USD"."""
    if _is_missing(value):
        raise reject("missing_price", "no price", marketplace=marketplace)
    try:
        amount, currency = parse_amount_with_currency(value)
    except MoneyError as exc:
        # "15.00 US$" or "15.00 EURO" names a currency we do not know; "fifteen" is no number.
        word = _AMOUNT_AND_WORD.match(value) if isinstance(value, str) else None
        reason = "unknown_currency" if word else "bad_price"
        raise reject(reason, str(exc), marketplace=marketplace) from exc
    return minor_units_or_reject(amount, currency, marketplace=marketplace), currency


# --- Optional fields ------------------------------------------------------------------------


def optional_text(value: object, *, limit: int = MAX_TITLE_CHARS) -> str | None:
    """Short text (brand, category, sku) or None when absent, empty or not text-like."""
    if value is None or isinstance(value, bool | Mapping | list):
        return None
    text = clean_text(value, limit=limit)
    return text or None


def optional_url(value: object) -> str | None:
    """An absolute http(s) URL, or None (a relative or javascript: link is useless to shoppers)."""
    text = optional_text(first_of(value), limit=2_000)
    if text is None or not re.match(r"^https?://[^\s]+$", text, flags=re.IGNORECASE):
        return None
    return text


def optional_int(value: object) -> int | None:
    """A count (stock, number of ratings) from an int, an integral float or a digit string."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None


def optional_count(value: object) -> int | None:
    """A non-negative count, or None."""
    number = optional_int(value)
    return number if number is not None and number >= 0 else None


def category_leaf(value: object) -> str | None:
    """The most specific category: the last element of a list or of "A > B > C"."""
    if isinstance(value, list):
        value = value[-1] if value else None
        if isinstance(value, Mapping):
            value = value.get("name")
    text = optional_text(value)
    if text is None:
        return None
    leaf = text.split(">")[-1].strip()
    return leaf or None


# Availability words seen in feeds and JSON APIs, after lower-casing and turning spaces/hyphens
# into underscores. Pre-orders and back-orders can be bought now (they ship later).
AVAILABLE_WORDS = frozenset(
    {
        "in_stock",
        "instock",
        "available",
        "available_for_order",
        "limited_availability",
        "low_stock",
        "preorder",
        "pre_order",
        "backorder",
        "back_order",
        "onbackorder",
        "yes",
        "true",
    }
)
UNAVAILABLE_WORDS = frozenset(
    {"out_of_stock", "outofstock", "sold_out", "discontinued", "unavailable", "no", "false"}
)


def availability_from_word(value: object) -> bool | None:
    """True/False for a known availability word ("in stock", "out_of_stock", "preorder"…),
    None when the value says nothing we recognise."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return None
    word = re.sub(r"[\s\-]+", "_", value.strip().lower())
    if word in AVAILABLE_WORDS:
        return True
    if word in UNAVAILABLE_WORDS:
        return False
    return None


def availability_from_value(value: object) -> bool | None:
    """Availability from a bool, a stock number (> 0) or an availability word."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value > 0
    return availability_from_word(value)


# --- Descriptions ---------------------------------------------------------------------------

_LOOKS_LIKE_HTML = re.compile(r"<[A-Za-z/!]|&(?:#\d+|#x[0-9A-Fa-f]+|[A-Za-z]+);")
_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "tr",
        "ul",
    }
)
_INVISIBLE_TAGS = frozenset({"script", "style", "template", "head", "title"})


class _TextCollector(HTMLParser):
    """Collects the visible text of an HTML fragment, with line breaks at block boundaries."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE_TAGS:
            self._hidden_depth += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE_TAGS:
            self._hidden_depth = max(self._hidden_depth - 1, 0)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden_depth:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """The visible text of an HTML fragment: tags dropped, scripts and styles dropped, entities
    decoded, whitespace collapsed, paragraphs kept as line breaks."""
    collector = _TextCollector()
    collector.feed(html)
    collector.close()
    lines = (
        re.sub(r"[ \t\r\f\v\xa0]+", " ", line).strip()
        for line in "".join(collector.parts).split("\n")
    )
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def description_text(value: object, *, limit: int = MAX_DESCRIPTION_CHARS) -> str:
    """A description as plain text cut to `limit`; HTML descriptions are converted to text."""
    if value is None or isinstance(value, bool | Mapping | list):
        return ""
    text = str(value)
    # Cut long bodies before parsing: a 100 KB description never needs more than this.
    text = text[: limit * 4]
    if _LOOKS_LIKE_HTML.search(text):
        text = html_to_text(text)
    return clean_text(text, limit=limit)

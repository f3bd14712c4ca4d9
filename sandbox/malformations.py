"""The sandbox's malformed records: which kinds there are, and the text each kind is built from.

sandbox.world decides which records are malformed (``World.malformation``); each marketplace's
serializer then writes the kind in its own format. The pipeline must quarantine every one of them
with a reason, and the storefront must show markup in titles as text.
"""

from __future__ import annotations

from collections.abc import Sequence

HUGE_DESCRIPTION_CHARS = 100 * 1024

MALFORMATION_KINDS: tuple[str, ...] = (
    "missing_price",
    "negative_price",
    "unknown_currency",
    "html_title",
    "huge_description",
    "broken_utf8",
    "duplicate_id",
)

# A private-use character placed in a title that must go out as invalid UTF-8; the serializers
# replace its encoded bytes with BROKEN_UTF8_BYTES (see sandbox.http).
BROKEN_UTF8_SENTINEL = "\ue000"
BROKEN_UTF8_BYTES = b"\xff\xfe"


def huge_text(sentences: Sequence[str]) -> str:
    """A description of at least 100 KB made by repeating `sentences` (valid, just too long)."""
    paragraph = " ".join(sentences) + " "
    repeats = HUGE_DESCRIPTION_CHARS // max(1, len(paragraph)) + 1
    return paragraph * repeats


def html_title(title: str, variant: int) -> str:
    """A title with markup in it: a valid record the storefront must escape, not execute."""
    if variant % 2:
        return f"<script>alert('onecart')</script>{title}"
    return f'{title} <b>HOT DEAL</b> <img src=x onerror="alert(1)">'


def broken_title(title: str) -> str:
    """A title whose middle will be written as raw invalid UTF-8 bytes."""
    words = title.split(" ")
    middle = max(1, len(words) // 2)
    return " ".join([*words[:middle], f"Edici{BROKEN_UTF8_SENTINEL}n", *words[middle:]])


def malformed_title(title: str, index: int, kind: str | None) -> str:
    """Offer `index`'s title as a record of malformation `kind` writes it: with markup for
    html_title, with invalid bytes for broken_utf8, unchanged for every other kind."""
    if kind == "html_title":
        return html_title(title, index)
    if kind == "broken_utf8":
        return broken_title(title)
    return title

"""Safe highlighting: the words of a title that matched the query, as <mark>, and nothing else.

The index says where the matches are (UTF-8 byte ranges of the title, Meilisearch's
`_matchesPosition`); the title is escaped as a whole and only our <mark> tags are added, so
nothing a marketplace sent is ever rendered as HTML.
"""

from __future__ import annotations

from collections.abc import Iterable

from markupsafe import Markup, escape

# Where a <mark> opens or closes, while the title is escaped: NUL is taken out of every title
# first, and escaping leaves it as it is.
_BOUNDARY = "\x00"


def highlight_title(title: str, matches: Iterable[tuple[int, int]]) -> Markup:
    """The title escaped, with each matched (start, length) byte range wrapped in <mark>.

    Overlapping or out-of-range ranges are clipped; a stray NUL in a marketplace's title never
    reaches the page. The boundaries are marked in the raw title, which is then escaped once
    (a listing highlights two dozen titles per page).
    """
    text = title.replace(_BOUNDARY, "")
    # An ASCII title's byte offsets are its character offsets: it is sliced as it is (most
    # titles). Any other goes through its UTF-8 bytes, which also drops a lone surrogate that
    # could not be sent, and a character a byte range cuts in two.
    raw: str | bytes = text if text.isascii() else text.encode("utf-8", "surrogatepass")
    boundary: str | bytes = _BOUNDARY if isinstance(raw, str) else _BOUNDARY.encode()
    pieces: list[str | bytes] = []
    cursor = 0
    for start, length in sorted(matches):
        start = max(start, cursor)
        end = min(start + length, len(raw))
        if start >= end:
            continue
        pieces += (raw[cursor:start], boundary, raw[start:end], boundary)
        cursor = end
    if not pieces:
        return escape(text if isinstance(raw, str) else _text(raw))
    pieces.append(raw[cursor:])
    marked = "".join(pieces) if isinstance(raw, str) else _text(b"".join(pieces))  # type: ignore[arg-type]
    # Text, <mark>, text, </mark>, ...: the pieces between boundaries alternate.
    parts = str(escape(marked)).split(_BOUNDARY)
    html = [parts[0]]
    for number, part in enumerate(parts[1:]):
        html += ("<mark>" if number % 2 == 0 else "</mark>", part)
    return Markup("".join(html))


def _text(piece: bytes) -> str:
    """The title's bytes as text (a byte range cut inside a character loses that character)."""
    return piece.decode("utf-8", "ignore")

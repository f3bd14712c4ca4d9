"""Safe highlighting: the words of a title that matched the query, as <mark>, and nothing else.

The index says where the matches are (UTF-8 byte ranges of the title, Meilisearch's
`_matchesPosition`); every piece of the title is escaped on its own and only our <mark> tags are
added, so nothing a marketplace sent is ever rendered as HTML.
"""

from __future__ import annotations

from collections.abc import Iterable

from markupsafe import Markup, escape


def highlight_title(title: str, matches: Iterable[tuple[int, int]]) -> Markup:
    """The title escaped, with each matched (start, length) byte range wrapped in <mark>.

    Overlapping or out-of-range ranges are clipped; a stray NUL in a marketplace's title never
    reaches the page.
    """
    text = title.replace("\x00", "")
    # An ASCII title's byte offsets are its character offsets: it is sliced as it is (most
    # titles; a listing highlights two dozen per page). Any other goes through its UTF-8 bytes,
    # which also drops a lone surrogate that could not be sent.
    raw: str | bytes = text if text.isascii() else text.encode("utf-8", "surrogatepass")
    pieces: list[str] = []
    cursor = 0
    for start, length in sorted(matches):
        start = max(start, cursor)
        end = min(start + length, len(raw))
        if start >= end:
            continue
        pieces.append(escape(_text(raw[cursor:start])))
        pieces.append(f"<mark>{escape(_text(raw[start:end]))}</mark>")
        cursor = end
    pieces.append(escape(_text(raw[cursor:])))
    return Markup("".join(pieces))


def _text(piece: str | bytes) -> str:
    """A piece of the title as text (a byte range cut inside a character loses that character)."""
    return piece if isinstance(piece, str) else piece.decode("utf-8", "ignore")

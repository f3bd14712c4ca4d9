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
    raw = title.replace("\x00", "").encode("utf-8", "surrogatepass")
    pieces: list[str] = []
    cursor = 0
    for start, length in sorted(matches):
        start = max(start, cursor)
        end = min(start + length, len(raw))
        if start >= end:
            continue
        pieces.append(str(escape(raw[cursor:start].decode("utf-8", "ignore"))))
        pieces.append(f"<mark>{escape(raw[start:end].decode('utf-8', 'ignore'))}</mark>")
        cursor = end
    pieces.append(str(escape(raw[cursor:].decode("utf-8", "ignore"))))
    return Markup("".join(pieces))

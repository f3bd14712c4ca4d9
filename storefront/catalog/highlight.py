"""Safe highlighting: Meilisearch's highlighted titles as HTML with <mark>, nothing else.

The index wraps matched words in sentinel tags (search_index.listings.HIGHLIGHT_PRE/POST) that
cannot occur in escaped text; the whole title is escaped first and only then are the sentinels
turned into <mark> elements, so nothing a marketplace sent is ever rendered as HTML.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from search_index.listings import HIGHLIGHT_POST, HIGHLIGHT_PRE


def render_highlight(formatted: str | None, fallback: str = "") -> Markup:
    """Escape a highlighted title, then turn the sentinel tags into <mark> elements.

    Marketplace titles may contain markup (even `<script>`); escaping the whole text first and only
    then inserting our own tags means nothing a marketplace sent is ever rendered as HTML.
    """
    text = formatted if isinstance(formatted, str) else fallback
    escaped = str(escape(text))
    html = escaped.replace(HIGHLIGHT_PRE, "<mark>").replace(HIGHLIGHT_POST, "</mark>")
    # A stray NUL in a marketplace's title must not reach the page.
    return Markup(html.replace("\x00", ""))

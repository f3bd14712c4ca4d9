"""Text of unknown direction (a shopper's query, a marketplace's title) inside our own text.

In the page such text goes in a `<bdi>` (or an element with `dir="auto"`), which isolates it:
a right-to-left override (U+202E) or an Arabic word in it cannot reorder the quote marks and
words around it. A `<title>` holds no markup, so :func:`without_bidi_controls` drops the
invisible direction controls there instead (the letters themselves still show in their own
direction). Plain text without markup (flash messages) uses onecart.bidi.isolated.
"""

from __future__ import annotations

from markupsafe import Markup

from onecart.bidi import BIDI_CONTROLS


def without_bidi_controls(text: str) -> Markup:
    """The (already escaped) text of a template's block, less its bidi formatting characters."""
    return Markup(BIDI_CONTROLS.sub("", str(text)))

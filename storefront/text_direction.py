"""Text of unknown direction (a shopper's query, a marketplace's title) inside our own text.

In the page such text goes in a `<bdi>` (or an element with `dir="auto"`), which isolates it:
a right-to-left override (U+202E) or an Arabic word in it cannot reorder the quote marks and
words around it. A `<title>` holds no markup, so :func:`without_bidi_controls` drops the
invisible direction controls there instead (the letters themselves still show in their own
direction).
"""

from __future__ import annotations

import re

from markupsafe import Markup

# ALM, LRM, RLM, the embeddings and overrides (LRE, RLE, PDF, LRO, RLO) and the isolates
# (LRI, RLI, FSI, PDI): every explicit or implicit bidi formatting character of Unicode's
# bidirectional algorithm (UAX #9).
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def without_bidi_controls(text: str) -> Markup:
    """The (already escaped) text of a template's block, less its bidi formatting characters."""
    return Markup(BIDI_CONTROLS.sub("", str(text)))

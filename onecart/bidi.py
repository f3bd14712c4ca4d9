"""Isolating text of unknown direction (a marketplace's title, a shopper's query) inside our own
sentences, where no markup can do it: flash messages, notices built by the services.

Unicode's first-strong isolate (FSI, U+2068) … pop directional isolate (PDI, U+2069) makes the
text inside take its own direction without reordering the words and quote marks around it, and
the PDI ends any override (U+202E) or embedding left open inside (UAX #9, rule X6a).
"""

from __future__ import annotations

import re

FIRST_STRONG_ISOLATE = "\u2068"
POP_DIRECTIONAL_ISOLATE = "\u2069"

# ALM, LRM, RLM, the embeddings and overrides (LRE, RLE, PDF, LRO, RLO) and the isolates
# (LRI, RLI, FSI, PDI): every explicit or implicit bidi formatting character of UAX #9.
BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def isolated(text: str) -> str:
    """`text` as a directional isolate, to quote inside a sentence of ours. Isolates inside it
    are dropped first, so a stray PDI in a title cannot end ours early."""
    inner = re.sub("[\u2066-\u2069]", "", text)
    return f"{FIRST_STRONG_ISOLATE}{inner}{POP_DIRECTIONAL_ISOLATE}"

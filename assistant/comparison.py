"""A shopper's wish to compare the offers of the same product across marketplaces ("compare
prices", "which shop is cheapest?", "price comparison"). It asks for no product and excludes
none: "headphones not Sony, compare prices" excluded the words "compare prices" as one more
thing not wanted. The answer lists each suggestion's cheapest fitting offer per marketplace
(assistant.retrieval).
"""

from __future__ import annotations

import re

from assistant.prompt_text import PromptText, take_first

_SHOPS = r"(?:marketplaces?|shops?|stores?|sellers?|sites?|retailers?|vendors?)"
_COMPARE_RE = re.compile(
    r"\b(?:and\s+|please\s+|then\s+)?(?:"
    # Only prices, offers or shops are compared: "compare with my old one" is no such wish.
    r"(?:compare|comparing)(?:\s+(?:the|all|their|its))?"
    rf"\s+(?:prices?|offers?|deals?|costs?|{_SHOPS})|"
    r"(?:compare|comparing)(?:\s+(?:it|them|these|those|they))?"
    rf"(?=\s+(?:across|between|on|at|in)\s+(?:the\s+|all\s+|different\s+|every\s+)?{_SHOPS})|"
    r"(?:a\s+)?(?:price|cost)\s+comparisons?(?:\s+(?:of|for))?|"
    rf"side[- ]by[- ]side|which\s+{_SHOPS}\s+(?:is|are|has|have|sells?\s+it)\s+"
    r"(?:the\s+)?(?:cheapest|best(?:\s+price)?|lowest(?:\s+price)?)|"
    r"where\s+(?:is\s+it|it'?s|are\s+they)\s+(?:the\s+)?cheapest|"
    rf"(?:best|lowest)\s+prices?\s+(?:across|between|on|at)\s+(?:the\s+|all\s+)?{_SHOPS}|"
    rf"(?:across|between)\s+(?:the\s+|all\s+|different\s+|every\s+)?{_SHOPS}"
    r")"
    rf"(?:\s+(?:across|between|on|at|from|in)\s+(?:the\s+|all\s+|different\s+|every\s+)?"
    rf"{_SHOPS})?\b",
    re.IGNORECASE,
)


def parse_compare(state: PromptText) -> bool:
    """Whether the request asks to compare prices, every phrase saying so taken."""
    compare = False
    while take_first(state, _COMPARE_RE, "compare"):
        compare = True
    return compare

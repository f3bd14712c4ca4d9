"""Sizes in a shopper's request ("65-inch", "256GB", "500ml"), wanted or said not to be ("not
65 inch"), and how a size appears in a product's title or description."""

from __future__ import annotations

import re
from typing import Final

from assistant.prompt_text import PromptText

_SPEC_RES: Final = (
    # "pouces" is French for inches ("tv 50 pouces" searched the word).
    ("inch", re.compile(r"\b(?P<n>\d{2,3})\s*(?:-\s*)?(?:inch(?:es)?\b|pouces?\b|in\b|\"|'')")),
    ("storage", re.compile(r"\b(?P<n>\d{2,4})\s*(?P<u>gb|tb)\b", re.IGNORECASE)),
    ("volume", re.compile(r"\b(?P<n>\d{1,4}(?:\.\d)?)\s*(?P<u>ml|oz|l|litres?|liters?)\b")),
)


# "not 65 inch", "no 128gb": a size said not to be wanted.
_NEGATED_SPEC_BEFORE = re.compile(
    r"(?<![a-z])(?:but not|not|no|without|except(?: for)?|excluding|isn'?t|aren'?t|nothing|"
    r"never)\s+(?:(?:a|an|the|any)\s+)?$"
)


def parse_specs(state: PromptText) -> tuple[list[str], list[str]]:
    """The sizes asked for, and those said not to be wanted (their cue taken too)."""
    specs: list[str] = []
    excluded: list[str] = []
    for kind, pattern in _SPEC_RES:
        for match in pattern.finditer(state.folded):
            if not state.free(match.start(), match.end()):
                continue
            number = match.group("n")
            if kind == "inch":
                spec = f"{number}-inch"
            elif kind == "storage":
                spec = f"{number}{match.group('u').upper()}"
            else:
                unit = match.group("u").lower()
                unit = "L" if unit.startswith(("l", "litre", "liter")) and unit != "ml" else unit
                spec = f"{number}{unit}"
            cue = _NEGATED_SPEC_BEFORE.search(state.folded[: match.start()])
            if cue is not None and state.free(cue.start(), match.start()):
                state.take(cue.start(), match.end(), "excluded-spec")
                if spec not in excluded:
                    excluded.append(spec)
                continue
            state.take(match.start(), match.end(), "spec")
            if spec not in specs:
                specs.append(spec)
    return specs, [spec for spec in excluded if spec not in specs]


def spec_pattern(spec: str) -> re.Pattern[str]:
    """How a size appears in a title or description ("65-inch" matches 65", 65 inch, 65-inch)."""
    match = re.fullmatch(r"(\d+(?:\.\d)?)(-inch|GB|TB|ml|oz|L)", spec)
    if not match:
        return re.compile(re.escape(spec), re.IGNORECASE)
    number, unit = match.groups()
    units = {
        "-inch": r"(?:inch(?:es)?\b|in\b|\"|'')",
        "GB": r"gb\b",
        "TB": r"tb\b",
        "ml": r"ml\b",
        "oz": r"oz\b",
        "L": r"(?:l|litres?|liters?)\b",
    }[unit]
    return re.compile(rf"(?<![\d.]){re.escape(number)}\s*-?\s*{units}", re.IGNORECASE)

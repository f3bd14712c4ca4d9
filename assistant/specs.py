"""Sizes in a shopper's request ("65-inch", "256GB", "500ml", a shoe's "size 42"), in digits or
words ("sixty-five inch", "size forty-two", "size nine and a half"), wanted or said not to be
("not 65 inch"), and how a size appears in a product's title or description.

A size in words is read by assistant.number_words (bounded in length and value) and then
bounded again by what the unit can be (no 900-inch screen, no shoe size 90) before anything is
computed from it: a word number outside the bounds is no size, and stays words.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

from assistant.number_words import NUMBER_WORDS_PATTERN, trailing_number_words
from assistant.prompt_text import PromptText

# Shoe sizes run from children's 1 to EU 50-odd; clothing's numbered sizes stay under it too.
MIN_SHOE_SIZE: Final = Decimal(1)
MAX_SHOE_SIZE: Final = Decimal(60)
# Sizes in words, by kind: what a screen, a drive or a bottle can be (digits keep the bounds
# their patterns give: two or three digits for inches, and so on).
_WORD_BOUNDS: Final = {
    "inch": (Decimal(2), Decimal(120)),
    "GB": (Decimal(1), Decimal(9999)),
    "TB": (Decimal(1), Decimal(99)),
    "ml": (Decimal(1), Decimal(9999)),
    "L": (Decimal(1), Decimal(99)),
    "oz": (Decimal(1), Decimal(999)),
}
_HALF = r"(?P<half>\s+and\s+a\s+half)?"
_WORDS_SPEC_RES: Final = (
    (
        "inch",
        re.compile(
            rf"(?P<w>{NUMBER_WORDS_PATTERN}){_HALF}\s*(?:-\s*)?(?P<u>inch(?:es)?|pouces?)\b"
        ),
    ),
    (
        "storage",
        re.compile(
            rf"(?P<w>{NUMBER_WORDS_PATTERN})\s*(?:-\s*)?(?P<u>gb|tb|gigabytes?|terabytes?)\b"
        ),
    ),
    (
        "volume",
        re.compile(
            rf"(?P<w>{NUMBER_WORDS_PATTERN}){_HALF}\s*(?:-\s*)?"
            r"(?P<u>ml|millilit(?:re|er)s?|litres?|liters?|oz|ounces?)\b"
        ),
    ),
)
# "size 42", "size: EU 42", "size 9.5", "size forty-two", "size nine and a half".
_SHOE_SIZE_RE = re.compile(
    r"\bsize\s*:?\s*(?:(?:eu|us|uk)\s*)?"
    rf"(?:(?P<d>\d{{1,2}}(?:[.,]5)?)(?![\d]|[.,]\d)|(?P<w>{NUMBER_WORDS_PATTERN}){_HALF})"
)

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


def _unit(kind: str, said: str) -> str:
    """The spec's unit for the unit as said ("litres" -> "L", "gigabytes" -> "GB")."""
    said = said.lower()
    if kind == "inch":
        return "inch"
    if kind == "storage":
        return "TB" if said.startswith("t") else "GB"
    if said.startswith(("ml", "millilit")):
        return "ml"
    if said.startswith(("oz", "ounce")):
        return "oz"
    return "L"


def _number_text(value: Decimal) -> str:
    """ "42", "9.5": the value as a spec writes it."""
    return str(int(value)) if value == value.to_integral_value() else str(value.normalize())


def _spec_label(unit: str, number: str) -> str:
    return f"{number}-inch" if unit == "inch" else f"{number}{unit}"


def _said_in_words(match: re.Match[str]) -> tuple[int, Decimal] | None:
    """Where the number of a size said in words starts and its value: the longest well-formed
    tail of the words ("two sixty-five inch": 65, the "two" left to count), plus a half."""
    tail = trailing_number_words(match.group("w"))
    if tail is None:
        return None
    offset, whole = tail
    value = Decimal(whole) + (Decimal("0.5") if match.groupdict().get("half") else 0)
    return match.start("w") + offset, value


def _sizes_said(state: PromptText) -> list[tuple[int, int, str]]:
    """Every free size of the request: (start, end, spec), in digits or in words."""
    found: list[tuple[int, int, str]] = []
    for kind, pattern in _SPEC_RES:
        for match in pattern.finditer(state.folded):
            number = match.group("n")
            unit = _unit(kind, match.group("u") if kind != "inch" else "")
            found.append((match.start(), match.end(), _spec_label(unit, number)))
    for kind, pattern in _WORDS_SPEC_RES:
        for match in pattern.finditer(state.folded):
            said = _said_in_words(match)
            if said is None:
                continue
            start, value = said
            unit = _unit(kind, match.group("u"))
            low, high = _WORD_BOUNDS[unit]
            if low <= value <= high:
                found.append((start, match.end(), _spec_label(unit, _number_text(value))))
    for match in _SHOE_SIZE_RE.finditer(state.folded):
        if match.group("d"):
            value = Decimal(match.group("d").replace(",", "."))
        else:
            said = _said_in_words(match)
            # "size forty two" is read whole: a tail alone would drop words said as the size.
            if said is None or said[0] != match.start("w"):
                continue
            value = said[1]
        if MIN_SHOE_SIZE <= value <= MAX_SHOE_SIZE and (value * 2) % 1 == 0:
            found.append((match.start(), match.end(), f"size {_number_text(value)}"))
    return sorted(found)


def parse_specs(state: PromptText) -> tuple[list[str], list[str]]:
    """The sizes asked for, and those said not to be wanted (their cue taken too)."""
    specs: list[str] = []
    excluded: list[str] = []
    for start, end, spec in _sizes_said(state):
        if not state.free(start, end):
            continue
        cue = _NEGATED_SPEC_BEFORE.search(state.folded[:start])
        if cue is not None and state.free(cue.start(), start):
            state.take(cue.start(), end, "excluded-spec")
            if spec not in excluded:
                excluded.append(spec)
            continue
        state.take(start, end, "spec")
        if spec not in specs:
            specs.append(spec)
    return specs, [spec for spec in excluded if spec not in specs]


def spec_pattern(spec: str) -> re.Pattern[str]:
    """How a size appears in a title or description ("65-inch" matches 65", 65 inch, 65-inch)."""
    shoe = re.fullmatch(r"size (\d+(?:\.5)?)", spec)
    if shoe is not None:
        # "size 42", "Size: EU 42"; never 142 or 42.5.
        return re.compile(
            rf"\bsize\s*:?\s*(?:(?:eu|us|uk)\s*)?{re.escape(shoe.group(1))}(?![\d]|[.,]\d)",
            re.IGNORECASE,
        )
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

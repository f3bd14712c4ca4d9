"""Numbers written in English words ("fifty", "two hundred", "a hundred and twenty",
"twenty-five", "fifteen hundred"), read exactly into an int; amounts also with a half ("one and
a half grand", "half a million"), exactly into a Decimal. The one table of number words: the
quantity a request asks for ("two mugs", "a dozen", assistant.intent) is read here too.

Only well-formed numbers are read: "five fifty" (5.50? 550?) or "two two" is no number, so no
budget is guessed from it. The phrase is bounded in length and value, so neither a long run of
words nor "a thousand billion trillion" costs more than a few steps or passes MAX_VALUE.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

# Amounts above this are no budget anyone has (budget.MAX_AMOUNT is the same bound).
MAX_VALUE: Final = 10**12
MAX_WORDS: Final = 12

_UNITS: Final = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS: Final = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fourty": 40,  # as often written as the right spelling
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
# "a grand", "two grand": a thousand, in money only.
_SCALES: Final = {
    "thousand": 1000,
    "grand": 1000,
    "million": 1_000_000,
    "billion": 1_000_000_000,
}
_HUNDRED: Final = "hundred"

_WORD = "|".join(
    sorted([*_UNITS, *_TENS, *_SCALES, _HUNDRED], key=len, reverse=True)  # longest first
)
# "a"/"an" only before a scale ("a hundred"): in "a fifty dollar gift" the amount is "fifty".
# "and" only after a hundred or a scale, a hyphen only after tens ("twenty-five"), so "between
# twenty and forty euros" and "20-30 euros" stay two amounts.
_JOIN = (
    r"(?:(?:(?<=hundred)|(?<=thousand)|(?<=million)|(?<=billion))\s+and\s+|"
    r"(?<=ty)\s*-\s*|\s+)"
)
_SCALE_WORD = r"(?:hundred|thousand|grand|million|billion)(?![a-z])"
NUMBER_WORDS_PATTERN: Final = (
    rf"(?<![a-z])(?:an?\s+(?={_SCALE_WORD}))?"
    rf"(?:{_WORD})(?:{_JOIN}(?:{_WORD})){{0,{MAX_WORDS - 1}}}(?![a-z])"
)
# "one and a half" (grand), "a grand and a half", "half a million": amounts, never quantities.
_HALF_AFTER = r"\s+and\s+a\s+half(?![a-z])"
AMOUNT_WORDS_PATTERN: Final = (
    rf"(?<![a-z])half\s+an?\s+{_SCALE_WORD}|{NUMBER_WORDS_PATTERN}(?:{_HALF_AFTER})?"
)
_HALF_AFTER_RE = re.compile(rf"{_HALF_AFTER}\s*$")
_HALF_OF_RE = re.compile(rf"^\s*half\s+an?\s+(?P<scale>{_SCALE_WORD})\s*$")
_SPLIT_RE = re.compile(r"\s*-\s*|\s+")

# Counts said as a phrase ("a couple of mugs", "a dozen eggs"); "a pair of shoes" is one pair.
QUANTITY_PHRASES: Final = {"a couple of": 2, "a pair of": 1, "half a dozen": 6, "a dozen": 12}
# "two dozen mugs": at most this many dozens are read (more is no shopper's order), so the
# product is bounded before it is computed.
MAX_DOZENS: Final = 8
_DOZENS_RE = re.compile(r"^(?P<n>\d{1,2}|[a-z][a-z\s-]*?)\s+dozen$")
QUANTITY_WORDS_PATTERN: Final = (
    rf"(?:\d{{1,2}}|{NUMBER_WORDS_PATTERN})\s+dozen(?![a-z])|"
    + "|".join(re.escape(p) for p in sorted(QUANTITY_PHRASES, key=len, reverse=True))
    + f"|{NUMBER_WORDS_PATTERN}"
)


def is_number_words(text: str) -> bool:
    """True when `text` is spelt out ("fifty"), not digits."""
    return bool(re.match(r"\s*[a-z]", text, re.IGNORECASE))


def number_words_value(text: str) -> int | None:
    """ "a hundred and twenty" -> 120, "ninety-nine thousand" -> 99000; None unless the words are
    one well-formed number from 1 to MAX_VALUE."""
    words = [w for w in _SPLIT_RE.split(text.strip().lower()) if w]
    if words[:1] in (["a"], ["an"]):
        words[0] = "one"  # only ever before a scale (NUMBER_WORDS_PATTERN)
    if not words or len(words) > MAX_WORDS or words[-1] == "and":
        return None
    total = 0  # the thousands, millions ... said so far
    group = 0  # the number below the next scale word (0-999)
    last = ""  # the kind of the previous word: unit, teen, tens, hundred, scale, and
    last_scale = MAX_VALUE * 1000
    for word in words:
        if word == "and":
            # "a hundred and twenty", "two thousand and five": only after a hundred or a scale.
            if last not in {"hundred", "scale"}:
                return None
            last = "and"
        elif word in _UNITS:
            value = _UNITS[word]
            if last == "tens" and value < 10:
                group += value  # "twenty-five"
            elif last in {"", "hundred", "scale", "and"} and group % 100 == 0:
                group += value
            else:
                return None  # "five fifty", "two two"
            last = "unit" if value < 10 else "teen"
        elif word in _TENS:
            if last not in {"", "hundred", "scale", "and"} or group % 100 != 0:
                return None
            group += _TENS[word]
            last = "tens"
        elif word == _HUNDRED:
            # "two hundred", "fifteen hundred", and "hundred dollars" on its own.
            if last in {"unit", "teen"} and group < 100:
                group *= 100
            elif last == "" and group == 0:
                group = 100
            else:
                return None
            last = "hundred"
        else:
            scale = _SCALES[word]
            if group == 0 and last != "":
                return None
            if scale >= last_scale:
                return None  # "a thousand million": no number a shopper writes
            total += (group or 1) * scale
            group = 0
            last_scale = scale
            last = "scale"
    value = total + group
    return value if 0 < value <= MAX_VALUE else None


def quantity_words_value(text: str) -> int | None:
    """ "a dozen" -> 12, "twenty" -> 20, "two dozen" -> 24: how many a request asks for, in
    words."""
    words = " ".join(text.lower().split())
    if words in QUANTITY_PHRASES:
        return QUANTITY_PHRASES[words]
    dozens = _DOZENS_RE.match(words)
    if dozens is not None:
        said = dozens.group("n")
        count = int(said) if said.isdigit() else number_words_value(said)
        if count is None or not 1 <= count <= MAX_DOZENS:
            return None
        return count * 12
    return number_words_value(words)


_WORD_START_RE = re.compile(r"(?<![a-z])[a-z]")


def trailing_number_words(text: str) -> tuple[int, int] | None:
    """The longest tail of a run of number words that is one well-formed number: where it
    starts in `text` and its value ("two sixty-five" -> (4, 65), the "two" left to count how
    many; "five fifty" -> (5, 50)). None when no tail is a number. Only the last MAX_WORDS
    words are tried, however long the run."""
    starts = [m.start() for m in _WORD_START_RE.finditer(text.lower())][-MAX_WORDS:]
    for start in starts:
        value = number_words_value(text[start:])
        if value is not None:
            return start, value
    return None


def amount_words_value(text: str) -> Decimal | None:
    """ "one and a half" -> 1.5, "a grand and a half" -> 1500, "half a million" -> 500000, and
    every whole number number_words_value reads; None otherwise. Exact (no float)."""
    half_of = _HALF_OF_RE.match(text.lower())
    if half_of is not None:
        return Decimal(_SCALES.get(half_of.group("scale").strip(), 100)) / 2
    half_after = _HALF_AFTER_RE.search(text.lower())
    whole_text = text[: half_after.start()] if half_after else text
    whole = number_words_value(whole_text)
    if whole is None:
        return None
    if half_after is None:
        return Decimal(whole)
    last = _SPLIT_RE.split(whole_text.strip().lower())[-1]
    if last == _HUNDRED:
        return None  # "two hundred and a half": no amount anyone says
    # "a grand and a half" is half a grand more; "one and a half" half a one more.
    return Decimal(whole) + Decimal(_SCALES.get(last, 1)) / 2

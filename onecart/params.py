"""Numbers from URLs and forms, bounded by length and range before any arithmetic.

`Decimal("1e500000")` is cheap to make but `int()` of it builds a 500,000-digit integer, and a
long run of digits costs as much: a 22-byte query parameter could hold a web worker past its
timeout. Every numeric parameter the site reads goes through these helpers, which look at the
text first (a short plain decimal: digits, one optional point, no exponent) and only then convert.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

# Plain decimal text only: no exponent, no NaN/Infinity, no underscores, ASCII digits.
_PLAIN_DECIMAL: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")
_PLAIN_INTEGER: Final = re.compile(r"\+?[0-9]+")
# Longest text accepted for a number in a URL; 20 characters hold any price a shop shows.
MAX_NUMBER_CHARS: Final = 20


class ParameterError(ValueError):
    """Text that is not a number in the accepted form and range."""


def _text(raw: object, max_chars: int) -> str:
    text = str(raw).strip() if raw is not None else ""
    if len(text) > max_chars:
        raise ParameterError(f"longer than {max_chars} characters")
    return text


def bounded_int(raw: object, *, minimum: int, maximum: int, max_chars: int = 9) -> int:
    """A non-negative integer written with at most `max_chars` ASCII digits, within
    [minimum, maximum]; ParameterError otherwise."""
    text = _text(raw, max_chars + 1)
    if not _PLAIN_INTEGER.fullmatch(text) or len(text.lstrip("+")) > max_chars:
        raise ParameterError("not a whole number")
    value = int(text)
    if not minimum <= value <= maximum:
        raise ParameterError(f"outside {minimum}–{maximum}")
    return value


def bounded_decimal(
    raw: object,
    *,
    minimum: Decimal,
    maximum: Decimal,
    max_chars: int = MAX_NUMBER_CHARS,
    max_places: int = 4,
) -> Decimal:
    """A plain decimal (no exponent) of at most `max_chars` characters and `max_places`
    decimals, within [minimum, maximum]; ParameterError otherwise. Thousands separators (",")
    are dropped first."""
    text = _text(raw, max_chars).replace(",", "")
    if not _PLAIN_DECIMAL.fullmatch(text):
        raise ParameterError("not a plain decimal number")
    _whole, _, fraction = text.partition(".")
    if len(fraction) > max_places:
        raise ParameterError(f"more than {max_places} decimals")
    value = Decimal(text)
    if not minimum <= value <= maximum:
        raise ParameterError(f"outside {minimum}–{maximum}")
    return value

"""GTIN (EAN/UPC) validation: the only product identifier OneCart trusts across marketplaces.

A GTIN that fails its check digit is worse than none: two unrelated products would be grouped
as one. So adapters keep an identifier only when its GS1 checksum holds, and store it in one
canonical form so the same product matches whatever way a marketplace wrote it:

* GTIN-8, GTIN-12 (UPC-A) and GTIN-13 (EAN-13) become 13 digits (left-padded with zeros);
* GTIN-14 keeps 14 digits when its indicator digit is not zero, else it is the GTIN-13 inside.
"""

from __future__ import annotations

import re

GTIN_LENGTHS = frozenset({8, 12, 13, 14})

# Separators some marketplaces put inside barcodes ("5 012345 678900", "0-12345-67890-5").
_SEPARATORS = re.compile(r"[\s\-]")


def gtin_check_digit(body: str) -> int:
    """The GS1 check digit for the digits before it (weights 3,1,3,… from the right)."""
    total = 0
    for position, digit in enumerate(reversed(body)):
        total += int(digit) * (3 if position % 2 == 0 else 1)
    return (10 - total % 10) % 10


def has_valid_gtin_checksum(digits: str) -> bool:
    """True when `digits` (any GTIN length) ends in the check digit of the digits before it."""
    if not digits.isdigit() or len(digits) < 2:
        return False
    return gtin_check_digit(digits[:-1]) == int(digits[-1])


def normalize_gtin(value: object) -> str | None:
    """The canonical GTIN (13 or 14 digits), or None when `value` is not a valid GTIN.

    Strings must have 8, 12, 13 or 14 digits (spaces and hyphens ignored), because a string with
    any other length is not a GTIN someone wrote down. JSON integers lose their leading zeros, so
    an integer is read as the GTIN-14 it pads to.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if value <= 0:
            return None
        digits = str(value)
        if len(digits) > 14:
            return None
    elif isinstance(value, str):
        digits = _SEPARATORS.sub("", value)
        if not digits.isascii() or not digits.isdigit() or len(digits) not in GTIN_LENGTHS:
            return None
    else:
        return None
    padded = digits.zfill(14)
    if set(padded) == {"0"} or not has_valid_gtin_checksum(padded):
        return None
    return padded[1:] if padded[0] == "0" else padded

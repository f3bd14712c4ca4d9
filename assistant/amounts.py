"""How an amount of money is written in a shopper's request: currency words and symbols ("KSh",
"naira", "€", "quid"), the number itself (digits with the thousands and decimal marks of several
languages, or words: "fifty", "one and a half grand"), a multiplier ("10k"), and whether what
follows makes it a measurement instead ("50 inch", "a 20 pound dumbbell").

Amounts are read exactly (Decimal to integer minor units of an ISO-4217 currency), never through
floats, and bounded (MAX_AMOUNT) before any arithmetic. The limits a request puts on a price
("under", "between", "around") are read from these in assistant.budget.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final

from babel.numbers import format_currency

from assistant.number_words import AMOUNT_WORDS_PATTERN, amount_words_value, is_number_words
from assistant.prompt_text import PromptText
from onecart.money import currency_exponent, from_minor_units

# Amounts above a trillion in any currency bound nothing a shopper buys; they are not read as a
# budget (and past Decimal's 28 digits the arithmetic would raise).
MAX_AMOUNT: Final = Decimal(10) ** 12

# (pattern, ISO code). Alphabetic tokens are matched as whole words. Currencies the shop may
# have no rate for are read too: "5000 yen" is yen (the answer says there is no rate), never
# 5000 of the display currency. Codes that are also English words ("cup", "top", "all") are
# not listed: "a 12 cup coffee maker" has no budget. A lone letter before digits ("N5000",
# "R200") counts only after a cue (SINGLE_LETTER_CURRENCIES): alone it is a model ("an N5000 processor").
_CURRENCY_TOKENS: Final[tuple[tuple[str, str], ...]] = (
    (r"c\$|cad|canadian dollars?", "CAD"),
    (r"a\$|aud|australian dollars?", "AUD"),
    (r"us\$|\$|usd|us dollars?|dollars?|bucks|dolar(?:es)?", "USD"),
    (r"€|eur|euros?", "EUR"),
    (r"£|gbp|pounds? sterling|pounds?|quid|libras?(?: esterlinas?)?|livres? sterling|pfund", "GBP"),
    (r"₦|ngn|naira|n(?=\d)", "NGN"),
    (r"ugx|ugandan shillings?", "UGX"),
    (r"tzs|tanzanian shillings?", "TZS"),
    (r"kshs?\.?|kes|kenyan shillings?|shillings?|bob", "KES"),
    (r"¥|jpy|yen", "JPY"),
    (r"cny|rmb|yuan|renminbi", "CNY"),
    (r"₹|inr|rs\.?(?=\s?\d)|rupees?", "INR"),
    (r"chf|swiss francs?", "CHF"),
    (r"zar|rand|r(?=\d)", "ZAR"),
    (r"ghs|gh₵|₵|cedis?", "GHS"),
    (r"rwf|rwandan francs?", "RWF"),
    (r"etb|birr", "ETB"),
    (r"sek|nok|dkk", ""),  # the code itself (currency_for_token)
    (r"pln|zloty", "PLN"),
    (r"aed|dirhams?", "AED"),
)
SINGLE_LETTER_CURRENCIES: Final = frozenset({"n", "r"})
_CUR = "|".join(f"(?:{pattern})" for pattern, _ in _CURRENCY_TOKENS)
CURRENCY_PATTERN = rf"(?<![a-z])(?:{_CUR})(?![a-z])"
# "12,99", "1,5" (k): a decimal comma (one or two digits after it); "1,299" stays a thousands
# separator.
_DECIMAL_COMMA_RE = re.compile(r"\d+,\d{1,2}")
# "1.200", "1.299,99": dots between thousands, as written across Europe (a decimal point has
# one or two digits after it, never three).
_DOT_THOUSANDS = r"[1-9]\d{0,2}(?:\.\d{3})+(?:,\d{1,2})?"
_DOT_THOUSANDS_RE = re.compile(_DOT_THOUSANDS)
# "1,5k", "2,5 million": a decimal comma before a multiplier (1,500 would be written in full).
_COMMA_BEFORE_MULT = r"\d{1,3},\d(?=\s*(?:k|m|thousand|grand|million)(?![a-z]))"
# Where one dot before three digits is a thousands separator ("€1.200"); in dollars or pounds
# "1.999" may be a typo for 1.99 as well as 1,999, so it is no budget (two dots are thousands
# in any currency: "1.250.000 ngn").
_DOT_GROUPING_CURRENCIES: Final = frozenset(
    {"EUR", "DKK", "IDR", "BRL", "TRY", "VND", "ARS", "COP", "CLP"}
)
# Where _amount_text found a space between thousands ("5 000", "45 000,50"): one character, so
# spans still line up with the request.
GROUP_MARK: Final = "\u202f"
# A number as written: not the tail of a longer one ("0.001" is not 1), not signed ("-5"),
# and not cut short before more digits or an exponent ("1.999", "1e308" are not 1). Thousands
# are separated by commas, or by spaces where _amount_text marked them; or it is in words.
AMOUNT_NUMBER = (
    r"(?<![\d.,])(?<!\de)(?<!\s-)(?<!^-)"
    r"(?:\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|"
    rf"\d{{1,3}}(?:{GROUP_MARK}\d{{3}})+(?:[.,]\d{{1,2}})?|"
    rf"{_DOT_THOUSANDS}|\d+,\d{{2}}|{_COMMA_BEFORE_MULT}|\d+(?:\.\d{{1,2}})?)"
    rf"(?!\d|[.,]\d|e\d|{GROUP_MARK}\d)"
    rf"|{AMOUNT_WORDS_PATTERN}"
)
MULTIPLIER = r"k|thousand|grand|million|m"

# Words after a number that make it a measurement, not an amount of money.
_UNIT_WORDS: Final = (
    r"inch(?:es)?|\"|gb|tb|mb|l\b|liters?|litres?|ml|oz|w\b|watts?|mah|mm|cm|kg|g\b|lbs?|"
    r"hours?|hrs?|h\b|minutes?|mins?|years?|yrs?|months?|days?|packs?|pcs|pieces?|people|"
    r"persons?|kids?|children|stars?|mp\b|megapixels?|hz|km|%|x\b|pairs?|units?|sets?|mugs?|"
    r"bottles?"
)
NOT_MONEY_TAIL_RE = re.compile(rf"\s*(?:-\s*)?(?:{_UNIT_WORDS})", re.IGNORECASE)


def money_pattern(prefix: str) -> str:
    """A named-group pattern of one amount: an optional currency before or after the number,
    and an optional multiplier ("KSh 5k", "$40", "fifty euros"); groups are prefixed so two
    amounts can share a pattern ("between $10 and $20")."""
    return (
        rf"(?:(?P<{prefix}c1>{CURRENCY_PATTERN})\s*)?"
        rf"(?P<{prefix}n>{AMOUNT_NUMBER})"
        rf"(?:\s*(?P<{prefix}m>{MULTIPLIER})(?![a-z]))?"
        rf"(?:\s*(?P<{prefix}c2>{CURRENCY_PATTERN}))?"
    )


def currency_for_token(token: str | None) -> str | None:
    """The ISO code a currency word or symbol stands for ("naira" -> NGN, "€" -> EUR)."""
    if not token:
        return None
    text = token.strip().lower()
    for pattern, code in _CURRENCY_TOKENS:
        # The lookaheads of "n(?=\d)" see no digit in the token alone: compare without them.
        if re.fullmatch(re.sub(r"\(\?=[^)]*\)", "", pattern), text):
            return code or text.upper()
    return None


def format_amount(minor: int, currency: str) -> str:
    """ "$1,234.50" / "NGN 20,000.00": exact, for constraint labels and answers."""
    return format_currency(from_minor_units(minor, currency), currency, locale="en_US")


def parse_amount(number: str, multiplier: str | None, currency: str) -> int | None:
    """ "10", "k", "NGN" -> 1000000 (10,000.00 naira in kobo); None when it is not an amount."""
    if is_number_words(number):
        words_amount = amount_words_value(number)
        if words_amount is None:
            return None
        amount = words_amount
    else:
        if _DOT_THOUSANDS_RE.fullmatch(number):
            if number.count(".") == 1 and currency not in _DOT_GROUPING_CURRENCIES:
                return None
            # Its comma, if any, is the decimal one ("1.299,9").
            number = number.replace(".", "").replace(",", ".")
        grouped = GROUP_MARK in number
        number = number.replace(GROUP_MARK, "")
        # With spaces between thousands a comma can only be the decimal one ("1 234,5").
        decimal_comma = grouped or _DECIMAL_COMMA_RE.fullmatch(number)
        written = number.replace(",", ".") if decimal_comma else number
        try:
            amount = Decimal(written.replace(",", ""))
        except InvalidOperation:
            return None
    word = (multiplier or "").lower()
    if amount > MAX_AMOUNT:
        return None
    if word in {"k", "thousand", "grand"}:
        amount *= 1000
    elif word in {"m", "million"}:
        amount *= 1_000_000
    if amount > MAX_AMOUNT:
        return None
    exponent = currency_exponent(currency)
    scaled = amount.scaleb(exponent).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    minor = int(scaled)
    return minor if minor > 0 else None


def money_parts(match: re.Match[str], prefix: str) -> tuple[str, str | None, str | None]:
    """The number, multiplier and ISO currency (None when none is said) of a money_pattern
    match's amount `prefix`."""
    currency = currency_for_token(match.group(f"{prefix}c1")) or currency_for_token(
        match.group(f"{prefix}c2")
    )
    return match.group(f"{prefix}n"), match.group(f"{prefix}m"), currency


# Things bought by weight: "a 20 pound dumbbell", "10 pounds of rice" weigh, not cost, 20 and 10.
_WEIGHED_AFTER_POUNDS = re.compile(
    r"\s*(?:-\s*)?(?:of\s+(?!sterling)|(?:weighted\s+)?(?:dumb|kettle|bar)bells?\b|"
    r"(?:weight\s+)?plates?\b|weights?\b|weighted\b|(?:medicine|slam|bowling)\s+balls?\b|"
    r"(?:punching\s+|heavy\s+)?bags?\b|sacks?\b|turkeys?\b|hams?\b|vests?\b)",
    re.IGNORECASE,
)


def weighed_in_pounds(state: PromptText, match: re.Match[str], prefix: str = "a") -> bool:
    """ "20 pound dumbbell": the plain word pound (not £, GBP, sterling or quid) before a thing
    sold by weight is its weight."""
    token = (match.group(f"{prefix}c2") or "").strip().lower()
    if token not in {"pound", "pounds"}:
        return False
    return bool(_WEIGHED_AFTER_POUNDS.match(state.folded, match.end()))


def looks_like_measurement(
    state: PromptText, match: re.Match[str], *currencies: str | None
) -> bool:
    """Whether the amount matched is a measurement, not money: a weight in pounds, or, with no
    currency said, a unit after it ("50 inch", "2 pairs")."""
    if weighed_in_pounds(state, match) or (
        "bc2" in match.re.groupindex and weighed_in_pounds(state, match, "b")
    ):
        return True
    if any(currencies):
        return False
    return bool(NOT_MONEY_TAIL_RE.match(state.folded, match.end()))

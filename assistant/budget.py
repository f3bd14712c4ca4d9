"""Money in a shopper's request: "under 40 dollars", "between 10k and 20k naira", "around €50".

Parsed exactly (Decimal to integer minor units of an ISO-4217 currency), never through floats; an
amount without a currency is in the shopper's display currency, and the budget says so.

"Pound(s)" after an amount is money, pounds sterling: "20 pound headphones" and "headphones under
20 pounds" are both a price of at most £20.00 (a shop's request names a price far more often
than a weight, and nobody weighs headphones in pounds). Only a thing sold by weight, or "of",
right after it makes it a weight: "a 20 pound dumbbell", "10 pounds of rice" have no budget.
£, GBP, quid and sterling are always money.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Final

from babel.numbers import format_currency

from assistant.number_words import AMOUNT_WORDS_PATTERN, amount_words_value, is_number_words
from assistant.prompt_text import PromptText
from onecart.money import currency_exponent, from_minor_units

AROUND_SPREAD: Final = Decimal("0.2")
# Amounts above a trillion in any currency bound nothing a shopper buys; they are not read as a
# budget (and past Decimal's 28 digits the arithmetic would raise).
MAX_AMOUNT: Final = Decimal(10) ** 12

# (pattern, ISO code). Alphabetic tokens are matched as whole words. Currencies the shop may
# have no rate for are read too: "5000 yen" is yen (the answer says there is no rate), never
# 5000 of the display currency. Codes that are also English words ("cup", "top", "all") are
# not listed: "a 12 cup coffee maker" has no budget. A lone letter before digits ("N5000",
# "R200") counts only after a cue (_SINGLE_LETTER): alone it is a model ("an N5000 processor").
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
_SINGLE_LETTER: Final = frozenset({"n", "r"})
_CUR = "|".join(f"(?:{pattern})" for pattern, _ in _CURRENCY_TOKENS)
_CUR_GROUP = rf"(?<![a-z])(?:{_CUR})(?![a-z])"
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
_GROUP_MARK: Final = "\u202f"
# A number as written: not the tail of a longer one ("0.001" is not 1), not signed ("-5"),
# and not cut short before more digits or an exponent ("1.999", "1e308" are not 1). Thousands
# are separated by commas, or by spaces where _amount_text marked them; or it is in words.
_NUM = (
    r"(?<![\d.,])(?<!\de)(?<!\s-)(?<!^-)"
    r"(?:\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|"
    rf"\d{{1,3}}(?:{_GROUP_MARK}\d{{3}})+(?:[.,]\d{{1,2}})?|"
    rf"{_DOT_THOUSANDS}|\d+,\d{{2}}|{_COMMA_BEFORE_MULT}|\d+(?:\.\d{{1,2}})?)"
    rf"(?!\d|[.,]\d|e\d|{_GROUP_MARK}\d)"
    rf"|{AMOUNT_WORDS_PATTERN}"
)
_MULT = r"k|thousand|grand|million|m"

# Words after a number that make it a measurement, not an amount of money.
_UNIT_WORDS: Final = (
    r"inch(?:es)?|\"|gb|tb|mb|l\b|liters?|litres?|ml|oz|w\b|watts?|mah|mm|cm|kg|g\b|lbs?|"
    r"hours?|hrs?|h\b|minutes?|mins?|years?|yrs?|months?|days?|packs?|pcs|pieces?|people|"
    r"persons?|kids?|children|stars?|mp\b|megapixels?|hz|km|%|x\b|pairs?|units?|sets?|mugs?|"
    r"bottles?"
)
_NOT_MONEY_TAIL = re.compile(rf"\s*(?:-\s*)?(?:{_UNIT_WORDS})", re.IGNORECASE)


def _money(prefix: str) -> str:
    return (
        rf"(?:(?P<{prefix}c1>{_CUR_GROUP})\s*)?"
        rf"(?P<{prefix}n>{_NUM})"
        rf"(?:\s*(?P<{prefix}m>{_MULT})(?![a-z]))?"
        rf"(?:\s*(?P<{prefix}c2>{_CUR_GROUP}))?"
    )


_MAX_CUES = (
    r"under|below|less than|cheaper than|lower than|no more than|not more than|at most|"
    r"maximum(?: of)?|max\.?|up to|upto|within|not over|no higher than|<=|<|≤|"
    r"budget(?: of| is)?|for under|for less than|not exceeding|sub-?|"
    # Spanish, French, German: "menos de 50 dólares", "moins de 40 euros", "bis 500 Euro".
    r"(?:por |pour )?(?:menos de|moins de)|hasta|no mas de|pas plus de|jusqu'?a|bis(?: zu)?|"
    r"unter|hochstens|maximal"
)
_MIN_CUES = (
    r"no less than|not less than|no lower than|no cheaper than|over|above|more than|at least|"
    r"minimum(?: of)?|min\.?|starting (?:at|from)|>=|>|≥|"
    r"mas de|plus de|al menos|au moins|mindestens|uber|mehr als"
)
_AROUND_CUES = r"around|about|roughly|approximately|approx\.?|~"

_RANGE_RE = re.compile(
    rf"(?:\b(?:between|from)\s+)?{_money('a')}\s*(?P<sep>and|to|-)\s*{_money('b')}",
    re.IGNORECASE,
)
_MAX_RE = re.compile(rf"(?:{_MAX_CUES})\s*{_money('a')}", re.IGNORECASE)
_MIN_RE = re.compile(rf"(?:{_MIN_CUES})\s*{_money('a')}", re.IGNORECASE)
_AROUND_RE = re.compile(rf"(?:{_AROUND_CUES})\s*{_money('a')}", re.IGNORECASE)
_BARE_RE = re.compile(_money("a"), re.IGNORECASE)
# A limit said after the amount: "$15 or less", "KSh 3,000 max", "$300 and up", "$20 or so".
_AFTER_MAX_RE = re.compile(
    r"\s*(?:or (?:less|under|below|lower|cheaper)|max(?:imum)?\.?|tops|at (?:the )?most)(?![a-z])",
    re.IGNORECASE,
)
_AFTER_MIN_RE = re.compile(
    r"\s*(?:(?:or (?:more|above|over|higher)|and (?:up|above|over|upwards)|min(?:imum)?\.?|"
    r"at (?:the )?least)(?![a-z])|\+)",
    re.IGNORECASE,
)
_AFTER_AROUND_RE = re.compile(r"\s*(?:or so|give or take|-?ish)(?![a-z])", re.IGNORECASE)


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


@dataclass(frozen=True, slots=True)
class Budget:
    """A price range in one currency, in integer minor units (either bound may be open)."""

    currency: str
    min_minor: int | None = None
    max_minor: int | None = None
    currency_assumed: bool = False

    def describe(self) -> str:
        """ "under $40.00", "$10.00 to $20.00", "at least €5.00"."""
        if self.min_minor is not None and self.max_minor is not None:
            low = format_amount(self.min_minor, self.currency)
            high = format_amount(self.max_minor, self.currency)
            return f"between {low} and {high}"
        if self.max_minor is not None:
            return f"at most {format_amount(self.max_minor, self.currency)}"
        if self.min_minor is not None:
            return f"at least {format_amount(self.min_minor, self.currency)}"
        return "any price"

    def contains(self, minor: int) -> bool:
        """True when an amount in this budget's currency is inside the range (bounds included)."""
        if self.min_minor is not None and minor < self.min_minor:
            return False
        return not (self.max_minor is not None and minor > self.max_minor)


def _parse_amount(number: str, multiplier: str | None, currency: str) -> int | None:
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
        grouped = _GROUP_MARK in number
        number = number.replace(_GROUP_MARK, "")
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


# What may come right before an amount whose thousands are split by plain spaces: a cue
# ("under 5 000 kes"), a currency, the start of a clause. After a product name the first digits
# are its model ("iphone 15 200 dollars" is an iPhone 15 for 200 dollars).
_GROUPED_LEAD_RE = re.compile(
    rf"(?:^|[,;:(!?]|(?<![a-z])(?:{_MAX_CUES}|{_MIN_CUES}|{_AROUND_CUES}|between|from|and|to|"
    rf"for|of|is|at|costs?|costing|pay|spend)|{_CUR_GROUP})\s*$",
    re.IGNORECASE,
)
_GROUPED_RE = re.compile(r"(?<![\d.,])\d{1,3}(?:\s\d{3})+(?!\d)")
# Spaces a typesetter puts between thousands, and only there: no-break, figure and thin.
_GROUPING_SPACES: Final = frozenset("\u00a0\u2007\u202f\u2009")


def _amount_text(state: PromptText) -> str:
    """The folded request with the spaces between thousands ("5 000", "45\u202f000") marked
    (_GROUP_MARK), where they are that: typographic spaces always, plain ones after a cue,
    a currency or the start of a clause (_GROUPED_LEAD_RE). Same length as the request."""
    text = state.folded
    chars = list(text)
    for match in _GROUPED_RE.finditer(text):
        spaces = [i for i in range(match.start(), match.end()) if text[i].isspace()]
        typeset = all(state.original[i] in _GROUPING_SPACES for i in spaces)
        if typeset or _GROUPED_LEAD_RE.search(text[: match.start()]):
            for index in spaces:
                chars[index] = _GROUP_MARK
    return "".join(chars)


def _money_parts(match: re.Match[str], prefix: str) -> tuple[str, str | None, str | None]:
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


def _weighed_in_pounds(state: PromptText, match: re.Match[str], prefix: str = "a") -> bool:
    """ "20 pound dumbbell": the plain word pound (not £, GBP, sterling or quid) before a thing
    sold by weight is its weight."""
    token = (match.group(f"{prefix}c2") or "").strip().lower()
    if token not in {"pound", "pounds"}:
        return False
    return bool(_WEIGHED_AFTER_POUNDS.match(state.folded, match.end()))


def _looks_like_measurement(
    state: PromptText, match: re.Match[str], *currencies: str | None
) -> bool:
    if _weighed_in_pounds(state, match) or (
        "bc2" in match.re.groupindex and _weighed_in_pounds(state, match, "b")
    ):
        return True
    if any(currencies):
        return False
    return bool(_NOT_MONEY_TAIL.match(state.folded, match.end()))


# Amounts in words with no currency are money only after a limit ("under fifty", "over fifty",
# "around thirty", "between twenty and forty") that no person comes before ("kids under ten",
# "my dad over fifty" are ages) and when nothing they count follows ("at most two cameras",
# "up to four people").
_AGE_BEFORE = re.compile(
    r"(?<![a-z])(?:kids?|child(?:ren)?|toddlers?|bab(?:y|ies)|boys?|girls?|teens?|teenagers?|"
    r"sons?|daughters?|m[ae]n|wom[ae]n|people|persons?|adults?|someone|ages?|aged|years?|"
    r"dad|daddy|father|mum|mom|mother|mommy|mummy|parents?|grand(?:ma|pa|mother|father|parents?)|"
    r"granny|nan|nana|wife|husband|partner|(?:boy|girl)friend|friends?|brother|sister|aunt|"
    r"uncle|cousin|nephew|niece|colleague|boss|him|her|them|seniors?|retirees?|"
    r"(?:who|which|that)(?:'s|\s+(?:is|are))?)"
    r"[\s,]+(?:(?:who|that)\s+(?:is|are)\s+|(?:is|are)\s+)?(?:(?:just|nearly|almost|well)\s+)?$"
)
_CLAUSE_END = re.compile(
    r"\s*(?:$|[,.;:!?)]|(?:for|and|or|with|please|in|on|from|at|if|but|so|that|which|max|"
    r"tops|each|total|ok|okay)(?![a-z]))"
)


# No one is older: "four people under two hundred" is a price.
_OLDEST_AGE: Final = 120


def _words_are_money(state: PromptText, match: re.Match[str]) -> bool:
    if _AGE_BEFORE.search(state.folded[: match.start()]):
        said = amount_words_value(match.group("an") or "")
        if said is None or said <= _OLDEST_AGE:
            return False
    return bool(_CLAUSE_END.match(state.folded, match.end()))


# After kids, children, a child or a toddler, digits after a limit with no currency are an age
# ("toys for kids under 10" was a budget of $10); no child is older than this, so "toys for
# kids under 50" is a price.
_CHILD_BEFORE = re.compile(
    r"(?<![a-z])(?:kids?|child(?:ren)?|toddlers?|bab(?:y|ies)|infants?)"
    r"[\s,]+(?:(?:who|that)\s+(?:is|are)\s+|(?:is|are)\s+)?(?:(?:just|nearly|almost|aged)\s+)?$"
)
_OLDEST_CHILD: Final = 18


def _childs_age(
    state: PromptText, match: re.Match[str], number: str, multiplier: str | None
) -> bool:
    if multiplier or not number.isdigit() or int(number) > _OLDEST_CHILD:
        return False
    return bool(_CHILD_BEFORE.search(state.folded[: match.start()]))


# Digits with no currency right before a plural noun count it: "at least 2 cameras" (after a
# lower limit also past one short word: "2 usb ports"); "under 50 wireless", "under 50 thanks"
# stay money.
_COUNTED = r"(?P<noun>[a-z]{2,}[^s\W]s)(?![a-z])"
_COUNTED_RE = re.compile(rf"\s+{_COUNTED}")
_COUNTED_PAST_WORD_RE = re.compile(rf"\s+[a-z]{{2,4}}\s+{_COUNTED}")
_NOT_COUNTED: Final = frozenset({"thanks", "plus", "bucks", "tops", "pls", "cents"})


def _counts_things(state: PromptText, match: re.Match[str], *, lower: bool) -> bool:
    if not match.group("an").isdigit() or match.group("am"):
        return False
    counted = _COUNTED_RE.match(state.folded, match.end())
    if counted is None and lower:
        counted = _COUNTED_PAST_WORD_RE.match(state.folded, match.end())
    return counted is not None and counted.group("noun") not in _NOT_COUNTED


@dataclass(frozen=True, slots=True)
class _Bound:
    """One amount after a cue ("under 40", "at least €5"): its words, span and currency."""

    number: str
    multiplier: str | None
    currency: str | None
    start: int
    end: int

    def amount(self, currency: str) -> int | None:
        return _parse_amount(self.number, self.multiplier, currency)


def _bounds(
    state: PromptText,
    text: str,
    pattern: re.Pattern[str],
    after: re.Pattern[str],
    *,
    default_currency: str,
) -> list[_Bound]:
    """Every free amount that is money, not a measurement, with a cue of one kind: before it
    (`pattern`: "under $15"), or after it (`after`: "$15 or less", only with a currency), in
    the order said. Amounts in words are money when a currency says so, or after the cue as
    _words_are_money reads it: words count things as often as they price them
    ("at least two cameras", "a man over fifty")."""
    found = []
    for cued, match in [
        *((True, m) for m in pattern.finditer(text)),
        *((False, m) for m in _BARE_RE.finditer(text)),
    ]:
        if not state.free(match.start(), match.end()):
            continue
        number, multiplier, currency = _money_parts(match, "a")
        if currency is None and (
            not cued
            or (
                is_number_words(number) and not _grand(match) and not _words_are_money(state, match)
            )
        ):
            continue
        if _looks_like_measurement(state, match, currency):
            continue
        if currency is None and _childs_age(state, match, number, multiplier):
            continue
        if currency is None and _counts_things(state, match, lower=pattern is _MIN_RE):
            continue  # "at least 2 cameras", "up to 4 players"
        if _parse_amount(number, multiplier, currency or default_currency) is None:
            continue
        said_after = after.match(text, match.end())
        if not cued and said_after is None:
            continue
        end = said_after.end() if said_after is not None else match.end()
        found.append(_Bound(number, multiplier, currency, match.start(), end))
    return sorted(found, key=lambda bound: bound.start)


def _grand(match: re.Match[str]) -> bool:
    """ "a grand", "2 grand": money whatever the currency ("at least two cameras" is not)."""
    return bool(re.search(r"(?<![a-z])grand(?![a-z])", match.group(0), re.IGNORECASE))


def _apart(*kinds: list[_Bound]) -> list[list[_Bound]]:
    """The bounds of each kind with those overlapping another one dropped; of two overlapping,
    the one said first counts: "no more than $50" is an upper limit, not also "more than $50",
    and "no less than $50" a lower one, not "less than $50"."""
    tagged = sorted(
        ((bound, index) for index, bounds in enumerate(kinds) for bound in bounds),
        key=lambda item: (item[0].start, -item[0].end),
    )
    kept: list[tuple[_Bound, int]] = []
    for bound, index in tagged:
        if all(bound.end <= other.start or other.end <= bound.start for other, _ in kept):
            kept.append((bound, index))
    return [[bound for bound, index in kept if index == kind] for kind in range(len(kinds))]


def _last_said(state: PromptText, bounds: list[_Bound], notes: list[str] | None) -> _Bound | None:
    """The last of the limits of one kind: a follow-up typed after the request ("..., under
    $30") narrows it. The earlier ones are taken too, so they are neither search words nor a
    quantity ("$30 mug")."""
    if not bounds:
        return None
    for earlier in bounds[:-1]:
        state.take(earlier.start, earlier.end, "budget")
    if len(bounds) > 1 and notes is not None:
        last = bounds[-1]
        notes.append(
            f"Of the limits you gave, the last one (“{state.folded[last.start : last.end]}”) counts."
        )
    return bounds[-1]


def _open_or_closed(
    state: PromptText,
    lower: _Bound | None,
    upper: _Bound | None,
    default_currency: str,
    notes: list[str] | None,
) -> Budget | None:
    """One budget from an upper and/or a lower bound said apart ("over $400 and under $500").

    Both ends share the currency either of them names; ends in two different named currencies,
    or a lower end above the upper one, keep the upper end alone (the shopper's limit) and the
    note says why."""
    named = [b.currency for b in (lower, upper) if b is not None and b.currency]
    currency = named[-1] if named else default_currency
    assumed = not named
    if lower is not None and upper is not None and len(set(named)) > 1:
        lower = None
    high = upper.amount(currency) if upper is not None else None
    low = lower.amount(currency) if lower is not None else None
    if low is not None and high is not None and low > high:
        if notes is not None:
            notes.append(
                f"“at least {format_amount(low, currency)}” and “at most "
                f"{format_amount(high, currency)}” cannot both hold, so the budget is at most "
                f"{format_amount(high, currency)}."
            )
        low = None
    for bound in (lower, upper):
        if bound is not None:
            state.take(bound.start, bound.end, "budget")
    if low is None and high is None:
        return None
    return Budget(currency, low, high, currency_assumed=assumed)


# "$400 each", "10 dollars apiece": a budget is a price per item already (assistant.intent).
_PER_ITEM_RE = re.compile(
    r"\s*,?\s*(?:each|apiece|a piece|per (?:item|piece|unit|one))(?![a-z])", re.IGNORECASE
)


def parse_budget(
    state: PromptText, default_currency: str, notes: list[str] | None = None
) -> Budget | None:
    """The request's budget, its text taken; `notes` gets what the shopper should know (a lower
    bound above the upper one was dropped)."""
    budget = _parse_budget(state, default_currency, notes)
    if budget is None:
        _refuse_unusable_limit(state, default_currency, notes)
    if budget is not None:
        for index in range(1, len(state.owner)):
            if state.owner[index - 1] == "budget" and state.owner[index] != "budget":
                per_item = _PER_ITEM_RE.match(state.folded, index)
                if per_item is not None and state.free(index, per_item.end()):
                    state.take(index, per_item.end(), "budget")
    return budget


# A limit whose amount no budget can be: signed ("under -5 dollars"), nothing ("under $0"),
# past MAX_AMOUNT or finer than the currency's minor unit ("0.001 dollars"). _NUM leaves them
# out on purpose; this only finds them to say so, instead of searching "under 0 dollars".
_UNUSABLE_LIMIT_RE = re.compile(
    rf"(?<![a-z])(?:{_MAX_CUES}|{_MIN_CUES}|{_AROUND_CUES})\s*(?:(?P<c1>{_CUR_GROUP})\s*)?"
    rf"(?P<n>-?\s*\d[\d.,e{_GROUP_MARK}]*)(?:\s*(?:{_MULT})(?![a-z]))?"
    rf"(?:\s*(?P<c2>{_CUR_GROUP}))?",
    re.IGNORECASE,
)


def _refuse_unusable_limit(
    state: PromptText, default_currency: str, notes: list[str] | None
) -> None:
    """Take a price limit no budget can hold and note that the request is answered without
    one. Only an amount that is money (a currency said, or digits after a price cue that are
    no measurement) and that no budget reading accepts."""
    text = _amount_text(state)
    for match in _UNUSABLE_LIMIT_RE.finditer(text):
        if not state.free(match.start(), match.end()):
            continue
        if _NOT_MONEY_TAIL.match(text, match.end()):
            continue  # "under 0 kg", "over 0.5 l"
        currency = currency_for_token(match.group("c1")) or currency_for_token(match.group("c2"))
        number = re.sub(r"\s+", "", match.group("n")).rstrip(".,")
        usable = re.fullmatch(_NUM, number) is not None and (
            _parse_amount(number, None, currency or default_currency) is not None
        )
        if usable:
            continue  # a number read some other way (a size, a count, an age), not refused
        state.take(match.start(), match.end(), "budget")
        if notes is not None:
            said = state.original[match.start() : match.end()].strip()
            notes.append(
                f"I could not read “{said}” as a price limit (an amount above zero, at most "
                f"{MAX_AMOUNT:,}, written unambiguously), so I looked without one."
            )
        return


def _parse_budget(
    state: PromptText, default_currency: str, notes: list[str] | None
) -> Budget | None:
    text = _amount_text(state)
    for match in _RANGE_RE.finditer(text):
        if not state.free(match.start(), match.end()):
            continue
        low_n, low_m, low_cur = _money_parts(match, "a")
        high_n, high_m, high_cur = _money_parts(match, "b")
        has_cue = bool(re.match(r"\s*(?:between|from)\b", match.group(0)))
        if not has_cue and not (low_cur or high_cur):
            continue  # "2-3" or "43-55" alone is not a budget
        sep = match.group("sep").lower()
        if (is_number_words(low_n) or is_number_words(high_n)) and (
            sep == "-"
            or (sep == "and" and not has_cue)
            or not (low_cur or high_cur or (has_cue and _words_are_money(state, match)))
        ):
            # In words "twenty to forty euros" and "between twenty and forty euros" are ranges,
            # "between twenty and forty" too unless a person's age it is ("kids between five
            # and ten"); "twenty-five" is one number, "a hundred and twenty pounds" one amount.
            continue
        if _looks_like_measurement(state, match, low_cur, high_cur):
            continue
        if not (low_cur or high_cur) and _childs_age(state, match, high_n, high_m):
            continue  # "toys for kids between 5 and 10"
        currency = high_cur or low_cur or default_currency
        # "10k and 20k naira": a multiplier written once applies to both ends.
        low_mult = low_m or (high_m if low_m is None and high_m and not low_cur else None)
        low = _parse_amount(low_n, low_mult, currency)
        high = _parse_amount(high_n, high_m, currency)
        if low is None or high is None:
            continue
        if low > high:
            low, high = high, low
        state.take(match.start(), match.end(), "budget")
        return Budget(currency, low, high, currency_assumed=not (low_cur or high_cur))
    uppers, lowers, arounds = _apart(
        _bounds(state, text, _MAX_RE, _AFTER_MAX_RE, default_currency=default_currency),
        _bounds(state, text, _MIN_RE, _AFTER_MIN_RE, default_currency=default_currency),
        _bounds(state, text, _AROUND_RE, _AFTER_AROUND_RE, default_currency=default_currency),
    )
    upper = _last_said(state, uppers, notes)
    lower = _last_said(state, lowers, notes)
    if upper is not None or lower is not None:
        return _open_or_closed(state, lower, upper, default_currency, notes)
    around = arounds[0] if arounds else None
    if around is not None:
        currency = around.currency or default_currency
        amount = around.amount(currency)
        if amount is not None:
            state.take(around.start, around.end, "budget")
            spread = int((Decimal(amount) * AROUND_SPREAD).to_integral_value())
            return Budget(
                currency,
                max(1, amount - spread),
                amount + spread,
                currency_assumed=around.currency is None,
            )
    for match in _BARE_RE.finditer(text):
        if not state.free(match.start(), match.end()):
            continue
        number, multiplier, currency = _money_parts(match, "a")
        if currency is None:
            continue  # a bare number is only money when a currency says so
        if (match.group("ac1") or "").lower() in _SINGLE_LETTER and not match.group("ac2"):
            continue  # "an N5000 processor"
        if _weighed_in_pounds(state, match):
            continue  # "a 20 pound dumbbell"
        amount = _parse_amount(number, multiplier, currency)
        if amount is None:
            continue
        state.take(match.start(), match.end(), "budget")
        return Budget(currency, None, amount)
    return None

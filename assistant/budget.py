"""Money in a shopper's request: "under 40 dollars", "between 10k and 20k naira", "around €50".

Parsed exactly (Decimal to integer minor units of an ISO-4217 currency), never through floats; an
amount without a currency is in the shopper's display currency, and the budget says so.

"Pound(s)" after an amount is money, pounds sterling: "20 pound headphones" and "headphones under
20 pounds" are both a price of at most £20.00 (a shop's request names a price far more often
than a weight, and nobody weighs headphones in pounds). Only a thing sold by weight, or "of",
right after it makes it a weight: "a 20 pound dumbbell", "10 pounds of rice" have no budget.
£, GBP, quid and sterling are always money.

How the amounts themselves are written (currencies, numbers, multipliers, measurements) is
assistant.amounts; this module reads the limits said around them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from assistant.amounts import (
    AMOUNT_NUMBER,
    CURRENCY_PATTERN,
    GROUP_MARK,
    MAX_AMOUNT,
    MULTIPLIER,
    NOT_MONEY_TAIL_RE,
    SINGLE_LETTER_CURRENCIES,
    currency_for_token,
    format_amount,
    looks_like_measurement,
    money_parts,
    money_pattern,
    parse_amount,
    weighed_in_pounds,
)
from assistant.number_words import amount_words_value, is_number_words
from assistant.prompt_text import PromptText

AROUND_SPREAD: Final = Decimal("0.2")


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
    rf"(?:\b(?:between|from)\s+)?{money_pattern('a')}\s*(?P<sep>and|to|-)\s*{money_pattern('b')}",
    re.IGNORECASE,
)
_MAX_RE = re.compile(rf"(?:{_MAX_CUES})\s*{money_pattern('a')}", re.IGNORECASE)
_MIN_RE = re.compile(rf"(?:{_MIN_CUES})\s*{money_pattern('a')}", re.IGNORECASE)
_AROUND_RE = re.compile(rf"(?:{_AROUND_CUES})\s*{money_pattern('a')}", re.IGNORECASE)
_BARE_RE = re.compile(money_pattern("a"), re.IGNORECASE)
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


# What may come right before an amount whose thousands are split by plain spaces: a cue
# ("under 5 000 kes"), a currency, the start of a clause. After a product name the first digits
# are its model ("iphone 15 200 dollars" is an iPhone 15 for 200 dollars).
_GROUPED_LEAD_RE = re.compile(
    rf"(?:^|[,;:(!?]|(?<![a-z])(?:{_MAX_CUES}|{_MIN_CUES}|{_AROUND_CUES}|between|from|and|to|"
    rf"for|of|is|at|costs?|costing|pay|spend)|{CURRENCY_PATTERN})\s*$",
    re.IGNORECASE,
)
_GROUPED_RE = re.compile(r"(?<![\d.,])\d{1,3}(?:\s\d{3})+(?!\d)")
# Spaces a typesetter puts between thousands, and only there: no-break, figure and thin.
_GROUPING_SPACES: Final = frozenset("\u00a0\u2007\u202f\u2009")


def _amount_text(state: PromptText) -> str:
    """The folded request with the spaces between thousands ("5 000", "45\u202f000") marked
    (GROUP_MARK), where they are that: typographic spaces always, plain ones after a cue,
    a currency or the start of a clause (_GROUPED_LEAD_RE). Same length as the request."""
    text = state.folded
    chars = list(text)
    for match in _GROUPED_RE.finditer(text):
        spaces = [i for i in range(match.start(), match.end()) if text[i].isspace()]
        typeset = all(state.original[i] in _GROUPING_SPACES for i in spaces)
        if typeset or _GROUPED_LEAD_RE.search(text[: match.start()]):
            for index in spaces:
                chars[index] = GROUP_MARK
    return "".join(chars)


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
        return parse_amount(self.number, self.multiplier, currency)


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
        number, multiplier, currency = money_parts(match, "a")
        if currency is None and (
            not cued
            or (
                is_number_words(number) and not _grand(match) and not _words_are_money(state, match)
            )
        ):
            continue
        if looks_like_measurement(state, match, currency):
            continue
        if currency is None and _childs_age(state, match, number, multiplier):
            continue
        if currency is None and _counts_things(state, match, lower=pattern is _MIN_RE):
            continue  # "at least 2 cameras", "up to 4 players"
        if parse_amount(number, multiplier, currency or default_currency) is None:
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
# past MAX_AMOUNT or finer than the currency's minor unit ("0.001 dollars"). AMOUNT_NUMBER leaves them
# out on purpose; this only finds them to say so, instead of searching "under 0 dollars".
_UNUSABLE_LIMIT_RE = re.compile(
    rf"(?<![a-z])(?:{_MAX_CUES}|{_MIN_CUES}|{_AROUND_CUES})\s*(?:(?P<c1>{CURRENCY_PATTERN})\s*)?"
    rf"(?P<n>-?\s*\d[\d.,e{GROUP_MARK}]*)(?:\s*(?:{MULTIPLIER})(?![a-z]))?"
    rf"(?:\s*(?P<c2>{CURRENCY_PATTERN}))?",
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
        if NOT_MONEY_TAIL_RE.match(text, match.end()):
            continue  # "under 0 kg", "over 0.5 l"
        currency = currency_for_token(match.group("c1")) or currency_for_token(match.group("c2"))
        number = re.sub(r"\s+", "", match.group("n")).rstrip(".,")
        usable = re.fullmatch(AMOUNT_NUMBER, number) is not None and (
            parse_amount(number, None, currency or default_currency) is not None
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
        low_n, low_m, low_cur = money_parts(match, "a")
        high_n, high_m, high_cur = money_parts(match, "b")
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
        if looks_like_measurement(state, match, low_cur, high_cur):
            continue
        if not (low_cur or high_cur) and _childs_age(state, match, high_n, high_m):
            continue  # "toys for kids between 5 and 10"
        currency = high_cur or low_cur or default_currency
        # "10k and 20k naira": a multiplier written once applies to both ends.
        low_mult = low_m or (high_m if low_m is None and high_m and not low_cur else None)
        low = parse_amount(low_n, low_mult, currency)
        high = parse_amount(high_n, high_m, currency)
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
        number, multiplier, currency = money_parts(match, "a")
        if currency is None:
            continue  # a bare number is only money when a currency says so
        if (match.group("ac1") or "").lower() in SINGLE_LETTER_CURRENCIES and not match.group(
            "ac2"
        ):
            continue  # "an N5000 processor"
        if weighed_in_pounds(state, match):
            continue  # "a 20 pound dumbbell"
        amount = parse_amount(number, multiplier, currency)
        if amount is None:
            continue
        state.take(match.start(), match.end(), "budget")
        return Budget(currency, None, amount)
    return None

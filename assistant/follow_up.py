"""A conversation's short memory: a follow-up ("cheaper", "in blue", "only from ShopWave", "show
me more") refines the request before it instead of starting from scratch.

The memory is one step deep and bounded: what the previous request was understood as (its
constraints and words), the products its answer showed, and its first suggestion's price. It
is a plain JSON-safe mapping (`Conversation.to_json`), which the site signs and hands to the
shopper's next request (storefront.assistant.conversation); each answer replaces it, so it never
grows with the conversation.

A request is a follow-up when it names no product of its own (no category, no product for a use)
and either starts like one ("only", "in", "cheaper", "not", "what about" …) or says nothing but
constraints and colours. Anything else ("a gift for my dad", "Sony headphones") starts afresh.
What a follow-up says replaces what it contradicts (a budget, a brand or marketplace to buy from,
an order) and adds to the rest (sizes, words, exclusions).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from assistant.amounts import format_amount
from assistant.budget import Budget
from assistant.intent import (
    MAX_PROMPT_CHARS,
    MAX_QUANTITY,
    SORT_PRICE_ASC,
    SORT_PRICE_DESC,
    SORT_RATING,
    Intent,
    parse_intent,
)
from assistant.vocabulary import CatalogVocabulary
from onecart.money import is_iso_currency

CONVERSATION_VERSION: Final = 1
# "Show me more" pages through at most this many products in one conversation.
MAX_SHOWN: Final = 50
# No list of a remembered request holds more (a request of 500 characters names far fewer).
MAX_LIST_ITEMS: Final = 20
MAX_ID_CHARS: Final = 200

KIND_MORE: Final = "more"
KIND_CHEAPER: Final = "cheaper"
KIND_REFINE: Final = "refine"

_MORE_RE = re.compile(
    r"^\s*(?:(?:please|ok|okay|and|so|can you|could you)[\s,]+)*"
    r"(?:(?:show|give|find|see|get)(?:\s+me)?\s+)?(?:some\s+|any\s+)?"
    r"(?:more|others|other ones|anything else|something else|next(?: page)?|the next ones)"
    r"(?:\s+(?:please|results|options|products|suggestions|ones|like (?:these|this|that|them)|"
    r"of (?:these|them|those)))*\s*[.!?]*\s*$",
    re.IGNORECASE,
)
_CHEAPER_RE = re.compile(
    r"\b(?:cheaper|less expensive|lower[- ]priced|more affordable|too expensive|too pricey|"
    r"too much money)\b",
    re.IGNORECASE,
)
_FOLLOW_UP_START_RE = re.compile(
    r"^\s*(?:only|just|in|from|not|no|without|but|and|also|or|cheaper|more|what about|how about|"
    r"any|same|with|by|under|below|less|over|above|between|around|sorted|rated|best|cheapest|"
    r"instead|now|make it|preferably|rather|except|sold|on|at)\b",
    re.IGNORECASE,
)
_COLOURS: Final = frozenset(
    [
        "black",
        "white",
        "blue",
        "red",
        "green",
        "grey",
        "gray",
        "silver",
        "gold",
        "pink",
        "purple",
        "yellow",
        "orange",
        "brown",
        "navy",
        "beige",
        "rose",
        "teal",
        "cream",
        "khaki",
    ]
)
# Words that only steer the conversation: never words to rank the products by.
_STEERING_WORDS: Final = frozenset(
    [
        "only",
        "just",
        "more",
        "about",
        "what",
        "how",
        "any",
        "ones",
        "one",
        "something",
        "else",
        "instead",
        "also",
        "too",
        "then",
        "now",
        "show",
        "see",
        "some",
        "other",
        "others",
        "please",
        "same",
        "make",
        "rather",
        "preferably",
        "less",
        "expensive",
        "cheaper",
        "affordable",
        "pricey",
    ]
)


class ConversationUnreadable(ValueError):
    """The remembered conversation is not one this version wrote (or it was changed)."""


@dataclass(frozen=True, slots=True)
class FirstSuggestion:
    """The previous answer's first suggestion, as the shopper saw it (display currency)."""

    title: str
    price_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class Conversation:
    """The previous request, as understood, and what its answer showed."""

    text: str
    intent: Intent
    shown: tuple[str, ...] = ()
    first: FirstSuggestion | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-safe (money as integer minor units), bounded in size."""
        intent = self.intent
        budget = None
        if intent.budget is not None:
            budget = [intent.budget.currency, intent.budget.min_minor, intent.budget.max_minor]
        first = None
        if self.first is not None:
            first = [self.first.title[:MAX_ID_CHARS], self.first.price_minor, self.first.currency]
        return {
            "v": CONVERSATION_VERSION,
            "text": self.text[:MAX_PROMPT_CHARS],
            "intent": {
                "budget": budget,
                **{name: list(getattr(intent, name))[:MAX_LIST_ITEMS] for name in _LISTS},
                "available_only": intent.available_only,
                "min_rating": str(intent.min_rating) if intent.min_rating is not None else None,
                "sort": intent.sort,
                "price_preference": intent.price_preference,
                "compare": intent.compare,
                "quantity": intent.quantity,
                "keywords": intent.keywords[:MAX_PROMPT_CHARS],
                "semantic_text": intent.semantic_text[:MAX_PROMPT_CHARS],
                "implied_words": intent.implied_words[:MAX_PROMPT_CHARS],
            },
            "shown": list(self.shown[:MAX_SHOWN]),
            "first": first,
        }


_LISTS: Final = (
    "categories",
    "excluded_categories",
    "brands",
    "excluded_brands",
    "marketplaces",
    "excluded_marketplaces",
    "excluded_substances",
    "excluded_words",
    "excluded_specs",
    "specs",
    "implied_products",
)
_SORTS: Final = frozenset({SORT_PRICE_ASC, SORT_PRICE_DESC, SORT_RATING})


def _text(value: Any, limit: int = MAX_PROMPT_CHARS) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise ConversationUnreadable("a text field is not text or too long")
    return value


def _texts(value: Any, limit: int) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > limit:
        raise ConversationUnreadable("a list field is not a list or too long")
    return tuple(_text(item, MAX_ID_CHARS) for item in value)


def _minor(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 10**18:
        raise ConversationUnreadable("an amount is not a positive whole number")
    return value


def read_conversation(data: Any) -> Conversation:
    """The conversation `Conversation.to_json` wrote; ConversationUnreadable for anything else
    (the site signs it, so this only meets another version's or a broken one)."""
    if not isinstance(data, Mapping) or data.get("v") != CONVERSATION_VERSION:
        raise ConversationUnreadable("not a conversation of this version")
    stored = data.get("intent")
    if not isinstance(stored, Mapping):
        raise ConversationUnreadable("no request in it")
    budget = None
    if stored.get("budget") is not None:
        raw = stored["budget"]
        if not isinstance(raw, list) or len(raw) != 3 or not is_iso_currency(raw[0]):
            raise ConversationUnreadable("the budget is not one")
        budget = Budget(raw[0], _minor(raw[1]), _minor(raw[2]))
    rating = stored.get("min_rating")
    try:
        min_rating = Decimal(_text(rating, 8)) if rating is not None else None
    except InvalidOperation as error:
        raise ConversationUnreadable("the rating is not a number") from error
    sort = stored.get("sort")
    quantity = stored.get("quantity")
    if sort is not None and sort not in _SORTS:
        raise ConversationUnreadable("the order is not one")
    if not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
        raise ConversationUnreadable("the quantity is not one")
    flags = [stored.get(name) for name in ("available_only", "price_preference", "compare")]
    if not all(isinstance(flag, bool) for flag in flags):
        raise ConversationUnreadable("a yes/no field is not one")
    intent = Intent(
        text=_text(data.get("text")),
        budget=budget,
        **{name: _texts(stored.get(name), MAX_LIST_ITEMS) for name in _LISTS},
        available_only=flags[0],
        price_preference=flags[1],
        compare=flags[2],
        min_rating=min_rating,
        sort=sort,
        quantity=quantity,
        keywords=_text(stored.get("keywords")),
        semantic_text=_text(stored.get("semantic_text")),
        implied_words=_text(stored.get("implied_words")),
    )
    first = None
    if data.get("first") is not None:
        raw = data["first"]
        if not isinstance(raw, list) or len(raw) != 3 or not is_iso_currency(raw[2]):
            raise ConversationUnreadable("the first suggestion is not one")
        price = _minor(raw[1])
        if price is None:
            raise ConversationUnreadable("the first suggestion has no price")
        first = FirstSuggestion(_text(raw[0], MAX_ID_CHARS), price, raw[2])
    return Conversation(
        text=intent.text,
        intent=intent,
        shown=_texts(data.get("shown"), MAX_SHOWN),
        first=first,
    )


@dataclass(frozen=True, slots=True)
class FollowUp:
    """A follow-up read against the conversation: the request it makes, what kind it is, the
    products already shown (left out by "show me more") and what the shopper is told."""

    intent: Intent
    kind: str
    shown: tuple[str, ...]
    note: str


def is_follow_up(prompt: str, said: Intent) -> bool:
    """Whether a request refines the previous one (see the module docstring)."""
    if said.categories or said.implied_products or said.compare:
        return False
    if _MORE_RE.match(prompt) or _FOLLOW_UP_START_RE.match(prompt):
        return True
    words = [w for w in said.keywords.split() if w not in _STEERING_WORDS]
    return all(word in _COLOURS for word in words) and said.asks_for_anything


def _union(*lists: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(item for items in lists for item in items))[:MAX_LIST_ITEMS]


def _join_text(*parts: str) -> str:
    return ", ".join(part.strip(" ,.!?") for part in parts if part.strip(" ,.!?"))[
        :MAX_PROMPT_CHARS
    ]


def read_follow_up(
    prompt: str,
    conversation: Conversation,
    vocabulary: CatalogVocabulary,
    *,
    default_currency: str,
) -> FollowUp | None:
    """The request a follow-up makes of the conversation, or None when it starts afresh."""
    said = parse_intent(prompt, vocabulary, default_currency=default_currency)
    if not is_follow_up(said.text, said):
        return None
    # Marketplaces are named as the index names them now.
    before = replace(
        conversation.intent, marketplace_names=tuple(sorted(vocabulary.marketplaces.items()))
    )
    quoted = f"“{conversation.text}”"
    if _MORE_RE.match(said.text):
        if len(conversation.shown) >= MAX_SHOWN:
            note = (
                f"More for {quoted}: I show at most {MAX_SHOWN} products in one conversation, "
                "so here they are again. Say more about what you want to see others."
            )
            return FollowUp(before, KIND_REFINE, (), note)
        note = f"More for {quoted}, leaving out the {len(conversation.shown)} shown before."
        return FollowUp(before, KIND_MORE, conversation.shown, note)

    words = " ".join(w for w in said.keywords.split() if w not in _STEERING_WORDS)
    brands = said.brands or before.brands
    marketplaces = said.marketplaces or before.marketplaces
    intent = replace(
        before,
        text=_join_text(conversation.text, said.text),
        corrections=said.corrections,
        budget=said.budget or before.budget,
        brands=brands,
        excluded_brands=tuple(b for b in _union(before.excluded_brands, said.excluded_brands)
                              if b not in said.brands),
        marketplaces=marketplaces,
        excluded_marketplaces=tuple(
            m for m in _union(before.excluded_marketplaces, said.excluded_marketplaces)
            if m not in said.marketplaces
        ),
        excluded_categories=_union(before.excluded_categories, said.excluded_categories),
        excluded_substances=_union(before.excluded_substances, said.excluded_substances),
        excluded_words=_union(before.excluded_words, said.excluded_words),
        excluded_specs=_union(before.excluded_specs, said.excluded_specs),
        specs=_union(before.specs, said.specs),
        min_rating=said.min_rating if said.min_rating is not None else before.min_rating,
        sort=said.sort or before.sort,
        price_preference=before.price_preference or said.price_preference,
        available_only=said.available_only if said.availability_stated else before.available_only,
        quantity=said.quantity if said.quantity != 1 else before.quantity,
        keywords=" ".join([before.keywords, words]).strip()[:MAX_PROMPT_CHARS],
        semantic_text=_join_text(before.semantic_text, words),
        notes=said.notes,
    )  # fmt: skip
    note = f"Following on from {quoted}."
    kind = KIND_REFINE
    if _CHEAPER_RE.search(said.text) and said.budget is None:
        kind = KIND_CHEAPER
        intent = replace(intent, sort=SORT_PRICE_ASC, price_preference=True)
        first = conversation.first
        if first is not None and first.price_minor > 1:
            limit = first.price_minor - 1
            kept = before.budget
            low = None
            if kept is not None and kept.currency == first.currency:
                limit = min(limit, kept.max_minor or limit)
                low = (
                    kept.min_minor
                    if kept.min_minor is not None and kept.min_minor < limit
                    else None
                )
            intent = replace(intent, budget=Budget(first.currency, low, limit))
            note = (
                f"Following on from {quoted}: cheaper than the first suggestion "
                f"({format_amount(first.price_minor, first.currency)}), cheapest first."
            )
        else:
            note = f"Following on from {quoted}: cheapest first."
    return FollowUp(intent, kind, (), note)


def no_more_message(conversation: Conversation) -> str:
    """What "show me more" says when every product that fits was shown already."""
    count = len(conversation.shown)
    return (
        f"No other products fit “{conversation.text}”: the {count} shown before were all of "
        "them. Change the request to see others."
    )


def remember(
    intent: Intent,
    shown_before: Sequence[str],
    suggestions: Sequence[Any],
    text: str,
) -> Conversation:
    """The conversation after an answer: its request, the products shown so far in it (those
    of "show me more" pages included, at most MAX_SHOWN) and its first suggestion's price."""
    shown = _union_bounded(shown_before, [s.group_id for s in suggestions])
    first = None
    for suggestion in suggestions[:1]:
        if suggestion.display_price_minor is not None:
            first = FirstSuggestion(
                suggestion.title, suggestion.display_price_minor, suggestion.display_currency
            )
    return Conversation(text=text[:MAX_PROMPT_CHARS], intent=intent, shown=shown, first=first)


def _union_bounded(before: Sequence[str], now: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*before, *now]))[:MAX_SHOWN]

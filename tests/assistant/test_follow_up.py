"""Follow-up requests as pure rules: which requests follow on, how they refine the request
before, and the bounds of the conversation's memory."""

from __future__ import annotations

import json
from typing import Any

import pytest

from assistant.budget import Budget
from assistant.follow_up import (
    KIND_CHEAPER,
    KIND_MORE,
    KIND_REFINE,
    MAX_LIST_ITEMS,
    MAX_SHOWN,
    Conversation,
    ConversationUnreadable,
    FirstSuggestion,
    read_conversation,
    read_follow_up,
)
from assistant.intent import SORT_PRICE_ASC, parse_intent
from tests.assistant.test_intent import VOCABULARY


def _conversation(text: str, **fields: Any) -> Conversation:
    intent = parse_intent(text, VOCABULARY)
    return Conversation(text=intent.text, intent=intent, **fields)


def _round_trip(conversation: Conversation) -> Conversation:
    return read_conversation(json.loads(json.dumps(conversation.to_json())))


@pytest.mark.parametrize(
    ("follow_up", "kind"),
    [
        ("cheaper", KIND_CHEAPER),
        ("something cheaper please", KIND_CHEAPER),
        ("in blue", KIND_REFINE),
        ("black ones", KIND_REFINE),
        ("only from ShopWave", KIND_REFINE),
        ("not from Kiondo", KIND_REFINE),
        ("only Sony", KIND_REFINE),
        ("under 30 dollars", KIND_REFINE),
        ("with good reviews", KIND_REFINE),
        ("show me more", KIND_MORE),
        ("more please", KIND_MORE),
        ("any others?", KIND_MORE),
        # Naming a product, or a request of its own, starts afresh.
        ("a gift for my dad", None),
        ("Sony headphones", None),
        ("what about a thermos mug", None),
        ("something to keep my coffee hot", None),
        ("running shoes size 42", None),
    ],
)
def test_a_follow_up_refines_the_request_before_and_a_new_request_starts_afresh(
    follow_up: str, kind: str | None
) -> None:
    before = _conversation("headphones under 100 dollars", shown=("g-sony-xm5",))
    read = read_follow_up(follow_up, before, VOCABULARY, default_currency="USD")
    assert (read.kind if read is not None else None) == kind


def test_cheaper_means_cheaper_than_the_first_suggestion_cheapest_first() -> None:
    before = _conversation(
        "headphones under 400 dollars",
        first=FirstSuggestion("Sony WH-1000XM5", 34999, "USD"),
    )
    read = read_follow_up("cheaper", _round_trip(before), VOCABULARY, default_currency="USD")
    assert read is not None
    assert read.intent.categories == ("headphones",)
    assert read.intent.budget == Budget("USD", None, 34998)
    assert read.intent.sort == SORT_PRICE_ASC
    assert read.intent.text == "headphones under 400 dollars, cheaper"
    assert "cheaper than the first suggestion ($349.99), cheapest first" in read.note


def test_what_a_follow_up_says_replaces_what_it_contradicts_and_adds_to_the_rest() -> None:
    before = _round_trip(_conversation("Sony headphones under 100 dollars, not from Kiondo"))
    read = read_follow_up(
        "only Samsung from ShopWave, not 128gb, under 50 dollars", before, VOCABULARY,
        default_currency="USD",
    )  # fmt: skip
    assert read is not None
    intent = read.intent
    assert intent.categories == ("headphones",)
    assert intent.brands == ("Samsung",)
    assert intent.marketplaces == ("shopwave",)
    assert intent.excluded_marketplaces == ("kiondo",)
    assert intent.excluded_specs == ("128GB",)
    assert intent.budget == Budget("USD", None, 5000)
    assert ("marketplace", "sold on ShopWave") in [(c.kind, c.label) for c in intent.constraints()]
    assert read.note == "Following on from “Sony headphones under 100 dollars, not from Kiondo”."


def test_a_colour_is_a_word_to_rank_by_added_to_the_request_before() -> None:
    before = _round_trip(_conversation("a tv under 700 dollars"))
    read = read_follow_up("in black", before, VOCABULARY, default_currency="USD")
    assert read is not None
    assert read.intent.categories == ("televisions",)
    assert read.intent.keywords.split()[-1] == "black"
    assert read.intent.budget == Budget("USD", None, 70000)


def test_show_me_more_leaves_out_what_was_shown_up_to_a_bound() -> None:
    shown = tuple(f"g-{n}" for n in range(12))
    before = _round_trip(_conversation("a tv", shown=shown))
    read = read_follow_up("show me more", before, VOCABULARY, default_currency="USD")
    assert read is not None and read.kind == KIND_MORE
    assert read.shown == shown and read.intent.categories == ("televisions",)
    assert read.note == "More for “a tv”, leaving out the 12 shown before."

    full = _round_trip(_conversation("a tv", shown=tuple(f"g-{n}" for n in range(MAX_SHOWN))))
    read = read_follow_up("show me more", full, VOCABULARY, default_currency="USD")
    assert read is not None and read.kind == KIND_REFINE and read.shown == ()
    assert f"at most {MAX_SHOWN} products in one conversation" in read.note


def test_the_memory_is_one_request_deep_and_bounded() -> None:
    """However long the conversation, what is remembered stays within its bounds."""
    conversation = _conversation("headphones", shown=tuple(f"g-{n}" for n in range(500)))
    for step in range(60):
        read = read_follow_up(
            f"not from shop{step}, without word{step}", conversation, VOCABULARY,
            default_currency="USD",
        )  # fmt: skip
        assert read is not None
        conversation = _round_trip(Conversation(read.intent.text, read.intent))
    stored = conversation.to_json()
    assert len(stored["text"]) <= 500
    assert all(len(stored["intent"][name]) <= MAX_LIST_ITEMS for name in ("excluded_words",))
    assert len(json.dumps(stored)) < 4000
    big = _conversation("a tv", shown=tuple(f"g-{n}" for n in range(500))).to_json()
    assert len(big["shown"]) == MAX_SHOWN


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d.update(v=2),
        lambda d: d.update(intent="a tv"),
        # A budget currency that is no ISO-4217 code (four letters and a digit, a word).
        lambda d: d["intent"].update(budget=["USD1", None, 100]),
        lambda d: d["intent"].update(budget=["dollars", None, 100]),
        lambda d: d["intent"].update(budget=["USD", None, -5]),
        lambda d: d["intent"].update(budget=["USD", None, True]),
        lambda d: d["intent"].update(sort="random"),
        lambda d: d["intent"].update(quantity=1000),
        lambda d: d["intent"].update(brands="Sony"),
        lambda d: d["intent"].update(brands=["x"] * (MAX_LIST_ITEMS + 1)),
        lambda d: d["intent"].update(min_rating="lots"),
        lambda d: d["intent"].update(available_only="yes"),
        lambda d: d.update(shown=["g"] * (MAX_SHOWN + 1)),
        lambda d: d.update(text="x" * 501),
        lambda d: d.update(first=["Sony", 0, "USD"]),
    ],
)
def test_a_conversation_of_another_shape_is_refused_not_half_read(change: Any) -> None:
    data = _conversation("Sony headphones under 100 dollars").to_json()
    change(data)
    with pytest.raises(ConversationUnreadable):
        read_conversation(data)


def test_a_new_request_led_in_like_a_follow_up_searches_none_of_the_lead_in() -> None:
    """ "what about a backpack for my laptop" searched the word "about"."""
    intent = parse_intent("what about a backpack for my laptop", VOCABULARY)
    assert intent.categories == ("backpacks",)
    assert "about" not in intent.keywords.split()

"""Sizes and quantities written as words are read as the numbers they are, never as search
words, and a size is never taken for how many ("size forty two shoes" asked for 42 pairs)."""

from __future__ import annotations

from typing import Any

import pytest

from assistant.answer import build_answer
from assistant.budget import Budget
from assistant.intent import MAX_QUANTITY, parse_intent
from assistant.number_words import trailing_number_words
from assistant.retrieval import Relaxation, Retrieval
from assistant.specs import MAX_SHOE_SIZE, spec_pattern
from tests.assistant.catalog import FX
from tests.assistant.test_intent import VOCABULARY

SIZES_AND_QUANTITIES: list[tuple[str, dict[str, Any]]] = [
    # Shoe and clothing sizes, in digits or words, halves too: a size, not a count or a word.
    ("running shoes size forty-two", {"specs": ("size 42",), "quantity": 1, "keywords": ""}),
    ("running shoes size 42", {"specs": ("size 42",), "quantity": 1, "keywords": ""}),
    ("size forty two shoes", {"specs": ("size 42",), "quantity": 1, "keywords": ""}),
    ("size 9.5 running shoes", {"specs": ("size 9.5",), "quantity": 1, "keywords": ""}),
    ("shoes size nine and a half", {"specs": ("size 9.5",), "quantity": 1, "keywords": ""}),
    ("running shoes in size ten under fifty", {
        "specs": ("size 10",), "keywords": "",
        "budget": Budget("USD", None, 5000, currency_assumed=True)}),
    ("two pairs of nike running shoes size forty-two", {
        "specs": ("size 42",), "quantity": 2, "brands": ("Nike",), "keywords": ""}),
    ("nike running shoes, size 44, under 100 euros", {
        "specs": ("size 44",), "budget": Budget("EUR", None, 10000), "keywords": ""}),
    # Screen, storage and volume sizes in words, as their digits are.
    ("sixty five inch tv", {"specs": ("65-inch",), "keywords": ""}),
    ("a forty-two inch tv", {"specs": ("42-inch",), "quantity": 1, "keywords": ""}),
    ("a two litre kettle", {"specs": ("2L",), "quantity": 1, "keywords": "kettle"}),
    ("a five hundred ml flask", {"specs": ("500ml",), "quantity": 1}),
    ("a one and a half litre kettle", {"specs": ("1.5L",), "quantity": 1, "keywords": "kettle"}),
    ("a phone with two hundred fifty six gb", {"specs": ("256GB",), "keywords": ""}),
    # How many: a number before the size before the product, "dozen", "pairs".
    ("two sixty-five inch tvs", {"specs": ("65-inch",), "quantity": 2, "keywords": ""}),
    ("two 65 inch tvs", {"specs": ("65-inch",), "quantity": 2, "keywords": ""}),
    ("two dozen mugs", {"categories": ("mugs-flasks",), "quantity": 24, "keywords": ""}),
    ("half a dozen mugs", {"categories": ("mugs-flasks",), "quantity": 6, "keywords": ""}),
    ("running shoes, two pairs", {"categories": ("running-shoes",), "quantity": 2,
                                  "keywords": ""}),
    ("two pairs of running shoes under fifty dollars", {
        "quantity": 2, "budget": Budget("USD", None, 5000), "keywords": ""}),
    # Bounded before any arithmetic: no size or count past what anyone buys.
    ("running shoes size ninety", {"specs": (), "quantity": 1}),
    ("a nine hundred inch tv", {"specs": (), "quantity": 1}),
    ("twelve dozen mugs", {"quantity": 1}),
    ("a million dozen mugs", {"quantity": 1}),
    # What was read before stays read so.
    ("a 3 piece luggage set", {"quantity": 1, "specs": ()}),
    ("a 2-in-1 laptop", {"quantity": 1, "specs": ()}),
    ("twelve travel mugs", {"quantity": 12}),
    ("a 65-inch TV under 1000 dollars", {"specs": ("65-inch",), "quantity": 1}),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), SIZES_AND_QUANTITIES)
def test_sizes_and_quantities_in_words_are_read_as_numbers(
    text: str, expected: dict[str, Any]
) -> None:
    intent = parse_intent(text, VOCABULARY)
    for field, value in expected.items():
        assert getattr(intent, field) == value, (text, field, getattr(intent, field))


def test_a_size_is_listed_as_a_constraint_the_shopper_reads() -> None:
    intent = parse_intent("running shoes size forty-two", VOCABULARY)
    assert ("spec", "size 42") in [(c.kind, c.label) for c in intent.constraints()]


@pytest.mark.parametrize(
    ("spec", "text", "found"),
    [
        ("size 42", "Trail runner, size 42, black", True),
        ("size 42", "Trail runner Size: EU 42", True),
        ("size 42", "Trail runner size 142", False),
        ("size 42", "Trail runner size 42.5", False),
        ("size 9.5", "Road shoe US size 9.5", True),
        ("size 9.5", "Road shoe size 9", False),
    ],
)
def test_a_shoe_size_is_found_only_as_that_size_in_product_text(
    spec: str, text: str, found: bool
) -> None:
    assert bool(spec_pattern(spec).search(text.lower())) is found


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("two sixty-five", (4, 65)),  # "two" is left for the count
        ("sixty five", (0, 65)),
        ("two hundred fifty six", (0, 256)),
        ("five fifty", (5, 50)),
        ("and", None),
        (" ".join(["one"] * 40), (len(" ".join(["one"] * 39)) + 1, 1)),
    ],
)
def test_the_number_ending_a_run_of_words_is_its_longest_well_formed_tail(
    words: str, expected: tuple[int, int] | None
) -> None:
    assert trailing_number_words(words) == expected


def test_bounds_are_what_people_buy() -> None:
    assert MAX_SHOE_SIZE < 100
    assert MAX_QUANTITY == 99


def test_nothing_in_a_size_says_to_leave_out_the_size_not_to_use_other_words() -> None:
    """Listings that do not state a shoe size: the answer names the size, once, and says to
    leave it out (it said "Without “the size size 42”" and "use fewer or different words")."""
    intent = parse_intent("running shoes size forty-two", VOCABULARY)
    retrieval = Retrieval(
        mode="keyword",
        candidates=[],
        total_matches=0,
        fallback_reason="the embedding model is not installed",
        relaxations=[Relaxation("keywords", "size 42", 802)],
    )
    answer = build_answer(
        intent.text, intent, retrieval, fx=FX, display_currency="USD", semantic_available=False
    )
    assert "Without “size 42” there are 802 matches." in answer.message, answer.message
    assert answer.message.endswith("Try to leave out the size."), answer.message

"""Misspelt words in a request, read as the words the shopper meant.

"wireles hedphones for the gym, not to expensive" is read as "wireless headphones for the gym,
not too expensive" before any rule looks at it, so the category, the price wish and the words
left for ranking by meaning ("wireless headphones for the gym") all survive the typos.

Only words from known lists are ever put in: category words (the lexicon of
:mod:`assistant.vocabulary`), the words requests use for constraints ("cheap", "expensive",
"reviews", "stock") and common product descriptors ("wireless", "waterproof"). A word that is
itself a known word, a brand or a marketplace name is never changed, and a word as close to two
known words as to one is left alone rather than guessed. Distances are RapidFuzz's optimal
string alignment (insertions, deletions, substitutions and swaps of neighbours).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Final

from rapidfuzz import process
from rapidfuzz.distance import OSA

from assistant.vocabulary import (
    CATEGORIES,
    FUZZY_STOPLIST,
    STOPWORDS,
    CatalogVocabulary,
    fold,
)

# Words a request uses to state a constraint or a price wish. Corrected from four letters on
# ("chep" -> "cheap"), since they decide filters rather than ranking.
CONSTRAINT_WORDS: Final = frozenset(
    [
        "cheap",
        "cheaper",
        "cheapest",
        "expensive",
        "inexpensive",
        "pricey",
        "affordable",
        "budget",
        "bargain",
        "reviews",
        "reviewed",
        "rating",
        "ratings",
        "stock",
        "available",
        "between",
        "under",
        "below",
        "above",
        "around",
        "without",
        "except",
        "excluding",
        "dollars",
        "euros",
        "pound",
        "pounds",
        "naira",
        "shillings",
    ]
)

# Common product descriptors, so the words ranked by meaning are the ones the shopper meant.
DESCRIPTOR_WORDS: Final = frozenset(
    [
        "wireless",
        "bluetooth",
        "waterproof",
        "water",
        "resistant",
        "portable",
        "rechargeable",
        "cordless",
        "noise",
        "cancelling",
        "canceling",
        "ergonomic",
        "mechanical",
        "stainless",
        "steel",
        "insulated",
        "adjustable",
        "lightweight",
        "foldable",
        "compact",
        "running",
        "gaming",
        "kitchen",
        "coffee",
        "leather",
        "cotton",
        "organic",
        "electric",
        "digital",
        "automatic",
        "charger",
        "charging",
        "battery",
        "travel",
        "outdoor",
        "camping",
        "fitness",
        "workout",
        "children",
        "beginner",
        "professional",
        "quality",
        "durable",
        "comfortable",
    ]
)

MIN_WORD: Final = 4
_WORD_RE = re.compile(r"[^\W\d_][^\W\d_'\-]*[^\W\d_]|[^\W\d_]", re.UNICODE)


@dataclass(frozen=True, slots=True)
class Correction:
    """One word read as another ("hedphones" -> "headphones")."""

    written: str
    meant: str


def damerau_distance(a: str, b: str, limit: int = 2) -> int:
    """Optimal string alignment distance (insert, delete, substitute, swap), capped at limit+1."""
    return int(OSA.distance(a, b, score_cutoff=limit))


def allowed_typos(word: str) -> int:
    """How many edits a word of this length may carry and still be recognised."""
    if len(word) >= 9:
        return 2
    if len(word) >= 5:
        return 1
    return 0


def closest(word: str, targets: tuple[str, ...], allowed: int) -> str | None:
    """The one target within `allowed` edits of `word` (the nearest; None on a tie)."""
    if allowed <= 0 or not targets:
        return None
    found = process.extract(
        word, targets, scorer=OSA.distance, score_cutoff=allowed, limit=2, processor=None
    )
    if not found:
        return None
    best, distance = found[0][0], found[0][1]
    if len(found) > 1 and found[1][1] == distance and found[1][0] != best:
        return None
    return str(best)


@cache
def category_words() -> frozenset[str]:
    """Every word of every category phrase ("phone", "coffee", "maker")."""
    return frozenset(
        word for category in CATEGORIES for phrase in category.phrases for word in phrase.split()
    )


@cache
def _targets() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(every correctable word, the short-word subset): category words of six letters or more,
    constraint words and descriptors."""
    long_categories = {word for word in category_words() if len(word) >= 6}
    everything = tuple(sorted(long_categories | CONSTRAINT_WORDS | DESCRIPTOR_WORDS))
    return everything, tuple(sorted(CONSTRAINT_WORDS))


def _known_words(vocabulary: CatalogVocabulary) -> frozenset[str]:
    names = [*vocabulary.brands, *vocabulary.marketplaces, *vocabulary.marketplaces.values()]
    return frozenset(word for name in names for word in re.split(r"[^a-z0-9]+", fold(name)) if word)


def correct_word(word: str, vocabulary_words: frozenset[str] = frozenset()) -> str | None:
    """The word a misspelt request word stands for, or None when it stands for itself."""
    folded = fold(word)
    if (
        len(folded) < MIN_WORD
        or not folded.isalpha()
        or folded in STOPWORDS
        or folded in FUZZY_STOPLIST
        or folded in vocabulary_words
        or folded in category_words()
        or folded in CONSTRAINT_WORDS
        or folded in DESCRIPTOR_WORDS
    ):
        return None
    everything, short = _targets()
    if len(folded) < 5:
        # Four letters: only a constraint word one letter longer ("chep", "chea").
        meant = closest(folded, short, 1)
        return meant if meant is not None and len(meant) == len(folded) + 1 else None
    meant = closest(folded, everything, allowed_typos(folded))
    if (
        meant is None
        or len(meant) < 5
        or damerau_distance(folded, meant) > max(1, allowed_typos(meant))
        # A longer word built on a known one is its own word: a plural ("workouts") or a
        # name ("Nespresso"), not a typo.
        or meant in folded
    ):
        return None
    return meant


def correct_prompt(
    text: str, vocabulary: CatalogVocabulary | None = None
) -> tuple[str, tuple[Correction, ...]]:
    """`text` with misspelt known words replaced (same punctuation and spacing otherwise),
    and the corrections made."""
    known = _known_words(vocabulary) if vocabulary is not None else frozenset()
    corrections: list[Correction] = []
    pieces: list[str] = []
    last = 0
    for match in _WORD_RE.finditer(text):
        word = match.group(0)
        meant = correct_word(word, known)
        if meant is None:
            continue
        meant_text = meant.capitalize() if word[:1].isupper() else meant
        pieces.append(text[last : match.start()])
        pieces.append(meant_text)
        last = match.end()
        corrections.append(Correction(written=word, meant=meant))
    pieces.append(text[last:])
    return "".join(pieces), tuple(corrections)

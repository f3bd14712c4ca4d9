"""The product a request means, read from the catalog's own vocabulary instead of a word's place.

"a gift for a runner under $50" names no product: "gift" says why, "runner" for whom. But the
index holds "Running Shoes", so the runner's products are those the catalog calls "running"
(shoes, and anything else that says so), and the request ranks by that word, never filters by
it (as the uses of assistant.glossary do). A person named by what they do ("runner", "cyclist",
"gamer") is told from a product of the same shape ("speaker", "blender") by the catalog too:
what the catalog names itself is a product, and only an activity the catalog holds is implied.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from assistant.vocabulary import CatalogVocabulary, category_label, fold

# "runner", "runners", "cyclist", "skier": a doer ending and the stem before it.
_DOER_RE = re.compile(r"^(?P<stem>[a-z]{2,}?)(?:ers?|ists?)$")
_WORD_RE = re.compile(r"[a-z][a-z'-]*[a-z]")


def catalog_words(vocabulary: CatalogVocabulary) -> frozenset[str]:
    """Every word of the category values the index holds and of their labels, folded."""
    names: list[str] = [value for values in vocabulary.category_values.values() for value in values]
    names.extend(category_label(key) for key in vocabulary.category_values)
    return frozenset(word for name in names for word in _WORD_RE.findall(fold(name)))


def _activity_forms(word: str) -> tuple[str, ...]:
    """What a doer does, as listings write it: runner -> running, cyclist -> cycling, gamer ->
    gaming or game, golfer -> golf, photographer -> photography."""
    match = _DOER_RE.match(word)
    if match is None:
        return ()
    stem = match.group("stem")
    return (f"{stem}ing", stem, f"{stem}e", f"{stem}y")


def activity_words(words: Iterable[str], vocabulary: CatalogVocabulary) -> tuple[str, ...]:
    """The catalog's words for what the people a request names do ("a gift for a runner" ->
    "running" where the index holds "Running Shoes"), in the order said. A word the catalog
    itself holds ("speakers") is a product, not a person."""
    known = catalog_words(vocabulary)
    found: list[str] = []
    for word in words:
        if word in known or word.rstrip("s") in known:
            continue
        for form in _activity_forms(word):
            if form != word and (form in known or f"{form}s" in known) and form not in found:
                found.append(form)
                break
    return tuple(found)

"""The request as the intent parser reads it: the folded text, and which of its characters the
parser's rules have consumed (so every piece is read by at most one rule)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from assistant.vocabulary import fold

# A word of the folded request: letters and digits, with inner apostrophes, dots, dashes, "&", "+".
TOKEN_RE = re.compile(r"[a-z0-9][a-z0-9'&+.\-]*[a-z0-9]|[a-z0-9]")


@dataclass(slots=True)
class PromptText:
    """The folded request and which characters rules have consumed (by kind)."""

    original: str
    folded: str
    owner: list[str | None] = field(default_factory=list)

    @classmethod
    def of(cls, text: str) -> PromptText:
        folded_chars: list[str] = []
        original_chars: list[str] = []
        for ch in text:
            folded = fold(ch)
            # Keep one folded character per original one so spans line up with the original.
            folded_chars.append(folded[:1] if folded else " ")
            original_chars.append(ch)
        folded_text = "".join(folded_chars)
        return cls(original=text, folded=folded_text, owner=[None] * len(folded_text))

    def free(self, start: int, end: int) -> bool:
        return all(owner is None for owner in self.owner[start:end])

    def take(self, start: int, end: int, kind: str) -> None:
        for index in range(start, end):
            self.owner[index] = kind

    def remaining(self, keep: Iterable[str] = ()) -> str:
        kept = set(keep)
        chars = [
            ch if owner is None or owner in kept else " "
            for ch, owner in zip(self.folded, self.owner, strict=True)
        ]
        return "".join(chars)

    def remaining_original(self, keep: Iterable[str] = ()) -> str:
        kept = set(keep)
        chars = [
            ch if owner is None or owner in kept else " "
            for ch, owner in zip(self.original, self.owner, strict=True)
        ]
        return "".join(chars)


def take_first(state: PromptText, pattern: re.Pattern[str], kind: str) -> re.Match[str] | None:
    for match in pattern.finditer(state.folded):
        if match.end() > match.start() and state.free(match.start(), match.end()):
            state.take(match.start(), match.end(), kind)
            return match
    return None

"""A page number from a query string, bounded before any arithmetic (the admin area's lists)."""

from __future__ import annotations

# A page number beyond this is read as the last page (the query stays bounded).
MAX_PAGE_NUMBER = 100_000


def page_number(raw: str | None) -> int:
    """A page number from the query string: 1 for anything that is not a number, at most
    MAX_PAGE_NUMBER (ASCII digits only: int() refuses a superscript that isdigit() accepts)."""
    text = (raw or "").strip()
    if not (text.isascii() and text.isdigit()):
        return 1
    return max(1, min(int(text[:7]) if len(text) <= 7 else MAX_PAGE_NUMBER, MAX_PAGE_NUMBER))

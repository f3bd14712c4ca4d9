"""How each sandbox store writes a product: its title styles and its local price endings."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.world_products import WorldProduct


def join_words(*parts: str) -> str:
    """The non-empty parts joined by single spaces."""
    return " ".join(part for part in parts if part)


# --- Titles, in each store's own style ------------------------------------------------------

TitleStyle = Callable[["WorldProduct"], str]


def _tail(separator: str, *parts: str) -> str:
    text = ", ".join(part for part in parts if part)
    return f"{separator}{text}" if text else ""


TITLE_STYLES: dict[str, tuple[TitleStyle, ...]] = {
    "shopwave": (
        lambda p: (
            join_words(p.brand, p.line, p.model, p.descriptor, p.spec) + _tail(" - ", p.colour)
        ),
        lambda p: (
            join_words(p.brand, p.line, p.descriptor, f"({p.model})")
            + _tail(", ", p.spec, p.colour)
        ),
    ),
    "kiondo": (
        lambda p: join_words(p.brand, p.line, p.descriptor, p.spec, p.colour, f"({p.model})"),
        lambda p: (
            join_words(p.brand, p.model, p.line, p.short_noun) + _tail(" - ", p.spec, p.colour)
        ),
    ),
    "dummymart": (
        lambda p: join_words(p.brand, p.line, p.model, p.short_noun),
        lambda p: join_words(
            p.line or p.descriptor, p.model, p.short_noun if p.line else "", "by", p.brand
        ),
    ),
    "fakestore": (
        lambda p: join_words(
            p.brand.upper(), re.sub(r"[\s\-]", "", p.model), p.short_noun, p.colour
        ),
        lambda p: join_words(p.brand, p.model, p.descriptor, p.colour, p.spec),
    ),
    "naijamall": (
        lambda p: (
            join_words(p.brand, p.line, f"({p.model})", p.descriptor, p.spec)
            + _tail(" - ", p.colour)
        ),
        lambda p: (
            join_words(p.brand, p.line, p.spec, p.short_noun, p.model)
            + _tail(" - ", p.colour)
            + " | Official Warranty"
        ),
    ),
    "bazaar": (
        lambda p: join_words(p.descriptor, p.brand, p.line, p.model) + _tail(" – ", p.colour),
        lambda p: (
            join_words(p.brand, p.model, p.short_noun)
            + (f" ({_tail('', p.colour, p.spec)})" if p.colour or p.spec else "")
        ),
    ),
    "amazon": (
        lambda p: (
            join_words(p.brand, p.line, p.model, p.descriptor) + _tail(", ", p.spec, p.colour)
        ),
        lambda p: join_words(p.brand, p.descriptor, p.line, f"{p.model},", p.colour),
    ),
    "sokoni": (
        lambda p: join_words(p.brand, p.line, p.model, p.short_noun) + _tail(" - ", p.colour),
        lambda p: join_words(p.brand, p.short_noun, p.model, p.spec, p.colour),
    ),
}

BOOK_TITLE_STYLES: dict[str, tuple[TitleStyle, ...]] = {
    "shopwave": (lambda p: f"{p.descriptor} by {p.line} ({p.colour})",),
    "kiondo": (lambda p: f"{p.descriptor} - {p.line} ({p.colour}) ISBN {p.model}",),
    "dummymart": (lambda p: f"{p.descriptor} by {p.line}",),
    "fakestore": (lambda p: f"{p.descriptor} by {p.line} - {p.colour} ({p.brand})",),
    "naijamall": (lambda p: f"{p.descriptor} by {p.line} - {p.colour}",),
    "bazaar": (lambda p: f"{p.descriptor} ({p.colour}) – {p.line}",),
    "amazon": (lambda p: f"{p.descriptor} ({p.colour}) by {p.line}",),
    "sokoni": (lambda p: f"{p.descriptor} - {p.line}",),
}


def compose_title(slug: str, product: WorldProduct, style: int) -> str:
    """The product's title as marketplace `slug` writes it (style picks one of the store's habits)."""
    styles = (BOOK_TITLE_STYLES if product.category.is_book else TITLE_STYLES)[slug]
    return styles[style % len(styles)](product)


# --- Local prices ---------------------------------------------------------------------------

# Price endings per currency (minor units below the next whole unit; 0 = a round price).
_PRICE_ENDINGS = {"USD": (1, 1, 1, 5, 0, 51), "EUR": (1, 1, 10, 5, 0), "GBP": (1, 1, 51, 0)}


def round_local_price(currency: str, amount: Decimal, ending: int) -> int:
    """Round an exact amount the way shops in that currency price things, in minor units.

    USD/EUR/GBP end in .99/.95/.90/.49 or a round number; KES is whole shillings ending in 9 or
    a round fifty; NGN is whole naira in steps of 50 or 500. Never below one minor unit's worth.
    """
    if currency in _PRICE_ENDINGS:
        endings = _PRICE_ENDINGS[currency]
        whole = max(1, int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP)))
        return whole * 100 - endings[ending % len(endings)]
    if currency == "KES":
        step = 50 if amount >= 1000 else 10
        whole = max(step, int((amount / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * step)
        if ending % 2 == 0:
            whole -= 1
        return whole * 100
    if currency == "NGN":
        step = 500 if amount >= 10_000 else 50
        whole = max(step, int((amount / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * step)
        return whole * 100
    raise ValueError(f"no price rounding rule for {currency}")


def price_unit(currency: str) -> int:
    """The smallest step a store in that currency moves a price by, in minor units."""
    return {"KES": 100, "NGN": 5000}.get(currency, 100)


def rescale_price(currency: str, minor: int, permille: int, ending: int) -> int:
    """`minor` times permille/1000, re-rounded locally, and guaranteed to differ from `minor`."""
    scaled = round_local_price(currency, Decimal(minor) * permille / Decimal(100_000), ending)
    if scaled == minor:
        scaled = minor + price_unit(currency) if permille >= 1000 else minor - price_unit(currency)
    return max(scaled, price_unit(currency) // 2 or 1)

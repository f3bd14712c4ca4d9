"""The shape of the sandbox's assortment tables (sandbox.assortment) and the rule its model-number
templates obey.

Model templates use ``#`` for a digit, ``@`` for a letter (I and O left out, as many
manufacturers do) and ``{S}`` for the screen size; every other character is literal. A template
must hold at least :data:`MIN_MODEL_CAPACITY` codes so that every product of a brand gets its own
model number even at a million offers (the generator, sandbox.world_products, checks this).
"""

from __future__ import annotations

from dataclasses import dataclass

MODEL_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
MIN_MODEL_CAPACITY = 10_000_000


@dataclass(frozen=True, slots=True)
class Brand:
    """A brand as it appears in one category: its product lines and how it numbers models."""

    name: str
    lines: tuple[str, ...]
    model_template: str
    gs1_prefix: str
    # Product descriptions this brand really makes in the category (empty: the category's own).
    descriptors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Category:
    """One product category with everything needed to invent believable products in it."""

    slug: str
    name: str
    path: tuple[str, ...]
    google_category: str
    colour: str
    price_usd: tuple[int, int]
    brands: tuple[Brand, ...]
    descriptors: tuple[str, ...]
    # The noun short titles use ("Headphones"); empty when only the descriptor says what it is.
    short_noun: str
    colours: tuple[str, ...]
    features: tuple[str, ...]
    tags: tuple[str, ...]
    weight: int
    # (label, price multiplier): storage size, screen size, kit…; ("", 1.0) when it has none.
    specs: tuple[tuple[str, float], ...] = (("", 1.0),)
    gift: bool = False
    is_book: bool = False


def model_template_capacity(template: str) -> int:
    """How many distinct model numbers a template can spell."""
    capacity = 1
    for char in template.replace("{S}", ""):
        if char == "#":
            capacity *= 10
        elif char == "@":
            capacity *= len(MODEL_LETTERS)
    return capacity

"""“Which is better, X or Y?”: a short, honest comparison of two products from what the catalog
knows about them, and what decides it.

Only three things are compared, each from the index: the price (each product's cheapest offer
that can be bought, as the shopper would pay it), its review-weighted rating with the number of
reviews behind it (search_index.groups.group_rating, as listings rate products), and how many
offers are in stock on how many marketplaces. Nothing else is claimed: the listings do not give
features in a form that can be compared, and the answer says so. A rating decides only when it
differs by RATING_MARGIN or more and rests on at least MIN_REVIEWS reviews.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

from assistant.amounts import format_amount

# A question of two products: "which is better, X or Y?", "X or Y, which is better?", "X vs Y",
# "is X better than Y?", "should I buy X or Y?". Each side is bounded (a product's name, not a
# paragraph).
MAX_SIDE_CHARS: Final = 100
_A, _B = (rf"(?:the\s+|a\s+|an\s+)?(?P<{name}>[^?]{{1,{MAX_SIDE_CHARS}}}?)" for name in ("a", "b"))
_BETTER = r"(?:better|best|the better (?:buy|one|choice)|a better (?:buy|choice))"
_END = r"\s*[?!.]*\s*$"
_QUESTION_RES: Final = (
    re.compile(
        rf"^\s*(?:so\s+|and\s+)?(?:which|what)(?:'s|\s+is|\s+one\s+is|\s+would\s+be|\s+of\s+them"
        rf"\s+is)\s+{_BETTER}\s*[,:]?\s*{_A}\s*,?\s+or\s+{_B}{_END}",
        re.IGNORECASE,
    ),
    re.compile(
        rf"^\s*{_A}\s*,?\s+or\s+{_B}\s*[,:?]?\s*(?:which|what)(?:\s+one)?(?:'s|\s+is)\s+"
        rf"{_BETTER}{_END}",
        re.IGNORECASE,
    ),
    re.compile(
        rf"^\s*(?:should\s+i\s+(?:buy|get|choose|pick)|(?:buy|get)\s+)\s*{_A}\s*,?\s+or\s+{_B}{_END}",
        re.IGNORECASE,
    ),
    re.compile(rf"^\s*is\s+{_A}\s+better\s+than\s+{_B}{_END}", re.IGNORECASE),
    re.compile(rf"^\s*{_A}\s+(?:vs\.?|versus)\s+{_B}{_END}", re.IGNORECASE),
)

RATING_MARGIN: Final = Decimal("0.2")
MIN_REVIEWS: Final = 10
# Prices within this share of each other are the same price to a shopper.
SAME_PRICE_SHARE: Final = Decimal("0.02")

SCOPE_NOTE: Final = (
    "This compares price, reviews and stock only: check each product page for features and sizes."
)


def parse_which_is_better(prompt: str) -> tuple[str, str] | None:
    """The two products a "which is better" question names, or None for any other request."""
    for pattern in _QUESTION_RES:
        match = pattern.match(prompt)
        if match is None:
            continue
        first, second = (match.group(side).strip(" ,.") for side in ("a", "b"))
        if first and second and first.lower() != second.lower():
            return first, second
    return None


@dataclass(frozen=True, slots=True)
class ProductFacts:
    """What the catalog knows of one product, for the comparison (money in minor units of the
    shopper's display currency)."""

    name: str
    title: str
    price_minor: int | None
    marketplace_name: str
    rating: Decimal | None
    reviews: int
    offers_in_stock: int
    marketplaces_in_stock: int

    def describe(self, currency: str) -> str:
        """ "For “Thermos mug”: Thermos Travel Mug 16oz, $22.39 on Kiondo Market, 4.6★ from 20
        reviews, 2 offers in stock on 2 marketplaces." """
        if self.price_minor is None:
            price = f"no price in {currency} (no exchange rate)"
        else:
            price = f"{format_amount(self.price_minor, currency)} on {self.marketplace_name}"
        if self.rating is None:
            rated = "no rating published"
        else:
            rated = (
                f"{_stars(self.rating)}★ from {self.reviews} review{_s(self.reviews)}"
                if self.reviews
                else f"{_stars(self.rating)}★ (no review count published)"
            )
        stock = (
            "no offer in stock"
            if self.offers_in_stock == 0
            else f"{self.offers_in_stock} offer{_s(self.offers_in_stock)} in stock on "
            f"{self.marketplaces_in_stock} marketplace{_s(self.marketplaces_in_stock)}"
        )
        return f"For “{self.name}”: {self.title}, {price}, {rated}, {stock}."


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _stars(rating: Decimal) -> str:
    # As a shopper rounds: 3.85 is 3.9.
    return str(rating.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def _rated_higher(a: ProductFacts, b: ProductFacts) -> ProductFacts | bool | None:
    """The product rated meaningfully higher; False when they are about equal; None when the
    ratings cannot tell (one is missing, or rests on fewer than MIN_REVIEWS reviews)."""
    if a.rating is None or b.rating is None or min(a.reviews, b.reviews) < MIN_REVIEWS:
        return None
    if abs(a.rating - b.rating) < RATING_MARGIN:
        return False
    return a if a.rating > b.rating else b


def _reviews_undecided(a: ProductFacts, b: ProductFacts) -> str:
    """Why the ratings decide nothing: "“B” has no rating published", "“A” has 9 reviews"."""
    for facts in (a, b):
        if facts.rating is None:
            return f"“{facts.name}” has no rating published"
    fewest = min((a, b), key=lambda f: f.reviews)
    return f"“{fewest.name}” has {fewest.reviews} review{_s(fewest.reviews)}"


def _cheaper(a: ProductFacts, b: ProductFacts) -> ProductFacts | bool | None:
    """The cheaper product; False when the prices are about the same; None without both."""
    if a.price_minor is None or b.price_minor is None:
        return None
    low, high = sorted((a, b), key=lambda f: f.price_minor or 0)
    assert low.price_minor is not None and high.price_minor is not None
    if high.price_minor - low.price_minor <= high.price_minor * SAME_PRICE_SHARE:
        return False
    return low


def compare_products(a: ProductFacts, b: ProductFacts, currency: str) -> str:
    """The verdict, saying what decides it, from price, reviews and stock alone."""
    for gone, other in ((a, b), (b, a)):
        if gone.offers_in_stock == 0 and other.offers_in_stock > 0:
            return (
                f"I would pick “{other.name}”: “{gone.name}” has no offer in stock on any "
                "marketplace."
            )
    cheaper = _cheaper(a, b)
    higher = _rated_higher(a, b)

    def price_of(facts: ProductFacts) -> str:
        return format_amount(facts.price_minor or 0, currency)

    def rating_of(facts: ProductFacts) -> str:
        rating = facts.rating or Decimal(0)
        return f"{_stars(rating)}★ from {facts.reviews} review{_s(facts.reviews)}"

    if isinstance(cheaper, ProductFacts):
        other = b if cheaper is a else a
        prices = f"{price_of(cheaper)} against {price_of(other)}"
        if higher is cheaper:
            return (
                f"“{cheaper.name}” is the better buy on what we know: it costs less ({prices}) "
                f"and is rated higher ({rating_of(cheaper)} against {rating_of(other)})."
            )
        if higher is False:
            return (
                f"I would pick “{cheaper.name}”: it costs less ({prices}) and the two are rated "
                f"about the same ({rating_of(cheaper)} against {rating_of(other)})."
            )
        if isinstance(higher, ProductFacts):
            return (
                f"It depends on what matters more to you: “{cheaper.name}” costs less "
                f"({prices}); “{higher.name}” is rated higher ({rating_of(higher)} against "
                f"{rating_of(cheaper)})."
            )
        return (
            f"I would pick “{cheaper.name}” on price: it costs less ({prices}); the reviews "
            f"cannot tell them apart ({_reviews_undecided(a, b)})."
        )
    if isinstance(higher, ProductFacts):
        other = b if higher is a else a
        said = "about the same price" if cheaper is False else "prices that cannot be compared"
        return (
            f"I would pick “{higher.name}”: at {said}, it is rated higher "
            f"({rating_of(higher)} against {rating_of(other)})."
        )
    return "There is little between them on what we know: price and reviews do not set them apart."

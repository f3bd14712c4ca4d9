"""The assistant evaluation's judge: the labelled requests (assistant_eval_set.json) and which
index groups each label calls relevant.

Labels are written against the sandbox's world (sandbox.world): each request names what a
relevant product is (category, brand, product line, words of its name or features, size), which
selects world products; a world product is found in the warehouse by its stable keys (GTIN, or
brand + model number, also inside titles) and so mapped to the product groups the index knows.
Hard constraints written with the label (budget, marketplaces, rating) then keep only groups
with an offer that meets them, checked on warehouse prices with the run's FX rates.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from assistant.budget import Budget
from assistant.constraints import offer_meets_budget
from assistant.vocabulary import fold
from commerce.fx import FxTable
from onecart.money import to_minor_units

EVAL_SET_PATH: Final = Path(__file__).resolve().parent / "assistant_eval_set.json"


@dataclass(frozen=True, slots=True)
class EvalRequest:
    """One labelled request of assistant_eval_set.json."""

    id: str
    prompt: str
    kind: str
    relevant: Mapping[str, Any]
    constraints: Mapping[str, Any]
    display_currency: str = "USD"
    expect_none: bool = False


def load_eval_set(path: Path = EVAL_SET_PATH) -> tuple[dict[str, Any], list[EvalRequest]]:
    """The catalog the labels were written for, and the requests."""
    data = json.loads(path.read_text(encoding="utf-8"))
    requests = [
        EvalRequest(
            id=item["id"],
            prompt=item["prompt"],
            kind=item.get("kind", "other"),
            relevant=item.get("relevant", {}),
            constraints=item.get("constraints", {}),
            display_currency=item.get("display_currency", "USD"),
            expect_none=bool(item.get("expect_none", False)),
        )
        for item in data["requests"]
    ]
    ids = [r.id for r in requests]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{path.name} has duplicate request ids")
    return data["catalog"], requests


def world_products(seed: int, offers: int) -> dict[str, Any]:
    """Every world product the sandbox lists at this size, by product key: on the six
    marketplaces and the affiliate ones (Amazon, Sokoni), whose own products are in the
    index too and are relevant by the same rules."""
    from sandbox.marketplaces import SERVED_MARKETPLACES
    from sandbox.world import World

    world = World(seed, offers)
    products: dict[str, Any] = {}
    for market in SERVED_MARKETPLACES:
        for index in range(world.offer_count(market.slug)):
            key = world.product_key(market.slug, index)
            if key not in products:
                products[key] = world.product(key)
    return products


def product_text(product: Any) -> str:
    """Everything a label's `text_any` may match: name, descriptor, size, colour, features."""
    return fold(
        " ".join(
            [
                product.display_name,
                product.line,
                product.descriptor,
                product.spec,
                product.colour,
                product.category.name,
                *product.features,
            ]
        )
    )


def matches_rule(product: Any, rule: Mapping[str, Any]) -> bool:
    """Does a world product satisfy a label's relevance rule (every given field must hold)?"""
    if "categories" in rule and product.category.slug not in rule["categories"]:
        return False
    if "brands" in rule and product.brand not in rule["brands"]:
        return False
    if "exclude_brands" in rule and product.brand in rule["exclude_brands"]:
        return False
    if "lines" in rule and not any(fold(line) in fold(product.line) for line in rule["lines"]):
        return False
    if "spec" in rule and product.spec != rule["spec"]:
        return False
    if "gift" in rule and product.gift != rule["gift"]:
        return False
    text = product_text(product)
    if "text_any" in rule and not any(fold(word) in text for word in rule["text_any"]):
        return False
    return not ("text_none" in rule and any(fold(word) in text for word in rule["text_none"]))


@dataclass(slots=True)
class CatalogMap:
    """Warehouse offers by product key and group, for judging suggestions."""

    groups_by_product: dict[str, set[str]] = field(default_factory=dict)
    offers_by_group: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    product_of_group: dict[str, str] = field(default_factory=dict)


def build_catalog_map(
    offers: Iterable[Mapping[str, Any]], products: Mapping[str, Any]
) -> CatalogMap:
    """Find each warehouse offer's world product by GTIN, else brand + model (in the model
    field or in the title), and record its product group."""
    from warehouse.matching import model_candidates_in_title, normalize_model

    by_gtin = {p.gtin: key for key, p in products.items()}
    by_model: dict[str, str] = {}
    for key, p in products.items():
        model = normalize_model(p.model)
        if model:
            by_model[model] = key
    result = CatalogMap()
    for offer in offers:
        key = by_gtin.get(offer.get("gtin") or "")
        if key is None:
            model = normalize_model(offer.get("model"))
            key = by_model.get(model) if model else None
        if key is None:
            for candidate in sorted(model_candidates_in_title(str(offer.get("title") or ""))):
                if candidate in by_model:
                    key = by_model[candidate]
                    break
        group_id = offer.get("group_id")
        if not group_id:
            continue
        result.offers_by_group.setdefault(group_id, []).append(dict(offer))
        if key is not None:
            result.groups_by_product.setdefault(key, set()).add(group_id)
            result.product_of_group.setdefault(group_id, key)
    return result


def label_budget(constraints: Mapping[str, Any]) -> Budget | None:
    """A label's budget, exactly, in minor units."""
    spec = constraints.get("budget")
    if not spec:
        return None
    currency = spec["currency"]
    low = spec.get("min")
    high = spec.get("max")
    return Budget(
        currency,
        to_minor_units(Decimal(str(low)), currency) if low is not None else None,
        to_minor_units(Decimal(str(high)), currency) if high is not None else None,
    )


def offer_meets_label(
    offer: Mapping[str, Any], constraints: Mapping[str, Any], fx: FxTable
) -> bool:
    """Does one offer meet the labelled (hand-written) offer-level constraints?"""
    budget = label_budget(constraints)
    if budget is not None and not offer_meets_budget(offer, budget, fx):
        return False
    if (
        constraints.get("marketplaces")
        and offer.get("marketplace") not in constraints["marketplaces"]
    ):
        return False
    if offer.get("marketplace") in constraints.get("exclude_marketplaces", []):
        return False
    if constraints.get("available", True) and not offer.get("available"):
        return False
    minimum = constraints.get("min_rating")
    if minimum is not None:
        rating = offer.get("rating")
        if rating is None or Decimal(str(rating)) < Decimal(str(minimum)):
            return False
    return True


def relevant_groups(
    request: EvalRequest, products: Mapping[str, Any], catalog: CatalogMap, fx: FxTable
) -> set[str]:
    """The groups a perfect answer would draw from."""
    if request.expect_none:
        return set()
    groups: set[str] = set()
    for key, product in products.items():
        if not matches_rule(product, request.relevant):
            continue
        for group_id in catalog.groups_by_product.get(key, ()):
            offers = catalog.offers_by_group.get(group_id, [])
            if any(offer_meets_label(o, request.constraints, fx) for o in offers):
                groups.add(group_id)
    return groups

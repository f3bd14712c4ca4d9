"""Fault and behaviour knobs, one set per marketplace, changeable while the sandbox runs.

Tests and benchmarks turn these to make a marketplace slow, flaky, rate-limited, down, or sloppy
with its data, then ``POST /_sandbox/reset`` puts every knob back to the server's defaults (the
built-in defaults overridden by ``--knob`` and ``--price-epoch`` on the command line). Order
stores are kept across a reset.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

# Longest latency a knob may ask for: enough to trip any client timeout, short of hanging tests.
MAX_LATENCY_MS = 120_000
ALL_MARKETPLACES = "all"
# Bounds of the order_price_change_pct knob: a price can fall to 1% or rise elevenfold.
MIN_PRICE_CHANGE_PCT = -99
MAX_PRICE_CHANGE_PCT = 1000
MAX_DELISTED_PRODUCTS = 1000


class KnobError(ValueError):
    """A knob name or value the sandbox cannot use; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Knobs:
    """One marketplace's knobs (see docs/sandbox-and-adapters.md for what each one does)."""

    latency_ms: int = 0
    error_rate: float = 0.0
    burst_429: int = 0
    malformed_rate: float = 0.02
    down: bool = False
    fail_next_orders: int = 0
    order_step_seconds: float = 30.0
    cancel_rate: float = 0.05
    # Share of orders delayed in transit for two steps before they are delivered.
    delay_rate: float = 0.1
    price_drift: float = 0.0
    # Sandbox extension: the price epoch (see sandbox.world), for incremental-run benchmarks.
    price_epoch: int = 0
    # Order faults (the money path's fault suite): see docs/sandbox-and-adapters.md.
    order_reply_delay_ms: int = 0
    fail_after_next_orders: int = 0
    refuse_next_orders: int = 0
    order_price_change_pct: int = 0
    drop_unknown_lines: bool = False
    delisted_products: tuple[str, ...] = ()
    # Catalog change (Shopify and WooCommerce): these product ids are off the catalog.
    unlisted_products: tuple[str, ...] = ()
    max_line_quantity: int = 0
    cancel_next_orders: int = 0
    cancel_reply_delay_ms: int = 0
    fail_after_next_cancels: int = 0
    search_lag_ms: int = 0
    # Orders (their numbers) whose status read answers 500 while the store answers the rest:
    # an order the store cannot serve (ShopWave `order(id:)`, Kiondo `GET …/orders/<id>`).
    failing_order_reads: tuple[str, ...] = ()
    # Shipping and tax a store adds to each order it creates (WooCommerce, Shopify): a flat
    # shipping charge in minor units, and tax in basis points of the lines and the shipping.
    order_shipping_minor: int = 0
    order_tax_bps: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The knobs as JSON-ready values."""
        return {
            f.name: list(value) if isinstance(value := getattr(self, f.name), tuple) else value
            for f in fields(self)
        }


KNOB_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Knobs))


def _as_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in {
        "true",
        "1",
        "yes",
        "on",
        "false",
        "0",
        "no",
        "off",
    }:
        return value.strip().lower() in {"true", "1", "yes", "on"}
    raise KnobError(f"{name} must be true or false, got {value!r}")


def _as_number(name: str, value: object, kind: type[int] | type[float]) -> float:
    if isinstance(value, bool):
        raise KnobError(f"{name} must be a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError as exc:
            raise KnobError(f"{name} must be a number, got {value!r}") from exc
    if not isinstance(value, int | float) or value != value:  # NaN check
        raise KnobError(f"{name} must be a number, got {value!r}")
    if kind is int and float(value) != int(value):
        raise KnobError(f"{name} must be a whole number, got {value!r}")
    return float(value)


def _share(name: str, value: object) -> float:
    number = _as_number(name, value, float)
    if not 0.0 <= number <= 1.0:
        raise KnobError(f"{name} is a share between 0 and 1, got {value!r}")
    return number


def _count(name: str, value: object, maximum: int = 10**9) -> int:
    number = _as_number(name, value, int)
    if not 0 <= number <= maximum:
        raise KnobError(f"{name} must be between 0 and {maximum}, got {value!r}")
    return int(number)


def _positive_seconds(name: str, value: object) -> float:
    number = _as_number(name, value, float)
    if not 0.0 < number <= 86_400 * 365:
        raise KnobError(f"{name} must be a positive number of seconds, got {value!r}")
    return number


def _percent_change(name: str, value: object) -> int:
    number = _as_number(name, value, int)
    if not MIN_PRICE_CHANGE_PCT <= number <= MAX_PRICE_CHANGE_PCT:
        raise KnobError(
            f"{name} is a whole percentage between {MIN_PRICE_CHANGE_PCT} and "
            f"{MAX_PRICE_CHANGE_PCT}, got {value!r}"
        )
    return int(number)


def _product_ids(name: str, value: object, what: str = "product ids") -> tuple[str, ...]:
    """External product ids (or order numbers, `what`): a JSON list of ids, or one
    comma-separated string (for --knob)."""
    if isinstance(value, str):
        items: list[object] = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise KnobError(f"{name} must be a list of {what}, got {value!r}")
    if len(items) > MAX_DELISTED_PRODUCTS:
        raise KnobError(f"{name} holds at most {MAX_DELISTED_PRODUCTS} ids, got {len(items)}")
    ids: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise KnobError(f"{name} must hold {what} (text or whole numbers), got {item!r}")
        text = str(item).strip()
        if not text or len(text) > 100:
            raise KnobError(f"{name}: {item!r} is not one of the {what}")
        ids.append(text)
    return tuple(dict.fromkeys(ids))


_COERCERS: dict[str, Callable[[str, object], Any]] = {
    "latency_ms": lambda n, v: _count(n, v, MAX_LATENCY_MS),
    "error_rate": _share,
    "burst_429": _count,
    "malformed_rate": _share,
    "down": _as_bool,
    "fail_next_orders": _count,
    "order_step_seconds": _positive_seconds,
    "cancel_rate": _share,
    "delay_rate": _share,
    "price_drift": _share,
    "price_epoch": _count,
    "order_reply_delay_ms": lambda n, v: _count(n, v, MAX_LATENCY_MS),
    "fail_after_next_orders": _count,
    "refuse_next_orders": _count,
    "order_price_change_pct": _percent_change,
    "drop_unknown_lines": _as_bool,
    "delisted_products": _product_ids,
    "unlisted_products": _product_ids,
    "max_line_quantity": _count,
    "cancel_next_orders": _count,
    "cancel_reply_delay_ms": lambda n, v: _count(n, v, MAX_LATENCY_MS),
    "fail_after_next_cancels": _count,
    "search_lag_ms": lambda n, v: _count(n, v, MAX_LATENCY_MS),
    "failing_order_reads": lambda n, v: _product_ids(n, v, "order numbers"),
    "order_shipping_minor": lambda n, v: _count(n, v, 10**9),
    "order_tax_bps": lambda n, v: _count(n, v, 10_000),
}


def coerce_knob(name: str, value: object) -> Any:
    """`value` as the type knob `name` holds, or KnobError."""
    if name not in _COERCERS:
        raise KnobError(f"unknown knob {name!r} (known: {', '.join(KNOB_NAMES)})")
    return _COERCERS[name](name, value)


def coerce_knobs(values: Mapping[str, object]) -> dict[str, Any]:
    """Validate a JSON object of knob values; nothing is applied unless all of them are valid."""
    if not isinstance(values, Mapping):
        raise KnobError("knobs must be a JSON object of name: value")
    return {name: coerce_knob(name, value) for name, value in values.items()}


@dataclass(frozen=True, slots=True)
class Fault:
    """A response the gate decided to send instead of the real one."""

    status: int
    reason: str
    retry_after: int | None = None


class KnobBoard:
    """Every marketplace's knobs behind one lock, with the counters that knobs consume."""

    def __init__(
        self,
        slugs: Iterable[str],
        *,
        seed: int = 0,
        defaults: Mapping[str, Mapping[str, object]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._slugs = tuple(slugs)
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._sleep = sleep
        self._defaults = {slug: Knobs() for slug in self._slugs}
        for slug, values in (defaults or {}).items():
            for target in self._resolve(slug):
                self._defaults[target] = replace(self._defaults[target], **coerce_knobs(values))
        self._current = dict(self._defaults)

    @property
    def slugs(self) -> tuple[str, ...]:
        """The marketplaces the board holds knobs for."""
        return self._slugs

    def _resolve(self, slug: str) -> tuple[str, ...]:
        if slug == ALL_MARKETPLACES:
            return self._slugs
        if slug not in self._slugs:
            raise KeyError(slug)
        return (slug,)

    def get(self, slug: str) -> Knobs:
        """The current knobs of one marketplace (an immutable snapshot)."""
        with self._lock:
            return self._current[slug]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every marketplace's current knobs, JSON-ready."""
        with self._lock:
            return {slug: knobs.as_dict() for slug, knobs in self._current.items()}

    def update(self, slug: str, values: Mapping[str, object]) -> dict[str, dict[str, Any]]:
        """Change some knobs of `slug` (or of every marketplace when slug is 'all').

        Raises KeyError for an unknown marketplace and KnobError for a bad knob; nothing changes
        unless every value is valid.
        """
        targets = self._resolve(slug)
        coerced = coerce_knobs(values)
        with self._lock:
            for target in targets:
                self._current[target] = replace(self._current[target], **coerced)
            return {target: self._current[target].as_dict() for target in targets}

    def reset(self) -> None:
        """Every knob back to the server's defaults."""
        with self._lock:
            self._current = dict(self._defaults)

    def gate(self, slug: str) -> Fault | None:
        """Apply latency, then decide whether this request fails: down, a 429 burst, or a random
        503 at error_rate. Called once per marketplace request, before the handler runs."""
        knobs = self.get(slug)
        if knobs.latency_ms:
            self._sleep(knobs.latency_ms / 1000)
        with self._lock:
            knobs = self._current[slug]
            if knobs.down:
                return Fault(503, "down")
            if knobs.burst_429 > 0:
                self._current[slug] = replace(knobs, burst_429=knobs.burst_429 - 1)
                return Fault(429, "burst_429", retry_after=1)
            if knobs.error_rate > 0 and self._random.random() < knobs.error_rate:
                return Fault(503, "error_rate")
        return None

    def plan_placement(self, slug: str) -> PlacementPlan:
        """Decide the faults of one placement request, consuming the counters it uses."""
        with self._lock:
            knobs = self._current[slug]
            if knobs.fail_next_orders > 0:
                self._current[slug] = replace(knobs, fail_next_orders=knobs.fail_next_orders - 1)
                return PlacementPlan(fail_before=True)
            if knobs.refuse_next_orders > 0:
                self._current[slug] = replace(
                    knobs, refuse_next_orders=knobs.refuse_next_orders - 1
                )
                return PlacementPlan(refuse=True)
            return PlacementPlan(
                reply_delay_s=knobs.order_reply_delay_ms / 1000,
                price_change_pct=knobs.order_price_change_pct,
                drop_unknown_lines=knobs.drop_unknown_lines,
                delisted=frozenset(knobs.delisted_products),
                max_line_quantity=knobs.max_line_quantity,
            )

    def take_after_placement(self, slug: str) -> tuple[bool, bool]:
        """(fail_after, cancel_after) for a placement that created (or replayed) an order,
        consuming fail_after_next_orders and cancel_next_orders: a request refused for a bad
        line never uses them up."""
        with self._lock:
            knobs = self._current[slug]
            fail_after = knobs.fail_after_next_orders > 0
            cancel_after = knobs.cancel_next_orders > 0
            self._current[slug] = replace(
                knobs,
                fail_after_next_orders=max(0, knobs.fail_after_next_orders - 1),
                cancel_next_orders=max(0, knobs.cancel_next_orders - 1),
            )
            return fail_after, cancel_after

    def plan_cancel(self, slug: str) -> CancelPlan:
        """Decide the faults of one cancel request, consuming fail_after_next_cancels."""
        with self._lock:
            knobs = self._current[slug]
            fail_after = knobs.fail_after_next_cancels > 0
            if fail_after:
                self._current[slug] = replace(
                    knobs, fail_after_next_cancels=knobs.fail_after_next_cancels - 1
                )
            return CancelPlan(
                fail_after=fail_after, reply_delay_s=knobs.cancel_reply_delay_ms / 1000
            )

    def pause(self, seconds: float) -> None:
        """Hold a reply back (order_reply_delay_ms, cancel_reply_delay_ms)."""
        if seconds > 0:
            self._sleep(seconds)


@dataclass(frozen=True, slots=True)
class PlacementPlan:
    """What the knobs make of ONE order placement; the counters it used are already consumed.

    `fail_before`: answer 503 before creating anything (fail_next_orders). `refuse`: refuse the
    order the marketplace's own way (refuse_next_orders). Otherwise the lines are read with the
    fields below, the order is created, and the reply waits `reply_delay_s`; what happens after
    the order exists (a 500, a cancel) is taken by KnobBoard.take_after_placement.
    """

    fail_before: bool = False
    refuse: bool = False
    reply_delay_s: float = 0.0
    price_change_pct: int = 0
    drop_unknown_lines: bool = False
    delisted: frozenset[str] = frozenset()
    max_line_quantity: int = 0

    def is_delisted(self, external_id: str) -> bool:
        """True when the marketplace no longer knows this product for orders."""
        return external_id in self.delisted

    def quantity(self, asked: int) -> int:
        """The quantity the marketplace accepts for a line (max_line_quantity caps it silently)."""
        return min(asked, self.max_line_quantity) if self.max_line_quantity else asked

    def billed_unit_price(self, sent_minor: int | None, current_minor: int) -> int:
        """What the marketplace bills per unit: with a price change, its current price moved by
        the percentage (rounded half up, at least 1), whatever was sent; otherwise the price we
        sent where the API takes one, else its current price."""
        if self.price_change_pct:
            changed = (current_minor * (100 + self.price_change_pct) * 2 + 100) // 200
            return max(1, changed)
        return sent_minor if sent_minor is not None else current_minor


@dataclass(frozen=True, slots=True)
class CancelPlan:
    """What the knobs make of ONE cancel request: wait before replying, then maybe a 500."""

    fail_after: bool = False
    reply_delay_s: float = 0.0


def parse_cli_knob(text: str) -> tuple[str, str, object]:
    """Parse a ``--knob slug.name=value`` argument into (slug, name, raw value).

    The value is read as JSON when it parses (numbers, true/false), else kept as text; the
    knob's own coercion then checks it.
    """
    import json

    target, sep, raw = text.partition("=")
    slug, dot, name = target.partition(".")
    if not sep or not dot or not slug or not name:
        raise KnobError(
            f"--knob wants slug.name=value (slug may be '{ALL_MARKETPLACES}'), got {text!r}"
        )
    try:
        value: object = json.loads(raw)
    except ValueError:
        value = raw
    coerce_knob(name, value)
    return slug, name, value

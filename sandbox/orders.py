"""The sandbox marketplaces' orders: in memory, thread-safe, idempotent, with time-based status.

An order's stage is a function of the time since it was created and ``order_step_seconds`` read
at request time: pending → processing → shipped (carrier and tracking number assigned) →
delivered. An order picked by ``cancel_rate`` when it was created is cancelled by the marketplace
at the step where it would have shipped. Stages never go backwards: if the step is made longer
later, an order keeps the furthest stage it has reached. Orders are lost when the sandbox stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.world import hash64, unit_interval

PENDING, PROCESSING, SHIPPED, DELIVERED, CANCELLED = (
    "pending",
    "processing",
    "shipped",
    "delivered",
    "cancelled",
)
STAGES = (PENDING, PROCESSING, SHIPPED, DELIVERED)
SHIPPED_STAGE = STAGES.index(SHIPPED)

# Where order numbers start, per marketplace, so ids look like each platform's.
FIRST_ORDER_NUMBER = {"shopwave": 1001, "kiondo": 4100, "dummymart": 51, "fakestore": 21}

CARRIERS: dict[str, tuple[tuple[str, str], ...]] = {
    "shopwave": (
        ("UPS", "https://www.ups.com/track?tracknum={number}"),
        ("FedEx", "https://www.fedex.com/fedextrack/?trknbr={number}"),
        ("USPS", "https://tools.usps.com/go/TrackConfirmAction?tLabels={number}"),
    ),
    "kiondo": (
        ("G4S Courier", "https://www.g4s.com/en-ke/track?number={number}"),
        ("Sendy", "https://app.sendyit.com/tracking/{number}"),
        ("Fargo Courier", "https://fargo.co.ke/track/{number}"),
    ),
}
DEFAULT_CARRIERS = (("DHL", "https://www.dhl.com/track?tracking-id={number}"),)


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One line of a sandbox order; prices are integer minor units of the order's currency."""

    offer_index: int
    external_id: str
    title: str
    sku: str
    quantity: int
    unit_price_minor: int
    # A line total the client set (WooCommerce `line_items[].total`), when not unit × quantity.
    line_total_minor: int | None = None

    @property
    def total_minor(self) -> int:
        """Line total in minor units."""
        if self.line_total_minor is not None:
            return self.line_total_minor
        return self.unit_price_minor * self.quantity


@dataclass
class SandboxOrder:
    """An order (or cart) held by one sandbox marketplace."""

    marketplace: str
    number: int
    reference: str | None
    currency: str
    lines: list[OrderLine]
    created_at: datetime
    created_monotonic: float
    doomed: bool
    extra: dict[str, Any] = field(default_factory=dict)
    reached_stage: int = 0
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    idempotency_key: str | None = None

    @property
    def total_minor(self) -> int:
        """Order total in minor units."""
        return sum(line.total_minor for line in self.lines)

    @property
    def quantity(self) -> int:
        """Items in the order."""
        return sum(line.quantity for line in self.lines)


@dataclass(frozen=True, slots=True)
class OrderProgress:
    """Where an order is now: status, and tracking once it has shipped."""

    status: str
    stage: int
    cancelled_at: datetime | None
    carrier: str | None = None
    tracking_number: str | None = None
    tracking_url: str | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """The result of a cancel request: done (or already cancelled), or refused once shipped."""

    cancelled: bool
    progress: OrderProgress


class OrderBook:
    """Orders of every marketplace, keyed by (marketplace, number), with idempotency keys and
    external references indexed. One lock makes a placement and its key atomic."""

    def __init__(self, seed: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._seed = seed
        self._clock = clock
        self._lock = threading.RLock()
        self._orders: dict[tuple[str, int], SandboxOrder] = {}
        self._by_key: dict[tuple[str, str], int] = {}
        self._by_reference: dict[tuple[str, str], list[int]] = {}
        self._next_number: dict[str, int] = {}

    def place(
        self,
        marketplace: str,
        *,
        idempotency_key: str | None,
        reference: str | None,
        currency: str,
        lines: list[OrderLine],
        cancel_rate: float,
        extra: dict[str, Any] | None = None,
    ) -> tuple[SandboxOrder, bool]:
        """Create an order, or return the one made earlier with the same idempotency key.

        Returns (order, created): created is False for a replayed key, and nothing new is stored.
        """
        with self._lock:
            if idempotency_key:
                number = self._by_key.get((marketplace, idempotency_key))
                if number is not None:
                    return self._orders[(marketplace, number)], False
            number = self._next_number.get(marketplace, FIRST_ORDER_NUMBER.get(marketplace, 1))
            self._next_number[marketplace] = number + 1
            order = SandboxOrder(
                marketplace=marketplace,
                number=number,
                reference=reference,
                currency=currency,
                lines=list(lines),
                created_at=datetime.now(UTC).replace(microsecond=0),
                created_monotonic=self._clock(),
                doomed=unit_interval(self._seed, "cancel", marketplace, number) < cancel_rate,
                extra=dict(extra or {}),
                idempotency_key=idempotency_key,
            )
            self._orders[(marketplace, number)] = order
            if idempotency_key:
                self._by_key[(marketplace, idempotency_key)] = number
            if reference:
                self._by_reference.setdefault((marketplace, reference), []).append(number)
            return order, True

    def get(self, marketplace: str, number: int) -> SandboxOrder | None:
        """The order, or None."""
        with self._lock:
            return self._orders.get((marketplace, number))

    def find_by_reference(
        self, marketplace: str, reference: str, *, search_lag_s: float = 0.0
    ) -> list[SandboxOrder]:
        """Orders placed with this external reference, oldest first. `search_lag_s` imitates a
        search index that lags: orders younger than that are not found yet."""
        with self._lock:
            numbers = self._by_reference.get((marketplace, reference), [])
            now = self._clock()
            return [
                order
                for order in (self._orders[(marketplace, n)] for n in numbers)
                if now - order.created_monotonic >= search_lag_s
            ]

    def list(self, marketplace: str) -> list[SandboxOrder]:
        """Every order of a marketplace, oldest first."""
        with self._lock:
            return [
                order for (slug, _), order in sorted(self._orders.items()) if slug == marketplace
            ]

    def progress(self, order: SandboxOrder, step_seconds: float) -> OrderProgress:
        """The order's status now, with `step_seconds` between stages."""
        with self._lock:
            elapsed = max(0.0, self._clock() - order.created_monotonic)
            stage = min(len(STAGES) - 1, int(elapsed / step_seconds))
            order.reached_stage = max(order.reached_stage, stage)
            stage = order.reached_stage
            if order.cancelled_at is None and order.doomed and stage >= SHIPPED_STAGE:
                order.cancelled_at = order.created_at + timedelta(
                    seconds=SHIPPED_STAGE * step_seconds
                )
                order.cancel_reason = "declined"
            return self._describe(order, stage, step_seconds)

    def cancel(
        self,
        order: SandboxOrder,
        step_seconds: float,
        reason: str = "customer",
        *,
        by_marketplace: bool = False,
    ) -> CancelOutcome:
        """Cancel the order unless it has shipped; cancelling a cancelled order is a no-op.

        `by_marketplace`: the marketplace itself cancels (out of stock, fraud check), at any
        stage, as the cancel_next_orders knob and the control API do."""
        with self._lock:
            current = self.progress(order, step_seconds)
            if current.status == CANCELLED:
                return CancelOutcome(True, current)
            if current.stage >= SHIPPED_STAGE and not by_marketplace:
                return CancelOutcome(False, current)
            order.cancelled_at = datetime.now(UTC).replace(microsecond=0)
            order.cancel_reason = reason
            return CancelOutcome(True, self._describe(order, current.stage, step_seconds))

    def _describe(self, order: SandboxOrder, stage: int, step_seconds: float) -> OrderProgress:
        if order.cancelled_at is not None:
            return OrderProgress(CANCELLED, stage, order.cancelled_at)
        status = STAGES[stage]
        if stage < SHIPPED_STAGE:
            return OrderProgress(status, stage, None)
        carriers = CARRIERS.get(order.marketplace, DEFAULT_CARRIERS)
        h = hash64(self._seed, "tracking", order.marketplace, order.number)
        carrier, url_template = carriers[h % len(carriers)]
        tracking_number = f"1Z{h % 10**12:012d}" if carrier == "UPS" else f"{h % 10**14:014d}"
        shipped_at = order.created_at + timedelta(seconds=SHIPPED_STAGE * step_seconds)
        delivered_at = shipped_at + timedelta(seconds=step_seconds) if status == DELIVERED else None
        return OrderProgress(
            status=status,
            stage=stage,
            cancelled_at=None,
            carrier=carrier,
            tracking_number=tracking_number,
            tracking_url=url_template.format(number=tracking_number),
            shipped_at=shipped_at,
            delivered_at=delivered_at,
        )

"""The sandbox marketplaces' orders: in memory, thread-safe, idempotent, with time-based status.

An order's stage is a function of the time since it was created and ``order_step_seconds`` read
at request time, as a real shop's orders move over minutes: pending → processing → shipped
(carrier and tracking number assigned, the label confirmed) → in transit → delivered. An order
picked by ``delay_rate`` when it was created is delayed in transit for two more steps first; one
picked by ``cancel_rate`` is cancelled by the marketplace at the step where it would have shipped.
Stages never go backwards: if the step is made longer later, an order keeps the furthest stage it
has reached. ``advance`` moves an order on by whole steps at once (the control API's
``POST /_sandbox/orders/<slug>/<number>/advance``), so tests follow every step without waiting on
the clock. Each step's time is kept (the Shopify fulfillment events' ``happenedAt``). Orders are
lost when the sandbox stops.

The book keeps the stores' stock ledger (sandbox.inventory) under the same lock: a placement
checks and draws the stock its lines claim in one step with creating the order (a replayed
idempotency key draws nothing again), and a cancellation that restocks gives the units back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.draws import hash64, unit_interval
from sandbox.inventory import StockClaim, StockLedger
from sandbox.refunds import RefundRefused, SandboxRefund, refund_request

PENDING, PROCESSING, SHIPPED, DELIVERED, CANCELLED = (
    "pending",
    "processing",
    "shipped",
    "delivered",
    "cancelled",
)
# The shipment's steps once shipped (OrderProgress.shipment): the label is confirmed with a
# tracking number, the carrier moves it, it may be delayed, then it is delivered.
CONFIRMED, IN_TRANSIT, DELAYED = "confirmed", "in_transit", "delayed"
# (order status, shipment step) of each stage; a delayed order has two delayed stages more.
STAGES: tuple[tuple[str, str | None], ...] = (
    (PENDING, None),
    (PROCESSING, None),
    (SHIPPED, CONFIRMED),
    (SHIPPED, IN_TRANSIT),
    (DELIVERED, DELIVERED),
)
DELAYED_STAGES: tuple[tuple[str, str | None], ...] = (
    *STAGES[:-1],
    (SHIPPED, DELAYED),
    (SHIPPED, DELAYED),
    STAGES[-1],
)
SHIPPED_STAGE = 2
MAX_ADVANCE_STEPS = 20

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
    delayed: bool = False
    reached_stage: int = 0
    # Steps added by `advance`, and when each stage was reached (stage 0: created_at).
    advanced_steps: int = 0
    stage_times: list[datetime] = field(default_factory=list)
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    idempotency_key: str | None = None
    # What the store added on top of the lines (the order_shipping_minor and order_tax_bps
    # knobs): a flat shipping charge, and the tax rate on the lines and the shipping.
    shipping_minor: int = 0
    tax_bps: int = 0
    # Refunds the store made on part of the order (sandbox.refunds), oldest first.
    refunds: list[SandboxRefund] = field(default_factory=list)

    @property
    def items_minor(self) -> int:
        """The lines' total in minor units."""
        return sum(line.total_minor for line in self.lines)

    def line_tax_minor(self, line: OrderLine) -> int:
        """The tax on one line (rounded down)."""
        return line.total_minor * self.tax_bps // 10_000

    @property
    def shipping_tax_minor(self) -> int:
        """The tax on the shipping (rounded down)."""
        return self.shipping_minor * self.tax_bps // 10_000

    @property
    def tax_minor(self) -> int:
        """Every tax of the order: the lines' and the shipping's."""
        return sum(self.line_tax_minor(line) for line in self.lines) + self.shipping_tax_minor

    @property
    def total_minor(self) -> int:
        """Order total in minor units: the lines, the shipping and the tax."""
        return self.items_minor + self.shipping_minor + self.tax_minor

    @property
    def quantity(self) -> int:
        """Items in the order."""
        return sum(line.quantity for line in self.lines)

    @property
    def stages(self) -> tuple[tuple[str, str | None], ...]:
        """This order's path: (status, shipment step) per stage."""
        return DELAYED_STAGES if self.delayed else STAGES


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
    # The shipment's latest step (confirmed, in_transit, delayed, delivered), once shipped.
    shipment: str | None = None
    # Every shipment step so far with the time it happened, oldest first.
    shipment_events: tuple[tuple[str, datetime], ...] = ()


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
        self.stock = StockLedger()

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
        delay_rate: float = 0.0,
        shipping_minor: int = 0,
        tax_bps: int = 0,
        stock_claims: Sequence[StockClaim] = (),
        draw_stock: bool = True,
    ) -> tuple[SandboxOrder, bool]:
        """Create an order, or return the one made earlier with the same idempotency key.

        `stock_claims`: the lines' units of offers whose store tracks stock, checked against
        what is left (inventory.OutOfStock, nothing created, when one does not fit) and, when
        `draw_stock`, drawn for the new order.

        Returns (order, created): created is False for a replayed key, and nothing new is stored.
        """
        with self._lock:
            if idempotency_key:
                number = self._by_key.get((marketplace, idempotency_key))
                if number is not None:
                    return self._orders[(marketplace, number)], False
            number = self._next_number.get(marketplace, FIRST_ORDER_NUMBER.get(marketplace, 1))
            self.stock.claim(marketplace, number, stock_claims, draw=draw_stock)
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
                delayed=unit_interval(self._seed, "delay", marketplace, number) < delay_rate,
                extra=dict(extra or {}),
                idempotency_key=idempotency_key,
                shipping_minor=shipping_minor,
                tax_bps=tax_bps,
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
            stage = int(elapsed / step_seconds) + order.advanced_steps
            self._reach(order, min(len(order.stages) - 1, stage), step_seconds)
            stage = order.reached_stage
            if order.cancelled_at is None and order.doomed and stage >= SHIPPED_STAGE:
                order.cancelled_at = order.stage_times[SHIPPED_STAGE]
                order.cancel_reason = "declined"
                # The store could not ship it: the units go back on the shelf.
                self.stock.release(order.marketplace, order.number)
            return self._describe(order, stage)

    def advance(self, order: SandboxOrder, steps: int, step_seconds: float) -> OrderProgress:
        """Move the order on by `steps` stages now (it never passes delivered or a cancel)."""
        if not 1 <= steps <= MAX_ADVANCE_STEPS:
            raise ValueError(f"steps must be between 1 and {MAX_ADVANCE_STEPS}, got {steps}")
        with self._lock:
            current = self.progress(order, step_seconds)
            if current.status == CANCELLED:
                return current
            order.advanced_steps += steps
            return self.progress(order, step_seconds)

    def _reach(self, order: SandboxOrder, stage: int, step_seconds: float) -> None:
        """Record the time of every stage reached since the last look: when the clock would have
        reached it, or now if it came sooner (advanced)."""
        if not order.stage_times:
            order.stage_times.append(order.created_at)
        now = datetime.now(UTC).replace(microsecond=0)
        while len(order.stage_times) <= stage:
            natural = order.created_at + timedelta(seconds=len(order.stage_times) * step_seconds)
            order.stage_times.append(max(order.stage_times[-1], min(natural, now)))
        order.reached_stage = max(order.reached_stage, stage)

    def cancel(
        self,
        order: SandboxOrder,
        step_seconds: float,
        reason: str = "customer",
        *,
        by_marketplace: bool = False,
        restock: bool = True,
    ) -> CancelOutcome:
        """Cancel the order unless it has shipped; cancelling a cancelled order is a no-op.

        `by_marketplace`: the marketplace itself cancels (out of stock, fraud check), at any
        stage, as the cancel_next_orders knob and the control API do. `restock`: the units the
        order drew go back to the stock (Shopify's orderCancel `restock`; WooCommerce always)."""
        with self._lock:
            current = self.progress(order, step_seconds)
            if current.status == CANCELLED:
                return CancelOutcome(True, current)
            if current.stage >= SHIPPED_STAGE and not by_marketplace:
                return CancelOutcome(False, current)
            order.cancelled_at = datetime.now(UTC).replace(microsecond=0)
            order.cancel_reason = reason
            if restock:
                self.stock.release(order.marketplace, order.number)
            return CancelOutcome(True, self._describe(order, current.stage))

    def refund(
        self, order: SandboxOrder, body: dict[str, Any], step_seconds: float
    ) -> SandboxRefund:
        """The store refunds part of the order (sandbox.refunds.refund_request reads `body`);
        RefundRefused for a cancelled order or more than is left."""
        with self._lock:
            if self.progress(order, step_seconds).status == CANCELLED:
                raise RefundRefused("the order is cancelled")
            amount, reason, lines = refund_request(order, body)
            refund = SandboxRefund(
                refund_id=order.number * 100 + 80 + len(order.refunds),
                amount_minor=amount,
                reason=reason,
                created_at=datetime.now(UTC).replace(microsecond=0),
                lines=lines,
            )
            order.refunds.append(refund)
            return refund

    def _describe(self, order: SandboxOrder, stage: int) -> OrderProgress:
        if order.cancelled_at is not None:
            return OrderProgress(CANCELLED, stage, order.cancelled_at)
        status, shipment = order.stages[stage]
        if stage < SHIPPED_STAGE:
            return OrderProgress(status, stage, None)
        carriers = CARRIERS.get(order.marketplace, DEFAULT_CARRIERS)
        h = hash64(self._seed, "tracking", order.marketplace, order.number)
        carrier, url_template = carriers[h % len(carriers)]
        tracking_number = f"1Z{h % 10**12:012d}" if carrier == "UPS" else f"{h % 10**14:014d}"
        shipped_at = order.stage_times[SHIPPED_STAGE]
        delivered_at = order.stage_times[stage] if status == DELIVERED else None
        events: list[tuple[str, datetime]] = []
        for reached in range(SHIPPED_STAGE, stage + 1):
            step = order.stages[reached][1]
            if step is not None and (not events or events[-1][0] != step):
                events.append((step, order.stage_times[reached]))
        return OrderProgress(
            status=status,
            stage=stage,
            cancelled_at=None,
            carrier=carrier,
            tracking_number=tracking_number,
            tracking_url=url_template.format(number=tracking_number),
            shipped_at=shipped_at,
            delivered_at=delivered_at,
            shipment=shipment,
            shipment_events=tuple(events),
        )

"""Orders of a declarative marketplace, described in `[marketplace.options.orders]`: where to
POST an order and how its body is keyed, where the order sits in a reply, and (optionally) how
to read one back, find one by our reference and cancel one. See docs/declarative-adapter.md.

Without an `orders` table the marketplace stays catalog-only (shoppers are handed off). The
writes go through HttpMarketplaceAdapter.send_write, so they have the same three outcomes as
every adapter's: a PlacedOrder, a refusal, or OutcomeUnknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from adapters.accepted import accepted_lines, line_quantity, order_money
from adapters.base import (
    AcceptedLine,
    BadPayload,
    Capability,
    NotFound,
    OrderRequest,
    OrderState,
    OrderStatus,
    PlacedOrder,
    ShippingAddress,
    unsupported,
)
from adapters.fields import dig, optional_text
from adapters.registry import MarketplaceConfigError
from onecart.money import from_minor_units

if TYPE_CHECKING:
    from adapters.declarative import DeclarativeJsonAdapter

_REQUIRED = (
    "create_path",
    "reference_key",
    "lines_key",
    "line_id_key",
    "line_quantity_key",
    "id_field",
)
_OPTIONAL_TEXT = (
    "line_price_key",
    "currency_key",
    "shipping_key",
    "status_field",
    "total_field",
    "get_path",
    "cancel_path",
    "find_path",
    "find_param",
)
_PATHS = ("order_record_path", "find_records_path")


@dataclass(frozen=True, slots=True)
class DeclarativeOrderOptions:
    """The validated `[marketplace.options.orders]` table."""

    create_path: str
    reference_key: str
    lines_key: str
    line_id_key: str
    line_quantity_key: str
    id_field: str
    line_price_key: str | None = None
    currency_key: str | None = None
    shipping_key: str | None = None
    status_field: str | None = None
    total_field: str | None = None
    get_path: str | None = None
    cancel_path: str | None = None
    find_path: str | None = None
    find_param: str = "reference"
    order_record_path: str = ""
    find_records_path: str = ""
    statuses: Mapping[str, OrderStatus] = field(default_factory=dict)

    @property
    def capabilities(self) -> set[Capability]:
        """What the configured endpoints allow."""
        found = {Capability.ORDER}
        if self.get_path and self.status_field:
            found.add(Capability.TRACK)
        if self.cancel_path:
            found.add(Capability.CANCEL)
        return found


def parse_order_options(slug: str, raw: object) -> DeclarativeOrderOptions:
    """Validate the orders table; every error names the marketplace and the option."""

    def fail(option: str, problem: str) -> MarketplaceConfigError:
        return MarketplaceConfigError(f"marketplace {slug}: options.orders.{option}: {problem}")

    if not isinstance(raw, Mapping):
        raise fail("", "must be a table")
    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL_TEXT) - set(_PATHS) - {"statuses"})
    if unknown:
        raise fail(unknown[0], "unknown option (a typo?)")
    values: dict[str, Any] = {}
    for name in (*_REQUIRED, *_OPTIONAL_TEXT, *_PATHS):
        value = raw.get(name)
        if value is None:
            if name in _REQUIRED:
                raise fail(name, "is required")
            continue
        if not isinstance(value, str) or (name not in _PATHS and not value.strip()):
            raise fail(name, f"must be a non-empty string, not {value!r}")
        values[name] = value
    for name in ("get_path", "cancel_path"):
        if name in values and "{id}" not in values[name]:
            raise fail(name, "must contain '{id}', e.g. 'api/v1/orders/{id}'")
    statuses = raw.get("statuses", {})
    if not isinstance(statuses, Mapping):
        raise fail("statuses", "must be a table of marketplace status = our status")
    mapped: dict[str, OrderStatus] = {}
    for word, ours in statuses.items():
        try:
            mapped[str(word).lower()] = OrderStatus(str(ours))
        except ValueError:
            raise fail(
                f"statuses.{word}",
                f"{ours!r} is not one of {', '.join(s.value for s in OrderStatus)}",
            ) from None
    return DeclarativeOrderOptions(**values, statuses=mapped)


def _address(shipping: ShippingAddress) -> dict[str, str]:
    return {
        name: getattr(shipping, name)
        for name in ("name", "line1", "line2", "city", "postal_code", "country", "phone", "email")
        if getattr(shipping, name)
    }


class DeclarativeOrders:
    """The order half of a DeclarativeJsonAdapter, driven by its orders options."""

    def __init__(self, adapter: DeclarativeJsonAdapter, options: DeclarativeOrderOptions) -> None:
        self.adapter = adapter
        self.options = options
        self.slug = adapter.slug

    def place(self, request: OrderRequest) -> PlacedOrder:
        """POST the order with our reference, lines (and our prices when configured)."""
        o = self.options
        lines = []
        for line in request.lines:
            item: dict[str, Any] = {
                o.line_id_key: line.external_id,
                o.line_quantity_key: line.quantity,
            }
            if o.line_price_key:
                item[o.line_price_key] = format(
                    from_minor_units(line.unit_price_minor, line.currency), "f"
                )
            lines.append(item)
        body: dict[str, Any] = {o.reference_key: request.reference, o.lines_key: lines}
        if o.currency_key:
            body[o.currency_key] = request.currency
        if o.shipping_key:
            body[o.shipping_key] = _address(request.shipping)
        headers, params = self.adapter.auth()
        reply, _ = self.adapter.send_write(
            "POST",
            self._with_params(o.create_path, params),
            json=body,
            idempotency_key=request.idempotency_key,
            headers=headers,
            not_found_is_refusal=True,
        )
        return self._placed(self._order(reply, written="order creation"), request.currency)

    def find(self, reference: str) -> PlacedOrder | None:
        """The first order the find endpoint lists whose reference is exactly ours; None when
        it lists none (the endpoint must filter by the reference, not page through orders)."""
        o = self.options
        if not o.find_path:
            raise unsupported(self.adapter, Capability.ORDER)
        body, _ = self.adapter.get_with_key(o.find_path, {o.find_param: reference})
        records = dig(body, o.find_records_path) if o.find_records_path else body
        if not isinstance(records, list):
            raise BadPayload(
                "bad_response", detail="order search gave no list", marketplace=self.slug
            )
        for record in records:
            if isinstance(record, Mapping) and str(dig(record, o.reference_key)) == reference:
                return self._placed(record, self.adapter.config.currency)
        return None

    def status(self, marketplace_order_id: str) -> OrderState:
        o = self.options
        if not o.get_path or not o.status_field:
            raise unsupported(self.adapter, Capability.TRACK)
        body, _ = self.adapter.get_with_key(self._path(o.get_path, marketplace_order_id), {})
        return self._state(self._order(body))

    def cancel(self, marketplace_order_id: str) -> OrderState:
        o = self.options
        if not o.cancel_path:
            raise unsupported(self.adapter, Capability.CANCEL)
        headers, params = self.adapter.auth()
        reply, _ = self.adapter.send_write(
            "POST",
            self._with_params(self._path(o.cancel_path, marketplace_order_id), params),
            json={},
            idempotency_key=f"onecart-cancel-{self.slug}-{marketplace_order_id}",
            headers=headers,
        )
        return self._state(self._order(reply, written="order cancellation"))

    # --- Reading replies ------------------------------------------------------------------

    @staticmethod
    def _path(template: str, marketplace_order_id: str) -> str:
        return template.replace("{id}", quote(marketplace_order_id, safe=""))

    @staticmethod
    def _with_params(path: str, params: Mapping[str, str]) -> str:
        if not params:
            return path
        separator = "&" if "?" in path else "?"
        return path + separator + "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())

    def _order(self, body: Any, *, written: str | None = None) -> Mapping[str, Any]:
        o = self.options
        order = dig(body, o.order_record_path) if o.order_record_path else body
        if not isinstance(order, Mapping) or optional_text(dig(order, o.id_field)) is None:
            if written:
                raise self.adapter.unreadable_write(written, "the reply holds no order id")
            if order is None:
                raise NotFound(f"{self.slug}: no such order", marketplace=self.slug)
            raise BadPayload("bad_response", detail="not an order", marketplace=self.slug)
        return order

    def _status(self, order: Mapping[str, Any]) -> tuple[OrderStatus, str]:
        raw = (
            optional_text(dig(order, self.options.status_field))
            if self.options.status_field
            else None
        )
        word = (raw or "").lower()
        if word in self.options.statuses:
            return self.options.statuses[word], raw or ""
        try:
            return OrderStatus(word), raw or ""
        except ValueError:
            return OrderStatus.PENDING, raw or ""

    def _placed(self, order: Mapping[str, Any], currency: str) -> PlacedOrder:
        o = self.options
        total = order_money(dig(order, o.total_field), currency) if o.total_field else None
        return PlacedOrder(
            marketplace_order_id=str(dig(order, o.id_field)),
            status=self._status(order)[0],
            total_minor=total,
            currency=currency if total is not None else None,
            lines=accepted_lines(dig(order, o.lines_key), lambda item: self._line(item, currency)),
        )

    def _line(self, item: Mapping[str, Any], currency: str) -> AcceptedLine | None:
        o = self.options
        external_id = optional_text(dig(item, o.line_id_key))
        quantity = line_quantity(dig(item, o.line_quantity_key))
        if external_id is None or quantity is None:
            return None
        unit = order_money(dig(item, o.line_price_key), currency) if o.line_price_key else None
        return AcceptedLine(external_id, quantity, unit)

    def _state(self, order: Mapping[str, Any]) -> OrderState:
        status, raw = self._status(order)
        return OrderState(
            marketplace_order_id=str(dig(order, self.options.id_field)),
            status=status,
            raw_status=raw,
        )

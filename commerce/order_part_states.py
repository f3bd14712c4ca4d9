"""What the order page says of one marketplace's part: its state, honest about what is not
known, and how that marketplace answered the shopper's cancellation (commerce.order_timeline
builds the page from these). Pure reading and wording.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from adapters.base import Capability, ShipmentStatus
from commerce.marketplace_access import marketplace_can
from commerce.order_models import (
    LIVE_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Order,
    Refund,
    SubOrderStatus,
)
from commerce.refund_progress import (
    RELEASE_WORDS,
    STATE_SUFFIXES,
    Progress,
    adjusted_own_minor,
    all_released,
    marketplace_refund_progress,
    share_refund_progress,
    share_state_suffix,
)
from onecart.money import format_money

SHIPMENT_LABELS = {
    ShipmentStatus.IN_TRANSIT.value: "In transit",
    ShipmentStatus.DELAYED.value: "Delayed",
    ShipmentStatus.OUT_FOR_DELIVERY.value: "Out for delivery",
    ShipmentStatus.ATTEMPTED_DELIVERY.value: "Delivery attempted",
    ShipmentStatus.FAILURE.value: "Delivery problem",
}


class CancelOutcomeWord(enum.StrEnum):
    """A marketplace's answer to the shopper's cancellation, as stored on the sub-order."""

    CANCELLED = "cancelled"
    REFUSED = "refused"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class CancelLine:
    """How one marketplace answered the cancellation: outcome word and a sentence."""

    outcome: str
    text: str


def marketplace_home(sub_order: MarketplaceOrder) -> str | None:
    """A link to the marketplace where the shopper can look the order up themselves: the first
    item's product page's site."""
    for item in sub_order.items:
        if item.product_url and item.product_url.startswith(("http://", "https://")):
            scheme, _, rest = item.product_url.partition("://")
            return f"{scheme}://{rest.split('/', 1)[0]}"
    return None


def asking_again(sub: MarketplaceOrder) -> bool:
    """`placing` by an attempt that asks the marketplace about an unresolved part again (its
    first claim came before this one), not a first placement: the page says it is checking,
    as it does between the attempts, instead of flipping to "Being placed" at every re-ask."""
    return (
        sub.status == SubOrderStatus.PLACING
        and sub.unresolved_since is not None
        and sub.placing_started_at is not None
        and _utc(sub.unresolved_since) < _utc(sub.placing_started_at)
    )


def _utc(moment: datetime) -> datetime:
    """SQLite gives back naive UTC times, PostgreSQL aware ones."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def sub_order_state(sub: MarketplaceOrder, reports: bool, refunds: list[Refund]) -> tuple[str, str]:
    """(label, key) of a sub-order's state, honest about what is not known."""
    market = sub.marketplace.name
    status = sub.status
    if status in (SubOrderStatus.PENDING, SubOrderStatus.PLACING) and not asking_again(sub):
        return "Being placed", "placing"
    if status in (SubOrderStatus.RECONCILING, SubOrderStatus.PLACING):
        return f"Checking with {market}", "unknown"
    if status == SubOrderStatus.NEEDS_ATTENTION:
        return f"Waiting for {market} to confirm", "unknown"
    if status in (SubOrderStatus.PLACED, SubOrderStatus.PROCESSING) and not reports:
        return "Placed — this marketplace doesn't report delivery", "unreported"
    if status == SubOrderStatus.PLACED:
        return "Placed", "placed"
    if status == SubOrderStatus.PROCESSING:
        return "Being prepared", "processing"
    if status == SubOrderStatus.SHIPPED:
        label = SHIPMENT_LABELS.get(sub.shipment_status or "", "Shipped")
        return label, sub.shipment_status or "shipped"
    if status == SubOrderStatus.DELIVERED:
        if sub.receipt_confirmed_at is not None:
            return "Received (you confirmed)", "delivered"
        if sub.passed_on_charge_minor and sub.kept_charge_minor <= 0:
            # The store refunded all of it after delivery (a return): still delivered, since
            # the shopper had the items, but the label must not stop at "Delivered".
            label = f"Delivered, then refunded by {market}"
            progress = marketplace_refund_progress(sub, refunds)
            if progress == Progress.REFUNDED:
                return label, "delivered"
            return f"{label} {STATE_SUFFIXES[progress]}", "delivered"
        return "Delivered", "delivered"
    if status == SubOrderStatus.CANCELLED:
        if not refunds:  # nothing was paid for it
            return "Cancelled", "cancelled"
        return f"Cancelled {share_state_suffix(sub, refunds)}", "cancelled"
    if status == SubOrderStatus.FAILED:
        return f"Not placed {share_state_suffix(sub, refunds)}", "failed"
    return status.value.replace("_", " ").capitalize(), status.value


def cancel_line(sub: MarketplaceOrder, refunds: list[Refund]) -> CancelLine:
    """What became of the shopper's cancellation at one marketplace."""
    market = sub.marketplace.name
    if sub.status in (SubOrderStatus.CANCELLED, SubOrderStatus.FAILED):
        amount = format_money(sub.charge_minor, sub.charge_currency)
        progress = share_refund_progress(sub, refunds)
        if all_released(refunds):
            # Left out of the card payment: never charged, so not "refunded" either.
            if progress in RELEASE_WORDS:
                return CancelLine(
                    "cancelled", f"cancelled; {amount} not charged ({RELEASE_WORDS[progress]})."
                )
            return CancelLine(
                "cancelled",
                f"cancelled; the release of {amount} from your card hold is not confirmed yet: "
                "our team is looking into it.",
            )
        if progress == Progress.PENDING:
            return CancelLine("cancelled", f"cancelled; your {amount} refund is on its way.")
        if progress == Progress.UNCONFIRMED:
            return CancelLine(
                "cancelled",
                f"cancelled; your {amount} refund is not confirmed yet: our team is looking into it.",
            )
        return CancelLine("cancelled", f"cancelled; {amount} refunded.")
    # A re-ask (`placing` again, asking_again) is as unknown as the `reconciling` between them:
    # "stopping it before it is placed" would be false, the marketplace may hold the order.
    if (
        sub.status in (SubOrderStatus.RECONCILING, SubOrderStatus.NEEDS_ATTENTION)
        or asking_again(sub)
        or sub.cancel_outcome == CancelOutcomeWord.UNKNOWN
    ):
        return CancelLine(
            "unknown",
            f"We don't know yet whether {market} has cancelled: it has not given us a clear "
            f"answer. We keep asking; if it cancels you get "
            f"{format_money(sub.charge_minor, sub.charge_currency)} back, otherwise it ships.",
        )
    # A refusal (or a marketplace that takes no cancellations) is told as such even after the
    # part ships or the shopper confirms it: that came later and was not the reason.
    if not marketplace_can(sub.marketplace, Capability.CANCEL):
        return CancelLine(
            "refused", "does not accept cancellations for this order, so it goes ahead."
        )
    if sub.cancel_outcome == CancelOutcomeWord.REFUSED:
        # It takes cancellations (the confirmation page said we would ask): it declined this one.
        return CancelLine("refused", "declined to cancel this order, so it goes ahead.")
    if sub.status in (SubOrderStatus.SHIPPED, SubOrderStatus.DELIVERED):
        # The cancellation job found it shipped and did not ask (no answer was kept).
        return CancelLine("refused", "had already shipped it, so it goes ahead.")
    if sub.status in (SubOrderStatus.PENDING, SubOrderStatus.PLACING):
        return CancelLine("pending", "stopping it before it is placed…")
    return CancelLine("pending", f"asking {market} to cancel…")


# Parts past the point where the order can be cancelled (commerce.cancellation).
_SENT_STATUSES = (SubOrderStatus.SHIPPED, SubOrderStatus.DELIVERED)


def why_not_cancellable(order: Order) -> str | None:
    """Why an order whose other parts are still on their way to shipping can no longer be
    cancelled: one of its parts has shipped (cancelling is for the whole order, before anything
    ships). "This order can no longer be cancelled: ShopWave has shipped its part. Kiondo
    Market's part goes ahead." The button was simply gone before, without a word. None when
    nothing stops a cancellation for that reason, or one was asked for already."""
    if order.cancel_requested_at is not None:
        return None
    charged = order.charged_sub_orders
    sent = [sub.marketplace.name for sub in charged if sub.status in _SENT_STATUSES]
    ahead = [
        sub.marketplace.name
        for sub in charged
        if sub.status in LIVE_SUB_ORDER_STATUSES and sub.status not in _SENT_STATUSES
    ]
    if not sent or not ahead:
        return None
    shipped = (
        f"{sent[0]} has shipped its part"
        if len(sent) == 1
        else f"{_and(sent)} have shipped their parts"
    )
    goes = (
        f"{ahead[0]}'s part goes ahead"
        if len(ahead) == 1
        else f"the parts of {_and(ahead)} go ahead"
    )
    return f"This order can no longer be cancelled: {shipped}. {goes[0].upper()}{goes[1:]}."


def _and(names: list[str]) -> str:
    """ "A, B and C"."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def amount_still_charged(sub: MarketplaceOrder) -> str:
    """What the shopper still pays for a part, as the cancel page names it: its share less what
    was refunded already (a marketplace that accepted less, its own refunds passed on), in its
    own currency first when that is not the payment's ("KES25,349.00 / $195.74"). The cancel
    page gave the whole share, so a part mostly refunded already promised it all back."""
    kept = format_money(max(sub.kept_charge_minor, 0), sub.charge_currency)
    if sub.currency == sub.charge_currency or sub.passed_on_charge_minor:
        # What a marketplace's own refunds left of it is known in the payment currency only.
        return kept
    if sub.accepted_charge_minor is None or sub.accepted_charge_minor >= sub.charge_minor:
        own = sub.amount_minor
    else:
        own = adjusted_own_minor(sub)
    return f"{format_money(own, sub.currency)} / {kept}"

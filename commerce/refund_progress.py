"""Where a sub-order's refunds stand, as the payment provider confirmed them, in the words the
order page uses (commerce.order_timeline). Never "refunded" before the refund is confirmed: a
card refund is recorded before Stripe makes it, may stay in doubt, and may be refused, so what
the shopper reads follows each refund's own status (pending, processing, succeeded, failed), not
the decision to refund or the reason an operator gave."""

from __future__ import annotations

import enum
from collections.abc import Iterable

from commerce.order_models import (
    MARKETPLACE_REFUND_KEY_INFIX,
    MarketplaceOrder,
    Refund,
    RefundStatus,
)


class Progress(enum.StrEnum):
    """Where some refunds stand: all of the amount given back, some still to be made or
    confirmed, or not confirmed (refused, or held back after a chargeback: an operator is on
    it)."""

    REFUNDED = "refunded"
    PENDING = "pending"
    UNCONFIRMED = "unconfirmed"


def progress_of(refunds: Iterable[Refund], amount_minor: int) -> Progress:
    """Where `refunds` stand towards giving back `amount_minor`."""
    refunds = list(refunds)
    succeeded = sum(r.amount_minor for r in refunds if r.status == RefundStatus.SUCCEEDED)
    if succeeded >= amount_minor:
        return Progress.REFUNDED
    if any(r.status in (RefundStatus.PENDING, RefundStatus.PROCESSING) for r in refunds):
        return Progress.PENDING
    return Progress.UNCONFIRMED


def share_refund_progress(sub: MarketplaceOrder, refunds: list[Refund]) -> Progress:
    """Where the money of a failed or cancelled part stands: refunded once succeeded refunds (or
    releases) give its whole share back."""
    return progress_of(refunds, sub.charge_minor)


def marketplace_refund_progress(sub: MarketplaceOrder, refunds: list[Refund]) -> Progress:
    """Where the refunds passing on the marketplace's own refunds of a sub-order stand:
    refunded once succeeded ones give back all that was passed on."""
    passed_on = [r for r in refunds if MARKETPLACE_REFUND_KEY_INFIX in r.idempotency_key]
    return progress_of(passed_on, sub.passed_on_charge_minor)


# A part's state label's ending, by where its share's refund stands.
STATE_SUFFIXES = {
    Progress.REFUNDED: "(refunded)",
    Progress.PENDING: "(refund on its way)",
    Progress.UNCONFIRMED: "(our team is checking your refund)",
}

# How the refund of what a marketplace did not accept is headed on the order page.
ADJUSTMENT_LABELS = {
    Progress.REFUNDED: "Refunded",
    Progress.PENDING: "Being refunded",
    Progress.UNCONFIRMED: "Refund not confirmed (our team is looking into it)",
}


def adjustment_refund_label(sub: MarketplaceOrder, refunds: list[Refund]) -> str | None:
    """The heading of what a placed part's marketplace did not accept (its share less what it
    accepted), by where that refund stands; None when it accepted all of it."""
    if sub.accepted_charge_minor is None or sub.accepted_charge_minor >= sub.charge_minor:
        return None
    adjustments = [r for r in refunds if r.idempotency_key == adjustment_key(sub)]
    return ADJUSTMENT_LABELS[progress_of(adjustments, sub.charge_minor - sub.accepted_charge_minor)]


def adjustment_refund_reason(sub: MarketplaceOrder, refunds: list[Refund]) -> str:
    """Why a placed part's marketplace did not keep all of its share, as its refund recorded it
    ("ShopWave billed $71.98, less than the $79.98 paid"; "Kiondo Market did not accept all of
    your items (…)"), without the full stop: the order page shows it in brackets."""
    reasons = [r.reason for r in refunds if r.idempotency_key == adjustment_key(sub) and r.reason]
    if not reasons:
        return f"{sub.marketplace.name} did not accept all of it at the price paid"
    return reasons[0].removesuffix(".")


def adjustment_key(sub_order: MarketplaceOrder) -> str:
    """The one refund of what a marketplace did not accept of a placed sub-order."""
    return f"refund-sub-{sub_order.id}-adjust"

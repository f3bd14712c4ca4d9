"""Where a sub-order's refunds stand, as the payment provider confirmed them, in the words the
order page uses (commerce.order_timeline). Never "refunded" before the refund is confirmed: a
card refund is recorded before Stripe makes it, may stay in doubt, and may be refused, so what
the shopper reads follows each refund's own status (pending, processing, succeeded, failed), not
the decision to refund or the reason an operator gave.

Nor "refunded" for a release: a card share left out of the capture (RefundKind.RELEASE) was
held, never charged, so the shopper's bank shows no refund for it. It is "not charged", released
from the card hold (or to be, while the payment is not settled yet)."""

from __future__ import annotations

import enum
from collections.abc import Iterable

from commerce.order_models import (
    MARKETPLACE_REFUND_KEY_INFIX,
    MarketplaceOrder,
    Order,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
)
from onecart.money import format_money


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


def all_released(refunds: Iterable[Refund]) -> bool:
    """Whether `refunds` (one share's) are all releases of a card hold: money never charged."""
    refunds = list(refunds)
    return bool(refunds) and all(r.kind == RefundKind.RELEASE for r in refunds)


# A part's state label's ending, by where its share's refund stands.
STATE_SUFFIXES = {
    Progress.REFUNDED: "(refunded)",
    Progress.PENDING: "(refund on its way)",
    Progress.UNCONFIRMED: "(our team is checking your refund)",
}
# The same for a share left out of the card payment: not charged, whether its hold is released
# already or at the capture.
RELEASE_STATE_SUFFIXES = {
    Progress.REFUNDED: "(not charged)",
    Progress.PENDING: "(not charged)",
    Progress.UNCONFIRMED: "(our team is checking your card hold)",
}
# Where the hold on a share left out of the card payment stands, in the page's words (one not
# confirmed says so in its heading).
RELEASE_WORDS = {
    Progress.REFUNDED: "released from your card hold",
    Progress.PENDING: "to be released from your card hold",
}


def share_state_suffix(sub: MarketplaceOrder, refunds: list[Refund]) -> str:
    """A failed or cancelled part's state label's ending: "(refunded)", "(not charged)"…"""
    suffixes = RELEASE_STATE_SUFFIXES if all_released(refunds) else STATE_SUFFIXES
    return suffixes[share_refund_progress(sub, refunds)]


# How the refund of what a marketplace did not accept is headed on the order page.
ADJUSTMENT_LABELS = {
    Progress.REFUNDED: "Refunded",
    Progress.PENDING: "Being refunded",
    Progress.UNCONFIRMED: "Refund not confirmed (our team is looking into it)",
}
# …and when it was left out of a card payment: never charged, so never "refunded".
RELEASE_ADJUSTMENT_LABELS = {
    Progress.REFUNDED: "Not charged",
    Progress.PENDING: "Not charged",
    Progress.UNCONFIRMED: "Card hold release not confirmed (our team is looking into it)",
}


def adjustment_refund_label(sub: MarketplaceOrder, refunds: list[Refund]) -> str | None:
    """The heading of what a placed part's marketplace did not accept (its share less what it
    accepted), by where that refund stands; None when it accepted all of it."""
    if sub.accepted_charge_minor is None or sub.accepted_charge_minor >= sub.charge_minor:
        return None
    adjustments = [r for r in refunds if r.idempotency_key == adjustment_key(sub)]
    labels = RELEASE_ADJUSTMENT_LABELS if all_released(adjustments) else ADJUSTMENT_LABELS
    return labels[progress_of(adjustments, sub.charge_minor - sub.accepted_charge_minor)]


# How a placed part's heading says where the rest of its share went: after what it is charged,
# "(of $620.82 paid; the rest refunded)". Only "the rest": its amount is on the refund line
# below, so the page gives it once.
ADJUSTMENT_HEADING_WORDS = {
    Progress.REFUNDED: "the rest refunded",
    Progress.PENDING: "the rest being refunded",
    Progress.UNCONFIRMED: "the refund of the rest not confirmed yet",
}
# …and when it was left out of a card payment: held, never charged.
RELEASE_ADJUSTMENT_HEADING_WORDS = {
    Progress.REFUNDED: "the rest not charged",
    Progress.PENDING: "the rest not charged",
    Progress.UNCONFIRMED: "the release of the rest not confirmed yet",
}


def adjustment_heading_note(sub: MarketplaceOrder, refunds: list[Refund]) -> str | None:
    """What a placed part's heading says after the amount it is charged when its marketplace
    did not keep all of its share (left items out, billed less): "of $620.82 paid; the rest
    refunded" ("of … held on your card; the rest not charged" for a card hold). A part in
    another currency than the payment heads with its own amount (adjusted_own_minor), as every
    converted amount on the site does, so the note starts with what it is charged in the
    payment currency: "$229.32 of $620.82 paid; …". None when it kept the whole share: the
    heading then shows the share alone, as before."""
    if sub.accepted_charge_minor is None or sub.accepted_charge_minor >= sub.charge_minor:
        return None
    adjustments = [r for r in refunds if r.idempotency_key == adjustment_key(sub)]
    released = all_released(adjustments)
    words = RELEASE_ADJUSTMENT_HEADING_WORDS if released else ADJUSTMENT_HEADING_WORDS
    progress = progress_of(adjustments, sub.charge_minor - sub.accepted_charge_minor)
    paid = format_money(sub.charge_minor, sub.charge_currency)
    note = f"of {paid} {'held on your card' if released else 'paid'}; {words[progress]}"
    if sub.currency != sub.charge_currency:
        return f"{format_money(sub.accepted_charge_minor, sub.charge_currency)} {note}"
    return note


def adjusted_heading_amount(sub: MarketplaceOrder) -> str:
    """The amount a part charged less than its share heads with: what it is charged, in its own
    currency when that is not the payment's (adjusted_own_minor), else in the payment's."""
    if sub.currency != sub.charge_currency:
        return format_money(adjusted_own_minor(sub), sub.currency)
    return format_money(sub.accepted_share_minor, sub.charge_currency)


def adjusted_own_minor(sub: MarketplaceOrder) -> int:
    """What a placed part that the marketplace did not keep whole comes to in its own currency:
    the accepted units at the prices paid, or what the marketplace billed for them when that is
    less (commerce.acceptance: a lower bill is what the shopper's share follows; a higher one
    within the tolerance is OneCart's, as is the shipping and tax it absorbed)."""
    accepted = sum(item.accepted_total_minor for item in sub.items)
    if sub.accepted_amount_minor is None:
        return accepted
    billed = (
        sub.accepted_amount_minor
        - (sub.absorbed_shipping_minor or 0)
        - (sub.absorbed_tax_minor or 0)
    )
    return max(min(billed, accepted), 0)


def adjustment_refund_reason(sub: MarketplaceOrder, refunds: list[Refund]) -> str:
    """Why a placed part's marketplace did not keep all of its share, as its refund recorded it
    ("ShopWave billed $71.98, not the $79.98 paid"; "Kiondo Market did not accept all of
    your items: accepted 1 of 3 × …"), without the full stop: the order page shows it in
    brackets. A share left out of a card payment says first that its hold is (to be) released."""
    adjustments = [r for r in refunds if r.idempotency_key == adjustment_key(sub)]
    reasons = [r.reason for r in adjustments if r.reason]
    reason = (
        reasons[0].removesuffix(".")
        if reasons
        else f"{sub.marketplace.name} did not accept all of it at the price paid"
    )
    if all_released(adjustments) and sub.accepted_charge_minor is not None:
        progress = progress_of(adjustments, sub.charge_minor - sub.accepted_charge_minor)
        if progress in RELEASE_WORDS:
            return f"{RELEASE_WORDS[progress]}: {reason}"
    return reason


def adjustment_key(sub_order: MarketplaceOrder) -> str:
    """The one refund of what a marketplace did not accept of a placed sub-order."""
    return f"refund-sub-{sub_order.id}-adjust"


def card_only_held(order: Order) -> bool:
    """Whether the order's card payment is authorized and nothing captured yet: what stops now
    is left out of the capture (released), not refunded."""
    payment = order.payment
    return (
        payment is not None
        and payment.method != PaymentMethod.WALLET
        and payment.status == PaymentStatus.AUTHORIZED
    )


def card_hold_released(order: Order) -> bool:
    """Whether everything the order's card payment gives back is released from the hold (never
    captured), none of it refunded."""
    payment = order.payment
    if payment is None or payment.method == PaymentMethod.WALLET:
        return False
    refunds = [r for r in payment.refunds if r.status != RefundStatus.FAILED]
    return len(refunds) == len(payment.refunds) and all_released(refunds)

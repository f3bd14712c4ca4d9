"""Giving back the shares the marketplaces did not keep: a failed or cancelled sub-order gets one
refund of what is left of its share (its held stock released, the shopper told); a placement the
marketplace accepted only in part (or billed for less) gets one adjustment refund of the
difference (see commerce.placement).

Wallet refunds are ledger lines in the caller's transaction. Card refunds are recorded here
(pending) and sent by commerce.refunds.process_refunds: claimed (pending → processing, with the
time the call started) before the provider is called; an unknown outcome stays `processing` and
is looked up by its idempotency key later. A share left out of a card payment not captured yet is
a release (commerce.settlement leaves it out of the capture).

In the settlement layer of the order lifecycle stack, beside commerce.settlement (neither imports
the other); placement, tracking and cancellation call it.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.models import utc_now
from commerce.notifications import notify
from commerce.offer_stock import release_stock
from commerce.order_models import (
    LIVE_SUB_ORDER_STATUSES,
    MarketplaceOrder,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Refund,
    RefundKind,
    RefundStatus,
    SubOrderStatus,
)
from commerce.order_state import ERROR_TEXT_LIMIT, refresh_order_status
from commerce.payments.gateway import floor_card_amount
from commerce.refund_progress import adjustment_key
from commerce.refunds import complete_refund, refresh_payment_status, refund_said
from onecart.money import Money, format_money

# Refund.reason's column width.
REFUND_REASON_LIMIT = 200


def refund_key(sub_order: MarketplaceOrder) -> str:
    """The one refund of a failed or cancelled sub-order's share."""
    return f"refund-sub-{sub_order.id}"


def refund_kind_for(payment: Payment) -> RefundKind:
    """How a share of `payment` would be given back now: a wallet credit, a card refund, or
    left out of a card payment not captured yet (its hold released)."""
    if payment.method == PaymentMethod.WALLET:
        return RefundKind.WALLET_CREDIT
    # Before the capture is claimed, the share is simply left out of it; afterwards it was (or
    # may have been) captured and must be refunded on the card.
    if payment.status == PaymentStatus.AUTHORIZED:
        return RefundKind.RELEASE
    return RefundKind.CARD_REFUND


def refunded_for(session: Session, sub_order: MarketplaceOrder) -> int:
    """What the sub-order's refunds already cover: done, pending, and failed for good too.

    A refund that failed for good flagged the order for the operator, who pays it another way;
    counting it here keeps a later cancellation from sending that part again automatically
    (the shopper would be paid twice)."""
    total = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Refund.amount_minor), 0)).where(
            Refund.sub_order_id == sub_order.id
        )
    )
    return int(total or 0)


def record_refund(
    session: Session,
    sub_order: MarketplaceOrder,
    amount_minor: int,
    *,
    key: str,
    reason: str,
    wallet_description: str = "Refund",
) -> Refund | None:
    """Record one refund of part of a sub-order's share (once per key); a wallet refund is
    credited in this same transaction (its ledger line says `wallet_description`), a card refund
    is sent by commerce.refunds.process_refunds. The caller locked the order."""
    order = sub_order.order
    payment = order.payment
    if payment is None or amount_minor <= 0:
        return None
    refund = session.scalar(sa.select(Refund).where(Refund.idempotency_key == key))
    if refund is not None:
        return refund
    refund = Refund(
        payment_id=payment.id,
        sub_order_id=sub_order.id,
        kind=refund_kind_for(payment),
        status=RefundStatus.PENDING,
        amount_minor=amount_minor,
        currency=sub_order.charge_currency,
        # Shown to the shopper (the order page's why of an adjustment): a cut reason says so.
        reason=reason
        if len(reason) <= REFUND_REASON_LIMIT
        else reason[: REFUND_REASON_LIMIT - 1] + "…",
        idempotency_key=key,
    )
    session.add(refund)
    if payment.method == PaymentMethod.WALLET:
        # The wallet is our own ledger: credit it in this same transaction, so a failed or
        # cancelled sub-order and its refund can never be seen one without the other.
        from commerce.payments.wallet_gateway import WalletGateway

        session.flush()
        refund.provider_reference = WalletGateway(session, order.user).refund(
            payment.provider_reference,
            Money(refund.amount_minor, refund.currency),
            idempotency_key=refund.idempotency_key,
            description=wallet_description,
        )
        complete_refund(refund, RefundKind.WALLET_CREDIT)
        session.flush()
        session.refresh(payment, attribute_names=["refunds"])
        refresh_payment_status(payment)
    session.flush()
    return refund


def compensate_sub_order(
    session: Session,
    sub_order: MarketplaceOrder,
    *,
    status: SubOrderStatus,
    reason: str,
    wallet_description: str = "Refund",
    tell_shopper: bool = True,
) -> Refund | None:
    """Mark a sub-order failed or cancelled, give back the stock its units held (where OneCart
    holds it), record the refund of what is left of its share (pending until the provider did
    it) and tell the shopper (unless `tell_shopper` is False: the shopper's cancellation of
    several parts tells them once for all, commerce.cancellation). The caller holds the transaction,
    has locked the order (commerce.order_locks) and checked that the sub-order was live; the card
    refund itself runs in commerce.refunds.process_refunds."""
    assert status in (SubOrderStatus.FAILED, SubOrderStatus.CANCELLED)
    order = sub_order.order
    sub_order.status = status
    sub_order.last_error = reason[:ERROR_TEXT_LIMIT]
    # Ended: an outcome that was unknown (placing, reconciling) is not any more.
    sub_order.unresolved_since = None
    sub_order.claim_token = None
    sub_order.claim_expires_at = None
    sub_order.updated_at = utc_now()
    # Its units are for sale again where OneCart holds the stock (commerce.offer_stock).
    release_stock(session, sub_order)
    remaining = sub_order.charge_minor - refunded_for(session, sub_order)
    refund = record_refund(
        session,
        sub_order,
        remaining,
        key=refund_key(sub_order),
        reason=reason,
        wallet_description=wallet_description,
    )
    market = sub_order.marketplace.name
    share = format_money(max(remaining, 0), sub_order.charge_currency)
    refunded = refund_said(refund, f"their {share}")
    if status == SubOrderStatus.FAILED:
        message = f"We could not place your {market} items, so {refunded}."
        if _other_parts_go_ahead(session, sub_order):
            # Only while there is a rest: the last part failing ends the order.
            message += " The rest of your order goes ahead."
    else:
        message = f"Your {market} items were cancelled; {refunded}."
    # When this part failing fails the whole order, the order's own notification ("We could not
    # place order …; … refunded in full.", refresh_order_status) says all of it: this sentence
    # merged before it said the same failure and refund twice. So does the order's "was
    # cancelled and refunded to your OneCart wallet" (or "ShopWave cancelled your order …") when
    # this part was the whole order, whoever cancelled it.
    said_by_order = (
        _order_fails_with(session, sub_order)
        if status == SubOrderStatus.FAILED
        else _only_charged_part(session, sub_order)
    )
    if tell_shopper and not said_by_order:
        notify(session, order, f"sub_order_{status.value}", message, sub_order_id=sub_order.id)
    refresh_order_status(session, order, tell=tell_shopper)
    session.flush()
    return refund


def _order_fails_with(session: Session, sub_order: MarketplaceOrder) -> bool:
    """Whether every other charged part of the order failed too, so that this one failing fails
    the order (commerce.order_state.derive_order_status: all charged parts failed; hand-offs
    are not charged). Asked of the database under the order's lock, as below."""
    return not session.scalar(
        sa.select(
            sa.exists().where(
                MarketplaceOrder.order_id == sub_order.order_id,
                MarketplaceOrder.id != sub_order.id,
                MarketplaceOrder.status.not_in((SubOrderStatus.FAILED, SubOrderStatus.HANDOFF)),
            )
        )
    )


def _only_charged_part(session: Session, sub_order: MarketplaceOrder) -> bool:
    """Whether the order has no other part paid through OneCart (hand-offs are not)."""
    return not session.scalar(
        sa.select(
            sa.exists().where(
                MarketplaceOrder.order_id == sub_order.order_id,
                MarketplaceOrder.id != sub_order.id,
                MarketplaceOrder.status != SubOrderStatus.HANDOFF,
            )
        )
    )


def _other_parts_go_ahead(session: Session, sub_order: MarketplaceOrder) -> bool:
    """Whether another part of the order paid through OneCart is still live (asked of the
    database, under the order's lock: a part another worker failed is not in loaded rows)."""
    return bool(
        session.scalar(
            sa.select(
                sa.exists().where(
                    MarketplaceOrder.order_id == sub_order.order_id,
                    MarketplaceOrder.id != sub_order.id,
                    MarketplaceOrder.status.in_(LIVE_SUB_ORDER_STATUSES),
                )
            )
        )
    )


def adjustment_news(
    news: str, refund: Refund | None, amount: str, *, details: str | None = None
) -> str:
    """What the shopper is told first of an adjustment: `news` (why: "ShopWave billed $71.98,
    not the $79.98 paid.") and what became of the difference, in one sentence; then `details`,
    a sentence of its own (which items were left out).

    The first sentence is the e-mail's subject (notifications.email_subject), cut past
    SUBJECT_HEADLINE_LIMIT characters, marketplace names first: it carries only the news and the
    money, so that with KES or NGN amounts it still says where the difference went. A part's
    long item titles, in it before, pushed that out (tests/checkout/test_adjustment_subjects.py).
    A card refund says "to your card": "we are refunding $8.00" said nothing of where."""
    if refund is not None and refund.kind == RefundKind.RELEASE:
        # Left out of a card payment not captured yet: never taken, so never refunded either
        # (no "We refunded … to your card" follows); the card is charged that much less.
        said = f"your card is charged {amount} less"
    else:
        said = refund_said(refund, amount)
        if refund is not None and refund.kind == RefundKind.CARD_REFUND:
            said += " to your card"
    sentence = f"{news.rstrip().removesuffix('.')}; {said}."
    # Every full stop off the end of the details: an item named last may end with its own
    # ("… Made in U.S.A."), which then ends the sentence too, once.
    return f"{sentence} {details.rstrip().rstrip('.')}." if details else sentence


def adjust_share(
    session: Session,
    sub_order: MarketplaceOrder,
    kept_charge_minor: int,
    *,
    reason: str,
    news: str | None = None,
    details: str | None = None,
) -> Refund | None:
    """Keep only `kept_charge_minor` of a placed sub-order's share and refund the rest (once).

    `reason` is the refund's (the order page shows it whole); the shopper's notification says
    `news` (else `reason`) and `details` as adjustment_news puts them.

    What is kept is rounded DOWN to the card amount step (payments.gateway.floor_card_amount):
    the shopper never pays more than the marketplace accepted, and both the capture (the kept
    shares) and this refund stay amounts Stripe accepts in three-decimal currencies."""
    kept = floor_card_amount(
        max(0, min(kept_charge_minor, sub_order.charge_minor)), sub_order.charge_currency
    )
    sub_order.accepted_charge_minor = kept
    difference = sub_order.charge_minor - kept
    if difference <= 0:
        return None
    refund = record_refund(
        session, sub_order, difference, key=adjustment_key(sub_order), reason=reason
    )
    amount = format_money(difference, sub_order.charge_currency)
    # Said first: a notification's first sentence is its e-mail's subject, which said
    # "ShopWave accepted your order (their order #1002)." while the lower bill and what became
    # of the difference were only in the body (tests/checkout/test_billed_less_note.py).
    notify(
        session,
        sub_order.order,
        "sub_order_adjusted",
        adjustment_news(news or reason, refund, amount, details=details),
        sub_order_id=sub_order.id,
        lead=True,
    )
    return refund

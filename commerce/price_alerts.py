"""Price alerts: shoppers watch a product and hear when its cheapest offer drops.

The rule (:func:`decide_alert`, pure) works in the shopper's display currency, in integer minor
units, with every offer of the product converted at the published rates:

- the cheapest available offer on any marketplace is compared with the watch's *reference*, the
  price the next drop is measured from (the price when watching started; raised when the price
  rises; lowered to the alerted price after an alert);
- a drop of at least MIN_DROP_BASIS_POINTS (so exchange-rate wobble is not a "drop") fires when
  the price is at or below the target, or when it fell by the watch's percentage, or, for a watch
  with neither, on any such drop;
- after an alert the reference is the alerted price: the same price seen again is not a new
  drop, a further fall is.

:func:`evaluate_price_alerts` runs after every storefront catalog sync (the pipeline's
storefront_products asset) and can run any number of times: each watch changes compare-and-set
on its `version`, and (watch, sequence) is unique, so one drop makes one alert. An alert is a
Notification (kind "price_alert", linking to the product page) written in the same transaction;
its e-mail goes out through commerce.notifications.send_notification_emails like every other
notification (the order sweeper sends what is pending).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.cart_pricing import charged_price_minor
from commerce.fx import USD, FxTable, load_fx_table
from commerce.models import Marketplace, Product, User, utc_now
from commerce.notification_models import Notification
from commerce.price_alert_models import PriceAlert, PriceWatch
from onecart.money import format_money, is_iso_currency

logger = logging.getLogger(__name__)

# A fall smaller than 1% is not a drop: converted prices move that much with the exchange rates.
MIN_DROP_BASIS_POINTS = 100
MIN_DROP_PERCENT = 1
MAX_DROP_PERCENT = 90
# Far above any price, far below a 64-bit column's limit (a form accepts twenty digits).
MAX_TARGET_MINOR = 10**15
MAX_WATCHES_PER_USER = 200
NOTIFICATION_KIND = "price_alert"
_GROUP_CHUNK = 500


class WatchError(ValueError):
    """A watch that cannot be made or changed; the message is for the shopper."""


class AlertReason(StrEnum):
    """Why an alert fired (stored on PriceAlert, shown in the message)."""

    BELOW_TARGET = "below_target"
    PERCENT_DROP = "percent_drop"
    PRICE_DROP = "price_drop"


@dataclass(frozen=True, slots=True)
class Decision:
    """What one evaluation does to one watch: keep it, move its reference, or fire an alert."""

    new_reference: int | None
    reason: AlertReason | None = None

    @property
    def fires(self) -> bool:
        return self.reason is not None


def decide_alert(
    *,
    cheapest_minor: int,
    reference_minor: int | None,
    target_minor: int | None,
    drop_percent: int | None,
) -> Decision:
    """The price-alert rule for one watch, every amount in the same currency's minor units.

    Returns the reference to store (None: unchanged) and the reason when an alert fires.
    """
    if reference_minor is None or cheapest_minor > reference_minor:
        return Decision(new_reference=cheapest_minor)
    drop = reference_minor - cheapest_minor
    if drop <= 0 or drop * 10_000 < reference_minor * MIN_DROP_BASIS_POINTS:
        return Decision(new_reference=None)
    if target_minor is not None and cheapest_minor <= target_minor:
        return Decision(new_reference=cheapest_minor, reason=AlertReason.BELOW_TARGET)
    if drop_percent is not None and drop * 100 >= reference_minor * drop_percent:
        return Decision(new_reference=cheapest_minor, reason=AlertReason.PERCENT_DROP)
    if target_minor is None and drop_percent is None:
        return Decision(new_reference=cheapest_minor, reason=AlertReason.PRICE_DROP)
    return Decision(new_reference=None)


# --- The product's cheapest offer -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OfferPrice:
    """One available offer of a watched product, in its own currency."""

    product_id: int
    marketplace_name: str
    title: str
    price_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class CheapestOffer:
    """The cheapest available offer of a product, converted into one currency."""

    product_id: int
    marketplace_name: str
    title: str
    price_minor: int
    currency: str


def offers_by_group(session: Session, group_ids: Iterable[str]) -> dict[str, list[OfferPrice]]:
    """Every available offer (in the catalog, at an active marketplace) of the given products."""
    wanted = sorted(set(group_ids))
    result: dict[str, list[OfferPrice]] = {}
    for start in range(0, len(wanted), _GROUP_CHUNK):
        chunk = wanted[start : start + _GROUP_CHUNK]
        rows = session.execute(
            sa.select(
                Product.relation_token,
                Product.id,
                Marketplace.name,
                Product.title,
                Product.price_minor,
                Product.currency,
            )
            .join(Marketplace, Product.marketplace_id == Marketplace.id)
            .where(
                Product.relation_token.in_(chunk),
                Product.removed_at.is_(None),
                Product.available.is_(True),
                Marketplace.active.is_(True),
            )
        )
        for group_id, product_id, marketplace, title, price_minor, currency in rows:
            result.setdefault(group_id, []).append(
                OfferPrice(product_id, marketplace, title, price_minor, currency)
            )
    return result


def cheapest_offer(
    offers: Sequence[OfferPrice], fx: FxTable, currency: str
) -> CheapestOffer | None:
    """The cheapest of `offers` in `currency` (offers without a rate are left out), each priced as
    the product page shows it and the cart charges it (charged_price_minor: converted, then
    rounded down to the card step), so a watch list or an alert never names another price."""
    best: CheapestOffer | None = None
    for offer in offers:
        converted = charged_price_minor(fx, offer.price_minor, offer.currency, currency)
        if converted is None:
            continue
        if best is None or (converted, offer.product_id) < (best.price_minor, best.product_id):
            best = CheapestOffer(
                offer.product_id, offer.marketplace_name, offer.title, converted, currency
            )
    return best


def shopper_currency(user_currency: str | None, fx: FxTable) -> str:
    """The currency a shopper's alerts are worked out in: their display currency when it has a
    rate, else USD (as the site shows them)."""
    return user_currency if user_currency and fx.has(user_currency) else USD


# --- Watches --------------------------------------------------------------------------------


def _validated(
    target_minor: int | None, target_currency: str | None, drop_percent: int | None
) -> None:
    if target_minor is not None:
        if target_minor <= 0:
            raise WatchError("The target price must be more than zero.")
        if target_minor > MAX_TARGET_MINOR:
            raise WatchError("That target price is too high.")
        if not is_iso_currency(target_currency):
            raise WatchError("The target price needs a currency.")
    if drop_percent is not None and not MIN_DROP_PERCENT <= drop_percent <= MAX_DROP_PERCENT:
        raise WatchError(
            f"The price drop must be between {MIN_DROP_PERCENT}% and {MAX_DROP_PERCENT}%."
        )


def find_watch(session: Session, user_id: int, group_id: str) -> PriceWatch | None:
    """The user's watch of a product, if any."""
    return session.scalars(
        sa.select(PriceWatch).where(PriceWatch.user_id == user_id, PriceWatch.group_id == group_id)
    ).one_or_none()


def watch_product(
    session: Session,
    user: User,
    group_id: str,
    *,
    target_minor: int | None = None,
    target_currency: str | None = None,
    drop_percent: int | None = None,
    fx: FxTable | None = None,
) -> PriceWatch:
    """Start watching a product (or change the existing watch's target and percentage).

    The reference is the product's cheapest price now, so only later drops alert. Raises
    WatchError for a product with no offer or bad values. Flushes; the caller commits.
    """
    _validated(target_minor, target_currency, drop_percent)
    fx = fx or load_fx_table(session)
    offers = offers_by_group(session, [group_id]).get(group_id, [])
    title = session.scalar(
        sa.select(Product.title).where(Product.relation_token == group_id).limit(1)
    )
    if title is None:
        raise WatchError("We couldn't find that product.")
    watch = find_watch(session, user.id, group_id)
    if watch is None:
        count = session.scalar(
            sa.select(sa.func.count()).select_from(PriceWatch).where(PriceWatch.user_id == user.id)
        )
        if (count or 0) >= MAX_WATCHES_PER_USER:
            raise WatchError(
                f"You can watch up to {MAX_WATCHES_PER_USER} products; remove one first."
            )
        currency = shopper_currency(user.display_currency, fx)
        cheapest = cheapest_offer(offers, fx, currency)
        watch = PriceWatch(
            user_id=user.id,
            group_id=group_id,
            title=(cheapest.title if cheapest else title)[:300],
            reference_minor=cheapest.price_minor if cheapest else None,
            reference_currency=currency if cheapest else None,
            version=0,
        )
        session.add(watch)
    watch.target_minor = target_minor
    watch.target_currency = target_currency if target_minor is not None else None
    watch.drop_percent = drop_percent
    watch.updated_at = utc_now()
    session.flush()
    return watch


def target_already_met(session: Session, user: User, watch: PriceWatch, fx: FxTable) -> str | None:
    """When the product's cheapest offer is already at or below the watch's target, says so
    (an alert comes only with a later drop, so the shopper is told when setting it), else None."""
    if watch.target_minor is None:
        return None
    currency = shopper_currency(user.display_currency, fx)
    offers = offers_by_group(session, [watch.group_id]).get(watch.group_id, [])
    cheapest = cheapest_offer(offers, fx, currency)
    target = _in_currency(watch.target_minor, watch.target_currency, fx, currency)
    if cheapest is None or target is None or cheapest.price_minor > target:
        return None
    return (
        f"The cheapest offer, {format_money(cheapest.price_minor, cheapest.currency)} at "
        f"{cheapest.marketplace_name}, is already at or below your target of "
        f"{format_money(target, cheapest.currency)}: we'll tell you when it drops further."
    )


def update_watch(
    session: Session,
    user_id: int,
    watch_id: int,
    *,
    target_minor: int | None,
    target_currency: str | None,
    drop_percent: int | None,
) -> PriceWatch | None:
    """Change a watch's target and percentage; None when it is not the user's (or unknown)."""
    _validated(target_minor, target_currency, drop_percent)
    watch = session.get(PriceWatch, watch_id)
    if watch is None or watch.user_id != user_id:
        return None
    watch.target_minor = target_minor
    watch.target_currency = target_currency if target_minor is not None else None
    watch.drop_percent = drop_percent
    watch.updated_at = utc_now()
    session.flush()
    return watch


def remove_watch(session: Session, user_id: int, watch_id: int) -> bool:
    """Stop watching; False when the watch is not the user's (or unknown)."""
    result = session.execute(
        sa.delete(PriceWatch).where(PriceWatch.id == watch_id, PriceWatch.user_id == user_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class WatchView:
    """One row of the watch list: the watch, its target in the shopper's currency, and the
    product's cheapest offer now (None when no marketplace has it in stock)."""

    watch: PriceWatch
    target_minor: int | None
    cheapest: CheapestOffer | None
    last_alert: PriceAlert | None


def list_watches(session: Session, user: User, fx: FxTable) -> list[WatchView]:
    """The user's watches, newest first, with prices in their display currency."""
    currency = shopper_currency(user.display_currency, fx)
    watches = list(
        session.scalars(
            sa.select(PriceWatch)
            .where(PriceWatch.user_id == user.id)
            .order_by(PriceWatch.created_at.desc(), PriceWatch.id.desc())
        )
    )
    offers = offers_by_group(session, [w.group_id for w in watches])
    last_alerts: dict[int, PriceAlert] = {}
    if watches:
        for alert in session.scalars(
            sa.select(PriceAlert)
            .where(PriceAlert.watch_id.in_([w.id for w in watches]))
            .order_by(PriceAlert.watch_id, PriceAlert.sequence)
        ):
            last_alerts[alert.watch_id] = alert
    return [
        WatchView(
            watch=watch,
            target_minor=_in_currency(watch.target_minor, watch.target_currency, fx, currency),
            cheapest=cheapest_offer(offers.get(watch.group_id, []), fx, currency),
            last_alert=last_alerts.get(watch.id),
        )
        for watch in watches
    ]


def _in_currency(minor: int | None, source: str | None, fx: FxTable, target: str) -> int | None:
    if minor is None or not source:
        return None
    return fx.convert_or_none(minor, source, target)


# --- Evaluation -------------------------------------------------------------------------------


@dataclass(slots=True)
class AlertReport:
    """What one evaluation did (the pipeline logs it as metadata)."""

    watches: int = 0
    alerts: int = 0
    references_moved: int = 0
    lost_races: int = 0

    def as_metadata(self) -> dict[str, int]:
        return {
            "price_watches": self.watches,
            "price_alerts_fired": self.alerts,
            "price_references_moved": self.references_moved,
            "price_alert_races_lost": self.lost_races,
        }


def alert_message(
    title: str,
    cheapest: CheapestOffer,
    previous_minor: int,
    reason: AlertReason,
    target: int | None,
) -> str:
    """Where the product is cheapest now and by how much it fell, in the shopper's currency."""
    drop = previous_minor - cheapest.price_minor
    percent = drop * 100 // previous_minor
    text = (
        f"Price drop: {title} is now {format_money(cheapest.price_minor, cheapest.currency)} at "
        f"{cheapest.marketplace_name}, {format_money(drop, cheapest.currency)} ({percent}%) less "
        f"than {format_money(previous_minor, cheapest.currency)}."
    )
    if reason == AlertReason.BELOW_TARGET and target is not None:
        text += f" Your target was {format_money(target, cheapest.currency)}."
    return text


def product_path(group_id: str) -> str:
    """The product page's path (the alert's link; the e-mail prefixes the site URL)."""
    from urllib.parse import quote

    return f"/product/{quote(group_id, safe='')}"


def evaluate_price_alerts(
    session_factory: sessionmaker[Session],
    *,
    group_ids: Iterable[str] | None = None,
    now: datetime | None = None,
) -> AlertReport:
    """Apply the rule to every watch (or the watches of `group_ids`) and fire what dropped.

    Each watch is its own transaction, changed compare-and-set on `version`: an evaluation that
    lost a race to another one leaves that watch alone. Safe to run any number of times.
    """
    report = AlertReport()
    moment = now or utc_now()
    with session_factory() as session:
        fx = load_fx_table(session)
        query = sa.select(
            PriceWatch.id, PriceWatch.group_id, PriceWatch.version, User.display_currency
        ).join(User, User.id == PriceWatch.user_id)
        if group_ids is not None:
            wanted = list(set(group_ids))
            if not wanted:
                return report
            query = query.where(PriceWatch.group_id.in_(wanted))
        watch_rows = session.execute(query.order_by(PriceWatch.id)).all()
        offers = offers_by_group(session, {row.group_id for row in watch_rows})
    report.watches = len(watch_rows)
    for watch_id, group_id, _version, user_currency in watch_rows:
        currency = shopper_currency(user_currency, fx)
        cheapest = cheapest_offer(offers.get(group_id, []), fx, currency)
        if cheapest is None:
            continue
        with session_factory() as session, session.begin():
            outcome = _apply_to_watch(session, watch_id, cheapest, fx, moment)
        if outcome == "fired":
            report.alerts += 1
        elif outcome == "moved":
            report.references_moved += 1
        elif outcome == "lost":
            report.lost_races += 1
    if report.alerts:
        logger.info("price alerts: %d fired over %d watches", report.alerts, report.watches)
    return report


def _apply_to_watch(
    session: Session, watch_id: int, cheapest: CheapestOffer, fx: FxTable, moment: datetime
) -> str:
    watch = session.get(PriceWatch, watch_id)
    if watch is None:
        return "gone"
    currency = cheapest.currency
    reference = _in_currency(watch.reference_minor, watch.reference_currency, fx, currency)
    target = _in_currency(watch.target_minor, watch.target_currency, fx, currency)
    decision = decide_alert(
        cheapest_minor=cheapest.price_minor,
        reference_minor=reference,
        target_minor=target,
        drop_percent=watch.drop_percent,
    )
    if decision.new_reference is None:
        return "kept"
    # Read before the UPDATE: the ORM refreshes `watch.version` from it.
    expected_version = watch.version
    values: dict[str, object] = {
        "reference_minor": decision.new_reference,
        "reference_currency": currency,
        "version": expected_version + 1,
    }
    if decision.fires:
        values["last_alert_at"] = moment
    claimed = session.execute(
        sa.update(PriceWatch)
        .where(PriceWatch.id == watch.id, PriceWatch.version == expected_version)
        .values(**values)
    ).rowcount  # type: ignore[attr-defined]
    if not claimed:
        return "lost"
    if decision.reason is None:
        return "moved"
    assert reference is not None  # a drop is always measured from a reference
    notification = Notification(
        user_id=watch.user_id,
        order_id=None,
        kind=NOTIFICATION_KIND,
        message=alert_message(watch.title, cheapest, reference, decision.reason, target)[:500],
        link_path=product_path(watch.group_id),
        created_at=moment,
    )
    session.add(notification)
    session.flush()
    session.add(
        PriceAlert(
            watch_id=watch.id,
            sequence=expected_version + 1,
            notification_id=notification.id,
            product_id=cheapest.product_id,
            marketplace_name=cheapest.marketplace_name[:120],
            reason=decision.reason.value,
            price_minor=cheapest.price_minor,
            previous_minor=reference,
            currency=currency,
            created_at=moment,
        )
    )
    return "fired"

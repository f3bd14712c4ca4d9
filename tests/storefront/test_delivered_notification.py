"""The "order delivered" notification and its e-mail name the parts nobody confirmed received,
as the order's badge does ("Delivered (DummyMart not confirmed)").

Shopper QA, fifth pass, left open: the badge named DummyMart's unconfirmed part, but the
notification and e-mail said the order "has been delivered" ("Everything we can track … has been
delivered"), and said so too when the shopper's own confirmation of one untracked part completed
an order nothing of which is tracked."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from commerce.models import Marketplace, User
from commerce.notification_models import Notification
from commerce.notifications import email_subject, notify
from commerce.order_models import Order, OrderStatus, SubOrderStatus
from commerce.order_state import refresh_order_status
from commerce.tracking import confirm_receipt
from tests.storefront.test_order_timeline import TRACKED, UNTRACKED, _order, _sub_order


def _notes(session: Session, order: Order) -> dict[str, str]:
    session.expire_all()
    rows = session.scalars(sa.select(Notification).where(Notification.order_id == order.id))
    return {note.kind: note.message for note in rows}


def test_the_delivered_notification_names_each_unconfirmed_part(
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    shopwave = make_marketplace(name="ShopWave", capabilities=TRACKED)
    dummymart = make_marketplace(name="DummyMart", capabilities=UNTRACKED)
    fakestore = make_marketplace(name="Fake Store Berlin", capabilities=UNTRACKED)
    order = _order(db_session, make_user(), OrderStatus.SHIPPED)
    tracked = _sub_order(db_session, order, shopwave, SubOrderStatus.SHIPPED)
    _sub_order(db_session, order, dummymart, SubOrderStatus.PLACED)
    _sub_order(db_session, order, fakestore, SubOrderStatus.PROCESSING)
    db_session.commit()

    tracked.status = SubOrderStatus.DELIVERED
    assert refresh_order_status(db_session, order)
    db_session.commit()

    assert order.status == OrderStatus.DELIVERED
    message = _notes(db_session, order)["order_delivered"]
    assert message.startswith(
        f"Your order {order.number} has been delivered, but the DummyMart and Fake Store Berlin "
        "parts are not confirmed. "
    )
    assert "tell us on the order page when those items arrive" in message
    assert "Everything we can track" not in message
    # Alone in its notification, that first sentence is the e-mail's subject.
    assert email_subject(message, order.number) == (
        f"OneCart: Your order {order.number} has been delivered, but the DummyMart and "
        "Fake Store Berlin parts are not confirmed."
    )


def test_confirming_one_untracked_part_names_the_other_not_confirmed(
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    """Nothing of this order is tracked: the shopper's confirmation of DummyMart's part completes
    it, and the notification said "Everything we can track … has been delivered"."""
    dummymart = make_marketplace(name="DummyMart", capabilities=UNTRACKED)
    fakestore = make_marketplace(name="Fake Store Berlin", capabilities=UNTRACKED)
    user = make_user()
    order = _order(db_session, user, OrderStatus.PROCESSING)
    confirmed = _sub_order(db_session, order, dummymart, SubOrderStatus.PLACED)
    _sub_order(db_session, order, fakestore, SubOrderStatus.PLACED)
    db_session.commit()

    assert confirm_receipt(db_session, user.id, order.number, confirmed.id)
    db_session.commit()

    assert db_session.get(Order, order.id).status == OrderStatus.DELIVERED  # type: ignore[union-attr]
    message = _notes(db_session, order)["order_delivered"]
    assert message.startswith(
        f"Your order {order.number} has been delivered, but the Fake Store Berlin part is not "
        "confirmed. Fake Store Berlin does not report delivery"
    )
    assert "DummyMart" not in message


def test_a_merged_delivered_notification_is_titled_with_the_whole_order_when_parts_are_unconfirmed(
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    """ShopWave's part delivered completes the order while DummyMart's is unconfirmed: the
    part's sentence and the order's are one notification, and its e-mail was titled with the
    part's ("Your ShopWave items … have been delivered.") while its body named the unconfirmed
    part. The order's sentence leads, so the subject says the order as a whole."""
    shopwave = make_marketplace(name="ShopWave", capabilities=TRACKED)
    dummymart = make_marketplace(name="DummyMart", capabilities=UNTRACKED)
    order = _order(db_session, make_user(), OrderStatus.SHIPPED)
    tracked = _sub_order(db_session, order, shopwave, SubOrderStatus.SHIPPED)
    _sub_order(db_session, order, dummymart, SubOrderStatus.PLACED)
    db_session.commit()

    tracked.status = SubOrderStatus.DELIVERED
    part_news = "Your ShopWave items (order #1001) have been delivered."
    notify(db_session, order, "sub_order_delivered", part_news, sub_order_id=tracked.id)
    assert refresh_order_status(db_session, order)
    db_session.commit()

    [message] = _notes(db_session, order).values()
    assert email_subject(message, order.number) == (
        f"OneCart: Your order {order.number} has been delivered, but the DummyMart part is not "
        "confirmed."
    )
    assert part_news in message  # still said, after the order's news
    assert message.count("has been delivered") == 1


def test_the_last_part_delivered_and_the_order_delivered_are_said_once(
    db_session: Session,
    make_user: Callable[..., User],
    make_marketplace: Callable[..., Marketplace],
) -> None:
    """Shopper QA: the merged notification said "Your ShopWave items … have been delivered. Your
    order … has been delivered.", the same news twice. Every part tracked: the order's sentence
    alone says it (and titles the e-mail); another part's news in the same change stays."""
    shopwave = make_marketplace(name="ShopWave", capabilities=TRACKED)
    kiondo = make_marketplace(name="Kiondo Market", capabilities=TRACKED)
    order = _order(db_session, make_user(), OrderStatus.PARTIALLY_DELIVERED)
    _sub_order(db_session, order, kiondo, SubOrderStatus.DELIVERED)
    tracked = _sub_order(db_session, order, shopwave, SubOrderStatus.SHIPPED)
    db_session.commit()

    tracked.status = SubOrderStatus.DELIVERED
    notify(db_session, order, "price_note", "A note about something else.")
    part_news = "Your ShopWave items (order #1001) have been delivered."
    notify(db_session, order, "sub_order_delivered", part_news, sub_order_id=tracked.id)
    assert refresh_order_status(db_session, order)
    db_session.commit()

    [(kind, message)] = _notes(db_session, order).items()
    assert kind == "order_delivered"
    assert message == (
        f"A note about something else. Your order {order.number} has been delivered."
    )

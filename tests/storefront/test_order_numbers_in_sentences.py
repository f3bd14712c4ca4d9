"""Order numbers inside the site's sentences (a notification's, a flash's) are kept on one line
like those of headings and links, and the sentence around them is escaped as before."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from commerce.models import User
from commerce.notification_models import Notification
from commerce.order_models import PaymentMethod
from storefront.order_numbers_whole import order_numbers_whole
from tests.storefront.order_factories import add_order


def test_a_notification_s_sentence_keeps_its_order_number_whole_and_escapes_the_rest(
    client: FlaskClient,
    db_session: Session,
    make_user: Callable[..., User],
    login: Callable[..., Any],
) -> None:
    user = make_user()
    order = add_order(db_session, user, total_minor=500, payment_method=PaymentMethod.WALLET)
    db_session.add(
        Notification(
            user_id=user.id,
            order_id=order.id,
            kind="order_received",
            message=f"We received order {order.number} from <b>Acme & Co</b>.",
        )
    )
    db_session.commit()
    login(client, user)

    html = client.get("/notifications").get_data(as_text=True)

    assert (
        f'We received order <span class="keep-together">{order.number}</span> from '
        "&lt;b&gt;Acme &amp; Co&lt;/b&gt;." in html
    )


def test_only_order_numbers_are_wrapped() -> None:
    text = "OC-7K3M-9Q2P, OC-7K3M-9Q2PX, XOC-7K3M-9Q2P and oc-7k3m-9q2p"
    assert str(order_numbers_whole(text)) == (
        '<span class="keep-together">OC-7K3M-9Q2P</span>, OC-7K3M-9Q2PX, XOC-7K3M-9Q2P and '
        "oc-7k3m-9q2p"
    )

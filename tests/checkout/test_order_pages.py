"""Order pages: confirmation, history, detail, status link, notifications — and that nothing of
another shopper's is ever reachable, nor anything through a wrong or replaced status token."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from commerce import settlement
from commerce.notification_models import Notification
from commerce.order_models import Order
from tests.checkout.shop import Shop
from tests.storefront.conftest import text_of


@pytest.fixture
def two_shoppers(shop: Shop) -> tuple[Shop, object, object, Order]:
    """Alice with an order (wallet, two marketplaces), Bob with nothing."""
    alice = shop.make_user(wallet=Decimal("5000"))
    bob = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(alice, [("shopwave", 0, 1), ("kiondo", 0, 1), ("naijamall", 0, 1)])
    order = shop.checkout(shop.client_for(alice), payment_method="wallet")
    return shop, alice, bob, order


def test_confirmation_shows_one_number_total_items_and_hand_off_links(two_shoppers) -> None:
    shop, alice, _bob, order = two_shoppers
    client = shop.client_for(alice)

    html = client.get(f"/orders/{order.number}/confirmation").get_data(as_text=True)

    assert order.number in html
    assert "is confirmed" in html
    for item in order.items:
        assert item.title.split()[0] in html
    assert "On NaijaMall" in html and "Mark bought" in html
    naijamall = shop.product("naijamall")
    assert f'href="{naijamall.product_url}"' in html
    assert f"/order-status/{order.status_token}" in html


def test_history_and_detail_list_the_shoppers_own_orders(two_shoppers) -> None:
    shop, alice, _bob, order = two_shoppers
    client = shop.client_for(alice)

    history = client.get("/orders").get_data(as_text=True)
    detail = client.get(f"/orders/{order.number}")

    assert order.number in history
    assert detail.status_code == 200
    html = detail.get_data(as_text=True)
    assert 'data-marketplace="shopwave"' in html and 'data-marketplace="kiondo"' in html


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/orders/{number}"),
        ("get", "/orders/{number}/confirmation"),
        ("get", "/orders/{number}/cancel"),
        ("post", "/orders/{number}/cancel"),
        ("post", "/orders/{number}/status-link"),
        ("post", "/orders/{number}/sub-orders/1/received"),
    ],
)
def test_another_shoppers_order_is_not_found(two_shoppers, method: str, path: str) -> None:
    shop, _alice, bob, order = two_shoppers
    client = shop.client_for(bob)

    response = getattr(client, method)(path.format(number=order.number))

    assert response.status_code == 404
    assert order.number not in response.get_data(as_text=True)
    fresh = shop.order(order.number)
    assert fresh.cancel_requested_at is None and fresh.status_token == order.status_token


def test_another_shoppers_orders_and_notifications_are_not_listed(two_shoppers) -> None:
    shop, alice, bob, order = two_shoppers
    client = shop.client_for(bob)
    with shop.session() as session:
        alice_note = session.scalar(
            sa.select(Notification.id).where(Notification.user_id == alice.id)
        )
    assert alice_note is not None

    assert order.number not in client.get("/orders").get_data(as_text=True)
    assert order.number not in client.get("/notifications").get_data(as_text=True)
    assert client.post(f"/notifications/{alice_note}/read").status_code == 404
    with shop.session() as session:
        assert session.get(Notification, alice_note).read_at is None


def test_status_link_opens_without_login_and_shows_only_that_order(two_shoppers) -> None:
    shop, _alice, _bob, order = two_shoppers
    anonymous = shop.app.test_client()

    response = anonymous.get(f"/order-status/{order.status_token}")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    assert order.number in html
    # Read-only: no address, e-mail, actions or links into the account.
    assert order.ship_line1 not in html and order.email not in html
    assert "/cancel" not in html and "status-link" not in html
    assert f"/orders/{order.number}" not in html


@pytest.mark.parametrize("token", ["", "nope", "A" * 43, "A" * 500])
def test_wrong_status_token_reveals_nothing(two_shoppers, token: str) -> None:
    shop, _alice, _bob, order = two_shoppers
    response = shop.app.test_client().get(f"/order-status/{token}")
    assert response.status_code == 404
    assert order.number not in response.get_data(as_text=True)


def test_replaced_status_token_stops_working(two_shoppers) -> None:
    shop, alice, _bob, order = two_shoppers
    old_token = order.status_token

    shop.client_for(alice).post(f"/orders/{order.number}/status-link")

    new_token = shop.order(order.number).status_token
    assert new_token != old_token
    anonymous = shop.app.test_client()
    old = anonymous.get(f"/order-status/{old_token}")
    assert old.status_code == 404 and order.number not in old.get_data(as_text=True)
    assert anonymous.get(f"/order-status/{new_token}").status_code == 200


def test_notifications_page_and_header_count_unread_and_mark_read(two_shoppers) -> None:
    shop, alice, _bob, _order = two_shoppers
    client = shop.client_for(alice)

    page = client.get("/notifications").get_data(as_text=True)
    assert 'class="unread"' in page
    header = client.get("/orders").get_data(as_text=True)
    assert 'class="cart-count unread-count">1<' in header

    client.post("/notifications/read")

    assert 'class="unread"' not in client.get("/notifications").get_data(as_text=True)
    assert "unread-count" not in client.get("/orders").get_data(as_text=True)


def test_each_mark_read_button_says_which_notification_and_times_say_utc(two_shoppers) -> None:
    """Every unread notification had a "Mark read" button that a screen reader announced the
    same ("Mark read, button" ×14, no way to tell which), and its time had no zone ("06 Dec
    14:36") where the order pages say UTC."""
    shop, alice, _bob, order = two_shoppers

    html = shop.client_for(alice).get("/notifications").get_data(as_text=True)

    with shop.session() as session:
        [note] = session.scalars(
            sa.select(Notification).where(Notification.order_id == order.id)
        ).all()
        when = note.created_at.strftime("%d %b %H:%M")
    assert f"{when} UTC" in html
    assert (
        f'Mark read<span class="visually-hidden"> the notification of {when} UTC '
        f"about order {order.number}</span>"
    ) in html


def test_marking_one_notification_read_comes_back_at_that_notification(two_shoppers) -> None:
    """ "Mark read" came back at the top of the page: a keyboard user tabbed through the header
    and every notification above to go on. It now comes back at that notification (#note-<id>:
    the browser scrolls there and the next Tab goes on from it), as the cart's lines do."""
    shop, alice, _bob, order = two_shoppers
    client = shop.client_for(alice)
    with shop.session() as session:
        [note_id] = session.scalars(
            sa.select(Notification.id).where(Notification.order_id == order.id)
        ).all()

    response = client.post(f"/notifications/{note_id}/read")

    assert response.status_code == 303
    assert response.location.endswith(f"/notifications#note-{note_id}")
    assert f'id="note-{note_id}"' in client.get("/notifications").get_data(as_text=True)


def test_anonymous_visitors_are_sent_to_sign_in(shop: Shop) -> None:
    client = shop.app.test_client()
    for path in ("/orders", "/notifications", "/orders/OC-AAAA-BBBB"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_status_link_points_at_the_public_address_whatever_the_host_header(
    two_shoppers,
) -> None:
    """The link carries the order's token and the shopper passes it on: it is built from
    ONECART_PUBLIC_URL (https) when set, not from the request's Host and scheme (plain http
    behind a TLS proxy, or a forged Host)."""
    shop, alice, _bob, order = two_shoppers
    saved = shop.app.config.get("PUBLIC_URL")
    shop.app.config["PUBLIC_URL"] = "https://shop.example.com"
    try:
        html = shop.client_for(alice).get(f"/orders/{order.number}").get_data(as_text=True)
    finally:
        shop.app.config["PUBLIC_URL"] = saved
    assert f"https://shop.example.com/order-status/{order.status_token}" in html
    assert "http://localhost/order-status" not in html  # the request's own host and scheme


@pytest.mark.parametrize(
    ("status", "words"),
    [
        ("authorized", "Card: amount held on your card, taken as each marketplace accepts"),
        ("capturing", "Card: being charged"),
        ("reconciling", "Card: being confirmed with the card processor"),
        ("captured", "Card: charged"),
        ("partially_refunded", "Card: charged, part refunded"),
        ("refunded", "Card: refunded in full"),
        ("voided", "Card: hold released, nothing charged"),
        ("failed", "Card: payment failed"),
    ],
)
def test_the_order_page_says_where_the_payment_stands_in_a_shoppers_words(
    shop: Shop, status: str, words: str
) -> None:
    """The order page printed the payment's internal state: "Card (authorized)", "Card
    (reconciling)", "Wallet (captured)", "Card (voided)"."""
    alice = shop.make_user(wallet=Decimal("5000"))
    shop.fill_cart(alice, [("shopwave", 0, 1)])
    order = shop.checkout(shop.client_for(alice), payment_method="stripe", test_card="pm_card_visa")
    client = shop.client_for(alice)

    def page_with_payment(state: str) -> str:
        with shop.session() as session, session.begin():
            session.get(Order, order.id).payment.status = state
        return client.get(f"/orders/{order.number}").get_data(as_text=True)

    html = page_with_payment(status)
    page_with_payment("authorized")  # as Stripe has it: the books check runs after the test

    assert f"<dt>Paid with</dt><dd>{words}</dd>" in html
    assert f"({status.replace('_', ' ')})" not in html


def test_a_wallet_payment_is_said_to_be_paid_from_the_wallet(two_shoppers) -> None:
    shop, alice, _bob, order = two_shoppers

    html = shop.client_for(alice).get(f"/orders/{order.number}").get_data(as_text=True)

    assert "<dt>Paid with</dt><dd>Wallet: paid from your wallet</dd>" in html
    assert "(captured)" not in html


def test_the_order_pages_poll_a_json_status_while_parts_are_being_placed(two_shoppers) -> None:
    """While a part is being placed, the order and confirmation pages carry a polite live region,
    the polling script and a plain "Refresh" link (no meta refresh); the JSON status is the
    owner's only and says which parts are still pending, in the page's own words."""
    from commerce.order_models import MarketplaceOrder, SubOrderStatus

    shop, alice, bob, order = two_shoppers
    client = shop.client_for(alice)
    with shop.session() as session:
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.order_id == order.id)
            .values(status=SubOrderStatus.PENDING)
        )
        session.commit()

    for path in (f"/orders/{order.number}", f"/orders/{order.number}/confirmation"):
        html = client.get(path).get_data(as_text=True)
        assert 'aria-live="polite"' in html and 'id="order-progress"' in html
        assert f'data-status-url="/orders/{order.number}/status.json"' in html
        assert "order_status.js" in html
        assert ">Refresh</a>" in html
        # The page updates itself when its script runs: it says so (the script shows this line
        # and hides the "Refresh" one, which is for a page without script or a lost answer).
        assert '<p class="order-live" hidden>This page updates itself as they answer.</p>' in html
        assert 'http-equiv="refresh"' not in html

    response = client.get(f"/orders/{order.number}/status.json")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    data = response.get_json()
    assert data["pending"] is True
    assert {"ShopWave", "Kiondo Market"} <= {part["marketplace"] for part in data["parts"]}
    assert all(part["state"] == "Being placed" and part["pending"] for part in data["parts"])
    assert all(part["order_number"] is None for part in data["parts"])

    assert shop.client_for(bob).get(f"/orders/{order.number}/status.json").status_code == 404

    with shop.session() as session:
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.order_id == order.id)
            .values(status=SubOrderStatus.PLACED, marketplace_order_id="MO-1")
        )
        session.commit()
    data = client.get(f"/orders/{order.number}/status.json").get_json()
    assert data["pending"] is False
    assert not any(part["pending"] for part in data["parts"])
    html = client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert "order_status.js" not in html and ">Refresh</a>" not in html
    assert "updates itself" not in html


def test_the_status_json_answers_a_signed_out_client_with_a_json_401(two_shoppers) -> None:
    """A script whose sign-in lapsed got a redirect to the sign-in page (HTML) for the order's
    JSON status; it is an endpoint for scripts, so it answers a JSON error with 401."""
    shop, _alice, _bob, order = two_shoppers

    response = shop.app.test_client().get(f"/orders/{order.number}/status.json")

    assert response.status_code == 401
    assert response.is_json
    assert response.get_json()["error"]["status"] == 401
    assert "Location" not in response.headers


def test_the_public_status_page_polls_its_own_json_while_parts_are_being_placed(
    two_shoppers,
) -> None:
    """The status link's page (for whoever has the link, no sign-in) showed "Being placed" until
    reloaded while the owner's page followed the placement. It now polls a JSON status under the
    same token (no-store, no Referer), which a wrong token cannot open."""
    from commerce.order_models import MarketplaceOrder, SubOrderStatus

    shop, _alice, _bob, order = two_shoppers
    anonymous = shop.app.test_client()
    with shop.session() as session:
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.order_id == order.id)
            .values(status=SubOrderStatus.PENDING)
        )
        session.commit()

    page = f"/order-status/{order.status_token}"
    html = anonymous.get(page).get_data(as_text=True)
    assert 'aria-live="polite"' in html and 'id="order-progress"' in html
    assert f'data-status-url="{page}/status.json"' in html
    assert "order_status.js" in html
    assert f'<a href="{page}">Refresh</a>' in html
    assert f"/orders/{order.number}" not in html

    response = anonymous.get(f"{page}/status.json")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    data = response.get_json()
    assert data["pending"] is True and data["number"] == order.number
    assert all(part["state"] == "Being placed" for part in data["parts"])

    wrong = anonymous.get("/order-status/nope/status.json")
    assert wrong.status_code == 404 and wrong.is_json
    assert order.number not in wrong.get_data(as_text=True)

    with shop.session() as session:
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.order_id == order.id)
            .values(status=SubOrderStatus.PLACED, marketplace_order_id="MO-1")
        )
        session.commit()
    assert anonymous.get(f"{page}/status.json").get_json()["pending"] is False
    html = anonymous.get(page).get_data(as_text=True)
    assert "order_status.js" not in html and ">Refresh</a>" not in html


def test_the_public_status_pages_last_update_follows_its_parts_and_its_polling(
    two_shoppers,
) -> None:
    """Shopper QA, fifth pass: the status link's "last update" time was not part of what the
    page's polling refreshes, and it read the order's row alone, which a part's change (placed,
    its marketplace's number) does not touch. It is now the latest change of the order or any
    part, on the page and in the JSON the script polls (which writes it in place)."""
    from datetime import UTC, datetime

    from commerce.order_models import MarketplaceOrder, SubOrderStatus

    shop, _alice, _bob, order = two_shoppers
    anonymous = shop.app.test_client()
    later = datetime(2031, 3, 4, 5, 6, tzinfo=UTC)
    with shop.session() as session:
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.order_id == order.id)
            .values(status=SubOrderStatus.PENDING)
        )
        session.commit()
    page = f"/order-status/{order.status_token}"
    assert "04 Mar 2031" not in anonymous.get(page).get_data(as_text=True)

    with shop.session() as session:
        first = session.scalars(
            sa.select(MarketplaceOrder).where(MarketplaceOrder.order_id == order.id).limit(1)
        ).one()
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == first.id)
            .values(status=SubOrderStatus.PLACED, marketplace_order_id="MO-7", updated_at=later)
        )
        session.commit()

    assert anonymous.get(f"{page}/status.json").get_json()["last_update"] == "04 Mar 2031 05:06"
    html = anonymous.get(page).get_data(as_text=True)
    assert "last update <span data-last-update>04 Mar 2031 05:06</span> UTC" in html


def test_the_order_page_polls_while_the_marketplaces_answer_a_cancellation(two_shoppers) -> None:
    """After "Yes, cancel the order" the page said "asking ShopWave to cancel…" and "Each
    marketplace's answer and your refund appear below as they come in", yet nothing polled:
    the answers appeared only on a reload. The page now polls while a marketplace's answer is
    awaited, and its cancellation section is one of those the script refreshes."""
    from datetime import UTC, datetime

    from commerce.order_models import MarketplaceOrder, SubOrderStatus

    shop, alice, _bob, order = two_shoppers
    client = shop.client_for(alice)
    with shop.session() as session:
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.order_id == order.id)
            .values(status=SubOrderStatus.PLACED, marketplace_order_id="MO-1")
        )
        session.execute(
            sa.update(Order)
            .where(Order.id == order.id)
            .values(cancel_requested_at=datetime.now(UTC))
        )
        session.commit()

    html = client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert "asking ShopWave to cancel" in html
    assert f'data-status-url="/orders/{order.number}/status.json"' in html
    assert "order_status.js" in html
    assert 'data-live-part="cancellation"' in html
    assert client.get(f"/orders/{order.number}/status.json").get_json()["pending"] is True
    public = shop.app.test_client().get(f"/order-status/{order.status_token}/status.json")
    assert public.get_json()["pending"] is True

    # Every marketplace answered (here: each refused, so the books stay as they were).
    with shop.session() as session:
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.order_id == order.id)
            .values(cancel_outcome="refused")
        )
        session.commit()
    assert client.get(f"/orders/{order.number}/status.json").get_json()["pending"] is False
    html = client.get(f"/orders/{order.number}").get_data(as_text=True)
    assert "order_status.js" not in html


def test_the_order_page_names_the_country_it_ships_to(two_shoppers) -> None:
    """Checkout offers countries by name ("United Kingdom"); the order page read the code back
    ("Ship to … London …, GB"), on the order page and its confirmation."""
    shop, alice, _bob, order = two_shoppers
    client = shop.client_for(alice)

    for path in (f"/orders/{order.number}", f"/orders/{order.number}/confirmation"):
        html = client.get(path).get_data(as_text=True)
        ship_to = html[html.index("<dt>Ship to</dt>") :]
        ship_to = ship_to[: ship_to.index("</dd>")]
        assert ship_to.endswith(", United Kingdom"), ship_to


def test_the_cancel_preview_and_its_answer_stay_true_when_placement_wins(two_shoppers) -> None:
    """Shopper QA: the confirmation page promised "not placed yet — stopped now and refunded in
    full", while the placement job may claim the part between the preview and the click. The
    preview now says what happens either way, and after the click the page says what really
    happened to each part (read from the state the compare-and-set left)."""
    from commerce.order_models import MarketplaceOrder, SubOrderStatus

    shop, alice, _bob, order = two_shoppers
    client = shop.client_for(alice)

    preview = client.get(f"/orders/{order.number}/cancel").get_data(as_text=True)

    assert "stopped now" not in preview
    assert "If it is placed first, we ask ShopWave to cancel it" in preview

    # Placement wins the race for ShopWave between the preview and the click.
    shopwave = shop.sub_order(order, "shopwave")
    with shop.session() as session:
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.id == shopwave.id)
            .values(status=SubOrderStatus.PLACED, marketplace_order_id="MO-1")
        )
        session.commit()
    answer = client.post(
        f"/orders/{order.number}/cancel", data={"confirm": "yes"}, follow_redirects=True
    ).get_data(as_text=True)

    assert shop.sub_order(order, "kiondo").status == SubOrderStatus.CANCELLED
    assert (
        "Your Kiondo Market items had not been placed yet: stopped, and refunded in full." in answer
    )
    assert "ShopWave already had your order: we are asking it to cancel." in answer


def test_a_marketplace_that_declined_this_cancellation_is_not_said_to_take_none(
    two_shoppers,
) -> None:
    """Shopper QA: the preview said "we ask ShopWave to cancel", then the answer read "ShopWave:
    does not accept cancellations for this order" when ShopWave (which takes cancellations)
    declined this one, having shipped it meanwhile. A refusal says it declined."""
    from datetime import UTC, datetime

    from commerce.order_models import MarketplaceOrder, SubOrderStatus

    shop, alice, _bob, order = two_shoppers
    with shop.session() as session:
        session.execute(
            sa.update(MarketplaceOrder)
            .where(MarketplaceOrder.order_id == order.id)
            .values(
                status=SubOrderStatus.PLACED, marketplace_order_id="MO-1", cancel_outcome="refused"
            )
        )
        session.execute(
            sa.update(Order)
            .where(Order.id == order.id)
            .values(cancel_requested_at=datetime.now(UTC))
        )
        session.commit()

    html = shop.client_for(alice).get(f"/orders/{order.number}").get_data(as_text=True)

    assert "<strong>ShopWave</strong>: declined to cancel this order, so it goes ahead." in html
    assert "<strong>ShopWave</strong>: does not accept" not in html


def test_the_wallet_history_names_the_order_of_each_payment_and_refund(two_shoppers) -> None:
    """Shopper QA: the profile's wallet history read "Payment −$888.38", "Refund $292.07": of
    which order, the shopper could not tell. Each such line now names and links its order."""
    from commerce.cancellation import request_cancellation

    shop, alice, _bob, order = two_shoppers
    with shop.session() as session:
        request_cancellation(session, order.user_id, order.number)  # not placed: refunded now
        session.commit()

    html = shop.client_for(alice).get("/profile").get_data(as_text=True)

    link = f'for order <a href="/orders/{order.number}">{order.number}</a>'
    history = html[html.index("Wallet history") :]
    assert history.count(link) == 3  # the payment, and the refund of each of its two parts
    assert "Top-up" in history and "Top-up (sandbox: no payment taken) for order" not in history


def test_cancelling_a_card_order_not_charged_yet_promises_no_refund(shop: Shop) -> None:
    """Shopper QA (shop15): paid by card, an order still being placed is only held on the card
    (captured once every marketplace has answered). Cancelling a part not placed yet releases
    its share from that hold: the preview promised "it is refunded in full" and the answer said
    "stopped, and refunded in full", a refund that never comes. Both say it is not charged."""
    from commerce.order_models import PaymentStatus

    alice = shop.make_user()
    shop.fill_cart(alice, [("shopwave", 0, 1), ("kiondo", 0, 1)])
    client = shop.client_for(alice)
    order = shop.checkout(client, payment_method="stripe", test_card="pm_card_visa")
    assert shop.order(order.number).payment.status == PaymentStatus.AUTHORIZED  # type: ignore[union-attr]

    preview = text_of(client.get(f"/orders/{order.number}/cancel").get_data(as_text=True))
    assert "not placed yet: if we stop it before it is placed, it is not charged to your card" in (
        preview
    )
    # No refund promised for what is stopped; a part placed first is refunded only if the card
    # was charged before its marketplace's answer came (audit22).
    assert "is refunded" not in preview

    answer = text_of(
        client.post(
            f"/orders/{order.number}/cancel", data={"confirm": "yes"}, follow_redirects=True
        ).get_data(as_text=True)
    )
    assert (
        "Your Kiondo Market and ShopWave items had not been placed yet: stopped, and not "
        "charged to your card." in answer
    )
    assert "refunded in full" not in answer

    # No workers here: settle as they would. Nothing was captured, so the hold is released.
    settlement.process_refunds(shop.session_factory, order.id)
    settlement.settle_payment(shop.session_factory, order.id)
    assert shop.order(order.number).payment.status == PaymentStatus.VOIDED  # type: ignore[union-attr]


def test_an_order_with_a_part_shipped_says_why_it_can_no_longer_be_cancelled(
    two_shoppers,
) -> None:
    """Shopper QA (shop20): once ShopWave shipped its part, "Cancel this order…" vanished from
    the page without a word, while Kiondo Market's part was still being prepared; the shopper
    looked for the button in vain. The page now says why, and what goes ahead."""
    from commerce.order_models import MarketplaceOrder, OrderStatus, SubOrderStatus

    shop, alice, _bob, order = two_shoppers
    client = shop.client_for(alice)
    with shop.session() as session:
        session.execute(
            sa.update(MarketplaceOrder)
            .where(
                MarketplaceOrder.order_id == order.id,
                MarketplaceOrder.status != SubOrderStatus.HANDOFF,
            )
            .values(status=SubOrderStatus.PROCESSING, marketplace_order_id="MO-1")
        )
        session.execute(
            sa.update(MarketplaceOrder)
            .where(
                MarketplaceOrder.order_id == order.id,
                MarketplaceOrder.id == shop.sub_order(order, "shopwave").id,
            )
            .values(status=SubOrderStatus.SHIPPED)
        )
        session.execute(
            sa.update(Order)
            .where(Order.id == order.id)
            .values(status=OrderStatus.PARTIALLY_SHIPPED)
        )
        session.commit()

    page = text_of(client.get(f"/orders/{order.number}").get_data(as_text=True))

    assert "Cancel this order" not in page
    assert (
        "This order can no longer be cancelled: ShopWave has shipped its part. "
        "Kiondo Market's part goes ahead."
    ) in page
    # The public status page offers no cancelling, so it says nothing of it either.
    public = shop.app.test_client().get(f"/order-status/{order.status_token}")
    assert "can no longer be cancelled" not in text_of(public.get_data(as_text=True))

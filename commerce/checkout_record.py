"""Writing a checkout's order: the one transaction that holds the order, its sub-orders and
items, the stock their units take where OneCart holds it (commerce.offer_stock: a shortfall
rolls all of it back), the payment (a card hold already made, or the wallet debit made here), the outbox rows,
the emptied cart and the saved address — and reading back, by validation token, an order such a
transaction committed (a submit whose commit failed asks before releasing its card hold).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from commerce.checkout_lock import CheckoutError
from commerce.checkout_quote import CheckoutQuote
from commerce.checkout_shipping import ShippingDetails, save_shipping_to_profile
from commerce.exactly_once_models import OutboxMessage, OutboxTopic
from commerce.models import CartItem, Marketplace, Product, User
from commerce.notifications import notify
from commerce.offer_stock import hold_stock
from commerce.order_models import (
    HandoffItemStatus,
    MarketplaceOrder,
    Order,
    OrderItem,
    OrderStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    SubOrderStatus,
)
from commerce.payments.gateway import Authorization, AuthorizationRequest
from commerce.payments.wallet_gateway import WalletGateway
from commerce.placement_history import expected_placement_seconds
from onecart.money import Money, format_money


def existing_order(session: Session, validation_token: str) -> Order | None:
    """The order a submit of this checkout form already made, if any."""
    return session.scalar(sa.select(Order).where(Order.validation_token == validation_token))


@dataclass(frozen=True, slots=True)
class RecordedOrder:
    """An order read back in a session of its own (what a failed submit needs to know)."""

    id: int
    number: str
    user_id: int
    provider_reference: str | None


def recorded_order(
    session_factory: sessionmaker[Session], validation_token: str
) -> RecordedOrder | None:
    """The order committed for this token, read in a session of its own (the submit's session
    may be unusable after a failed commit)."""
    with session_factory() as session:
        order = existing_order(session, validation_token)
        if order is None:
            return None
        return RecordedOrder(
            order.id,
            order.number,
            order.user_id,
            order.payment.provider_reference if order.payment is not None else None,
        )


def _product(session: Session, product_id: int) -> Product:
    product = session.get(Product, product_id)
    assert product is not None  # a quoted line's product (products are never deleted)
    return product


def record_order(
    session: Session,
    user: User,
    quote: CheckoutQuote,
    *,
    shipping: ShippingDetails,
    payment_method: PaymentMethod,
    validation_token: str,
    authorization: Authorization | None,
) -> Order:
    """The one transaction: order, sub-orders, items, stock holds, payment, outbox, cart,
    profile address. StockShortfall (commerce.offer_stock) when another checkout took the units
    meanwhile: the caller rolls back, nothing is recorded."""
    assert quote.total_minor is not None
    order = Order(
        user_id=user.id,
        status=OrderStatus.PROCESSING,
        total_minor=quote.total_minor,
        currency=quote.currency,
        handoff_total_minor=quote.handoff_total_minor,
        payment_method=payment_method,
        fx_rates={currency: str(rate) for currency, rate in quote.source_rates.items()},
        fx_as_of=quote.rates_as_of,
        validation_token=validation_token,
        email=user.email,
        phone=shipping.phone.strip(),
        ship_name=shipping.name.strip(),
        ship_line1=shipping.line1.strip(),
        ship_line2=shipping.line2.strip(),
        ship_city=shipping.city.strip(),
        ship_postal_code=shipping.postal_code.strip(),
        ship_country=shipping.country.strip().upper(),
    )
    session.add(order)
    session.flush()

    # Every line of the order leaves the cart: placed ones and hand-offs alike.
    purchased: list[int] = []
    placements: list[tuple[int, MarketplaceOrder]] = []
    for group in quote.groups:
        if group.amount_minor is None or group.charge_minor is None:
            raise CheckoutError(f"Missing exchange rate for {group.name}.")
        sub_order = MarketplaceOrder(
            order_id=order.id,
            marketplace_id=group.marketplace_id,
            status=SubOrderStatus.HANDOFF if group.handoff else SubOrderStatus.PENDING,
            amount_minor=group.amount_minor,
            currency=group.marketplace_currency,
            charge_minor=0 if group.handoff else group.charge_minor,
            charge_currency=quote.currency,
            idempotency_key=f"onecart-{order.relation_token}-{group.slug}",
        )
        session.add(sub_order)
        session.flush()
        for line in group.lines:
            session.add(
                OrderItem(
                    order_id=order.id,
                    sub_order_id=sub_order.id,
                    product_id=line.product_id,
                    external_id=line.external_id,
                    title=line.title[:300],
                    product_url=line.product_url,
                    image_url=line.image_url,
                    quantity=line.quantity,
                    unit_price_minor=line.unit_price_minor,
                    currency=line.currency,
                    charge_minor=0 if group.handoff else (line.charge_minor or 0),
                    handoff_status=HandoffItemStatus.TO_BUY if group.handoff else None,
                )
            )
            purchased.append(line.product_id)
        if not group.handoff:
            placements.append((group.marketplace_id, sub_order))
            marketplace = session.get(Marketplace, group.marketplace_id)
            assert marketplace is not None
            # Where the marketplace's orders take no stock, this order holds its units (the
            # last unit sold once; StockShortfall rolls the whole order back).
            hold_stock(
                session,
                sub_order,
                marketplace,
                [(_product(session, line.product_id), line.quantity) for line in group.lines],
            )

    amount = Money(quote.total_minor, quote.currency)
    if payment_method == PaymentMethod.WALLET:
        wallet_authorization = WalletGateway(session, user).authorize(
            AuthorizationRequest(
                amount=amount,
                idempotency_key=f"checkout-{validation_token}",
                description=f"Order {order.number}",
            )
        )
        payment = Payment(
            order_id=order.id,
            method=PaymentMethod.WALLET,
            status=PaymentStatus.CAPTURED,
            currency=amount.currency,
            amount_minor=wallet_authorization.amount_minor,
            captured_minor=wallet_authorization.amount_minor,
            provider_reference=wallet_authorization.provider_reference,
        )
    else:
        assert authorization is not None
        payment = Payment(
            order_id=order.id,
            method=PaymentMethod.STRIPE,
            status=PaymentStatus.AUTHORIZED,
            currency=authorization.currency,
            amount_minor=authorization.amount_minor,
            captured_minor=0,
            provider_reference=authorization.provider_reference,
        )
    if payment.amount_minor != order.total_minor or payment.currency != order.currency:
        raise CheckoutError("The payment does not match the order total; nothing was recorded.")
    session.add(payment)
    # Slowest marketplaces first: the outbox is dispatched in id order.
    expected = expected_placement_seconds(session, [market for market, _ in placements])
    for _market, sub_order in sorted(placements, key=lambda item: -expected[item[0]]):
        session.add(
            OutboxMessage(
                topic=OutboxTopic.PLACE_SUB_ORDER, order_id=order.id, sub_order_id=sub_order.id
            )
        )
        session.flush()
    if purchased:
        session.execute(
            sa.delete(CartItem).where(
                CartItem.user_id == user.id, CartItem.product_id.in_(purchased)
            )
        )
    save_shipping_to_profile(user, shipping)
    markets = ", ".join(group.name for group in quote.orderable_groups)
    notify(
        session,
        order,
        "order_received",
        f"We received order {order.number} ({format_money(amount.minor, amount.currency)}) "
        f"and are placing it with {markets}.",
    )
    session.flush()
    return order

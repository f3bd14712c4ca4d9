"""Cart forms. They check the shape of what was sent; the rules (1..99, product exists and is
available) live in commerce.cart and produce the messages the shopper sees."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField
from wtforms.validators import AnyOf, DataRequired, InputRequired, NumberRange

from commerce.cart import QUANTITY_MAX, QUANTITY_MIN
from commerce.order_models import HandoffItemStatus
from onecart.params import ParameterError, bounded_int

QUANTITY_MESSAGE = f"Quantity must be a whole number from {QUANTITY_MIN} to {QUANTITY_MAX}."


class QuantityField(IntegerField):
    """A whole number in ASCII digits; anything else gets the quantity sentence, not WTForms'
    "Not a valid integer value.". IntegerField's int() would read "٣" as 3, "１" as 1 and
    "1_0" as 10 from a tampered form, and convert a 4,000-digit number before refusing it."""

    def process_formdata(self, valuelist: list[Any]) -> None:
        if not valuelist:
            return
        try:
            # The bound is wider than 1..99 so that NumberRange, not this, says what is allowed.
            self.data = bounded_int(valuelist[0], minimum=0, maximum=999_999_999)
        except ParameterError as exc:
            self.data = None
            raise ValueError(QUANTITY_MESSAGE) from exc


class AddToCartForm(FlaskForm):
    """Add an offer to the cart (product page, one form per offer)."""

    product_id = HiddenField(validators=[DataRequired(message="Choose an offer to add.")])
    quantity = QuantityField(
        "Quantity",
        default=1,
        validators=[
            InputRequired(message=QUANTITY_MESSAGE),
            NumberRange(min=QUANTITY_MIN, max=QUANTITY_MAX, message=QUANTITY_MESSAGE),
        ],
    )
    next = HiddenField()


class UpdateCartLineForm(FlaskForm):
    """Change the quantity of one cart line."""

    product_id = HiddenField(validators=[DataRequired(message="Choose a cart line.")])
    quantity = QuantityField(
        "Quantity",
        validators=[
            InputRequired(message=QUANTITY_MESSAGE),
            NumberRange(min=QUANTITY_MIN, max=QUANTITY_MAX, message=QUANTITY_MESSAGE),
        ],
    )


class RemoveCartLineForm(FlaskForm):
    """Remove one cart line."""

    product_id = HiddenField(validators=[DataRequired(message="Choose a cart line.")])


class SwapCartLineForm(FlaskForm):
    """Replace one cart line by another marketplace's offer of the same product (the
    cheaper-offer hint); the quantity stays the line's."""

    product_id = HiddenField(validators=[DataRequired(message="Choose a cart line.")])
    replacement_id = HiddenField(validators=[DataRequired(message="Choose an offer.")])


class HandoffItemForm(FlaskForm):
    """The shopper's note on an item bought on a marketplace's own site (bought, removed, or
    back to 'to buy')."""

    status = HiddenField(
        validators=[
            AnyOf(
                [status.value for status in HandoffItemStatus], message="Choose bought or remove."
            )
        ]
    )


# The product id whose "Add to cart" the product page focuses when the shopper comes back to it
# from /cart/add (a keyboard or screen-reader shopper keeps their place instead of starting at
# the top of the page behind the header).
CART_FOCUS_SESSION_KEY = "cart_focus"

"""Checkout: shipping address, the cart by marketplace, one total, one payment (wallet or card)."""

from storefront.checkout.routes import bp

__all__ = ["bp"]

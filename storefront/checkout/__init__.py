"""Checkout: a placeholder until the checkout issue lands (shows the cart summary honestly)."""

from storefront.checkout.routes import bp

__all__ = ["bp"]

"""Cart: the unified cart page and its forms; registers the header's `cart_count`."""

from storefront.cart.routes import bp

__all__ = ["bp"]

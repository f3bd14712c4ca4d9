"""Orders and notifications: confirmation, history, detail, cancellation, status link, inbox."""

from storefront.orders.routes import bp

__all__ = ["bp"]

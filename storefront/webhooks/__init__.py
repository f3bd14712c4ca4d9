"""Webhooks from payment providers (Stripe), verified by signature, exempt from CSRF."""

from storefront.webhooks.routes import bp

__all__ = ["bp"]

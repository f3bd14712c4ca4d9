"""Error pages: HTML for browsers, JSON for clients that prefer it."""

from storefront.errors.routes import bp

__all__ = ["bp"]

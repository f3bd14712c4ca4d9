"""About and Support pages (support tickets included)."""

from storefront.pages.routes import bp

__all__ = ["bp"]

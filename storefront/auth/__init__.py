"""Sign-up, login and logout."""

from storefront.auth.routes import bp

__all__ = ["bp"]

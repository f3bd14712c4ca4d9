"""The signed-in shopper's profile: details, password, display currency and wallet."""

from storefront.account.routes import bp

__all__ = ["bp"]

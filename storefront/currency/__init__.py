"""The display-currency switcher every page shows (its choices and the POST that sets it)."""

from storefront.currency.routes import bp

__all__ = ["bp"]

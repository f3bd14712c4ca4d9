"""Price alerts: the "Watch price" control on the product page and the watch list on the profile."""

from storefront.alerts.routes import bp

__all__ = ["bp"]

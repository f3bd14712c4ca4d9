"""The admin area: marketplaces (admin users only; everyone else gets 403)."""

from storefront.admin.routes import bp

__all__ = ["bp"]

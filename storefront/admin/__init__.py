"""The admin area: marketplaces, orders that need an operator, wallets, operators' actions
(admin users only; everyone else gets 403)."""

from storefront.admin import operator_actions_page  # noqa: F401  (its route, on `bp`)
from storefront.admin.routes import bp

__all__ = ["bp"]

"""Catalog: the landing and home pages, search listings, product comparison and the stores page."""

from storefront.catalog.routes import bp

__all__ = ["bp"]

"""Alembic migrations of the storefront database (run through storefront.db_migrate)."""

"""OneCart's DuckDB warehouse: schema (sql/schema.sql), analyst views (sql/views.sql), the locked
connection every pipeline asset uses, loading helpers, FX rates, product matching, and publishing
of the analysts' read-only copy. See warehouse/README.md for the tables and example queries."""

from warehouse.connection import (
    WarehouseLockTimeout,
    WarehouseMissing,
    apply_schema,
    connect,
    refresh_views,
    transaction,
)
from warehouse.publish import PublishResult, publish

__all__ = [
    "PublishResult",
    "WarehouseLockTimeout",
    "WarehouseMissing",
    "apply_schema",
    "connect",
    "publish",
    "refresh_views",
    "transaction",
]

"""Marketplace adapters: one module per marketplace API format, behind `adapters.base`."""

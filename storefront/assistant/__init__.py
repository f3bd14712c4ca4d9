"""AI shopping assistant: a placeholder page until the assistant issue lands."""

from storefront.assistant.routes import bp

__all__ = ["bp"]

"""The AI shopping assistant's page: a request box, grounded answers with add-to-cart buttons, and
a signed-in shopper's history with re-run. The assistant itself lives in the `assistant`
package; this blueprint only translates HTTP."""

from storefront.assistant.routes import bp

__all__ = ["bp"]

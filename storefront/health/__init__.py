"""/healthz: is the storefront's database, Redis and Meilisearch reachable?"""

from storefront.health.routes import bp

__all__ = ["bp"]

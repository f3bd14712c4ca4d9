"""OneCart: search once across many marketplaces, fill one cart, pay once."""

__version__ = "0.1.0"

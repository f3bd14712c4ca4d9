"""OneCart: search once across many marketplaces, fill one cart, pay once."""

# First of all: a compiled module (onecart.compiled) is imported only while it matches its source.
from onecart.compiled import prefer_fresh_extensions

prefer_fresh_extensions()

__version__ = "0.1.0"

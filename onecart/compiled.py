"""The listing's pure-Python hot path, compiled with Cython when the install could, and used only
while it matches its source.

`pip install` of the project (`make install`) compiles the modules named in COMPILED_MODULES to
C extensions (setup.py) when Cython and a C compiler are there; without a compiler the build
skips them and the same .py files run, as they do in any checkout that was not installed.
Python imports an extension before a .py of the same name, so an extension built from an older
version of its module (the .py edited or merged since the last install) would run the old code.
The build therefore records the SHA-256 of every source it compiled (SOURCES_MANIFEST), and
:func:`prefer_fresh_extensions` makes the import system take the .py of any module whose source
no longer matches. The packages holding compiled modules call it first thing, so it is in place
before any of them can be imported.

Why compile at all: the listing page's Python after Meilisearch's answer is most of what the
page adds to Meilisearch's own time; compiled, these modules run in fewer instructions with the
same behaviour (annotations are not used as C types). See bench/RESULTS.md, issue 9.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import sys
from collections.abc import Mapping, Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

# The listing's own Python between the request and its HTML: parameters, the plan, the answer's
# parse, the cards and their prices, the search URLs and the templates' output escaping.
COMPILED_MODULES: tuple[str, ...] = (
    "search_index.cache",
    "search_index.client",
    "search_index.filters",
    "search_index.groups",
    "search_index.listing_plan",
    "search_index.listings",
    "search_index.params",
    "search_index.price_order",
    "storefront.catalog.cards",
    "storefront.catalog.highlight",
    "storefront.catalog.search_urls",
    "storefront.catalog.shopper",
    "storefront.templating",
    "commerce.cart_pricing",
    "commerce.fx",
    "onecart.money",
)

# Written by the build beside this module: {module name: SHA-256 of the .py it was compiled from}.
SOURCES_MANIFEST = "compiled_sources.json"


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def module_source(module: ModuleType) -> str:
    """The text of a module's .py, whether it runs from it or from its compiled extension
    (inspect.getsource cannot read a compiled module: it has no Python code objects)."""
    origin = Path(module.__file__ or "")
    source = origin.with_name(module.__name__.rpartition(".")[2] + ".py")
    return source.read_text(encoding="utf-8")


def read_manifest(directory: Path) -> dict[str, str]:
    """The build's record of compiled sources (empty when nothing was compiled)."""
    try:
        recorded = json.loads((directory / SOURCES_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}


class FreshExtensionFinder:
    """A meta path finder for the compiled modules: the extension when the build recorded the
    digest its .py still has, else the .py itself (an extension the manifest does not vouch
    for, or one built from another version of its source, is never loaded)."""

    def __init__(self, modules: Sequence[str], digests: Mapping[str, str]) -> None:
        self.modules = frozenset(modules)
        self.digests = dict(digests)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.modules:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        origin = spec.origin if spec is not None else None
        if origin is None or not origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            return spec
        source = Path(origin).parent / (fullname.rpartition(".")[2] + ".py")
        if not source.is_file():
            return spec  # installed without its sources: the extension is all there is
        if source_digest(source) == self.digests.get(fullname):
            return spec
        return importlib.util.spec_from_file_location(fullname, source)


def prefer_fresh_extensions() -> None:
    """Put a FreshExtensionFinder first on sys.meta_path (once per process)."""
    if any(isinstance(finder, FreshExtensionFinder) for finder in sys.meta_path):
        return
    manifest = read_manifest(Path(__file__).parent)
    sys.meta_path.insert(0, FreshExtensionFinder(COMPILED_MODULES, manifest))  # type: ignore[arg-type]

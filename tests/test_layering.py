"""commerce/ depends one way (docs: ARCHITECTURE.md "Module shape", STYLE.md): no import cycles,
and the order lifecycle is a stack — offer stock holds → order state → settlement → placement,
tracking, cancellation → sweeper — whose lower layers never reach a higher one, not even through a helper.

Imports are read from the source with ast, at any depth (an import inside a function is still a
dependency: it is the usual way to hide a cycle), so nothing is imported to check them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMERCE = REPO_ROOT / "commerce"

# Lowest first: a module may import from its own layer's peers or from layers before it.
LIFECYCLE_LAYERS: tuple[tuple[str, ...], ...] = (
    # The units our own orders hold where the marketplace's orders take no stock: held by the
    # checkout, given back by settlement's compensation; it calls nothing of the lifecycle.
    ("commerce.offer_stock",),
    ("commerce.order_state",),
    ("commerce.settlement", "commerce.sub_order_compensation"),
    ("commerce.placement", "commerce.tracking", "commerce.cancellation"),
    ("commerce.sweeper",),
)


def module_name(path: Path) -> str:
    """`commerce/payments/gateway.py` -> `commerce.payments.gateway` (a package: its own name)."""
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def commerce_modules() -> dict[str, Path]:
    """Every module of commerce/ except the Alembic migrations (scripts, never imported)."""
    return {
        module_name(path): path
        for path in sorted(COMMERCE.rglob("*.py"))
        if "migrations" not in path.relative_to(COMMERCE).parts
    }


def imported_names(source: str, importer: str) -> Iterator[str]:
    """Every module name an import in `source` may refer to: `from a.b import c` names `a.b` and
    `a.b.c` (c may be a submodule). The code base imports absolutely; a relative import would
    escape this check, so it fails the test instead."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{importer}:{node.lineno}: a relative import"
            yield node.module or ""
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """commerce module -> the commerce modules it imports."""
    modules = commerce_modules()
    return {
        name: {
            target
            for target in imported_names(path.read_text(encoding="utf-8"), name)
            if target in modules and target != name
        }
        for name, path in modules.items()
    }


def reachable(graph: Mapping[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One import cycle as a path that ends where it starts, or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(module: str) -> list[str] | None:
        path.append(module)
        on_path.add(module)
        for target in sorted(graph.get(module, ())):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done and (cycle := visit(target)):
                return cycle
        path.pop()
        on_path.discard(module)
        done.add(module)
        return None

    for module in sorted(graph):
        if module not in done and (cycle := visit(module)):
            return cycle
    return None


def test_commerce_has_no_import_cycles() -> None:
    graph = import_graph()
    assert "commerce.order_models" in graph["commerce.settlement"]  # the graph is really read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_order_lifecycle_layers_import_only_downward() -> None:
    graph = import_graph()
    for layer in LIFECYCLE_LAYERS:
        for module in layer:
            assert module in graph, f"{module} is named in LIFECYCLE_LAYERS but does not exist"
    assert "commerce.order_state" in reachable(graph, "commerce.sweeper")
    reversed_imports = [
        f"{module} reaches {higher}"
        for position, layer in enumerate(LIFECYCLE_LAYERS)
        for module in layer
        for higher_layer in LIFECYCLE_LAYERS[position + 1 :]
        for higher in higher_layer
        if higher in reachable(graph, module)
    ]
    assert reversed_imports == [], "lower layers reach higher ones:\n" + "\n".join(reversed_imports)

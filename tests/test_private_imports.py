"""No module reaches into another's private helpers (`from x import _helper`): a helper two areas
share gets a public home (a service in commerce/, a module of its own in storefront/), so the
area that owns it can change its private ones freely (STYLE.md: one blueprint per area, business
logic in plain services). Security review, fifth pass: the account blueprint sent its e-mails
through the auth blueprint's private `_mail_settings` and `_send_in_background`.

Imports are read with ast, so nothing is imported to check them. Tests may use private helpers.
Checked: every application package, sibling modules of one package included (warehouse's
vectorized formats once read vectorized.py's field readers as `_text`, `_Query`…; the pipeline's
queued run described its partitions with run.py's `_describe_partition`). bench/ and tests/ are
not checked: a benchmark may time a private step.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
OURS = (
    "adapters",
    "assistant",
    "commerce",
    "onecart",
    "pipelines",
    "sandbox",
    "search_index",
    "storefront",
    "warehouse",
)
CHECKED = OURS


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _imported_module(path: Path, node: ast.ImportFrom) -> str:
    """The dotted module of `from … import`, a relative one resolved against `path`."""
    if not node.level:
        return node.module or ""
    package = path.relative_to(REPO_ROOT).with_suffix("").parts[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def private_imports(packages: tuple[str, ...] = CHECKED) -> list[str]:
    """Each `from <our module> import _name` (or `import <ours>._module`) outside that module,
    as `path:line name`."""
    found = []
    for package in packages:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            relative = path.relative_to(REPO_ROOT)
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom):
                    module = _imported_module(path, node)
                    if module.split(".")[0] not in OURS:
                        continue
                    found += [
                        f"{relative}:{node.lineno} {module}.{alias.name}"
                        for alias in node.names
                        if _is_private(alias.name)
                    ]
                elif isinstance(node, ast.Import):
                    found += [
                        f"{relative}:{node.lineno} {alias.name}"
                        for alias in node.names
                        if alias.name.split(".")[0] in OURS
                        and any(_is_private(part) for part in alias.name.split("."))
                    ]
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    assert private_imports() == []


def test_the_check_sees_relative_and_module_imports() -> None:
    """The check itself: a relative import and a dotted module import are read as such."""
    module = REPO_ROOT / "warehouse" / "vectorized.py"
    tree = ast.parse("from .vectorized import _quote\nfrom . import _hidden\n")
    relative, package_level = (node for node in tree.body if isinstance(node, ast.ImportFrom))
    assert _imported_module(module, relative) == "warehouse.vectorized"
    assert _imported_module(module, package_level) == "warehouse"


# Dagster's private modules (`dagster._…`) our code still imports, by module: a Dagster upgrade
# may move or change any of them, so each one here is a known risk, and a new one is refused.
# The ingest plans (pipelines/ingest_overlap.py) read Dagster's key-value table through
# `dagster._core.storage…` until they moved to a table of OneCart's own (pipelines/ingest_plans.py).
DAGSTER_PRIVATE_ALLOWED = {
    "onecart/check_status.py": {
        "dagster._core.event_api",
        "dagster._core.storage.asset_check_execution_record",
    },
    "onecart/dagster_runs.py": {
        "dagster._core.storage.dagster_run",
        "dagster._core.storage.tags",
    },
    "pipelines/ingest_overlap.py": {"dagster._core.storage.tags"},
    "pipelines/schedules.py": {"dagster._utils.schedules"},
    "pipelines/sensors.py": {"dagster._core.definitions.unresolved_asset_job_definition"},
}


def private_dagster_imports(packages: tuple[str, ...] = CHECKED) -> dict[str, set[str]]:
    """Each module of ours importing a private Dagster module: path → the modules it imports."""
    found: dict[str, set[str]] = {}
    for package in packages:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            relative = path.relative_to(REPO_ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = []
                if isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                for name in names:
                    parts = name.split(".")
                    if parts[0] == "dagster" and any(_is_private(part) for part in parts):
                        found.setdefault(relative, set()).add(name)
    return found


def test_only_the_listed_modules_import_private_dagster_modules() -> None:
    assert private_dagster_imports() == DAGSTER_PRIVATE_ALLOWED

"""No module reaches into another's private helpers (`from x import _helper`): a helper two areas
share gets a public home (a service in commerce/, a module of its own in storefront/), so the
area that owns it can change its private ones freely (STYLE.md: one blueprint per area, business
logic in plain services). Security review, fifth pass: the account blueprint sent its e-mails
through the auth blueprint's private `_mail_settings` and `_send_in_background`.

Imports are read with ast, so nothing is imported to check them. Tests may use private helpers.
Checked: the site and its services (commerce/, storefront/). The pipeline side (warehouse/,
pipelines/, search_index/) still shares private helpers between sibling modules of one package;
that is recorded in bench/RESULTS.md ("Security review, fifth pass") for its owners.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("commerce", "storefront")
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


def private_imports() -> list[str]:
    """Each `from <our module> import _name` outside that module, as `path:line name`."""
    found = []
    for package in CHECKED:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.ImportFrom) or not node.module:
                    continue
                if node.module.split(".")[0] not in OURS:
                    continue
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        relative = path.relative_to(REPO_ROOT)
                        found.append(f"{relative}:{node.lineno} {node.module}.{alias.name}")
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    assert private_imports() == []

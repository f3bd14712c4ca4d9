"""The runtime assistant package stands apart from the sandbox, the pipeline and the benchmarks:
importing every module of `assistant` (in a fresh interpreter, so nothing imported by other
tests hides an import) loads none of them, nor Flask or Dagster. The evaluation, which needs the
sandbox's world and the pipeline's document builder, lives in bench/ (assistant_eval.py and its
assistant_eval_labels.py, assistant_eval_index.py)."""

from __future__ import annotations

import json
import subprocess
import sys

from onecart.settings import REPO_ROOT

FORBIDDEN = ("sandbox", "pipelines", "bench", "storefront", "flask", "dagster")

PROBE = """
import importlib, json, pkgutil, sys
import assistant
names = sorted(m.name for m in pkgutil.iter_modules(assistant.__path__))
for name in names:
    importlib.import_module(f"assistant.{name}")
print(json.dumps({"modules": names, "loaded": sorted(sys.modules)}))
"""


def test_assistant_imports_no_sandbox_pipeline_or_bench() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    # The probe really imported the package's modules (a rename must not make this vacuous).
    assert {"intent", "retrieval", "service", "spelling"} <= set(result["modules"])
    assert "evaluation" not in result["modules"]
    leaked = sorted(name for name in result["loaded"] if name.split(".")[0] in FORBIDDEN)
    assert leaked == [], f"the assistant package pulls in: {leaked}"


def test_no_deferred_imports_of_them_either() -> None:
    """Imports inside functions run only when called, so the source is read too."""
    import ast

    offenders = []
    for path in sorted((REPO_ROOT / "assistant").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            offenders += [
                f"{path.name}:{node.lineno} {module}"
                for module in modules
                if module.split(".")[0] in FORBIDDEN
            ]
    assert offenders == []

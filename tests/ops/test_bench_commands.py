"""Every benchmark command README.md shows answers `--help` when typed as written.

README names some benchmarks as modules (`.venv/bin/python -m bench.X`) and some as scripts
(`bench/X.py`); an analyst copies either form into a plain shell at the checkout's root.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
# "-m\nbench.x" wraps across lines in the README, hence \s+.
MODULE_COMMANDS = sorted(set(re.findall(r"python -m\s+(bench\.[a-z_]+)", README)))
SCRIPT_COMMANDS = sorted(set(re.findall(r"`(bench/[a-z_]+\.py)", README)))


def test_the_readme_names_benchmarks_both_ways() -> None:
    assert "bench.matching_eval" in MODULE_COMMANDS
    assert "bench/pipeline_bench.py" in SCRIPT_COMMANDS


@pytest.mark.parametrize(
    "command",
    [["-m", module] for module in MODULE_COMMANDS] + [[script] for script in SCRIPT_COMMANDS],
    ids=lambda command: command[-1],
)
def test_a_documented_benchmark_command_answers_help(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, *command, "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:"), result.stdout

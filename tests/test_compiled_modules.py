"""The compiled listing modules (onecart.compiled, setup.py): an extension is imported only while
the build's record says it was compiled from the .py beside it; otherwise the .py runs.

The extensions here are stand-in files, never loaded: the finder's choice is read from the spec
it returns (the real ones are built by `make install` and exercised by every listing test).
"""

from __future__ import annotations

import importlib.machinery
import json
import sys
from pathlib import Path

import pytest

from onecart.compiled import (
    COMPILED_MODULES,
    SOURCES_MANIFEST,
    FreshExtensionFinder,
    module_source,
    read_manifest,
    source_digest,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
EXTENSION_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


@pytest.fixture
def package(tmp_path: Path) -> Path:
    """A package `hotpkg` with a module `fast` (its .py and a stand-in extension beside it)."""
    root = tmp_path / "hotpkg"
    root.mkdir()
    (root / "__init__.py").write_text("", encoding="utf-8")
    (root / "fast.py").write_text("ANSWER = 42\n", encoding="utf-8")
    (root / f"fast{EXTENSION_SUFFIX}").write_bytes(b"not a real extension")
    return root


def find(finder: FreshExtensionFinder, package: Path) -> str:
    spec = finder.find_spec("hotpkg.fast", [str(package)])
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).name


def test_every_compiled_module_is_a_python_module_of_the_repository() -> None:
    for module in COMPILED_MODULES:
        assert REPO_ROOT.joinpath(*module.split(".")).with_suffix(".py").is_file(), module


def test_an_extension_built_from_the_source_beside_it_is_imported(package: Path) -> None:
    finder = FreshExtensionFinder(
        ["hotpkg.fast"], {"hotpkg.fast": source_digest(package / "fast.py")}
    )
    assert find(finder, package) == f"fast{EXTENSION_SUFFIX}"


def test_an_extension_older_than_its_edited_source_is_passed_over_for_the_source(
    package: Path,
) -> None:
    finder = FreshExtensionFinder(
        ["hotpkg.fast"], {"hotpkg.fast": source_digest(package / "fast.py")}
    )
    (package / "fast.py").write_text("ANSWER = 43\n", encoding="utf-8")
    assert find(finder, package) == "fast.py"


def test_an_extension_the_build_did_not_record_is_passed_over(package: Path) -> None:
    assert find(FreshExtensionFinder(["hotpkg.fast"], {}), package) == "fast.py"


def test_modules_not_compiled_are_left_to_the_usual_finders(package: Path) -> None:
    finder = FreshExtensionFinder(["hotpkg.other"], {})
    assert finder.find_spec("hotpkg.fast", [str(package)]) is None


def test_the_source_it_falls_back_to_is_what_gets_imported(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real import system: the stand-in extension would fail to load."""
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.setattr(
        sys, "meta_path", [FreshExtensionFinder(["hotpkg.fast"], {}), *sys.meta_path]
    )
    for name in ("hotpkg", "hotpkg.fast"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import hotpkg.fast  # type: ignore[import-not-found]

    assert hotpkg.fast.ANSWER == 42
    assert hotpkg.fast.__file__ == str(package / "fast.py")


def test_the_manifest_is_read_as_written_and_a_missing_or_broken_one_is_empty(
    tmp_path: Path,
) -> None:
    assert read_manifest(tmp_path) == {}
    (tmp_path / SOURCES_MANIFEST).write_text("{not json", encoding="utf-8")
    assert read_manifest(tmp_path) == {}
    (tmp_path / SOURCES_MANIFEST).write_text(json.dumps({"a.b": "00ff"}), encoding="utf-8")
    assert read_manifest(tmp_path) == {"a.b": "00ff"}


def test_the_guard_is_in_place_before_any_compiled_module_is_imported() -> None:
    """Each package holding compiled modules imports onecart (which installs the finder) first."""
    assert any(isinstance(finder, FreshExtensionFinder) for finder in sys.meta_path)
    for package in {module.rpartition(".")[0].split(".")[0] for module in COMPILED_MODULES}:
        init = (REPO_ROOT / package / "__init__.py").read_text(encoding="utf-8")
        assert package == "onecart" or "import onecart  #" in init, package


def test_a_modules_source_is_read_whether_it_runs_compiled_or_not() -> None:
    # The search steps hash the source of the modules that build documents, so a code change
    # rebuilds them; inspect.getsource cannot read a compiled module ("source code not
    # available"), which failed the product index step of every install that compiled.
    import types

    import search_index.groups

    expected = (REPO_ROOT / "search_index" / "groups.py").read_text(encoding="utf-8")
    assert module_source(search_index.groups) == expected
    compiled = types.ModuleType("search_index.groups")
    compiled.__file__ = str(REPO_ROOT / "search_index" / f"groups{EXTENSION_SUFFIX}")
    assert module_source(compiled) == expected

"""Build hook: the listing's hot path compiled with Cython (onecart/compiled.py says which modules
and why). Everything else about the package is in pyproject.toml.

Each module is an optional extension: without a C compiler or the Python headers its build fails
with a warning, the install goes on, and the module runs as Python. The modules are plain Python
compiled as they are (annotations are not taken as C types), so both ways behave the same. The
SHA-256 of every source that was compiled goes into onecart/compiled_sources.json, which is how
an extension older than its .py is told apart and skipped at import.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from onecart.compiled import COMPILED_MODULES, SOURCES_MANIFEST, source_digest  # noqa: E402

CYTHON_DIRECTIVES = {
    "language_level": 3,
    # `x: int` stays a Python annotation: compiled code accepts exactly what the .py accepts.
    "annotation_typing": False,
    # Tracebacks, inspect and dataclasses see ordinary functions.
    "binding": True,
}


def source_path(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


class BuildExtRecordingSources(build_ext):
    """build_ext that records which sources its extensions were compiled from."""

    def run(self) -> None:
        super().run()
        digests = {}
        for ext in self.extensions:
            built = Path(self.build_lib) / self.get_ext_filename(ext.name)
            generated = Path(ext.sources[0])
            # Only an extension compiled from this build's C (a failed optional build leaves
            # nothing, or an older file from an earlier build).
            if built.is_file() and built.stat().st_mtime >= generated.stat().st_mtime:
                digests[ext.name] = source_digest(source_path(ext.name))
        manifest = json.dumps(digests, indent=1, sort_keys=True) + "\n"
        targets = [Path(self.build_lib) / "onecart"]
        if self.inplace or self.editable_mode:
            targets.append(ROOT / "onecart")
        for directory in targets:
            directory.mkdir(parents=True, exist_ok=True)
            (directory / SOURCES_MANIFEST).write_text(manifest, encoding="utf-8")


def compiled_extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError:  # building without Cython (not the declared build): all Python
        return []
    extensions = [
        Extension(module, [str(source_path(module).relative_to(ROOT))])
        for module in COMPILED_MODULES
    ]
    # force: the C is generated anew from today's sources, so no older object is reused.
    compiled = cythonize(
        extensions,
        compiler_directives=CYTHON_DIRECTIVES,
        build_dir="build/cython",
        force=True,
        quiet=True,
    )
    for extension in compiled:
        # A failed compile (no C compiler, no Python headers) is a warning: the .py runs.
        # Set here: cythonize makes new Extension objects without the flag.
        extension.optional = True
    return compiled


if __name__ == "__main__":
    setup(
        ext_modules=compiled_extensions(),
        cmdclass={"build_ext": BuildExtRecordingSources},
        options={"build_ext": {"parallel": os.cpu_count() or 1}},
    )

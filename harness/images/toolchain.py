"""What a project's build needs from the system, read from its files without running any of them.

A project with compiled code (setuptools `ext_modules`, Cython, pybind11, scikit-build-core,
meson-python, maturin, setuptools-rust …) needs a C compiler and the Python headers to be installed,
and a Rust project `cargo`. gpuci's Debian base has neither (it stays small for the projects that need
none), so those projects get them in a layer of their own on top of the base (harness.images.
system_layer), with whatever `[tool.gpuci] system_packages` adds. Detection reads pyproject.toml and
setup.py as text (bounded; never imported, never executed): the backend, the build requirements and
the words a setup.py with extensions cannot do without.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.untrusted import read_names

COMPILER = ("gcc", "g++", "make", "libc6-dev", "python3-dev", "pkg-config")
RUST = ("cargo",)  # Debian's cargo brings its rustc: offline, unlike rustup or puccinialin
# Backends whose builds always compile.
COMPILED_BACKENDS = {
    "scikit_build_core.build": "scikit-build-core",
    "mesonpy": "meson-python",
    "maturin": "maturin",
    "py_build_cmake.build": "py-build-cmake",
    "setuptools_rust.build_meta": "setuptools-rust",
}
RUST_BACKENDS = ("maturin", "setuptools_rust.build_meta")
# Build requirements that mean compiled code.
COMPILED_REQUIRES = {
    "cython", "pybind11", "nanobind", "cffi", "setuptools-rust", "scikit-build", "scikit-build-core", "cmake",
    "meson-python", "meson", "maturin", "pythran", "numpy", "oldest-supported-numpy", "mypy", "hatch-cython",
}  # fmt: skip
RUST_REQUIRES = {"setuptools-rust", "maturin"}
# What a setup.py (or setup.cfg) that builds extensions says.
SETUP_WORDS = re.compile(
    r"\bext_modules\b|\bExtension\s*\(|\bcythonize\b|\bPybind11Extension\b|\bcffi_modules\b|\brust_extensions\b"
)
MAX_SETUP_BYTES = 2**20
# The sources a compiled build reads besides the metadata: a change to one is a new image (the module the
# tests import is the image's build), while a change to Python code is the mounted checkout's alone.
COMPILED_SUFFIXES = (".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".pyx", ".pxd", ".pxi", ".rs",
                     ".f", ".f90", ".cu", ".cuh", ".m", ".mm", ".swig", ".i", ".cmake", ".in")  # fmt: skip
COMPILED_NAMES = ("CMakeLists.txt", "meson.build", "meson.options", "meson_options.txt", "Cargo.toml", "Cargo.lock",
                  "build.rs", "MANIFEST.in", "Makefile")  # fmt: skip


@dataclass(frozen=True)
class BuildNeeds:
    compiler: bool
    rust: bool
    why: str  # one phrase for the log: "setup.py builds extensions", "maturin builds Rust" …

    @property
    def packages(self) -> tuple[str, ...]:
        return (COMPILER if self.compiler else ()) + (RUST if self.rust else ())


def build_needs(root: Path, pyproject: dict[str, Any]) -> BuildNeeds | None:
    """The system tools the project's own build needs, or None for a pure-Python build."""
    system = pyproject.get("build-system") or {}
    backend = str(system.get("build-backend") or "")
    names = {_name(str(r)) for r in system.get("requires") or []}
    rust = backend in RUST_BACKENDS or bool(names & RUST_REQUIRES)
    if backend in COMPILED_BACKENDS:
        return BuildNeeds(True, rust, f"its build backend is {COMPILED_BACKENDS[backend]}")
    compiled = sorted(names & COMPILED_REQUIRES)
    if compiled:
        return BuildNeeds(True, rust, f"its build requires {', '.join(compiled)}")
    setuptools = (pyproject.get("tool") or {}).get("setuptools") or {}
    if isinstance(setuptools, dict) and setuptools.get("ext-modules"):
        return BuildNeeds(True, False, "[tool.setuptools] ext-modules")
    found, _ = read_names(Path(root), ["setup.py", "setup.cfg"], MAX_SETUP_BYTES)
    for name, data in found.items():
        words = SETUP_WORDS.search(data.decode("utf-8", "replace"))
        if words:
            rust = rust or words.group(0) == "rust_extensions"
            return BuildNeeds(True, rust, f"{name} builds extensions ({words.group(0).strip('( ')})")
    return None


def is_compiled_source(name: str) -> bool:
    return name.endswith(COMPILED_SUFFIXES) or name.rsplit("/", 1)[-1] in COMPILED_NAMES


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ @]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def system_packages(needs: BuildNeeds | None, declared: tuple[str, ...]) -> tuple[str, ...]:
    """The Debian packages of the project's system layer: its build's and its own, each once, sorted
    (the layer's tag hashes them; the same set is the same layer)."""
    return tuple(sorted(set((needs.packages if needs else ()) + declared)))

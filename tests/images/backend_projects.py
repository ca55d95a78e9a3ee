"""Tiny projects, one for each build backend gpuci installs, written for its tests (no other project's code).

Each is a package `<name>` with `add` (compiled C or Rust where the backend compiles, Python otherwise),
`twice` (always Python: the mounted checkout's) and the same test module, whose counts are known: the
compiled module's test is skipped where there is none, one test fails on purpose.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from tests.conftest import ROOT, commit_tree

PYPROJECT = """\
[build-system]
requires = [{requires}]
build-backend = "{backend}"

[project]
name = "{name}"
version = "0.1"
description = "a tiny library for gpuci's tests"
"""
# The native function, as CPython's C API spells it: one module `_native` with add(a, b).
NATIVE_C = """\
#include <Python.h>

static PyObject *add(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a + b);
}

static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "a + b in C"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};
PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
"""
INIT_C = "from ._native import add\n\n\ndef twice(x):\n    return 2 * x\n"
INIT_PY = "def add(a, b):\n    return a + b\n\n\ndef twice(x):\n    return 2 * x\n"
# maturin's cffi bindings: a crate with no dependencies (nothing to fetch from crates.io), its C ABI
# read by cffi. `_native` is a package maturin writes into the Python source folder.
INIT_RUST = (
    "from ._native import lib\n\n\ndef add(a, b):\n    return lib.add(a, b)\n\n\ndef twice(x):\n    return 2 * x\n"
)
CARGO_TOML = """\
[package]
name = "{name}"
version = "0.1.0"
edition = "2021"

[lib]
name = "{name}"
crate-type = ["cdylib"]
"""
LIB_RS = '#[no_mangle]\npub extern "C" fn add(a: i64, b: i64) -> i64 {\n    a + b\n}\n'
CMAKE = """\
cmake_minimum_required(VERSION 3.15)
project(${{SKBUILD_PROJECT_NAME}} LANGUAGES C)
find_package(Python COMPONENTS Interpreter Development.Module REQUIRED)
python_add_library(_native MODULE {name}/_native.c WITH_SOABI)
install(TARGETS _native DESTINATION {name})
"""
MESON = """\
project('{name}', 'c', version: '0.1')
py = import('python').find_installation(pure: false)
py.extension_module('_native', '{name}/_native.c', install: true, subdir: '{name}')
py.install_sources('{name}/__init__.py', subdir: '{name}')
"""
TESTS = """\
import importlib.metadata

import pytest

import {name}

COMPILED = {compiled}


def test_the_metadata_is_installed():
    assert importlib.metadata.version("{name}") == "0.1"


def test_python_code_is_the_checkout_s():
    assert {name}.twice(4) == 8


@pytest.mark.parametrize("a", [1, 2, 3])
def test_add(a):
    assert {name}.add(a, a) == 2 * a


@pytest.mark.skipif(not COMPILED, reason="a pure-Python build")
def test_the_compiled_module_is_a_shared_library():
    import os

    from {name} import _native

    here = _native.__file__  # the extension itself, or the package of maturin's cffi module beside its library
    assert here.endswith(".so") or any(n.endswith(".so") for n in os.listdir(os.path.dirname(here)))


def test_fails_on_purpose():
    assert {name}.add(1, 1) == 3
"""
# The counts of TESTS, as pytest gives them: the compiled test passes or is skipped.
COUNTS = {True: {"passed": 6, "failed": 1}, False: {"passed": 5, "failed": 1, "skipped": 1}}


def _backends() -> dict[str, tuple[str, str, bool]]:
    """name: ([build-system] requires, build-backend, compiled)."""
    return {
        "st_pyproject": ('"setuptools>=64"', "setuptools.build_meta", True),
        "hatch_lib": ('"hatchling"', "hatchling.build", False),
        "flit_lib": ('"flit_core>=3.4"', "flit_core.buildapi", False),
        "pdm_lib": ('"pdm-backend"', "pdm.backend", False),
        "poetry_lib": ('"poetry-core>=2"', "poetry.core.masonry.api", False),
        "skb_lib": ('"scikit-build-core>=0.10"', "scikit_build_core.build", True),
        "meson_lib": ('"meson-python"', "mesonpy", True),
        "maturin_lib": ('"maturin>=1,<2", "cffi"', "maturin", True),
    }


BACKENDS = _backends()


def backend_project(root: Path, name: str, command: str = "python -m pytest -p no:cacheprovider tests") -> Path:
    """The project of backend `name` at `root`, committed to git, with one area `it` that runs `command`."""
    requires, backend, compiled = BACKENDS[name]
    text = PYPROJECT.format(requires=requires, backend=backend, name=name)
    package = root / (f"python/{name}" if name == "maturin_lib" else f"src/{name}" if not compiled else name)
    package.mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "tests" / "test_it.py").write_text(TESTS.format(name=name, compiled=compiled))
    if name == "st_pyproject":
        text += f'\n[tool.setuptools]\npackages = ["{name}"]\next-modules = [{{name = "{name}._native", '
        text += f'sources = ["{name}/_native.c"]}}]\n'
    if name == "maturin_lib":
        text += 'dependencies = ["cffi"]\n\n[tool.maturin]\nbindings = "cffi"\npython-source = "python"\n'
        text += f'module-name = "{name}._native"\n'
        (root / "Cargo.toml").write_text(CARGO_TOML.format(name=name))
        (root / "src").mkdir()
        (root / "src" / "lib.rs").write_text(LIB_RS)
        (package / "__init__.py").write_text(INIT_RUST)
    elif compiled:
        (package / "_native.c").write_text(NATIVE_C)
        (package / "__init__.py").write_text(INIT_C)
    else:
        (package / "__init__.py").write_text(INIT_PY)
    if name == "skb_lib":
        (root / "CMakeLists.txt").write_text(CMAKE.format(name=name))
        # A build folder in the checkout, rebuilt on import: gpuci's own build-dir (in the image) wins.
        text += '\n[tool.scikit-build]\neditable.rebuild = true\nbuild-dir = "build/{wheel_tag}"\n'

    if name == "meson_lib":
        (root / "meson.build").write_text(MESON.format(name=name))
    (root / "pyproject.toml").write_text(text)
    area = root / ".buildkite" / "test_areas" / "it.yaml"
    area.parent.mkdir(parents=True)
    area.write_text(
        textwrap.dedent("""\
        platforms: [cpu]
        steps:
          - label: it
            num_gpus: 0
            commands:
        """)
        + "".join(f"      - {line}\n" for line in command.splitlines())
    )
    (root / "containers" / "cpu").mkdir(parents=True)
    (root / "containers" / "cpu" / "Dockerfile").write_text((ROOT / "containers" / "cpu" / "Dockerfile").read_text())
    (root / "containers" / "requirements.txt").write_text((ROOT / "containers" / "requirements.txt").read_text())
    (root / ".gitignore").write_text(".gpuci/\n")
    commit_tree(root, name)
    return root


def host_counts(root: Path, tmp_path: Path) -> dict[str, int]:
    """`pip install --no-build-isolation -e .` and pytest on the host, in a copy of the project, with what
    gpuci locked for its image (the build backend and what it asked for, from the suite's wheelhouse,
    offline): the counts a user gets without gpuci."""
    import json
    import os
    import subprocess
    import sys
    import xml.etree.ElementTree as ET

    copy, venv = tmp_path / "host-copy", tmp_path / "host-venv"
    subprocess.run(["cp", "-a", str(root), str(copy)], check=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    (pins,) = [entry["pins"] for entry in json.loads((root / "gpuci.lock").read_text())["entries"].values()]
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}  # maturin's backend runs `maturin`
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--find-links",
           str(ROOT / ".gpuci" / "wheelhouse")]  # fmt: skip
    subprocess.run([*pip, *pins, "pytest"], check=True, env=env)
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", "-e", str(copy)], check=True, env=env)
    report = tmp_path / "host.json"
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", "tests", "-q",
         f"--junitxml={report}"], cwd=copy, capture_output=True, text=True, env=env,
    )  # fmt: skip
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    tests, failures, skipped = (int(suite.get(k, 0)) for k in ("tests", "failures", "skipped"))
    counts = {"passed": tests - failures - skipped, "failed": failures, "skipped": skipped}
    return {k: v for k, v in counts.items() if v}


def setup_py_project(root: Path, hello: str, area: str) -> Path:
    """A setuptools project with a setup.py and no pyproject.toml: package `legacy` 2.5 (its
    `__init__.py` is `hello`), the console script `legacy-hello`, gpuci's recipes and one area, `legacy`."""
    (root / "legacy").mkdir(parents=True)
    (root / "legacy" / "__init__.py").write_text(hello)
    (root / "setup.py").write_text(
        "from setuptools import setup\n"
        "setup(name='legacy', version='2.5', packages=['legacy'],\n"
        "      entry_points={'console_scripts': ['legacy-hello = legacy:hello']})\n"
    )
    shutil.copytree(ROOT / "containers", root / "containers")
    (root / ".buildkite" / "test_areas").mkdir(parents=True)
    (root / ".buildkite" / "test_areas" / "legacy.yaml").write_text(area)
    return root

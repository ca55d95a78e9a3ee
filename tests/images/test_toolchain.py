"""What a project's build needs from the system, and a C extension project run end to end with nothing set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.declare.config import load_config
from harness.errors import UsageError
from harness.images.recipe import recipe_for
from harness.images.toolchain import COMPILER, RUST, build_needs, system_packages
from tests.conftest import ROOT, commit_tree, git


def _pyproject(backend: str, requires: str) -> str:
    return (
        f'[build-system]\nrequires = [{requires}]\nbuild-backend = "{backend}"\n[project]\nname = "p"\nversion = "1"\n'
    )


def test_compiled_builds_are_told_from_their_files_without_running_them(tmp_path: Path) -> None:
    import tomllib

    cases = {
        "hatch": (_pyproject("hatchling.build", '"hatchling"'), None),
        "skbuild": (_pyproject("scikit_build_core.build", '"scikit-build-core"'), "scikit-build-core"),
        "meson": (_pyproject("mesonpy", '"meson-python"'), "meson-python"),
        "maturin": (_pyproject("maturin", '"maturin>=1,<2"'), "maturin"),
        "cython": (_pyproject("setuptools.build_meta", '"setuptools", "Cython>=3"'), "cython"),
    }
    for name, (text, why) in cases.items():
        root = tmp_path / name
        root.mkdir()
        (root / "pyproject.toml").write_text(text)
        needs = build_needs(root, tomllib.loads(text))
        assert (needs.why if needs else None) is None if why is None else why in needs.why  # type: ignore[union-attr]
    assert build_needs(tmp_path / "maturin", tomllib.loads(cases["maturin"][0])).rust  # type: ignore[union-attr]
    # A setup.py is read as text: an extension is seen, a plain one is not, and nothing of it runs.
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "setup.py").write_text("import sys; sys.exit(3)\nfrom setuptools import setup\nsetup(name='x')\n")
    assert build_needs(legacy, {}) is None
    (legacy / "setup.py").write_text(
        "from setuptools import setup, Extension\nsetup(ext_modules=[Extension('a', [])])\n"
    )
    needs = build_needs(legacy, {})
    assert needs is not None and needs.packages == COMPILER and not needs.rust and "setup.py" in needs.why
    assert system_packages(needs, ("libfoo-dev", "gcc")) == tuple(sorted({*COMPILER, "libfoo-dev"}))
    assert set(RUST) <= set(
        system_packages(build_needs(tmp_path / "maturin", {"build-system": {"build-backend": "maturin"}}), ())
    )


def test_system_packages_go_into_a_layer_of_their_own_and_the_tag(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "__init__.py").write_text("")
    shutil.copytree(ROOT / "containers", root / "containers")  # the checkout's own: links out are refused
    (root / "pyproject.toml").write_text(_pyproject("hatchling.build", '"hatchling"'))
    bare = recipe_for(root, "cpu")
    assert bare.system_layer is None and bare.build_base == bare.base_image  # a pure-Python project: the bare base
    (root / "pyproject.toml").write_text(
        _pyproject("hatchling.build", '"hatchling"') + '[tool.gpuci.system_packages]\nall = ["libsqlite3-dev"]\n'
        'cuda = ["libnuma-dev"]\n'
    )
    cpu = recipe_for(root, "cpu")
    assert cpu.system_layer is not None and cpu.system_layer.packages == ("libsqlite3-dev",)
    assert cpu.system_layer.base == cpu.base_image and cpu.tag != bare.tag
    assert "apt-get install" in cpu.system_layer.dockerfile() and "libsqlite3-dev" in cpu.system_layer.dockerfile()
    assert recipe_for(root, "cuda").system_layer.packages == ("libnuma-dev", "libsqlite3-dev")  # type: ignore[union-attr]
    # A name a shell would read as more than a package is refused where it is written.
    (root / "pyproject.toml").write_text('[tool.gpuci]\nsystem_packages = ["gcc; curl x | sh"]\n')
    with pytest.raises(UsageError) as err:
        load_config(root)
    assert "pyproject.toml:2" in str(err.value) and "Debian package names" in str(err.value)


SETUP_PY = """\
from setuptools import Extension, setup

setup(
    name="fastmath",
    version="0.3",
    packages=["fastmath"],
    ext_modules=[Extension("fastmath._speed", ["fastmath/_speed.c"])],
)
"""
SPEED_C = """\
#include <Python.h>

static PyObject *add(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a + b);
}

static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "a + b in C"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speed", NULL, -1, methods};
PyMODINIT_FUNC PyInit__speed(void) { return PyModule_Create(&module); }
"""
TESTS = """\
import pytest

import fastmath
from fastmath import _speed


def test_the_compiled_module_is_the_one_imported():
    assert _speed.__file__.endswith(".so")
    assert fastmath.add(2, 3) == 5


def test_python_code_is_the_checkout_s():
    assert fastmath.twice(4) == 8


@pytest.mark.parametrize("a", [1, 2])
def test_add(a):
    assert fastmath.add(a, a) == 2 * a


def test_skipped():
    pytest.skip("on purpose")


def test_fails():
    assert fastmath.add(1, 1) == 3
"""


def _c_project(root: Path) -> Path:
    """A flat layout (the package beside setup.py, where the mounted checkout shadows everything)."""
    (root / "fastmath").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "setup.py").write_text(SETUP_PY)
    (root / "fastmath" / "_speed.c").write_text(SPEED_C)
    (root / "fastmath" / "__init__.py").write_text("from ._speed import add\n\n\ndef twice(x):\n    return 2 * x\n")
    (root / "tests" / "test_fastmath.py").write_text(TESTS)
    (root / ".gitignore").write_text(".gpuci/\n")
    area = root / ".buildkite" / "test_areas" / "fast.yaml"
    area.parent.mkdir(parents=True)
    area.write_text(
        textwrap.dedent("""\
        platforms: [cpu]
        steps:
          - label: fast
            num_gpus: 0
            commands:
              - python -m pytest -p no:cacheprovider tests
        """)
    )
    (root / "containers").mkdir()
    for platform in ("cpu",):
        (root / "containers" / platform).mkdir()
        (root / "containers" / platform / "Dockerfile").write_text(
            (ROOT / "containers" / platform / "Dockerfile").read_text()
        )
    (root / "containers" / "requirements.txt").write_text((ROOT / "containers" / "requirements.txt").read_text())
    commit_tree(root, "fastmath")
    return root


def _host_counts(
    project: Path, tmp_path: Path, build: tuple[str, ...] = ("setuptools", "wheel"), tests: str = "tests"
) -> dict[str, int]:
    """`pip install -e .` and pytest on the host, from the suite's wheelhouse (offline), in a copy."""
    copy = tmp_path / "host-copy"
    subprocess.run(["cp", "-a", str(project), str(copy)], check=True)
    venv = tmp_path / "host-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--find-links",
           str(ROOT / ".gpuci" / "wheelhouse")]  # fmt: skip
    subprocess.run([*pip, *build, "pytest"], check=True)
    subprocess.run([*pip, "--no-build-isolation", "-e", str(copy)], check=True)
    report = tmp_path / "host.json"
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider", tests, "-q",
         f"--junitxml={report}"], cwd=copy, capture_output=True, text=True,
    )  # fmt: skip
    import xml.etree.ElementTree as ET

    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    tests, failures, skipped = (int(suite.get(k, 0)) for k in ("tests", "failures", "skipped"))
    return {"passed": tests - failures - skipped, "failed": failures, "skipped": skipped}


def test_a_c_extension_project_runs_with_nothing_set_and_leaves_the_checkout_untouched(run_harness, tmp_path) -> None:
    root = _c_project(tmp_path / "fastmath")
    done = run_harness("run", "--platform", "cpu", "--area", "fast", "--root", str(root), timeout=1500)
    output = done.stdout[-3000:] + done.stderr[-5000:]
    assert done.returncode == 1, output  # one test fails on purpose: the build and the rest worked
    if "building gpuci/cpu" in done.stderr:  # not where an earlier run of the test left the image
        assert "the project compiles (setup.py builds extensions" in done.stderr, output
        assert "build output(s) kept in /opt/gpuci/outputs" in done.stderr, output
    report = json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    counts = {k: v for k, v in (report.get("counts") or {}).items() if v}
    assert counts == {"passed": 4, "failed": 1, "skipped": 1}, (counts, output)
    assert counts == {k: v for k, v in _host_counts(root, tmp_path).items() if v}
    # Nothing was built into the host's checkout: no .so, no build/, no egg-info (gpuci.lock is gpuci's).
    status = [line for line in git(root, "status", "--porcelain", "--ignored").splitlines()]
    assert all(line.endswith(("gpuci.lock", ".gpuci/")) for line in status), status
    found = [
        p.relative_to(root) for p in root.rglob("*") if p.suffix == ".so" or p.name == "build" or "egg-info" in p.name
    ]
    assert [p for p in found if p.parts[0] not in (".gpuci", ".git")] == []
    # A change to the Python code runs without a new image; the compiled module is still the image's.
    (root / "fastmath" / "__init__.py").write_text("from ._speed import add\n\n\ndef twice(x):\n    return x + x + 0\n")
    again = run_harness("run", "--platform", "cpu", "--area", "fast", "--root", str(root), timeout=900)
    assert again.returncode == 1 and "building gpuci/cpu" not in again.stderr, again.stderr[-3000:]
    assert os.path.exists(root / "fastmath" / "_speed.c") and not list(root.rglob("*.so"))


def test_a_compiled_project_s_tag_follows_its_compiled_sources_not_its_python(tmp_path: Path) -> None:
    root = _c_project(tmp_path / "fastmath")
    first = recipe_for(root, "cpu")
    assert first.install is not None and first.install.needs is not None and first.system_layer is not None
    assert set(COMPILER) <= set(first.system_layer.packages)
    (root / "fastmath" / "__init__.py").write_text("from ._speed import add\n")  # the mount brings it
    assert recipe_for(root, "cpu").tag == first.tag
    (root / "fastmath" / "_speed.c").write_text(SPEED_C.replace("a + b", "b + a"))  # the image compiles it
    assert recipe_for(root, "cpu").tag != first.tag

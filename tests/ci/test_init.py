"""`gpuci init` in another repository, and a real library's own suite through gpuci's container."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from harness.ci.init_recipes import REQUIREMENTS, dockerfile
from harness.images.recipe import recipe_for
from tests.conftest import ROOT, harness_env

USER_NOXFILE = """import nox


@nox.session
def docs(session):
    session.run("echo", "docs")
"""


def test_recipes_init_writes_are_gpucis_own() -> None:
    for platform in ("cpu", "cuda", "rocm"):
        assert dockerfile(platform) == (ROOT / "containers" / platform / "Dockerfile").read_text()
    assert (ROOT / "containers" / "requirements.txt").read_text() == REQUIREMENTS


def test_init_keeps_what_a_repository_has_and_is_idempotent(run_harness, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".buildkite" / "test_areas").mkdir(parents=True)
    (repo / "noxfile.py").write_text(USER_NOXFILE)
    pyproject = '[project]\nname = "mylib"\nversion = "1.0"\n'
    (repo / "pyproject.toml").write_text(pyproject)
    area = "group: mine\nplatforms: [cpu]\nsteps:\n  - label: t\n    commands: [pytest]\n"
    (repo / ".buildkite" / "test_areas" / "mine.yaml").write_text(area)

    dry = run_harness("init", "--dry-run", "--root", str(repo))
    assert dry.returncode == 0 and "would add to noxfile.py" in dry.stdout
    assert (repo / "noxfile.py").read_text() == USER_NOXFILE and not (repo / "containers").exists()

    done = run_harness("init", "--root", str(repo))
    assert done.returncode == 0, done.stderr
    assert (repo / "noxfile.py").read_text().startswith(USER_NOXFILE)  # the user's lines untouched
    assert (repo / "pyproject.toml").read_text().startswith(pyproject)
    assert (repo / ".buildkite" / "test_areas" / "mine.yaml").read_text() == area
    assert not (repo / ".buildkite" / "test_areas" / "example.yaml").exists()  # it had an area
    before = {p: p.read_text() for p in repo.rglob("*") if p.is_file()}
    again = run_harness("init", "--root", str(repo))
    assert again.returncode == 0 and "nothing written" in again.stderr
    assert {p: p.read_text() for p in repo.rglob("*") if p.is_file()} == before

    listed = subprocess.run(
        [sys.executable, "-m", "nox", "-l", "-f", str(repo / "noxfile.py")],
        capture_output=True,
        text=True,
        env=harness_env(),
        cwd=repo,
    )
    assert listed.returncode == 0, listed.stderr
    assert "docs" in listed.stdout and "cpu_mine" in listed.stdout


def test_the_projects_requirements_are_part_of_the_content_tag(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "containers" / "cpu").mkdir(parents=True)
    (repo / "containers" / "cpu" / "Dockerfile").write_text(dockerfile("cpu"))
    (repo / "containers" / "requirements.txt").write_text(REQUIREMENTS)
    (repo / "pyproject.toml").write_text('[tool.gpuci]\nrequirements = ["requirements-test.txt"]\n')
    (repo / "requirements-test.txt").write_text("six==1.17.0\n")
    first = recipe_for(repo, "cpu").tag
    assert recipe_for(repo, "cpu").tag == first  # unchanged: same tag, no rebuild
    (repo / "requirements-test.txt").write_text("six==1.16.0\n")
    assert recipe_for(repo, "cpu").tag != first


def test_a_real_library_with_compiled_test_dependencies_runs_its_own_suite_as_plain_pytest_does(
    run_harness, tmp_path: Path, cpu_image
) -> None:
    """tabulate, downloaded from PyPI as an sdist (nobody here wrote it or its tests), with the test
    dependencies its suite uses written as people write them: unpinned, numpy and pandas compiled.
    Through `gpuci init` and its own suite: the counts plain pytest gives, the project installed
    (its metadata and its console script), pytest pinned to gpuci's own."""
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-q", "-d", str(tmp_path),
         "tabulate==0.9.0"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert download.returncode == 0, download.stderr
    with tarfile.open(tmp_path / "tabulate-0.9.0.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    repo = tmp_path / "tabulate-0.9.0"
    (repo / "requirements-test.txt").write_text("pytest\nnumpy\npandas\nwcwidth\n")
    ident = ["-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    for args in (["init", "-q"], ["add", "-A"], [*ident, "commit", "-qm", "tabulate 0.9.0 from PyPI"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    assert run_harness("init", "--root", str(repo)).returncode == 0
    pyproject = (repo / "pyproject.toml").read_text()
    (repo / "pyproject.toml").write_text(pyproject.replace("# requirements = [", "requirements = ["))
    (repo / ".buildkite" / "test_areas" / "example.yaml").unlink()
    (repo / ".buildkite" / "test_areas" / "tabulate.yaml").write_text(
        "group: tabulate\nplatforms: [cpu]\nsteps:\n"
        "  - label: suite\n    num_gpus: 0\n    commands:\n      - pytest -q test\n"
        "      - tabulate --help | head -1\n"
        "      - python -c \"import importlib.metadata as m; print('version', m.version('tabulate'))\"\n"
    )
    env = harness_env(PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "nox", "-s", "cpu_tabulate", "-f", str(repo / "noxfile.py")],
        capture_output=True, text=True, env=env, cwd=repo, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((repo / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    assert report["outcome"] == "passed" and report["mode"] == "container"
    assert "Usage: tabulate [options]" in done.stdout and "version 0.9.0" in done.stdout  # installed
    resolved = docker_label(report["image"]["tag"], "gpuci.resolved")
    assert "pytest==8.4.2" in resolved and "numpy==" in resolved and "pandas==" in resolved

    # Plain pytest on this machine, with the same packages (the wheels gpuci resolved, where they fit).
    venv = tmp_path / "plain"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pins = [p for p in resolved.split(",") if p.split("==")[0] in ("pytest", "numpy", "pandas", "wcwidth")]
    wheelhouse = env["GPUCI_WHEELHOUSE"]
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--find-links", wheelhouse, *pins],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    plain = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "test"],
        capture_output=True, text=True, cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, timeout=600,
    )  # fmt: skip
    summary = plain.stdout.strip().splitlines()[-1]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|xfailed|xpassed)", summary)}
    assert counts["passed"] > 250, summary
    assert counts == {k: v for k, v in report["counts"].items() if v}, (summary, report["counts"])


def docker_label(tag: str, name: str) -> str:
    inspected = subprocess.run(
        ["docker", "image", "inspect", "--format", f"{{{{index .Config.Labels {json.dumps(name)}}}}}", tag],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return inspected.stdout.strip()


def test_init_in_a_setup_py_project_says_what_it_writes_and_works_with_nox_on_its_own(
    run_harness, tmp_path: Path
) -> None:
    repo = tmp_path / "legacy"
    repo.mkdir()
    (repo / "setup.py").write_text("from setuptools import setup\nsetup(name='legacy', version='1.0')\n")
    done = run_harness("init", "--root", str(repo))
    assert done.returncode == 0, done.stderr
    assert "created pyproject.toml (for [tool.gpuci] only: setup.py still builds the project)" in done.stdout
    assert ".gpuci/" in (repo / ".gitignore").read_text().splitlines()
    noxfile = (repo / "noxfile.py").read_text()
    # A version, never a place: no `file:///` path of this machine, no script block (nox's script mode
    # re-runs pip at every call and needs a name an index resolves).
    assert 'needs="gpuci-harness>=0.1.0"' in noxfile
    assert "file://" not in noxfile and "# /// script" not in noxfile and str(ROOT) not in noxfile
    lint = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--line-length", "120",
                           "--select", "E,F,W,I,B,UP,SIM,RUF", str(repo / "noxfile.py")],
                          capture_output=True, text=True)  # fmt: skip
    assert lint.returncode == 0, lint.stdout  # what init writes passes the linters users run
    # nox installed on its own (pipx, `uv tool`): its environment has no gpuci; the noxfile runs nox
    # again in the Python of the `gpuci` command on PATH (here: this suite's, where gpuci is installed).
    venv = tmp_path / "nox-alone"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "nox>=2024.4.15"], capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr[-2000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "GPUCI_NOX")}
    gpuci_bin = Path(sys.executable).parent
    assert (gpuci_bin / "gpuci").exists(), "the suite runs where gpuci is installed (pip install -e .)"
    planted = tmp_path / "planted-nox-ran"  # a checkout's own nox/ is never what gpuci's nox imports
    (repo / "nox").mkdir()
    (repo / "nox" / "__init__.py").write_text(f"open({str(planted)!r}, 'w').close()\n")
    listed = subprocess.run(
        [str(venv / "bin" / "nox"), "-l"],
        cwd=repo, env={**env, "PATH": f"{gpuci_bin}:/usr/bin:/bin"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stdout[-2000:] + listed.stderr[-3000:]
    assert "cpu_example" in listed.stdout and not planted.exists()
    shutil.rmtree(repo / "nox")
    # No gpuci anywhere: one paragraph that says what to do, exit 2, no traceback.
    alone = subprocess.run(
        [str(venv / "bin" / "nox"), "-l"],
        cwd=repo, env={**env, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert alone.returncode == 2, alone.stdout + alone.stderr
    assert "install gpuci once" in alone.stderr and "Traceback" not in alone.stderr


def test_a_noxfile_that_needs_a_newer_gpuci_says_so(run_harness, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    assert run_harness("init", "--root", str(repo)).returncode == 0
    noxfile = repo / "noxfile.py"
    noxfile.write_text(noxfile.read_text().replace('needs="gpuci-harness>=0.1.0"', 'needs="gpuci-harness>=99"'))
    listed = subprocess.run(
        [sys.executable, "-m", "nox", "-l"], cwd=repo, env=harness_env(), capture_output=True, text=True, timeout=120
    )
    assert listed.returncode == 2, listed.stdout + listed.stderr
    assert "needs gpuci-harness>=99, and the gpuci installed here is 0.1.0" in listed.stderr
    assert "Traceback" not in listed.stderr


def test_init_says_the_next_step_that_fits_and_names_the_project_s_extras(run_harness, tmp_path: Path) -> None:
    declared = tmp_path / "declared"
    (declared / ".buildkite" / "test_areas").mkdir(parents=True)
    (declared / ".buildkite" / "test_areas" / "unit.yaml").write_text(
        "group: unit\nplatforms: [cpu]\nsteps:\n  - label: t\n    commands: [pytest]\n    num_gpus: 0\n"
    )
    (declared / "setup.cfg").write_text("[options.extras_require]\ntests = pytest\ngmpy = gmpy2\n")
    done = run_harness("init", "--root", str(declared))
    assert done.returncode == 0, done.stderr
    assert "declare your tests" not in done.stderr  # they were declared
    assert "`nox -l` lists your sessions (cpu_unit); run one with `nox -s cpu_unit`" in done.stderr
    table = (declared / "pyproject.toml").read_text()
    assert "# Extras declared here: gmpy, tests." in table and '# extras = ["tests"]' in table
    assert "# No dependency groups are declared here." in table and '# dependency_groups = ["test"]' in table

    bare = tmp_path / "bare"
    bare.mkdir()
    # findpython's groups: its test group is `tests`, and that is the example
    groups = '[dependency-groups]\ntests = ["pytest"]\nlint = ["ruff"]\n'
    (bare / "pyproject.toml").write_text(f'[project]\nname = "bare"\nversion = "1"\n\n{groups}')
    done = run_harness("init", "--root", str(bare))
    assert done.returncode == 0, done.stderr
    assert "next: `nox -s cpu_example` runs `pytest -q` at the root" in done.stderr
    table = (bare / "pyproject.toml").read_text()
    assert "# No extras are declared here." in table
    assert "# Dependency groups declared here: lint, tests." in table and '# dependency_groups = ["tests"]' in table

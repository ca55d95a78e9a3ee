"""No host process imports or runs anything from the checkout, as a hostile pull request would plant it.

The checkout carries `pip/`, `virtualenv/`, `nox/`, `sitecustomize.py`, `usercustomize.py`, gpuci's
own `harness/` and its dependencies' names at its root, each writing a marker outside the checkout
(where its container cannot write) when imported. Every gpuci command an agent or a user runs on
the host, and every command of the generated pipeline, runs there through the installed `gpuci`;
no marker may appear. (`run --no-container` is left out: it runs the checkout's tests on the host
because its user asked for exactly that, and CI never generates it.)
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.host_python import host_env, python_command, run_python
from tests.conftest import ROOT, commit_tree

PLANTED = (
    "pip/__init__.py",
    "pip/__main__.py",
    "virtualenv/__init__.py",
    "virtualenv/__main__.py",
    "nox/__init__.py",
    "nox/__main__.py",
    "sitecustomize.py",
    "usercustomize.py",
    "harness/__init__.py",
    "harness/__main__.py",
    "harness/cli.py",
    "docker/__init__.py",
    "yaml/__init__.py",
    "psutil/__init__.py",
    "setuptools/__init__.py",
    "noxfile.py",
)


def plant(root: Path, markers: Path) -> None:
    markers.mkdir(exist_ok=True)
    for name in PLANTED:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        marker = str(markers / name.replace("/", "."))
        # In the container the markers' folder does not exist: the import fails there, harmlessly.
        path.write_text(f"try:\n    open({marker!r}, 'w').close()\nexcept OSError:\n    pass\n")


def test_a_planted_pip_runs_for_a_plain_python_m_pip_and_never_for_gpucis(tmp_path: Path, monkeypatch) -> None:
    checkout, markers = tmp_path / "checkout", tmp_path / "markers"
    checkout.mkdir()
    plant(checkout, markers)
    monkeypatch.chdir(checkout)
    monkeypatch.setenv("PYTHONPATH", str(checkout))
    monkeypatch.setenv("PYTHONSTARTUP", str(checkout / "sitecustomize.py"))
    naive = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
    assert (markers / "pip.__main__.py").exists(), naive  # the attack is real
    for marker in markers.iterdir():
        marker.unlink()
    done = run_python(["-m", "pip", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "pip " in done.stdout, done.stderr
    assert sorted(p.name for p in markers.iterdir()) == []
    assert python_command("-m", "pip")[1] == "-I"
    assert not [k for k in host_env() if k.startswith("PYTHON")]


def _gpuci() -> str:
    """The installed console command, as an agent has it (nox -s tests installs gpuci so)."""
    found = Path(sys.executable).parent / "gpuci"
    assert found.is_file(), f"{found} is missing: install gpuci (pip install -e .) to run this test"
    return str(found)


def _agent_env(sim_gpus: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PATH"] = f"{Path(_gpuci()).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    env["GPUCI_WHEELHOUSE"] = str(ROOT / ".gpuci" / "wheelhouse")
    env["GPUCI_SIM_GPUS"] = str(sim_gpus)
    return env


@pytest.mark.xdist_group("docker-runs")
def test_no_gpuci_command_and_no_pipeline_step_imports_the_checkout(
    make_project, cpu_image, sim_gpus, tmp_path
) -> None:
    root = make_project("platforms: [cpu]\nsteps:\n  - label: s $HOME\n    commands: [pytest -q t_ok.py]\n", name="a")
    (root / "t_ok.py").write_text("def test_ok():\n    assert True\n")
    markers = tmp_path / "markers"
    plant(root, markers)
    commit_tree(root, "hostile")
    env = _agent_env(sim_gpus)

    def gpuci(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([_gpuci(), *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode in (0, 1), f"gpuci {shlex.join(args)}: {done.returncode}\n{done.stderr[-2000:]}"
        assert sorted(p.name for p in markers.iterdir()) == [], f"gpuci {shlex.join(args)} imported the checkout"
        return done

    pipeline = yaml.safe_load(gpuci("pipeline", "--all").stdout)
    commands = [s["command"] for g in pipeline["steps"] for s in g["steps"] if "command" in s]
    assert commands
    for command in commands:  # as the agent runs it: interpolation undoes `$$`, then its shell
        done = subprocess.run(
            ["bash", "-c", command.replace("$$", "$")], cwd=root, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode in (0, 1), done.stderr[-2000:]
        assert sorted(p.name for p in markers.iterdir()) == [], f"{command} imported the checkout"
    report = (root / ".gpuci" / "runs" / "latest").resolve() / "report.json"
    assert json.loads(report.read_text())["step"] == "s $HOME"  # the step ran, its label intact
    gpuci("lint")
    gpuci("image", "tag", "--platform", "cpu")
    gpuci("image", "ensure", "--platform", "cpu")
    gpuci("repro", str(report), "--allow-dirty")
    gpuci("report", "--no-pictures")
    gpuci("reap")
    gpuci("gc")
    gpuci("init", "--dry-run")
    gpuci("gpus")
    # Requirements to resolve: pip runs on the host (offline from an empty wheelhouse, then the index).
    (root / "reqs.txt").write_text("psutil\n")
    (root / "pyproject.toml").write_text('[tool.gpuci]\nrequirements = ["reqs.txt"]\ninstall = "none"\n')
    env["GPUCI_WHEELHOUSE"] = str(tmp_path / "wheelhouse")
    assert gpuci("image", "tag", "--platform", "cpu").stdout.strip()
    assert list((tmp_path / "wheelhouse").glob("psutil-*.whl"))  # pip did run, the real one

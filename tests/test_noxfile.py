"""The noxfile lists and names sessions from the declarations, and refuses bad ones clearly."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def nox(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nox", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def project(tmp_path: Path, areas: dict[str, str]) -> Path:
    shutil.copy(ROOT / "noxfile.py", tmp_path / "noxfile.py")
    shutil.copytree(ROOT / "harness", tmp_path / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / ".buildkite" / "test_areas").mkdir(parents=True)
    for name, text in areas.items():
        (tmp_path / ".buildkite" / "test_areas" / name).write_text(text)
    return tmp_path


def test_sessions_are_listed_per_platform_and_area() -> None:
    done = nox("-l")
    assert done.returncode == 0, done.stderr
    for name in ("cpu_sampler", "cuda_sampler", "rocm_sampler", "tests"):
        assert f" {name} " in done.stdout
    rocm = nox("-l", "-t", "rocm")
    selected = [line.split()[1] for line in rocm.stdout.splitlines() if line.startswith("* ")]
    assert selected == ["rocm_sampler"]


def test_a_typo_stops_nox_with_file_and_line(tmp_path: Path) -> None:
    root = project(tmp_path, {"engine.yaml": "steps:\n  - label: a\n    comands: [x]\n"})
    done = nox("-l", cwd=root)
    assert done.returncode == 2
    assert "engine.yaml:3" in done.stderr and "did you mean 'commands'" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_area_named_like_a_session_of_the_noxfile_is_refused(tmp_path: Path) -> None:
    root = project(tmp_path, {"a.yaml": "platforms: [cpu]\nsteps: [{label: a, commands: [x]}]\n"})
    (root / ".buildkite" / "test_areas" / "a.yml").write_text("platforms: [cpu]\nsteps: [{label: b, commands: [y]}]\n")
    done = nox("-l", cwd=root)
    assert done.returncode == 2 and "collide" in done.stderr


def test_on_any_ci_a_session_ends_with_gpucis_code_and_locally_says_what_it_means(tmp_path: Path) -> None:
    import os

    root = project(tmp_path, {"a.yaml": "platforms: [cpu]\nsteps: [{label: a, commands: [x]}]\n"})
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "BUILDKITE", "GITHUB_ACTIONS", "GITLAB_CI")}
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"  # infrastructure: exit 75, which CIs retry

    def session(**extra: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "nox", "-s", "cpu_a"]
        return subprocess.run(command, cwd=root, env={**env, **extra}, capture_output=True, text=True, timeout=120)

    for marker in ({"CI": "true"}, {"GITHUB_ACTIONS": "true"}, {"BUILDKITE": "true"}):
        done = session(**marker)
        assert done.returncode == 75, (marker, done.stderr[-1500:])
        assert "exited 75: infrastructure failure" in done.stderr
    local = session()
    assert local.returncode == 1  # nox's own code, so `nox -s a b` goes on to b
    assert "exited 75: infrastructure failure" in local.stderr and "1 tests failed" not in local.stderr


def test_every_run_option_reaches_the_harness_from_posargs_and_the_rest_pytest() -> None:
    from harness.sessions import split_posargs

    posargs = ["--step", "sampler (cpu)", "--timeout", "30", "--ca-bundle=corp.pem", "--build", "--quiet", "-k", "x"]
    harness, pytest_args = split_posargs(posargs)
    assert harness == ["--step", "sampler (cpu)", "--timeout", "30", "--ca-bundle=corp.pem", "--build"]
    assert pytest_args == ["--quiet", "-k", "x"]  # --quiet there is pytest's


def test_a_cancel_as_nox_starts_the_session_still_leaves_a_cancelled_report(make_project) -> None:
    import json
    import os
    import signal

    root = make_project("platforms: [cpu]\nsteps: [{label: a, commands: [sleep 60]}]\n", name="early")
    shutil.copy(ROOT / "noxfile.py", root / "noxfile.py")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GPUCI_WHEELHOUSE": str(ROOT / ".gpuci" / "wheelhouse")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "nox", "-s", "cpu_early"], cwd=root, env=env, stderr=subprocess.PIPE, text=True
    )
    for line in proc.stderr:  # type: ignore[union-attr]
        if "Running session cpu_early" in line:
            proc.send_signal(signal.SIGTERM)  # the agent's cancel, before gpuci's run has begun
            break
    proc.communicate(timeout=120)  # a cap on a hang
    report = json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    assert report["outcome"] == "cancelled" and report["stop_reason"] == "SIGTERM"


def test_a_forced_venv_backend_makes_the_session_s_environment_once(tmp_path: Path) -> None:
    # `--force-venv-backend virtualenv` (or uv) overrides the sessions' "none": the environment nox then
    # makes is reused, so only the first call pays for it (seconds with virtualenv on a busy machine).
    import os

    root = project(tmp_path, {"a.yaml": "platforms: [cpu]\nsteps: [{label: a, commands: [x]}]\n"})
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "BUILDKITE", "GITHUB_ACTIONS", "GITLAB_CI")}
    env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"  # the run itself ends at once (75)
    command = [sys.executable, "-m", "nox", "--force-venv-backend", "virtualenv", "-s", "cpu_a"]
    first, again = (
        subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=180) for _ in range(2)
    )
    assert "Creating virtual environment (virtualenv)" in first.stderr, first.stderr[-1500:]
    assert "Creating virtual environment" not in again.stderr, again.stderr[-1500:]
    assert "Reusing existing virtual environment" in again.stderr
    assert "exited 75: infrastructure failure" in again.stderr  # the session itself still ran

"""The user's files stay the user's: a session run by a non-root user leaves only files they own."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

# This test process's own user: a suite beside this one removes its user when done.
USER = f"gpuci-ci-{uuid.uuid4().hex[:8]}"
AREA = """\
platforms: [cpu]
steps:
  - label: writes
    commands:
      - mkdir -p out/cache && echo result > out/result.txt
      - python -m pip --version > out/pip.txt
      - echo home=$HOME
      - id -u
  - label: as root
    optional: true
    run_as_root: true
    commands: [id -u]
"""


def _docker_group() -> bool:
    import grp

    try:
        grp.getgrnam("docker")
    except KeyError:
        return False
    return True


@pytest.fixture(scope="module")
def user() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("useradd") is None or not _docker_group():
        pytest.skip("needs root, useradd and a docker group to make a non-root user who may use Docker")
    made = subprocess.run(["id", USER], capture_output=True).returncode != 0
    if made:
        subprocess.run(["useradd", "--create-home", "--groups", "docker", USER], check=True)
    yield USER
    if made:
        subprocess.run(["userdel", "--remove", USER], capture_output=True)


@pytest.fixture(scope="module")
def user_python(user: str) -> Iterator[Path]:
    """gpuci's host dependencies in a venv the user can read (the suite's own may sit under /root)."""
    home = Path(tempfile.mkdtemp(prefix="gpuci-user-env-", dir="/tmp"))
    home.chmod(0o755)
    base = shutil.which("python3", path="/usr/bin:/usr/local/bin") or "python3"
    subprocess.run([base, "-m", "venv", str(home / "venv")], check=True)
    pip = [str(home / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "docker>=7,<8", "PyYAML>=6", "psutil>=5.9", "packaging>=23"], check=True, timeout=300)
    yield home / "venv" / "bin" / "python"
    shutil.rmtree(home, ignore_errors=True)


def test_a_session_run_by_a_non_root_user_leaves_only_their_files(user, user_python, cpu_image) -> None:
    project = Path(tempfile.mkdtemp(prefix="gpuci-user-project-", dir="/tmp"))
    sim_gpus = Path(tempfile.mkdtemp(prefix="gpuci-user-simgpu-", dir="/tmp"))  # the user's, this test's
    try:
        shutil.chown(sim_gpus, user, user)
        (project / ".buildkite" / "test_areas").mkdir(parents=True)
        (project / ".buildkite" / "test_areas" / "own.yaml").write_text(AREA)
        shutil.copytree(ROOT / "containers", project / "containers")
        shutil.copytree(ROOT / "harness", project / "harness", ignore=shutil.ignore_patterns("__pycache__"))
        subprocess.run(["chown", "-R", f"{user}:{user}", str(project)], check=True)
        project.chmod(0o755)
        command = [str(user_python), "-m", "harness", "run", "--platform", "cpu", "--area", "own"]
        # Not root's test-private cache folder (tests/conftest.py, mode 0700): the user has their own.
        env = ["env", "-u", "GPUCI_CACHE_DIR", f"PYTHONPATH={project}", "PYTHONDONTWRITEBYTECODE=1"]
        env += [f"HOME=/home/{user}", f"GPUCI_SIM_GPUS={sim_gpus}"]
        done = subprocess.run(
            ["runuser", "-u", user, "--", *env, *command, "--root", str(project)],
            capture_output=True,
            text=True,
            cwd=project,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        uid = int(subprocess.run(["id", "-u", user], capture_output=True, text=True).stdout)
        assert done.stdout.strip().splitlines()[-1] == str(uid)  # the workload ran as the user
        assert "home=/tmp" in done.stdout  # a writable HOME, so pip and caches work inside
        assert (project / "out" / "pip.txt").read_text().startswith("pip ")
        strangers = [p for p in project.rglob("*") if p.lstat().st_uid != uid]
        assert strangers == [], f"files not owned by {user}: {strangers[:5]}"
        assert (project / ".gpuci" / "runs" / "latest" / "report.json").exists()
        root_step = subprocess.run(
            ["runuser", "-u", user, "--", *env, *command, "--step", "as root", "--root", str(project)],
            capture_output=True,
            text=True,
            cwd=project,
            timeout=300,
        )
        assert root_step.returncode == 0 and root_step.stdout.strip().splitlines()[-1] == "0"
    finally:
        shutil.rmtree(project, ignore_errors=True)
        shutil.rmtree(sim_gpus, ignore_errors=True)

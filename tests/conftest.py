"""Shared fixtures: the real Docker Engine, the cpu image, throwaway projects and simulated GPUs.

The example area under tests/areas runs inside gpuci's images, where this file is loaded too:
so Docker and the harness's image code are imported inside fixtures only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.registry_server import RegistryServer

ROOT = Path(__file__).resolve().parents[1]
# Every image or container a test makes carries this label (one value per test process): a test
# lists, counts and removes only what carries it, so suites can run side by side on one engine.
SESSION_LABEL_KEY = "gpuci.test-session"
SESSION_LABEL = f"{SESSION_LABEL_KEY}={uuid.uuid4().hex[:16]}"


@pytest.fixture(scope="session", autouse=True)
def private_lint_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The lint's content-keyed store in a folder of this run, not the user's ~/.cache."""
    previous = os.environ.get("GPUCI_CACHE_DIR")
    os.environ["GPUCI_CACHE_DIR"] = str(tmp_path_factory.mktemp("gpuci-cache"))
    yield
    if previous is None:
        os.environ.pop("GPUCI_CACHE_DIR", None)
    else:
        os.environ["GPUCI_CACHE_DIR"] = previous


@pytest.fixture(scope="session", autouse=True)
def private_default_sim_gpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The simulated GPUs a run takes when a test names none (GPUCI_SIM_GPUS unset): this test
    process's own, not the host's shared /tmp/gpuci-simgpu-UID. A suite beside this one never leases
    them, and a run a test crashes on them is handed over only to this process's later tests."""
    if os.environ.get("GPUCI_SIM_GPUS"):
        # Named already: kept. Inside a run's container this conftest is loaded too (the example area
        # is under tests/), where the run's GPUs are /gpuci/simgpu: replacing them made the area's
        # engines hold memory on other GPUs than the VRAM guard watches.
        yield
        return
    os.environ["GPUCI_SIM_GPUS"] = str(tmp_path_factory.mktemp("default-simgpu"))
    yield
    os.environ.pop("GPUCI_SIM_GPUS", None)


@pytest.fixture(scope="session")
def docker_client() -> Any:
    """The real engine. No skip when it is missing: tests that need Docker must fail loudly."""
    from harness.images.engine import connect

    return connect()


@pytest.fixture(scope="session")
def cpu_image(docker_client: Any) -> Any:
    from harness.images.build import ensure
    from harness.images.recipe import recipe_for

    return ensure(docker_client, recipe_for(ROOT, "cpu"), ROOT)


@pytest.fixture
def sim_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private set of simulated GPUs: 2 devices of 8 GiB."""
    from harness.gpu.vram import sim

    directory = tmp_path / "simgpu"
    sim.init(directory, count=2, total_bytes=8 * 1024**3)
    monkeypatch.setenv(sim.ENV, str(directory))
    return directory


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[[str, str], Path]:
    """A project root with one area file and gpuci's own image recipes (same tags, no rebuild)."""

    def make(area_yaml: str, name: str = "demo") -> Path:
        root = tmp_path / "project"
        (root / ".buildkite" / "test_areas").mkdir(parents=True, exist_ok=True)
        (root / ".buildkite" / "test_areas" / f"{name}.yaml").write_text(area_yaml)
        if not (root / "containers").exists():
            # Copies, not links: inside a container only the project directory is mounted.
            shutil.copytree(ROOT / "containers", root / "containers")
            shutil.copytree(ROOT / "harness", root / "harness", ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy(ROOT / "tests" / "fixtures" / "misbehave.py", root / "misbehave.py")
        return root

    return make


def git(root: Path, *args: str) -> str:
    """git in a test's repository, with an identity for commits (a fresh CI machine has none)."""
    ident = ["-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    return subprocess.run(["git", "-C", str(root), *ident, *args], capture_output=True, text=True, check=True).stdout


def commit_tree(root: Path, message: str = "first") -> None:
    """A test's folder made a git repository with everything in it committed (`.gitignore` kept)."""
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


def nest_folders(top: Path, depth: int = 3000) -> None:
    """`depth` folders nested in `top`, made through descriptors: a path that long is past what the
    system names, as a hostile project's build can leave behind."""
    fd = os.open(top, os.O_RDONLY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)


def harness_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", *args]


def harness_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **extra}
    # The suite's own wheelhouse is reused by every project a test makes.
    env.setdefault("GPUCI_WHEELHOUSE", str(ROOT / ".gpuci" / "wheelhouse"))
    return env


@pytest.fixture
def run_harness() -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    def run(*args: str, cwd: Path = ROOT, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            harness_cmd(*args),
            cwd=cwd,
            env=harness_env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    yield run


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path / "registry")
    yield server
    server.stop()


@pytest.fixture
def private_registry(tmp_path: Path) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path / "private-registry", "ci-bot", "reg-pa55-hunter2-xyz")
    yield server
    server.stop()

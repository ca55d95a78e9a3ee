"""Shared fixtures: the real Docker Engine, the cpu image, throwaway projects and simulated GPUs.

The example area under tests/areas runs inside gpuci's images, where this file is loaded too:
so Docker and the harness's image code are imported inside fixtures only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


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


class RegistryServer:
    """A real Distribution registry (Debian's docker-registry) on a loopback port, own storage."""

    def __init__(self, directory: Path, user: str | None = None, password: str | None = None) -> None:
        import socket

        binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        if not os.path.exists(binary):
            raise RuntimeError("docker-registry is missing: `apt-get install docker-registry` (as .ci/run does)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}/ci"
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        auth = ""
        if user and password:
            import bcrypt

            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
            (directory / "htpasswd").write_text(f"{user}:{hashed}\n")
            auth = f"auth:\n  htpasswd:\n    realm: gpuci-test\n    path: {directory / 'htpasswd'}\n"
        (directory / "config.yml").write_text(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {directory / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n{auth}"
        )
        self.log = open(directory / "registry.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([binary, "serve", str(directory / "config.yml")], stdout=self.log, stderr=self.log)
        self._wait_ready()

    def _wait_ready(self) -> None:
        import time
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # 401: up, and asking for credentials
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"the registry did not start: {(self.directory / 'registry.log').read_text()[-2000:]}")

    def manifest_digest(self, repository: str, reference: str, auth: tuple[str, str] | None = None) -> str | None:
        """The registry's own answer, over its HTTP API: the digest it serves for a tag."""
        import base64
        import urllib.error
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v2/{repository}/manifests/{reference}",
            method="HEAD",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        )
        if auth:
            request.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError:
            return None

    def delete(self, repository: str, digest: str) -> None:
        import urllib.request

        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v2/{repository}/manifests/{digest}", method="DELETE"
        )
        urllib.request.urlopen(request, timeout=5).close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


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

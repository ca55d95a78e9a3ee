"""What one run is asked to do (`RunOptions`); the run itself is `harness.run.run.Run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.declare.config import ProjectConfig
from harness.declare.policy import HostPolicy
from harness.gpu.vram.release import DEFAULT_TOLERANCE
from harness.run.spec import Limits

if TYPE_CHECKING:  # the Docker SDK is imported only where used
    from harness.images.registry import Registry

SIM_MOUNT = "/gpuci/simgpu"


# gpuci's plugin, loaded by module name: inside images gpuci is on PYTHONPATH, not installed.
PYTEST_PLUGIN_ARGS = ("-p", "harness.pytest_plugin", "-p", "no:cacheprovider")


@dataclass(frozen=True)
class Reproduction:
    """What a `gpuci repro` run carries that no other run has: the run it reproduces, its exact
    image (by ID) with what the original report recorded of it, and whether a shell replaces the
    step's commands."""

    of: dict[str, str]  # run_id and the report's source
    image_id: str | None = None
    image_report: dict[str, Any] = field(default_factory=dict)
    shell: bool = False


@dataclass(frozen=True)
class RunOptions:
    """What one run is asked: the project's settings as the command resolved them once (`config`:
    limits, network, mounts, secrets, timeouts, workspace), and what only the command line says."""

    root: Path
    platform: str
    config: ProjectConfig = field(default_factory=ProjectConfig)
    pytest_args: tuple[str, ...] = ()
    container: bool = True
    report_dir: Path | None = None
    vram_backend: str | None = None
    vram_tolerance: int = DEFAULT_TOLERANCE
    base_image: str | None = None
    # The extra CA bundle, as a file: the flag's (a host path) or [tool.gpuci]'s (checked in the checkout).
    ca_bundle: Path | None = None
    # The Python the image runs: chosen by --python or the step (on gpuci's Debian base only), else
    # [tool.gpuci] python's first where the platform builds on that base (`project_python`).
    python: str | None = None
    # Host variables passed through by name (secrets included, which reports never show).
    pass_env: tuple[str, ...] = ()
    echo: bool = True
    # Set by `gpuci repro` only: what it reproduces, in its own object.
    reproduction: Reproduction | None = None
    # Images by digest: pulled from this registry before a build is considered; `build` skips the pull.
    registry: Registry | None = None
    build: bool = False

    # The settings a run reads, by the names the run's modules use: each is the config's, so a value is
    # resolved in one place (harness.declare.precedence) and has its default in one (settings.py).
    @property
    def grace_s(self) -> float:
        return float(self.config.grace)

    @property
    def vram_timeout_s(self) -> float:
        return float(self.config.vram_timeout)

    @property
    def timeout_s(self) -> float | None:  # overrides the step's timeout_in_minutes
        return self.config.timeout

    @property
    def lease_timeout_s(self) -> float:  # how long a run waits for GPUs another run on this host leased
        return float(self.config.lease_timeout)

    @property
    def image_timeout_s(self) -> float:  # how long the run's image may take to build or pull
        return float(self.config.image_timeout)

    @property
    def workspace(self) -> str:  # the checkout's path inside containers
        return self.config.workspace

    @property
    def default_working_dir(self) -> str | None:  # where steps without working_dir run
        return self.config.default_working_dir

    @property
    def mounts(self) -> tuple[str, ...]:  # the project's folders bound into the container, SOURCE:TARGET[:ro|rw]
        return self.config.mounts

    @property
    def host_mounts(self) -> tuple[str, ...]:  # GPUCI_MOUNTS: the host's own
        return self.config.host_mounts

    @property
    def limits(self) -> Limits:  # the project's container limits (a step's own go in their place)
        config = self.config
        return Limits(config.memory, config.cpus, config.pids_limit, config.network)

    @property
    def policy(self) -> HostPolicy:  # the agent's policy the project's asks are held against
        return self.config.policy

    @property
    def project_python(self) -> str | None:
        return self.config.python[0] if self.config.python else None

    def timeout_for(self, timeout_in_minutes: int | None) -> float | None:
        """The step's timeout in seconds: --timeout, else its declared timeout_in_minutes."""
        return self.timeout_s or (timeout_in_minutes * 60.0 if timeout_in_minutes else None)

    def host_path(self, container_path: str | None) -> Path:
        """A step's working dir on the host: container paths under the workspace map into the checkout."""
        path = container_path or self.default_working_dir or self.workspace
        if path == self.workspace or path.startswith(self.workspace.rstrip("/") + "/"):
            return self.root / path[len(self.workspace) :].lstrip("/")
        return Path(path) if path.startswith("/") else self.root / path

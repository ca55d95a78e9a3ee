"""What one run is asked to do (`RunOptions`); the run itself is `harness.run.run.Run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.declare.policy import HostPolicy
from harness.gpu.vram.release import DEFAULT_TOLERANCE
from harness.run.spec import Limits
from harness.run.supervise.stop import DEFAULT_GRACE_S, DEFAULT_VRAM_TIMEOUT_S

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
    root: Path
    platform: str
    pytest_args: tuple[str, ...] = ()
    container: bool = True
    report_dir: Path | None = None
    vram_backend: str | None = None
    grace_s: float = DEFAULT_GRACE_S
    vram_timeout_s: float = DEFAULT_VRAM_TIMEOUT_S
    vram_tolerance: int = DEFAULT_TOLERANCE
    base_image: str | None = None
    ca_bundle: Path | None = None
    # The Python the image runs: chosen by --python or the step (on gpuci's Debian base only), else
    # [tool.gpuci] python's first where the platform builds on that base.
    python: str | None = None
    project_python: str | None = None
    # Host variables passed through by name (secrets included, which reports never show).
    pass_env: tuple[str, ...] = ()
    echo: bool = True
    # Overrides the step's timeout_in_minutes.
    timeout_s: float | None = None
    # Set by `gpuci repro` only: what it reproduces, in its own object.
    reproduction: Reproduction | None = None
    # Images by digest: pulled from this registry before a build is considered; `build` skips the pull.
    registry: Registry | None = None
    build: bool = False
    # How long a run waits for GPUs that another run on this host has leased.
    lease_timeout_s: float = 600.0
    # How long the run's image may take to build or pull ([tool.gpuci] image_timeout, bounded).
    image_timeout_s: float = 1200.0
    # The checkout's path inside containers, and where steps without working_dir run
    # ([tool.gpuci] workspace / default_working_dir).
    workspace: str = "/workspace"
    default_working_dir: str | None = None
    # Host folders bound into the container, SOURCE:TARGET[:ro|rw] ([tool.gpuci] mounts).
    mounts: tuple[str, ...] = ()
    # The project's container limits ([tool.gpuci]; a step's own go in their place).
    limits: Limits = field(default_factory=Limits)
    host_mounts: tuple[str, ...] = ()  # GPUCI_MOUNTS: the host's own
    # The agent's policy that the project's asks are held against (harness.declare.policy).
    policy: HostPolicy = field(default_factory=HostPolicy)

    def timeout_for(self, timeout_in_minutes: int | None) -> float | None:
        """The step's timeout in seconds: --timeout, else its declared timeout_in_minutes."""
        return self.timeout_s or (timeout_in_minutes * 60.0 if timeout_in_minutes else None)

    def host_path(self, container_path: str | None) -> Path:
        """A step's working dir on the host: container paths under the workspace map into the checkout."""
        path = container_path or self.default_working_dir or self.workspace
        if path == self.workspace or path.startswith(self.workspace.rstrip("/") + "/"):
            return self.root / path[len(self.workspace) :].lstrip("/")
        return Path(path) if path.startswith("/") else self.root / path

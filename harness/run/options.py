"""What one run is asked to do (`RunOptions`); the run itself is `harness.run.run.Run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.declare.config import ProjectConfig
from harness.gpu.vram.release import DEFAULT_TOLERANCE

if TYPE_CHECKING:
    from harness.declare.mounts import BindMount

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
    # The Python the step's image runs, as its request resolved it (harness.declare.request.StepRequest):
    # --python, else the step's; else [tool.gpuci] python's first where the platform builds on gpuci's base.
    python: str | None = None
    # Host variables passed through by name (secrets included, which reports never show).
    pass_env: tuple[str, ...] = ()
    echo: bool = True
    # Set by `gpuci repro` only: what it reproduces, in its own object.
    reproduction: Reproduction | None = None
    # Build the image even where a registry ([tool.gpuci] registry) could be pulled from.
    build: bool = False
    # The project's and the host's mounts, resolved within the host policy with the request
    # (harness.declare.mounts): sources checked, dangerous ones opted into.
    binds: tuple[BindMount, ...] = ()

    def host_path(self, container_path: str | None) -> Path:
        """A step's working dir on the host: container paths under the workspace map into the checkout."""
        workspace = self.config.workspace
        path = container_path or self.config.default_working_dir or workspace
        if path == workspace or path.startswith(workspace.rstrip("/") + "/"):
            return self.root / path[len(workspace) :].lstrip("/")
        return Path(path) if path.startswith("/") else self.root / path

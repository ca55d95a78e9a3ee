"""What a run executes, independent of how: Docker (harness/container.py) or an OCI runtime (harness/oci.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from harness.gpu.devices import NvidiaRequest
from harness.redact import Redactor

WORKSPACE = "/workspace"
# Where a run's report folder is mounted inside its container.
REPORT_MOUNT = "/gpuci/report"


# A Docker network mode for every container gpuci makes (builds included), e.g. `none` where the
# engine has no bridge or the tests must not reach the network.
NETWORK_ENV = "GPUCI_NETWORK"


@dataclass(frozen=True)
class BindMount:
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class RunSpec:
    image: str
    command: tuple[str, ...]
    name: str
    env: dict[str, str] = field(default_factory=dict)
    mounts: tuple[BindMount, ...] = ()
    working_dir: str = WORKSPACE
    labels: dict[str, str] = field(default_factory=dict)
    # Device nodes as "host:container:permissions", e.g. AMD's /dev/kfd.
    devices: tuple[str, ...] = ()
    gpu_requests: tuple[NvidiaRequest, ...] = ()
    group_add: tuple[str, ...] = ()
    user: str | None = None
    shm_size: str = "1g"
    # Docker's network mode; None is the engine's default (GPUCI_NETWORK=none on engines with no bridge).
    network_mode: str | None = None

    def to_report(self, redactor: Redactor) -> dict[str, Any]:
        data = asdict(self)
        data["env"] = redactor.env(self.env)
        data["command"] = [redactor.text(part) for part in self.command]
        return data

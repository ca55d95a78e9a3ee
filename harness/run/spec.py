"""What a run executes, independent of how: Docker (harness/run/container/docker.py) or an
OCI runtime (harness/run/container/oci.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from harness.declare.mounts import BindMount
from harness.declare.settings import BY_KEY, default
from harness.declare.stop_policy import StopPolicy
from harness.gpu.vendors.vendor import GpuRequest
from harness.redact import Redactor

WORKSPACE: str = default("workspace")
# Where a run's report folder is mounted inside its container.
REPORT_MOUNT = "/gpuci/report"


# A Docker network mode for every container gpuci makes (builds included), e.g. `none` where the
# engine has no bridge or the tests must not reach the network.
NETWORK_ENV = BY_KEY["network"].env


# A fork bomb in a test stops here, not at the host's limit; ample for xdist workers with torch's threads.
DEFAULT_PIDS_LIMIT: int = default("pids_limit")
# Docker's defaults less what tests never need (raw sockets, device nodes, chroot, file capabilities,
# audit): matters only for steps that run as root, since others run as the invoking user.
KEPT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETGID", "SETUID")


@dataclass(frozen=True)
class Limits:
    """What a step's container may use: declared per step or in [tool.gpuci]; the step wins."""

    memory: str | None = None  # Docker's form: 16g, 512m
    cpus: float | None = None
    pids: int = DEFAULT_PIDS_LIMIT
    network: str | None = None  # a Docker network mode: none, bridge, …


@dataclass(frozen=True)
class Watch:
    """The watcher's and the janitor's orders (harness.run.plan): the run's stop, and the step's deadline
    as a backstop (seconds from the start; None: no deadline, only the supervisor's end)."""

    stop: StopPolicy
    deadline_s: float | None = None


@dataclass(frozen=True)
class RunSpec:
    image: str
    command: tuple[str, ...]
    name: str
    env: dict[str, str] = field(default_factory=dict)
    # Variables that reach the container only through the secrets file (harness.run.secrets), never its
    # configuration: the report names them, never their values.
    secret_env: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    mounts: tuple[BindMount, ...] = ()
    working_dir: str = WORKSPACE
    labels: dict[str, str] = field(default_factory=dict)
    # Device nodes as "host:container:permissions", e.g. AMD's /dev/kfd.
    devices: tuple[str, ...] = ()
    gpu_requests: tuple[GpuRequest, ...] = ()
    group_add: tuple[str, ...] = ()
    user: str | None = None
    shm_size: str = "1g"
    # Docker's network mode; None is the engine's default (GPUCI_NETWORK=none on engines with no bridge).
    network_mode: str | None = None
    limits: Limits = field(default_factory=Limits)
    # The posture every gpuci container has: no setuid escalation, few capabilities.
    no_new_privileges: bool = True
    cap_add: tuple[str, ...] = KEPT_CAPABILITIES
    # Hold the container's stdin open from the supervisor, for the orphan watcher and the janitor
    # (harness/run/plan.py, cleanup/janitor.py), which stop it by the run's StopPolicy.
    watch: Watch | None = None

    def to_report(self, redactor: Redactor) -> dict[str, Any]:
        data = asdict(self)
        data["env"] = redactor.env(self.env)
        data["secret_env"] = sorted(self.secret_env)  # the names only
        data["command"] = [redactor.text(part) for part in self.command]
        return data

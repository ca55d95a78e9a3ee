"""What gpuci knows of one GPU vendor, as data: the `Vendor` each vendor module defines, and the
container options its devices become."""

from __future__ import annotations

import grp
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from harness.gpu.vram.base import Device, VramBackend

CDI_DIRS = ("/etc/cdi", "/var/run/cdi")


@dataclass(frozen=True)
class GpuRequest:
    """Docker's device request: `--gpus device=ID` (a runtime's driver) or CDI names (driver cdi)."""

    device_ids: tuple[str, ...]
    driver: str
    capabilities: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeviceOptions:
    """How leased GPUs reach a container: device nodes, device requests, groups, environment."""

    nodes: tuple[str, ...] = ()
    requests: tuple[GpuRequest, ...] = ()
    groups: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    route: str = "none"


@dataclass(frozen=True)
class HostPaths:
    """Where the host's device nodes and sysfs are: the real ones, or a test's stand-ins."""

    dev: Path = Path("/dev")
    sys: Path = Path("/sys")
    cdi_dirs: tuple[str, ...] = CDI_DIRS


THIS_HOST = HostPaths()


# The engine's runtimes (`docker info`'s Runtimes), asked only by a vendor that needs them.
EngineRuntimes = Callable[[], Collection[str]]
ContainerDevices = Callable[[list[Device], EngineRuntimes, HostPaths], DeviceOptions]


def group_ids(names: tuple[str, ...]) -> tuple[str, ...]:
    """Numeric ids of this host's groups: names inside the image may differ or be missing."""
    ids = []
    for name in names:
        try:
            ids.append(str(grp.getgrnam(name).gr_gid))
        except KeyError:
            continue
    return tuple(ids)


def no_devices(leased: list[Device], runtimes: EngineRuntimes, paths: HostPaths) -> DeviceOptions:
    return DeviceOptions()


def by_index(devices: list[Device]) -> str:
    return ",".join(str(d.index) for d in devices)


def by_id(devices: list[Device]) -> str:
    return ",".join(d.id for d in devices)


@dataclass(frozen=True)
class DriverNode:
    """The node the vendor's kernel driver makes: without it no GPU of the vendor is usable here."""

    path: str
    vendor: str  # as people say it: "NVIDIA"
    driver: str  # the driver that makes the node


@dataclass(frozen=True)
class BaseImage:
    """The vendor's part of its platform's image recipe (harness.ci.init_recipes)."""

    comment: str  # the recipe's first line
    base: str  # the default BASE_IMAGE
    env: str = ""  # one more `ENV` entry, `NAME=value`
    # Lines of containers/requirements.txt the vendor needs in every image (pinned, pure Python).
    requirements: str = ""


@dataclass(frozen=True)
class LintNames:
    """How a project's tests and CI files name this vendor's hardware, for the lint."""

    # Zero-argument calls true on this vendor's platform: a method name (`is_cuda`, any receiver)
    # or a dotted call (`torch.cuda.is_available`).
    skip_calls: tuple[str, ...] = ()
    # Dotted attributes that are truthy only on this vendor's platform (`torch.version.hip`).
    skip_attributes: tuple[str, ...] = ()
    # Variables of the vendor's toolchain on the host (CUDA_HOME): never gates a step must set.
    toolkit_variables: tuple[str, ...] = ()


@dataclass(frozen=True)
class ForeignNames:
    """How pipelines written for other CI harnesses mark a step as this vendor's (harness.declare.areas)."""

    # A step's `device` that is this vendor's agent (regular expression, matched at the start).
    agent_device: str | None = None
    # `mirror: {KEY: {...}}` and `mirror_hardwares: [KEY…]`: the step also runs on this vendor, in this form.
    mirror_key: str | None = None
    # A foreign step with no other mark runs here (the vendor such pipelines are written for).
    default: bool = False


@dataclass(frozen=True)
class Vendor:
    """One GPU vendor: its platform, VRAM backend, devices in containers, pinning, image and lint names."""

    name: str
    # The platform it serves (`containers/<platform>/Dockerfile`, sessions `<platform>_<area>`).
    platform: str
    # Seconds a stop may take on the platform, from stop requested to VRAM back at baseline.
    shutdown_budget_s: float
    # The VRAM backend's name (--vram-backend) and how to open it (raises BackendUnavailable).
    backend: str
    open_backend: Callable[[], VramBackend]
    # Variable that pins a process to GPUs, read by the vendor's runtime before it initialises, and
    # its value for some of the backend's devices.
    visible_variable: str
    visible_value: Callable[[list[Device]], str] = by_index
    container_devices: ContainerDevices = no_devices
    driver_node: DriverNode | None = None
    # Tried when the backend is chosen automatically; one that is not is only used where configured.
    probe: bool = True
    image: BaseImage = BaseImage("", "")
    lint: LintNames = LintNames()
    foreign: ForeignNames = ForeignNames()
    # What a container of a run that leased none of this vendor's GPUs gets, whatever the step or the
    # image says: a host whose default runtime is the vendor's would otherwise pass it every GPU.
    hidden_env: tuple[tuple[str, str], ...] = ()

    def visible_env(self, devices: list[Device]) -> dict[str, str]:
        """The environment that pins a process to `devices` (as this vendor's backend sees them)."""
        return {self.visible_variable: self.visible_value(devices)}

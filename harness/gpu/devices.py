"""Turn leased GPUs into a container's device options, per platform, by what the host offers.

NVIDIA: Docker's GPU device request (`--gpus device=UUID`) where the NVIDIA runtime is
installed, CDI (`nvidia.com/gpu=UUID`) where a CDI spec names the GPUs, else the raw
`/dev/nvidia*` nodes. AMD: `/dev/kfd` plus only the leased GPUs' `/dev/dri/renderD*` nodes,
found through the KFD topology in sysfs, with the `video` and `render` groups by their numeric
ids on this host. No container is ever given privileged mode.
"""

from __future__ import annotations

import glob
import grp
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.declare.platforms import get_platform
from harness.gpu.vram.base import Device

CDI_DIRS = ("/etc/cdi", "/var/run/cdi")
# The node each vendor's kernel driver makes: without it no GPU of that vendor is usable here.
DRIVER_NODES = {
    "cuda": ("/dev/nvidiactl", "NVIDIA", "NVIDIA driver"),
    "rocm": ("/dev/kfd", "AMD", "amdgpu (ROCm) driver"),
}
KFD_TOPOLOGY = "class/kfd/kfd/topology/nodes"


@dataclass(frozen=True)
class NvidiaRequest:
    """Docker's device request: `--gpus device=UUID` (driver nvidia) or CDI names (driver cdi)."""

    device_ids: tuple[str, ...]
    driver: str = "nvidia"
    capabilities: tuple[str, ...] = ("gpu", "utility", "compute")


@dataclass(frozen=True)
class DeviceOptions:
    nodes: tuple[str, ...] = ()
    requests: tuple[NvidiaRequest, ...] = ()
    groups: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    route: str = "none"


@dataclass(frozen=True)
class HostPaths:
    """Where the host's device nodes and sysfs are: the real ones, or a test's stand-ins."""

    dev: Path = Path("/dev")
    sys: Path = Path("/sys")
    cdi_dirs: tuple[str, ...] = CDI_DIRS


def _group_ids(names: tuple[str, ...]) -> tuple[str, ...]:
    """Numeric ids of this host's groups: names inside the image may differ or be missing."""
    ids = []
    for name in names:
        try:
            ids.append(str(grp.getgrnam(name).gr_gid))
        except KeyError:
            continue
    return tuple(ids)


def _cdi_names(paths: HostPaths) -> set[str]:
    names: set[str] = set()
    for directory in paths.cdi_dirs:
        for spec in glob.glob(os.path.join(directory, "*.yaml")) + glob.glob(os.path.join(directory, "*.json")):
            try:
                text = Path(spec).read_text()
            except OSError:
                continue
            if "nvidia.com/gpu" in text:
                names.update(re.findall(r"name:\s*\"?([A-Za-z0-9-]+)\"?", text))
    return names


def nvidia_options(leased: list[Device], has_nvidia_runtime: bool, paths: HostPaths = HostPaths()) -> DeviceOptions:
    if has_nvidia_runtime:
        return DeviceOptions(requests=(NvidiaRequest(tuple(d.id for d in leased)),), route="gpu-request")
    cdi = _cdi_names(paths)
    if leased and all(d.id in cdi for d in leased):
        names = tuple(f"nvidia.com/gpu={d.id}" for d in leased)
        return DeviceOptions(requests=(NvidiaRequest(names, driver="cdi", capabilities=()),), route="cdi")
    # Raw nodes: the control devices plus the leased GPUs' minors; the image brings the libraries.
    nodes = [paths.dev / n for n in ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools")]
    nodes += [paths.dev / f"nvidia{d.index}" for d in leased]
    present = [str(n) for n in nodes if n.exists()]
    return DeviceOptions(
        nodes=tuple(f"{n}:/dev/{Path(n).name}:rwm" for n in present),
        # By UUID: the driver may list GPUs whose nodes are not here, and CUDA's order is not NVML's.
        env={"CUDA_VISIBLE_DEVICES": ",".join(d.id for d in leased)},
        route="raw-nodes",
    )


def amd_render_nodes(leased: list[Device], paths: HostPaths = HostPaths()) -> list[Path]:
    """The leased GPUs' render nodes, by PCI bus id through the KFD topology."""
    wanted = {d.id.lower() for d in leased}
    nodes = []
    for properties in sorted((paths.sys / KFD_TOPOLOGY).glob("*/properties")):
        values = dict(
            line.split(None, 1) for line in properties.read_text().splitlines() if len(line.split(None, 1)) == 2
        )
        location, domain = int(values.get("location_id", 0)), int(values.get("domain", 0))
        minor = int(values.get("drm_render_minor", 0))
        if minor <= 0:
            continue  # a CPU node of the topology
        bus_id = f"{domain:04x}:{location >> 8:02x}:{(location >> 3) & 0x1F:02x}.{location & 0x7}"
        if bus_id in wanted:
            nodes.append(paths.dev / "dri" / f"renderD{minor}")
    return nodes


def amd_options(leased: list[Device], paths: HostPaths = HostPaths()) -> DeviceOptions:
    renders = amd_render_nodes(leased, paths)
    nodes = [paths.dev / "kfd", *renders]
    return DeviceOptions(
        nodes=tuple(f"{n}:/dev/{n.relative_to(paths.dev)}:rwm" for n in nodes if n.exists()),
        groups=_group_ids(("video", "render")),
        # Only the leased GPUs' nodes are in the container: HIP numbers them from 0.
        env={"HIP_VISIBLE_DEVICES": ",".join(str(i) for i in range(len(renders)))} if renders else {},
        route="kfd-render-nodes",
    )


def container_devices(
    platform: str, leased: list[Device], has_nvidia_runtime: bool = True, paths: HostPaths = HostPaths()
) -> DeviceOptions:
    kind = get_platform(platform).device_kind
    if kind == "nvidia" and leased:
        return nvidia_options(leased, has_nvidia_runtime, paths)
    if kind == "amd" and leased:
        return amd_options(leased, paths)
    return DeviceOptions()


def missing_gpu(platform_name: str, session_hint: str | None, dev: str = "/dev") -> str | None:
    """One paragraph when this host lacks the platform's GPU driver node; None when it is there."""
    if platform_name not in DRIVER_NODES:
        return None
    node, vendor, driver = DRIVER_NODES[platform_name]
    node = node.replace("/dev", dev, 1)
    if os.path.exists(node):
        return None
    instead = f"run `{session_hint}` here instead (the same tests on the cpu platform), or " if session_hint else ""
    return (
        f"this host has no {vendor} GPU: {node} (made by the {driver}) does not exist, so the "
        f"{platform_name} platform cannot run here; {instead}run this session on a host with an {vendor} GPU."
    )

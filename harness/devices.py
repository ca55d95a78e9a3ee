"""Turn leased GPUs into a container's device options, per platform. Never --privileged."""

from __future__ import annotations

import glob
import grp
import os
from dataclasses import dataclass, field

from harness.platforms import get_platform
from harness.vram.base import Device


@dataclass(frozen=True)
class NvidiaRequest:
    """Docker's GPU device request (`--gpus device=UUID`)."""

    device_ids: tuple[str, ...]
    driver: str = "nvidia"
    capabilities: tuple[str, ...] = ("gpu", "utility", "compute")


@dataclass(frozen=True)
class DeviceOptions:
    nodes: tuple[str, ...] = ()
    requests: tuple[NvidiaRequest, ...] = ()
    groups: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)


def _group_ids(names: tuple[str, ...]) -> tuple[str, ...]:
    """Numeric ids of this host's groups: names inside the image may differ or be missing."""
    ids = []
    for name in names:
        try:
            ids.append(str(grp.getgrnam(name).gr_gid))
        except KeyError:
            continue
    return tuple(ids)


def container_devices(platform: str, leased: list[Device]) -> DeviceOptions:
    kind = get_platform(platform).device_kind
    if kind == "nvidia" and leased:
        # The Docker GPU device request (`--gpus device=UUID`): the NVIDIA runtime mounts the
        # nodes and driver libraries of exactly the leased GPUs.
        return DeviceOptions(requests=(NvidiaRequest(tuple(d.id for d in leased)),))
    if kind == "amd" and leased:
        # /dev/kfd plus the render nodes; the leased GPUs are then selected by index.
        nodes = ["/dev/kfd", *sorted(glob.glob("/dev/dri/renderD*"))]
        return DeviceOptions(
            nodes=tuple(f"{n}:{n}:rwm" for n in nodes if os.path.exists(n)),
            groups=_group_ids(("video", "render")),
            env={"HIP_VISIBLE_DEVICES": ",".join(str(d.index) for d in leased)},
        )
    return DeviceOptions()

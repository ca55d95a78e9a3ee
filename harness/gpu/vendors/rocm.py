"""AMD GPUs (the rocm platform): VRAM through AMD's `amdsmi` package (written against its documented
Python API), `/dev/kfd` and the leased GPUs' render nodes into containers, HIP_VISIBLE_DEVICES, the
vendor's PyTorch image, and how pipelines and tests name AMD hardware.

Into a container: `/dev/kfd` plus only the leased GPUs' `/dev/dri/renderD*` nodes, found through the
KFD topology in sysfs, with the `video` and `render` groups by their numeric ids on this host. No
container is ever given privileged mode.

Used bytes come from `amdsmi_get_gpu_memory_usage(handle, VRAM)`, which reports bytes
(`amdsmi_get_gpu_vram_usage` reports MiB and is not used). The process list is kept as a
cross-check: some ROCm releases reported a used-VRAM figure that never moved, so when no
process holds memory but the counter says otherwise for longer than STUCK_COUNTER_S, the
holders' sum is believed instead. Not verified on AMD hardware (none was available).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from harness.gpu.vendors.vendor import (
    THIS_HOST,
    BaseImage,
    DeviceOptions,
    DriverNode,
    EngineRuntimes,
    ForeignNames,
    HostPaths,
    LintNames,
    Vendor,
    group_ids,
)
from harness.gpu.vram.base import Device, Holder, initialising, vendor_library

# How long a used-VRAM counter may disagree with an empty process list before it is distrusted.
STUCK_COUNTER_S = 10.0
# amdsmi documents at least a second between process-list calls; release waits poll far faster.
PROCESS_LIST_EVERY_S = 1.0
KFD_TOPOLOGY = "class/kfd/kfd/topology/nodes"


class AmdSmiBackend:
    name = "amdsmi"

    def __init__(self, amdsmi: ModuleType | None = None) -> None:
        self._smi = amdsmi = vendor_library(amdsmi, "amdsmi", "amdsmi")
        with initialising("amdsmi"):
            amdsmi.amdsmi_init()
            handles = list(amdsmi.amdsmi_get_processor_handles())
        self._handles: dict[int, Any] = dict(enumerate(handles))
        self._devices = [self._device(i, h) for i, h in self._handles.items()]
        # device id -> (counter value, first time it was seen with no holders)
        self._disagreement: dict[str, tuple[int, float]] = {}
        # device id -> (when the process list was read, whether anyone held memory)
        self._held_seen: dict[str, tuple[float, bool]] = {}

    def _device(self, index: int, handle: Any) -> Device:
        vram = self._smi.AmdSmiMemoryType.VRAM
        bus_id = str(self._smi.amdsmi_get_gpu_device_bdf(handle))
        try:
            name = str(self._smi.amdsmi_get_gpu_asic_info(handle).get("market_name", "AMD GPU"))
        except Exception:
            name = "AMD GPU"
        total = int(self._smi.amdsmi_get_gpu_memory_total(handle, vram))
        return Device(index, bus_id, name, total)

    def devices(self) -> list[Device]:
        return list(self._devices)

    def used_bytes(self, device: Device) -> int:
        handle = self._handles[device.index]
        used = int(self._smi.amdsmi_get_gpu_memory_usage(handle, self._smi.AmdSmiMemoryType.VRAM))
        return self._cross_checked(device, used)

    def _anyone_holds(self, device: Device) -> bool:
        now = time.monotonic()
        seen_at, held = self._held_seen.get(device.id, (-PROCESS_LIST_EVERY_S, False))
        if now - seen_at >= PROCESS_LIST_EVERY_S:
            held = bool(self.holders(device))
            self._held_seen[device.id] = (now, held)
        return held

    def _cross_checked(self, device: Device, used: int) -> int:
        if self._anyone_holds(device):
            self._disagreement.pop(device.id, None)
            return used
        value, since = self._disagreement.get(device.id, (used, time.monotonic()))
        if value != used:
            value, since = used, time.monotonic()
        self._disagreement[device.id] = (value, since)
        if time.monotonic() - since > STUCK_COUNTER_S:
            # The counter has not moved for long with nobody holding memory: it is stale.
            return 0
        return used

    def holders(self, device: Device) -> list[Holder]:
        try:
            processes = self._smi.amdsmi_get_gpu_process_list(self._handles[device.index])
        except Exception:
            return []
        holders = []
        for proc in processes:
            info = (
                proc
                if isinstance(proc, dict)
                else self._smi.amdsmi_get_gpu_process_info(self._handles[device.index], proc)
            )
            memory = info.get("memory_usage", {}) or {}
            vram = memory.get("vram_mem", info.get("mem"))
            holders.append(Holder(int(info["pid"]), None if vram is None else int(vram), device.id))
        return holders

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._smi.amdsmi_shut_down()


def amd_render_nodes(leased: list[Device], paths: HostPaths = THIS_HOST) -> list[Path]:
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


def container_devices(leased: list[Device], runtimes: EngineRuntimes, paths: HostPaths) -> DeviceOptions:
    renders = amd_render_nodes(leased, paths)
    nodes = [paths.dev / "kfd", *renders]
    return DeviceOptions(
        nodes=tuple(f"{n}:/dev/{n.relative_to(paths.dev)}:rwm" for n in nodes if n.exists()),
        groups=group_ids(("video", "render")),
        # Only the leased GPUs' nodes are in the container: HIP numbers them from 0.
        env={"HIP_VISIBLE_DEVICES": ",".join(str(i) for i in range(len(renders)))} if renders else {},
        route="kfd-render-nodes",
    )


VENDOR = Vendor(
    name="rocm",
    platform="rocm",
    # HIP/RCCL teardown is slower than CUDA's, hence the larger budget.
    shutdown_budget_s=4.0,
    backend="amdsmi",
    open_backend=AmdSmiBackend,
    visible_variable="HIP_VISIBLE_DEVICES",
    container_devices=container_devices,
    driver_node=DriverNode("/dev/kfd", "AMD", "amdgpu (ROCm) driver"),
    image=BaseImage(
        "# gpuci rocm image: AMD GPUs; the vendor's PyTorch image by default.",
        "rocm/pytorch:rocm6.2.4_ubuntu22.04_py3.10_pytorch_release_2.3.0",
    ),
    lint=LintNames(
        skip_calls=("is_rocm", "is_cuda_alike", "torch.cuda.is_available"),
        skip_attributes=("torch.version.hip",),
        toolkit_variables=("ROCM_PATH", "ROCM_HOME", "HIP_PATH"),
    ),
    # An AMD Instinct agent (mi250_1, mi300_8); `mirror.amd` (or `mirror_hardwares: [amdexperimental]`).
    foreign=ForeignNames(agent_device=r"mi\d{3}", mirror_key="amd"),
)

"""NVIDIA GPUs (the cuda platform): VRAM through NVML (nvidia-ml-py; a memory query costs about 10 µs
on an H100), the GPUs into containers, CUDA_VISIBLE_DEVICES by UUID, the vendor's PyTorch image.

Into a container: Docker's GPU device request (`--gpus device=UUID`) where the NVIDIA runtime is
installed, CDI (`nvidia.com/gpu=UUID`) where a CDI spec names the GPUs, else the raw `/dev/nvidia*`
nodes. No container is ever given privileged mode.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
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
    GpuRequest,
    HostPaths,
    LintNames,
    Vendor,
    by_id,
)
from harness.gpu.vram.base import Device, Holder, initialising, vendor_library


class NvmlBackend:
    name = "nvml"

    def __init__(self, nvml: ModuleType | None = None) -> None:
        self._nvml = nvml = vendor_library(nvml, "pynvml", "nvidia-ml-py")
        with initialising("NVML"):  # NVMLError subclasses by driver state; all mean "not here"
            nvml.nvmlInit()
        self._handles: dict[int, Any] = {}
        self._devices = [self._device(i) for i in range(nvml.nvmlDeviceGetCount())]
        self._memory_v2 = self._probe_memory_v2()

    def _device(self, index: int) -> Device:
        handle = self._nvml.nvmlDeviceGetHandleByIndex(index)
        self._handles[index] = handle
        uuid = self._nvml.nvmlDeviceGetUUID(handle)
        name = self._nvml.nvmlDeviceGetName(handle)
        total = self._nvml.nvmlDeviceGetMemoryInfo(handle).total
        return Device(index, _text(uuid), _text(name), int(total))

    def _probe_memory_v2(self) -> bool:
        """Memory info v2 separates reserved memory from used; older drivers lack it."""
        if not self._devices or not hasattr(self._nvml, "nvmlMemory_v2"):
            return False
        try:
            self._nvml.nvmlDeviceGetMemoryInfo(self._handles[0], version=self._nvml.nvmlMemory_v2)
        except Exception:
            return False
        return True

    def devices(self) -> list[Device]:
        return list(self._devices)

    def used_bytes(self, device: Device) -> int:
        handle = self._handles[device.index]
        if self._memory_v2:
            return int(self._nvml.nvmlDeviceGetMemoryInfo(handle, version=self._nvml.nvmlMemory_v2).used)
        return int(self._nvml.nvmlDeviceGetMemoryInfo(handle).used)

    def holders(self, device: Device) -> list[Holder]:
        processes = self._nvml.nvmlDeviceGetComputeRunningProcesses(self._handles[device.index])
        return [
            Holder(int(p.pid), None if p.usedGpuMemory is None else int(p.usedGpuMemory), device.id) for p in processes
        ]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._nvml.nvmlShutdown()


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def gpu_request(device_ids: tuple[str, ...]) -> GpuRequest:
    """`--gpus device=UUID`: the NVIDIA runtime's device request."""
    return GpuRequest(device_ids, driver="nvidia", capabilities=("gpu", "utility", "compute"))


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


def nvidia_options(leased: list[Device], has_nvidia_runtime: bool, paths: HostPaths = THIS_HOST) -> DeviceOptions:
    if has_nvidia_runtime:
        return DeviceOptions(requests=(gpu_request(tuple(d.id for d in leased)),), route="gpu-request")
    cdi = _cdi_names(paths)
    if leased and all(d.id in cdi for d in leased):
        names = tuple(f"nvidia.com/gpu={d.id}" for d in leased)
        return DeviceOptions(requests=(GpuRequest(names, driver="cdi", capabilities=()),), route="cdi")
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


def container_devices(leased: list[Device], runtimes: EngineRuntimes, paths: HostPaths) -> DeviceOptions:
    """The NVIDIA runtime's GPU request where the engine has it; CDI or raw nodes otherwise."""
    return nvidia_options(leased, "nvidia" in runtimes(), paths)


VENDOR = Vendor(
    name="cuda",
    platform="cuda",
    shutdown_budget_s=2.1,
    backend="nvml",
    open_backend=NvmlBackend,
    # By UUID: CUDA takes UUIDs, and its own device order need not be NVML's.
    visible_variable="CUDA_VISIBLE_DEVICES",
    visible_value=by_id,
    container_devices=container_devices,
    driver_node=DriverNode("/dev/nvidiactl", "NVIDIA", "NVIDIA driver"),
    image=BaseImage(
        "# gpuci cuda image: NVIDIA GPUs; the vendor's PyTorch image by default.",
        "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
        env="NVIDIA_DRIVER_CAPABILITIES=compute,utility",
        requirements=(
            "# NVML for gpuci's VRAM guard inside CUDA images (pure Python; it finds no driver elsewhere and steps"
            " aside).\nnvidia-ml-py==13.615.71\n"
        ),
    ),
    lint=LintNames(
        skip_calls=("is_cuda", "is_cuda_alike", "torch.cuda.is_available"),
        skip_attributes=("torch.version.cuda",),
        toolkit_variables=("CUDA_HOME", "CUDA_PATH"),
    ),
    # Pipelines written for other harnesses are written for CUDA: a step with no other mark runs here.
    foreign=ForeignNames(default=True),
    # NVIDIA's runtime reads this (a CUDA base image sets it to `all`); `void` passes no GPU.
    hidden_env=(("NVIDIA_VISIBLE_DEVICES", "void"),),
)

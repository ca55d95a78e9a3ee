"""NVIDIA GPUs through NVML (nvidia-ml-py). A memory query costs about 10 µs on an H100."""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Any

from harness.gpu.vram.base import BackendUnavailable, Device, Holder


class NvmlBackend:
    name = "nvml"

    def __init__(self, nvml: ModuleType | None = None) -> None:
        if nvml is None:
            try:
                import pynvml as nvml
            except ImportError as exc:
                raise BackendUnavailable(f"nvidia-ml-py is not installed ({exc})") from None
        self._nvml = nvml
        try:
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError subclasses by driver state; all mean "not here".
            raise BackendUnavailable(f"NVML did not initialise: {exc}") from None
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

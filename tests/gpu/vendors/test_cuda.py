"""The cuda vendor's NVML backend through the protocol, against a stand-in of nvidia-ml-py.

Only the vendor library is stood in for (there is no GPU in CI); the same code ran against the real
NVML on the H100 (bench/results/h100-teardown.json).
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import pytest

from harness.gpu.vendors.cuda import NvmlBackend
from harness.gpu.vram.base import BackendUnavailable

MIB = 1024**2


def fake_nvml(used: int, with_v2: bool = True) -> types.SimpleNamespace:
    @dataclass
    class Mem:
        total: int
        used: int

    @dataclass
    class Proc:
        pid: int
        usedGpuMemory: int | None  # NVML's own field name

    def memory(handle, version=None):  # type: ignore[no-untyped-def]
        if version is not None and not with_v2:
            raise RuntimeError("NVML_ERROR_FUNCTION_NOT_FOUND")
        # v1 counts the driver's reserved memory as used; v2 does not.
        return Mem(80 * 1024 * MIB, used if version else used + 480 * MIB)

    return types.SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: f"h{i}",
        nvmlDeviceGetUUID=lambda h: b"GPU-1234",
        nvmlDeviceGetName=lambda h: "NVIDIA H100 80GB HBM3",
        nvmlDeviceGetMemoryInfo=memory,
        nvmlMemory_v2=0x02000028,
        nvmlDeviceGetComputeRunningProcesses=lambda h: [Proc(41, 4 * 1024 * MIB), Proc(42, None)],
    )


def test_nvml_reads_memory_info_v2_and_holders() -> None:
    backend = NvmlBackend(fake_nvml(used=4 * 1024 * MIB))
    (device,) = backend.devices()
    assert (device.id, device.name) == ("GPU-1234", "NVIDIA H100 80GB HBM3")
    assert backend.used_bytes(device) == 4 * 1024 * MIB
    assert [(h.pid, h.used_bytes) for h in backend.holders(device)] == [(41, 4 * 1024 * MIB), (42, None)]


def test_nvml_falls_back_to_v1_on_older_drivers() -> None:
    backend = NvmlBackend(fake_nvml(used=MIB, with_v2=False))
    assert backend.used_bytes(backend.devices()[0]) == MIB + 480 * MIB


def test_nvml_that_does_not_initialise_is_unavailable() -> None:
    def fail() -> None:
        raise RuntimeError("NVML_ERROR_DRIVER_NOT_LOADED")

    with pytest.raises(BackendUnavailable, match="did not initialise"):
        NvmlBackend(types.SimpleNamespace(nvmlInit=fail))

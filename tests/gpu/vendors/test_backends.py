"""NVML and amdsmi backends through the protocol, against stand-ins of their Python modules.

Only the vendor libraries are stood in for (there is no GPU in CI); the same code ran against
the real NVML on the H100 (bench/results/h100-teardown.json).
"""

from __future__ import annotations

import types
from dataclasses import dataclass

import pytest

from harness.gpu.vendors.cuda import NvmlBackend
from harness.gpu.vendors.rocm import AmdSmiBackend
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


class FakeAmdSmi:
    """amdsmi's documented Python API: memory usage in bytes, process list as dicts."""

    class AmdSmiMemoryType:
        VRAM = "VRAM"

    def __init__(self, used: int, processes: list[dict]) -> None:
        self.used, self.processes = used, processes

    def amdsmi_init(self) -> None: ...
    def amdsmi_shut_down(self) -> None: ...
    def amdsmi_get_processor_handles(self) -> list[str]:
        return ["gpu0"]

    def amdsmi_get_gpu_device_bdf(self, handle: str) -> str:
        return "0000:c1:00.0"

    def amdsmi_get_gpu_asic_info(self, handle: str) -> dict:
        return {"market_name": "AMD Instinct MI300X"}

    def amdsmi_get_gpu_memory_total(self, handle: str, kind: str) -> int:
        return 192 * 1024**3

    def amdsmi_get_gpu_memory_usage(self, handle: str, kind: str) -> int:
        assert kind == "VRAM"
        return self.used

    def amdsmi_get_gpu_vram_usage(self, handle: str) -> dict:  # MiB: must not be used
        raise AssertionError("amdsmi_get_gpu_vram_usage reports MiB; gpuci reads bytes")

    def amdsmi_get_gpu_process_list(self, handle: str) -> list[dict]:
        return self.processes


def test_amdsmi_reads_bytes_by_pci_bus_id_with_holders() -> None:
    smi = FakeAmdSmi(3 * 1024**3, [{"pid": 7, "memory_usage": {"vram_mem": 3 * 1024**3}}])
    backend = AmdSmiBackend(smi)  # type: ignore[arg-type]
    (device,) = backend.devices()
    assert (device.id, device.name, device.total_bytes) == (
        "0000:c1:00.0",
        "AMD Instinct MI300X",
        192 * 1024**3,
    )
    assert backend.used_bytes(device) == 3 * 1024**3
    assert [(h.pid, h.used_bytes) for h in backend.holders(device)] == [(7, 3 * 1024**3)]


def test_amdsmi_distrusts_a_counter_that_never_moves_with_no_holders(monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.gpu.vendors.rocm as module

    smi = FakeAmdSmi(5 * 1024**3, [])
    backend = AmdSmiBackend(smi)  # type: ignore[arg-type]
    device = backend.devices()[0]
    clock = [100.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    assert backend.used_bytes(device) == 5 * 1024**3  # believed at first: it may be a release lag
    clock[0] += module.STUCK_COUNTER_S + 1
    assert backend.used_bytes(device) == 0  # stuck for long with nobody holding: stale
    smi.processes = [{"pid": 9, "mem": 1024}]
    clock[0] += module.PROCESS_LIST_EVERY_S  # the process list is read at most once a second
    assert backend.used_bytes(device) == 5 * 1024**3  # a holder again: the counter is believed


def test_amdsmi_reads_the_process_list_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """Release waits poll every half millisecond; amdsmi wants a second between process-list calls."""
    import harness.gpu.vendors.rocm as module

    smi = FakeAmdSmi(1024, [])
    calls = []
    listing = smi.amdsmi_get_gpu_process_list
    smi.amdsmi_get_gpu_process_list = lambda handle: calls.append(handle) or listing(handle)  # type: ignore[method-assign]
    backend = AmdSmiBackend(smi)  # type: ignore[arg-type]
    clock = [0.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    for _ in range(100):
        backend.used_bytes(backend.devices()[0])
        clock[0] += 0.0005
    assert len(calls) == 1

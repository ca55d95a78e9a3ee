"""The rocm vendor's amdsmi backend through the protocol, against a stand-in of AMD's amdsmi module
(no AMD GPU was available: written against its documented Python API)."""

from __future__ import annotations

import pytest

from harness.gpu.vendors.rocm import AmdSmiBackend


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

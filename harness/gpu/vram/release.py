"""Waiting until leased GPUs are back at their baseline, and naming who holds them when not."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.gpu.vram.base import Device, VramBackend

# Used bytes within this of the baseline count as released (allocator caches, driver noise).
DEFAULT_TOLERANCE = 16 * 1024**2


@dataclass(frozen=True)
class HolderInfo:
    pid: int
    device_id: str
    used_bytes: int | None
    command: str


@dataclass
class ReleaseResult:
    released: bool
    seconds: float
    tolerance_bytes: int
    baseline: dict[str, int]
    final_used: dict[str, int]
    polls: int
    holders: list[HolderInfo] = field(default_factory=list)


@dataclass(frozen=True)
class VramWatch:
    """The GPUs a run leased and watches for release: their backend, the devices, how long their memory
    may take to come back (the run's vram_timeout: no default of its own), and what counts as back."""

    backend: VramBackend
    devices: list[Device]
    timeout_s: float
    tolerance_bytes: int = DEFAULT_TOLERANCE


def take_baseline(backend: VramBackend, devices: list[Device]) -> dict[str, int]:
    return {d.id: backend.used_bytes(d) for d in devices}


def _poll_interval(elapsed: float) -> float:
    """Fast at first, where the release almost always lands (a query costs ~10 µs), then calmer."""
    if elapsed < 2.0:
        return 0.0005
    if elapsed < 10.0:
        return 0.01
    return 0.1


def describe_holders(backend: VramBackend, devices: list[Device]) -> list[HolderInfo]:
    import psutil  # only to name a holder: a run that releases its GPUs never imports it

    found = []
    for device in devices:
        for holder in backend.holders(device):
            try:
                command = " ".join(psutil.Process(holder.pid).cmdline()) or psutil.Process(holder.pid).name()
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                command = "?"
            found.append(HolderInfo(holder.pid, device.id, holder.used_bytes, command))
    return found


def wait_for_release(
    backend: VramBackend,
    devices: list[Device],
    baseline: dict[str, int],
    timeout: float,
    tolerance: int = DEFAULT_TOLERANCE,
    progress: Callable[[float, dict[str, int]], None] | None = None,
) -> ReleaseResult:
    """Poll until every device's used bytes are at most baseline + tolerance, or time out."""
    started = time.monotonic()
    polls = 0
    next_progress = started + 2.0
    while True:
        used = {d.id: backend.used_bytes(d) for d in devices}
        polls += 1
        now = time.monotonic()
        if all(used[d.id] <= baseline[d.id] + tolerance for d in devices):
            return ReleaseResult(True, now - started, tolerance, baseline, used, polls)
        if now - started >= timeout:
            return ReleaseResult(
                False, now - started, tolerance, baseline, used, polls, describe_holders(backend, devices)
            )
        if progress and now >= next_progress:
            progress(now - started, used)
            next_progress = now + 2.0
        time.sleep(_poll_interval(now - started))

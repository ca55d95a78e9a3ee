"""GPU leases: a lock per device (by UUID / PCI bus id) that the kernel drops when its holder dies.

Two sessions on one host (two Buildkite agents, two terminals, two xdist workers) get disjoint
GPUs; one that finds none free waits up to a timeout, then fails as infrastructure (exit 75,
retried) naming the holder.

The lease file records its holder (owner, run id, the GPU's used bytes before the run). A clean
run unlinks it; so a lease taken over a file that still has a record is a crashed run's, and the
new holder gets that record (`Lease.predecessors`) to wait until the GPU is back where it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.console import say
from harness.errors import InfrastructureError
from harness.gpu.locks import lock_path
from harness.gpu.vram.base import Device


@dataclass
class Lease:
    devices: list[Device]
    _fds: list[int] = field(default_factory=list, repr=False)
    # Device id -> the record a crashed holder left in its lease file.
    predecessors: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Devices whose crashed holder's leftovers are gone: released cleanly from then on.
    settled: set[str] = field(default_factory=set)

    def note(self, device: Device, record: dict[str, Any]) -> None:
        """Rewrite this lease's record for `device` (what a later holder reads after a crash);
        from here the device counts as handed over."""
        self.settled.add(device.id)
        fd = self._fds[self.devices.index(device)]
        data = json.dumps(record).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)

    def release(self) -> None:
        # Unlinked while still locked, so no lease file outlives a clean run; a process waiting
        # on the old file notices it was replaced (see _try_lock) and locks the new one.
        for device, fd in zip(self.devices, self._fds, strict=True):
            if device.id in self.predecessors and device.id not in self.settled:
                # Not handed over yet (a half-taken round, a handoff that timed out): the crashed
                # holder's record stays for the next taker, as it was found.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, json.dumps(self.predecessors[device.id]).encode(), 0)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(lock_path(f"gpu-{device.id}"))
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _record(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        return {"owner": text}  # a lease file of an older gpuci: the owner alone
    return data if isinstance(data, dict) else {"owner": text}


def _try_lock(device: Device, owner: str, predecessors: dict[str, dict[str, Any]]) -> int | None:
    path = lock_path(f"gpu-{device.id}")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    try:
        same = os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        same = False
    if not same:  # its holder released and unlinked it between our open and our lock
        os.close(fd)
        return _try_lock(device, owner, predecessors)
    left = os.pread(fd, 65536, 0).decode(errors="replace").strip()
    if left:  # locked by nobody, yet not unlinked: its holder died holding it
        predecessors[device.id] = _record(left)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"owner": owner}).encode(), 0)
    return fd


def holder_of(device: Device) -> str:
    try:
        text = lock_path(f"gpu-{device.id}").read_text().strip()
    except OSError:
        return "unknown"
    return str(_record(text).get("owner") or "unknown") if text else "unknown"


def acquire(candidates: list[Device], count: int, owner: str, timeout: float = 0.0) -> Lease:
    """Lock `count` of the candidate devices, in order; wait up to `timeout` for enough to be free."""
    deadline = time.monotonic() + timeout
    next_note = time.monotonic()
    while True:
        lease = Lease([])
        try:
            for device in candidates:
                if len(lease.devices) == count:
                    break
                fd = _try_lock(device, owner, lease.predecessors)
                if fd is not None:
                    lease.devices.append(device)
                    lease._fds.append(fd)
        except BaseException:  # a cancel mid-round: no lock of a half-taken lease stays behind
            lease.release()
            raise
        if len(lease.devices) == count:
            lease.predecessors = {k: v for k, v in lease.predecessors.items() if k in {d.id for d in lease.devices}}
            return lease
        lease.release()
        if time.monotonic() >= next_note and time.monotonic() < deadline:
            holders = ", ".join(f"{d.id} ({holder_of(d)})" for d in candidates)
            say(f"waiting for {count} free GPU(s), up to {deadline - time.monotonic():.0f}s more; leased: {holders}")
            next_note = time.monotonic() + 10
        if time.monotonic() >= deadline:
            busy = ", ".join(f"{d.id} (held by {holder_of(d)})" for d in candidates)
            raise InfrastructureError(
                f"needed {count} free GPU(s) and waited {timeout:.0f}s; all candidates are leased: {busy}. "
                "Another run is using them; the step is retried."
            )
        time.sleep(0.2)


def lease_files() -> list[Path]:
    """Every GPU lease file on this host (held or not)."""
    return sorted(lock_path("gpu-x").parent.glob("gpuci-gpu-*.lock"))

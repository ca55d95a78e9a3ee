"""A GPU is handed to a run only when nothing of a crashed older run is on it.

The lease says when its last holder crashed (its record is still in the lease file). Then, before
the run starts, that run's containers are removed and its processes on the GPU killed (their
supervisor is dead: nothing else would stop them), and the run waits, bounded, until the GPU's
memory is back at the baseline the crashed run recorded (ROCm frees memory seconds after the
process exits). Holders of no gpuci run are named; if the GPU is not back in time the run stops
with 75 and the record stays for the next taker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from harness.console import say
from harness.errors import InfrastructureError
from harness.gpu.lease import Lease
from harness.gpu.vram.base import Device
from harness.gpu.vram.release import VramWatch
from harness.units import format_size

NOTE_EVERY_S = 2.0


# Removes the containers of crashed runs, by their run ids: the container backend's (harness.run.container.docker).
RemoveContainers = Callable[[set[str]], None]


def hand_over(watch: VramWatch, held: Lease, run_id: str, remove_containers: RemoveContainers | None) -> None:
    """Wait until every leased GPU is free of crashed runs (their containers removed by `remove_containers`
    where the run has a container backend), then record this run as its holder."""
    pending = {d.id: held.predecessors[d.id] for d in held.devices if d.id in held.predecessors}
    if pending:
        _clear(watch, pending, remove_containers)
    for device in held.devices:
        held.note(device, {"owner": f"run {run_id} (pid {os.getpid()})", "run_id": run_id,
                           "baseline_bytes": watch.backend.used_bytes(device)})  # fmt: skip


def _clear(watch: VramWatch, pending: dict[str, dict[str, Any]], remove_containers: RemoveContainers | None) -> None:
    crashed = {str(r.get("run_id")) for r in pending.values() if r.get("run_id")}
    names = ", ".join(sorted(crashed)) or "an older run"
    say(f"the leased GPU(s) were last held by {names}, whose supervisor died; clearing what it left")
    started = time.monotonic()
    deadline = started + watch.timeout_s
    next_note = started + NOTE_EVERY_S
    next_containers = started
    while True:
        if crashed and time.monotonic() >= next_containers:
            if remove_containers is not None:
                remove_containers(crashed)
            _kill_processes(crashed)  # host mode: the crashed run's helpers that hold no GPU memory too
            next_containers = time.monotonic() + 1.0
        left = []
        for device in watch.devices:
            record = pending.get(device.id)
            if record is None:
                continue
            _kill_holders(watch, device, crashed)
            used = watch.backend.used_bytes(device)
            baseline = record.get("baseline_bytes")
            if isinstance(baseline, int) and used > baseline + watch.tolerance_bytes:
                left.append((device, used, baseline))
        if not left:
            say(f"the leased GPU(s) are back at their baseline after {time.monotonic() - started:.2f}s")
            return
        now = time.monotonic()
        if now >= deadline:
            raise InfrastructureError(_still_held(watch, left, names))
        if now >= next_note:
            state = ", ".join(f"{d.id}: {format_size(u)} used, {format_size(b)} before" for d, u, b in left)
            say(f"waiting for the crashed run's GPU memory to be freed ({state}); up to {deadline - now:.0f}s more")
            next_note = now + NOTE_EVERY_S
        time.sleep(0.05)


def _kill_processes(crashed: set[str]) -> None:
    """Every process that carries a crashed run's id (its supervisor is dead: nothing else ends them)."""
    import psutil  # a handoff's own: a run that finds no crashed one never imports it

    for proc in psutil.process_iter():
        try:
            run_id = proc.environ().get("GPUCI_RUN_ID")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if run_id in crashed:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()


def _kill_holders(watch: VramWatch, device: Device, crashed: set[str]) -> None:
    import psutil

    for holder in watch.backend.holders(device):
        try:
            run_id = psutil.Process(holder.pid).environ().get("GPUCI_RUN_ID")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if run_id in crashed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(holder.pid, signal.SIGKILL)


def _still_held(watch: VramWatch, left: list[tuple[Device, int, int]], names: str) -> str:
    parts = []
    for device, used, baseline in left:
        holders = "; ".join(f"pid {h.pid}" for h in watch.backend.holders(device)) or "no process listed"
        parts.append(f"{device.id}: {format_size(used)} used, {format_size(baseline)} before ({holders})")
    return (
        f"the leased GPU(s) did not come back to their baseline within {watch.timeout_s:.0f}s after {names} "
        f"crashed: {'; '.join(parts)}. The step is retried; if it keeps failing, `gpuci reap` names what holds them."
    )

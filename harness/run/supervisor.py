"""Supervise one workload: start, wait, stop (SIGTERM, grace, SIGKILL), wait for VRAM, time every phase.

The workload is a container or a host process tree behind one small interface. Waits for exit
are blocking (a waiter thread in `wait()`), never sleep loops; the main thread sleeps in
`select` on two pipes, one written when the workload exits and one by the signal wakeup fd,
so Ctrl-C or the Buildkite agent's SIGTERM turns into an orderly stop at once.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from harness.console import say
from harness.gpu.vram.base import Device, VramBackend
from harness.gpu.vram.release import HolderInfo, ReleaseResult, describe_holders, take_baseline, wait_for_release
from harness.run.process_tree import StopPolicy
from harness.units import format_size

DEFAULT_STOP = StopPolicy()
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Workload(Protocol):
    def start(self) -> None: ...

    def wait(self) -> int:
        """Block until the workload exits; its exit code."""
        ...

    def signal(self, signum: int) -> None: ...

    def host_pids(self) -> set[int]:
        """Host PIDs that belong to this run now (for naming and killing holders)."""
        ...

    def remove(self) -> bool:
        """Take down whatever is left (container, escaped processes), finish its logs; True when
        nothing remains."""
        ...


@dataclass(frozen=True)
class VramWatch:
    backend: VramBackend
    devices: list[Device]
    timeout_s: float = 60.0
    tolerance_bytes: int = 16 * 1024**2


@dataclass
class Supervised:
    exit_code: int | None
    stop_reason: str  # exited | timeout | SIGINT | SIGTERM | start-failed
    signals_sent: list[str]
    timings: dict[str, float]
    budget_s: float
    baseline: dict[str, int] = field(default_factory=dict)
    release: ReleaseResult | None = None
    killed_holders: list[HolderInfo] = field(default_factory=list)
    # Processes already holding the leased GPUs when the run began (a dirty baseline).
    baseline_holders: list[HolderInfo] = field(default_factory=list)
    removed: bool = True

    @property
    def stop_s(self) -> float | None:
        """Stop requested (or exit noticed) to VRAM back: what the budget is judged on."""
        if "vram_back_s" not in self.timings:
            return None
        return self.timings.get("exited_s", 0.0) + self.timings["vram_back_s"]

    @property
    def budget_margin_s(self) -> float | None:
        return None if self.stop_s is None else self.budget_s - self.stop_s

    def teardown_failures(self) -> list[str]:
        """Why the teardown failed (DESIGN's exit 3): VRAM not released in time (even if killing this
        run's holders released it later), survivors, the stop over its budget; empty when it did not."""
        reasons = []
        if self.release is not None and not self.release.released:
            reasons.append("VRAM not back at baseline")
        elif self.killed_holders:
            reasons.append("VRAM back only after killing this run's holders")
        if not self.removed or self.exit_code is None:
            reasons.append("processes or the container survived")
        if self.budget_margin_s is not None and self.budget_margin_s < 0:
            reasons.append(f"stop took {self.stop_s:.2f}s, over the {self.budget_s:.1f}s budget")
        return reasons

    @property
    def teardown_failed(self) -> bool:
        return bool(self.teardown_failures())


class _Wakeups:
    """Pipes the main thread selects on: workload exit and stop signals."""

    def __init__(self) -> None:
        self.exit_r, self.exit_w = os.pipe()
        self.sig_r, self.sig_w = os.pipe()
        os.set_blocking(self.sig_w, False)
        self.exit_code: int | None = None

    def watch(self, wait: Callable[[], int]) -> None:
        def waiter() -> None:
            try:
                self.exit_code = wait()
            finally:
                os.write(self.exit_w, b"x")

        threading.Thread(target=waiter, daemon=True, name="gpuci-waiter").start()

    def next(self, timeout: float | None) -> str | None:
        """'exit', a signal name, or None on timeout."""
        ready, _, _ = select.select([self.exit_r, self.sig_r], [], [], timeout)
        if self.exit_r in ready:
            return "exit"
        if self.sig_r in ready:
            data = os.read(self.sig_r, 64)
            return signal.Signals(data[-1]).name if data else None
        return None

    def close(self) -> None:
        for fd in (self.exit_r, self.exit_w, self.sig_r, self.sig_w):
            os.close(fd)


@contextlib.contextmanager
def _stop_signals(wakeups: _Wakeups) -> Iterator[None]:
    """Route SIGINT/SIGTERM to the wakeup pipe while the run is supervised (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, lambda *_: None) for s in STOP_SIGNALS}
    old_fd = signal.set_wakeup_fd(wakeups.sig_w, warn_on_full_buffer=False)
    try:
        yield
    finally:
        signal.set_wakeup_fd(old_fd)
        for s, handler in previous.items():
            signal.signal(s, handler)


def supervise(
    workload: Workload,
    *,
    timeout_s: float | None,
    budget_s: float,
    stop: StopPolicy = DEFAULT_STOP,
    vram: VramWatch | None = None,
) -> Supervised:
    wakeups = _Wakeups()
    timings: dict[str, float] = {}
    signals_sent: list[str] = []
    try:
        with _stop_signals(wakeups):
            baseline = take_baseline(vram.backend, vram.devices) if vram else {}
            dirty = _dirty_baseline(vram, baseline) if vram else []
            t0 = time.monotonic()
            try:
                workload.start()
            except BaseException:
                workload.remove()
                raise
            timings["start_s"] = time.monotonic() - t0
            wakeups.watch(workload.wait)
            t_run = time.monotonic()
            event = wakeups.next(timeout_s)
            timings["run_s"] = time.monotonic() - t_run
            reason = "exited" if event == "exit" else (event or "timeout")
            t_stop = time.monotonic()
            if event != "exit":
                say(f"stopping the workload ({'step timeout' if event is None else event})")
                _stop(workload, wakeups, stop, signals_sent)
                timings["exited_s"] = time.monotonic() - t_stop
            t_remove = time.monotonic()
            removed = workload.remove()
            timings["remove_s"] = time.monotonic() - t_remove
            result = Supervised(wakeups.exit_code, reason, signals_sent, timings, budget_s, baseline, removed=removed)
            result.baseline_holders = dirty
            if vram:
                _await_release(workload, vram, result, t_stop)
            return result
    finally:
        wakeups.close()


def _dirty_baseline(vram: VramWatch, baseline: dict[str, int]) -> list[HolderInfo]:
    """A run compares against what the GPUs held when it began; say so when that was not empty."""
    if all(used <= vram.tolerance_bytes for used in baseline.values()):
        return []
    holders = describe_holders(vram.backend, vram.devices)
    used = ", ".join(f"{k}: {format_size(v)}" for k, v in baseline.items())
    names = "; ".join(f"pid {h.pid} {h.command[:60]}" for h in holders) or "no process listed"
    say(f"warning: the leased GPUs were not empty at the start ({used}; {names}); release is judged against that")
    return holders


def _stop(workload: Workload, wakeups: _Wakeups, stop: StopPolicy, sent: list[str]) -> None:
    workload.signal(signal.SIGTERM)
    sent.append("SIGTERM")
    deadline = time.monotonic() + stop.grace_s
    while (left := deadline - time.monotonic()) > 0:
        event = wakeups.next(left)
        if event == "exit":
            return
        if event:  # a second Ctrl-C while stopping: keep going, it is already under way
            say("already stopping; the workload gets SIGKILL when its grace ends")
    workload.signal(signal.SIGKILL)
    sent.append("SIGKILL")
    deadline = time.monotonic() + stop.kill_wait_s
    while (left := deadline - time.monotonic()) > 0:
        if wakeups.next(left) == "exit":
            return


def _await_release(workload: Workload, vram: VramWatch, result: Supervised, t_stop: float) -> None:
    def progress(elapsed: float, used: dict[str, int]) -> None:
        over = ", ".join(f"{k}: {format_size(v)} (baseline {format_size(result.baseline[k])})" for k, v in used.items())
        say(f"waiting for VRAM release ({elapsed:.0f}s): {over}")

    release = wait_for_release(
        vram.backend, vram.devices, result.baseline, vram.timeout_s, vram.tolerance_bytes, progress
    )
    if not release.released:
        # Holders of this run (by PID) are killed and the wait repeated; others are only named.
        ours = workload.host_pids()
        mine = [h for h in release.holders if h.pid in ours]
        for holder in mine:
            with contextlib.suppress(ProcessLookupError):
                os.kill(holder.pid, signal.SIGKILL)
        if mine:
            result.killed_holders = mine
            again = wait_for_release(vram.backend, vram.devices, result.baseline, vram.timeout_s, vram.tolerance_bytes)
            again.seconds += release.seconds
            again.holders = release.holders
            release = again
    result.release = release
    result.timings["vram_back_s"] = release.seconds
    result.timings["stop_to_vram_back_s"] = time.monotonic() - t_stop

"""Supervise one workload: start, wait, stop it (harness.run.supervise.stop), wait for VRAM, time every phase.

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

from harness.console import say
from harness.declare.stop_policy import StopPolicy
from harness.gpu.vram.release import HolderInfo, VramWatch, describe_holders, take_baseline
from harness.run.supervise.stop import await_release, stop_workload
from harness.run.supervise.supervised import Supervised, Workload
from harness.units import format_size

DEFAULT_STOP = StopPolicy()
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
                stop_workload(workload, wakeups.next, stop, signals_sent)
                timings["exited_s"] = time.monotonic() - t_stop
            t_remove = time.monotonic()
            removed = workload.remove()
            timings["remove_s"] = time.monotonic() - t_remove
            result = Supervised(wakeups.exit_code, reason, signals_sent, timings, budget_s, baseline, removed=removed)
            result.baseline_holders = dirty
            if vram:
                await_release(workload, vram, result, t_stop)
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

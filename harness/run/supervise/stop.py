"""The run's stop: the stop itself (SIGTERM, grace, SIGKILL, by the run's `StopPolicy`:
harness.declare.stop_policy), the wait for the GPUs' memory, and what counts as a failed teardown and
how a run ended.

Killing process trees for others (a test's servers, a run's leftovers) is `harness.teardown.process_tree`;
this module is where a run's own teardown happens, called by the supervisor and by finishing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.console import say
from harness.declare.stop_policy import StopPolicy
from harness.errors import ExitCode
from harness.gpu.vram.release import wait_for_release
from harness.units import format_size

if TYPE_CHECKING:
    from harness.gpu.vram.release import VramWatch
    from harness.run.supervise.supervised import Supervised, Workload


def stop_workload(
    workload: Workload, next_event: Callable[[float], str | None], stop: StopPolicy, sent: list[str]
) -> None:
    """The policy's first signal (SIGTERM), the grace, its second (SIGKILL), the kill wait; `next_event`
    is the supervisor's wait for the workload's exit ("exit") or a stop signal (its name), None when the
    time given passed."""
    workload.signal(stop.ask)
    sent.append(stop.ask.name)
    deadline = time.monotonic() + stop.grace_s
    while (left := deadline - time.monotonic()) > 0:
        event = next_event(left)
        if event == "exit":
            return
        if event:  # a second Ctrl-C while stopping: keep going, it is already under way
            say("already stopping; the workload gets SIGKILL when its grace ends")
    workload.signal(stop.force)
    sent.append(stop.force.name)
    deadline = time.monotonic() + stop.kill_wait_s
    while (left := deadline - time.monotonic()) > 0:
        if next_event(left) == "exit":
            return


def await_release(workload: Workload, vram: VramWatch, result: Supervised, t_stop: float) -> None:
    """VRAM back at the baseline, said while waiting; this run's holders (by PID) killed and the
    wait repeated when it is not, others only named."""

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


def teardown_failures(sup: Supervised) -> list[str]:
    """Why the teardown failed (exit 3): VRAM not released in time (even if killing this run's
    holders released it later), survivors, the stop over its budget; empty when it did not."""
    reasons = []
    if sup.release is not None and not sup.release.released:
        reasons.append("VRAM not back at baseline")
    elif sup.killed_holders:
        reasons.append("VRAM back only after killing this run's holders")
    if not sup.removed or sup.exit_code is None:
        reasons.append("processes or the container survived")
    if sup.budget_margin_s is not None and sup.budget_margin_s < 0:
        reasons.append(f"stop took {sup.stop_s:.2f}s, over the {sup.budget_s:.1f}s budget")
    return reasons


def outcome(sup: Supervised) -> tuple[str, ExitCode]:
    """How the run ended, and its exit code: a stop by the agent or a person is no failure to retry."""
    if sup.stop_reason not in ("exited", "timeout"):
        return "cancelled", ExitCode.TESTS_FAILED
    if teardown_failures(sup):
        return "teardown-failed", ExitCode.TEARDOWN_FAILED
    if sup.stop_reason == "timeout":
        return "timeout", ExitCode.TESTS_FAILED
    if sup.exit_code == 0:
        return "passed", ExitCode.PASSED
    return "failed", ExitCode.TESTS_FAILED

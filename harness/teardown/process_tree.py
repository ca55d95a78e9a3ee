"""Terminate process trees completely: every process found while the tree is whole, escapees too.

A test server's children hold the GPU; SIGTERM to its root alone leaves them running. Here the
whole tree gets SIGTERM, survivors get SIGKILL after a grace, and processes that escaped with
setsid or a double fork are still found: the caller becomes a child subreaper, so orphans are
re-parented to it instead of to init. Exits are awaited with pidfds (blocking `select`), never
with sleep loops.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import psutil

from harness.declare.stop_policy import StopPolicy
from harness.gpu.vram.base import Device, VramBackend
from harness.gpu.vram.release import ReleaseResult, wait_for_release

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Orphaned descendants are re-parented to this process rather than to PID 1."""
    import ctypes  # here: every run and every pytest in a container imports this module, few call this

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def descendants(pid: int | None = None) -> list[psutil.Process]:
    """Every live descendant of `pid` (default: this process), zombies excluded."""
    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    return [p for p in procs if _alive(p)]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def reap_zombies(pids: Iterable[int]) -> list[int]:
    """Collect the exit status of zombies that are our children (escapees re-parented to us)."""
    reaped = []
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                reaped.append(pid)
    return reaped


def wait_exited(pids: Iterable[int], timeout: float) -> set[int]:
    """Block until every pid has exited or the timeout passes; the pids still running."""
    fds: dict[int, int] = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            continue  # already gone
        except OSError:
            fds[-pid] = pid  # no pidfd (old kernel): judged by a final check below
    deadline = time.monotonic() + timeout
    try:
        waiting = {fd for fd in fds if fd >= 0}
        while waiting and (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(waiting), [], [], left)
            waiting -= set(ready)
        # A zombie has exited; it only waits for its parent to reap it.
        return {pid for pid in fds.values() if psutil.pid_exists(pid) and _alive(psutil.Process(pid))}
    except psutil.NoSuchProcess:
        return set()
    finally:
        for fd in fds:
            if fd >= 0:
                os.close(fd)


@dataclass
class TreeResult:
    signalled: list[int] = field(default_factory=list)
    killed: list[int] = field(default_factory=list)
    survivors: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        return not self.survivors


def send(pids: Iterable[int], signum: int) -> list[int]:
    sent = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
            sent.append(pid)
    return sent


def terminate(pids: Iterable[int], stop: StopPolicy) -> TreeResult:
    """The policy's first signal (SIGTERM) to all, wait up to the grace, its second (SIGKILL) to
    survivors, wait up to the kill wait.

    Zombies are left to their parents (a Popen must collect its own child's status); callers
    that adopted orphans as subreaper reap them with `reap_zombies`."""
    started = time.monotonic()
    pids = list(dict.fromkeys(pids))
    result = TreeResult(signalled=send(pids, stop.ask))
    left = wait_exited(result.signalled, stop.grace_s)
    if left:
        result.killed = send(left, stop.force)
        left = wait_exited(left, stop.kill_wait_s)
    result.survivors = sorted(left)
    result.seconds = time.monotonic() - started
    return result


def terminate_tree(root: int, stop: StopPolicy) -> TreeResult:
    """The root and every descendant, listed before any is signalled (children die with parents)."""
    try:
        tree = [root, *(p.pid for p in psutil.Process(root).children(recursive=True))]
    except psutil.NoSuchProcess:
        tree = [p.pid for p in descendants(root)]
    return terminate(tree, stop)


@dataclass(frozen=True)
class Baseline:
    """Used bytes per device, and when they were read (before a server started)."""

    taken_at: float
    used: dict[str, int]


def earliest_baseline(baselines: Iterable[Baseline | None]) -> Baseline | None:
    """The baseline read first. A baseline of 0 bytes is a baseline: only a missing one is skipped."""
    present = [b for b in baselines if b is not None]
    return min(present, key=lambda b: b.taken_at) if present else None


@dataclass
class ManyResult:
    trees: TreeResult
    exit_seconds: float
    release: ReleaseResult | None
    baseline: Baseline | None


def shutdown_many(
    roots: list[int],
    stop: StopPolicy,
    baselines: Iterable[Baseline | None] = (),
    backend: VramBackend | None = None,
    devices: list[Device] | None = None,
) -> ManyResult:
    """Terminate several servers' trees in parallel, then one VRAM wait against the earliest baseline
    (up to the policy's VRAM timeout).

    Waiting per server, in turn, made each wait see the others' memory; one wait after all
    have exited costs the slowest server's time, not the sum.
    """
    started = time.monotonic()
    tree: list[int] = []
    for root in roots:  # every tree listed while whole, before anything is signalled
        with contextlib.suppress(psutil.NoSuchProcess):
            tree += [root, *(p.pid for p in psutil.Process(root).children(recursive=True))]
    trees = terminate(tree, stop)
    exit_seconds = time.monotonic() - started
    baseline = earliest_baseline(baselines)
    release = None
    if backend is not None and devices and baseline is not None:
        release = wait_for_release(backend, devices, baseline.used, stop.vram_timeout_s)
    return ManyResult(trees, exit_seconds, release, baseline)

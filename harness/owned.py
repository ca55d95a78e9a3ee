"""Folders owned by one gpuci process, named so a later one can tell they are left over.

A build context (a copy of the wheelhouse: gigabytes with torch), a root filesystem being
bootstrapped, a secrets folder: each is named `<prefix><pid>-<start time>-<random>`. A process
SIGKILLed mid-way cannot remove its own; the next build, the next run and `reap` remove every
such folder whose process is gone (matched by PID and start time, so a reused PID does not count).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from harness.untrusted import remove_tree


def own_start_time() -> float:
    """This process's start in seconds since the epoch, as psutil's `create_time()` gives it (its start in
    clock ticks after boot, plus the boot time), read from /proc: every run asks it, and importing
    psutil for it cost about 10 ms of CPU a run. Elsewhere than Linux, psutil's own."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            ticks = int(stat.read().rsplit(b")", 1)[1].split()[19])  # field 22, starttime, after "(comm)"
        with open("/proc/stat", "rb") as kernel:
            boot = next(int(line.split()[1]) for line in kernel if line.startswith(b"btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        import psutil

        return float(psutil.Process().create_time())


def start_ticks(pid: int | str) -> int | None:
    """A process's start in clock ticks after boot (field 22 of /proc/PID/stat, after "(comm)"), or None
    where there is no such process (or no /proc). With the boot id, it names one process for good: no
    clock step moves it, as it moves a start given in seconds since the epoch."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def boot_id() -> str | None:
    """This boot's id (Linux): a process of an earlier boot is gone, whatever its PID now names."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as boot:
            return boot.read().strip() or None
    except OSError:
        return None


def make_owned_dir(parent: Path, prefix: str) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    path = parent / f"{prefix}{os.getpid()}-{own_start_time():.2f}-{secrets.token_hex(3)}"
    path.mkdir(mode=0o700)
    return path


def _alive(pid: str, start: str) -> bool:
    import psutil

    try:
        return abs(psutil.Process(int(pid)).create_time() - float(start)) < 0.05
    except (psutil.NoSuchProcess, ValueError):
        return False


def stale_owned_dirs(parent: Path, prefix: str) -> list[Path]:
    """Folders of `prefix` under `parent` whose owning process is gone."""
    found = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return []
    for entry in entries:
        if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
            continue
        pid, _, rest = entry.name[len(prefix) :].partition("-")
        start = rest.rpartition("-")[0]
        if not _alive(pid, start):
            found.append(Path(entry.path))
    return found


def remove_stale(parent: Path, prefix: str) -> list[Path]:
    removed = stale_owned_dirs(parent, prefix)
    for path in removed:  # an outbox's folders are the workload's: any depth (harness.untrusted.remove_tree)
        remove_tree(path)
    return removed

"""A simulated GPU for machines with none, shared by processes and containers through a directory.

Memory is held by a file lock: the kernel drops it when the holding process (and every process
that inherited the descriptor) has died, so no cooperating process decides when memory is
free. A hold may stay counted for a release lag after its death, as VRAM does on ROCm; the lag
counts from the first time any reader sees the lock free (release waits poll within
milliseconds of the workload's exit, so that is the death in practice).

Layout of `GPUCI_SIM_GPUS`:  devices.json, and gpu<N>/<pid>-<token>.hold for each hold.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from harness.gpu.locks import is_locked
from harness.gpu.vram.base import BackendUnavailable, Device, Holder

ENV = "GPUCI_SIM_GPUS"
# Like CUDA_VISIBLE_DEVICES: the devices a process sees, renumbered from 0 in this order.
VISIBLE_ENV = "GPUCI_SIM_VISIBLE_DEVICES"
DEFAULT_COUNT = 2
DEFAULT_TOTAL = 16 * 1024**3


class OutOfMemory(RuntimeError):
    """Like CUDA's out-of-memory error: the device has no room for the hold."""


def default_directory() -> Path:
    return Path(os.environ.get(ENV) or f"/tmp/gpuci-simgpu-{os.getuid()}")


def init(directory: Path, count: int = DEFAULT_COUNT, total_bytes: int = DEFAULT_TOTAL) -> list[Device]:
    """Create the device table unless it exists; return the devices."""
    directory.mkdir(parents=True, exist_ok=True)
    table = directory / "devices.json"
    if not table.exists():
        devices = [
            {"index": i, "id": f"GPU-sim-{secrets.token_hex(4)}-{i}", "total_bytes": total_bytes} for i in range(count)
        ]
        tmp = directory / f".devices.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(devices, indent=1))
        # link() fails if another process created the table first: theirs wins.
        with contextlib.suppress(FileExistsError):
            os.link(tmp, table)
        tmp.unlink()
    for entry in json.loads(table.read_text()):
        (directory / f"gpu{entry['index']}").mkdir(exist_ok=True)
    return read_devices(directory)


def visible(devices: list[Device]) -> list[Device]:
    wanted = os.environ.get(VISIBLE_ENV)
    if wanted is None:
        return devices
    by_index = {d.index: d for d in devices}
    return [by_index[int(i)] for i in wanted.split(",") if i.strip() and int(i) in by_index]


def read_devices(directory: Path) -> list[Device]:
    try:
        entries = json.loads((directory / "devices.json").read_text())
    except FileNotFoundError:
        raise BackendUnavailable(f"no simulated GPUs in {directory} (run `python -m harness simgpu init`)") from None
    return [Device(e["index"], e["id"], f"gpuci simulated GPU {e['index']}", e["total_bytes"]) for e in entries]


def _hold_counts(path: Path, now: float) -> tuple[int, bool]:
    """(bytes still counted, holder alive) for one hold file; forgets expired ones."""
    alive = is_locked(path)
    if alive is None:
        return 0, False
    try:
        meta = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return 0, False
    if alive:
        return int(meta["bytes"]), True
    dead_marker = path.with_suffix(".dead")
    with contextlib.suppress(FileExistsError):
        fd = os.open(dead_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.write(fd, repr(now).encode())
        os.close(fd)
    try:
        died = float(dead_marker.read_text() or now)
    except (FileNotFoundError, ValueError):
        died = now
    if now < died + float(meta.get("release_lag", 0.0)):
        return int(meta["bytes"]), False
    for leftover in (path, dead_marker):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    return 0, False


def _used(directory: Path, index: int) -> int:
    now = time.time()
    return sum(_hold_counts(p, now)[0] for p in (directory / f"gpu{index}").glob("*.hold"))


def _open_holders(files: set[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
    """Host PIDs of processes with any of `files` (device, inode) open, read from /proc.

    The kernel's own account: it covers descriptors inherited by children, and matching by
    inode, not by path, finds holders inside containers that mount the directory elsewhere.
    """
    found: dict[tuple[int, int], list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if not os.readlink(fd).endswith(".hold"):
                        continue
                    st = os.stat(fd)
                    key = (st.st_dev, st.st_ino)
                    if key in files and int(proc.name) not in found.get(key, []):
                        found.setdefault(key, []).append(int(proc.name))
    return found


@dataclass
class Hold:
    """Device memory held by this process until `release()` or the process's death."""

    path: Path
    fd: int
    bytes: int
    device_index: int

    def release(self) -> None:
        """A clean free: immediate, unlike the lag that follows a death."""
        if self.fd < 0:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def hold(size: int, device: int = 0, release_lag: float = 0.0, directory: Path | None = None) -> Hold:
    """Allocate `size` bytes on a simulated device, or raise OutOfMemory."""
    directory = directory or default_directory()
    seen = visible(init(directory))
    if not 0 <= device < len(seen):
        raise ValueError(f"no simulated GPU {device}; this process sees {len(seen)}")
    device = seen[device].index
    devices = {d.index: d for d in seen}
    gpu_dir = directory / f"gpu{device}"
    alloc_fd = os.open(gpu_dir / ".alloc", os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(alloc_fd, fcntl.LOCK_EX)  # one allocation at a time per device
        used = _used(directory, device)
        total = devices[device].total_bytes
        if used + size > total:
            raise OutOfMemory(f"simulated GPU {device}: cannot hold {size} bytes, {used} of {total} in use")
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        tmp = gpu_dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        meta = {"pid": os.getpid(), "bytes": size, "release_lag": release_lag, "since": time.time()}
        os.write(fd, json.dumps(meta).encode())
        final = gpu_dir / f"{name}.hold"
        os.rename(tmp, final)  # appears already locked: no reader can take it for dead
        return Hold(final, fd, size, device)
    finally:
        os.close(alloc_fd)


class SimBackend:
    name = "sim"

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or default_directory()
        self._devices = visible(init(self.directory))

    def devices(self) -> list[Device]:
        return list(self._devices)

    def used_bytes(self, device: Device) -> int:
        return _used(self.directory, device.index)

    def holders(self, device: Device) -> list[Holder]:
        now = time.time()
        live: dict[tuple[int, int], int] = {}
        for path in (self.directory / f"gpu{device.index}").glob("*.hold"):
            counted, alive = _hold_counts(path, now)
            with contextlib.suppress(FileNotFoundError):
                if alive:
                    st = path.stat()
                    live[st.st_dev, st.st_ino] = counted
        holders: dict[int, int] = {}
        for path, pids in _open_holders(set(live)).items():
            for pid in pids:
                holders[pid] = holders.get(pid, 0) + live[path]
        return [Holder(pid, used, device.id) for pid, used in sorted(holders.items())]

    def close(self) -> None:
        pass

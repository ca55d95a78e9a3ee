"""Host-wide locks that the kernel releases when the holder dies (no stale lock after a crash)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path


def lock_path(name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return Path(os.environ.get("GPUCI_LOCK_DIR") or tempfile.gettempdir()) / f"gpuci-{safe}.lock"


@contextlib.contextmanager
def host_lock(name: str) -> Iterator[None]:
    """Exclusive across processes on this host, e.g. two sessions building the same image tag."""
    fd = os.open(lock_path(name), os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def is_locked(path: Path) -> bool | None:
    """Whether a live process holds a lock on the file (the kernel's word); None if it is gone."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False

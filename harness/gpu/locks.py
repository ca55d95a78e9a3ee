"""Host-wide locks that the kernel releases when the holder dies (no stale lock after a crash)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def lock_path(name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return Path(os.environ.get("GPUCI_LOCK_DIR") or tempfile.gettempdir()) / f"gpuci-{safe}.lock"


@contextlib.contextmanager
def host_lock(name: str, shared: bool = False) -> Iterator[None]:
    """Exclusive across processes on this host, e.g. two sessions building the same image tag;
    `shared` lets other shared holders in and keeps exclusive ones out."""
    fd = _locked(lock_path(name), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
    try:
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def try_host_lock(name: str, wait_s: float = 0.0) -> Iterator[bool]:
    """Exclusive, waiting at most `wait_s`: yields whether it was had (held until the block ends)."""
    path = lock_path(name)
    deadline = time.monotonic() + wait_s
    while True:
        fd = _locked(path, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if fd is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


def _locked(path: Path, operation: int) -> int | None:
    """An open, locked descriptor of `path`, or None where LOCK_NB found it held. A lock file that
    was removed between the open and the lock (see `remove_if_unheld`) is opened again: a lock on a
    removed file would exclude nobody."""
    while True:
        fd = _open_lock_file(path)
        try:
            fcntl.flock(fd, operation)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def remove_if_unheld(path: Path) -> bool:
    """Delete a lock file that no process holds, holding it while it goes, so a process that opened it
    meanwhile notices (by its inode) and locks a new one; False when held or gone."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(path).st_ino:
            return False
        os.unlink(path)
        return True
    except (BlockingIOError, FileNotFoundError):
        return False
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


def _open_lock_file(path: Path) -> int:
    """Lock files in the shared temporary folder are every user's: made writable to all (the umask
    would leave root's 0644, which another user cannot open for writing); one that still refuses is
    opened read-only, which flock takes just as well."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
    except PermissionError:
        return os.open(path, os.O_RDONLY)
    with contextlib.suppress(OSError):  # not ours to change: it stays as its maker left it
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, 0o666)
    return fd

"""Digests of a checkout's files, each vouched for by a stat while the file is unchanged since it was hashed.

A compiled project's content tag covers its sources (harness.images.project_install), so every warm run
read and hashed every .c, .pyx or .rs file of the checkout. Here a file's digest is kept with its
(device, inode, size, mtime_ns, ctime_ns) as they were when it was read; while all five agree, the
digest stands without a read. Any write changes ctime, which no user can set back (os.utime sets
mtime, not ctime); a file replaced by another has another inode. As git does for "racily clean"
entries, a file changed within RACY_NS of its hashing is not recorded: a second write in the same
timestamp tick would leave every field as it was, so such a file is read again next time.

The records live in gpuci's cache on this host (harness.images.installer.cache_dir), one file per
checkout path, never in the checkout: a pull request cannot plant a digest. The file is read bounded;
one that is too large or not gpuci's JSON counts as empty.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

RACY_NS = 2_000_000_000
MAX_RECORDS_BYTES = 16 * 2**20
VERSION = 1
EMPTY = hashlib.sha256(b"").hexdigest()

# (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)
Vouch = tuple[int, int, int, int, int]


def file_digests(root: Path, names: Iterable[str]) -> dict[str, str]:
    """The sha256 of each named file's bytes (relative to `root`; a link or anything but a regular file
    counts as empty, never followed), reading only the files whose stat no longer vouches for a digest."""
    try:
        records_path: Path | None = _records_path(root)
    except OSError:  # no cache folder can be made (a read-only home): every file is read
        records_path = None
    known = _read_records(records_path) if records_path else {}
    kept: dict[str, list[object]] = {}
    digests: dict[str, str] = {}
    now = time.time_ns()
    for name in names:
        digest, vouch = _digest(Path(root) / name, known.get(name))
        digests[name] = digest
        if vouch is not None and now - max(vouch[3], vouch[4]) > RACY_NS:
            kept[name] = [*vouch, digest]
    if records_path and kept != known:
        _write_records(records_path, kept)
    return digests


def _digest(path: Path, record: list[object] | None) -> tuple[str, Vouch | None]:
    """The file's digest, and the stat that vouches for it (None: not a regular file)."""
    try:
        info = os.lstat(path)
    except OSError:
        return EMPTY, None
    if not stat.S_ISREG(info.st_mode):
        return EMPTY, None
    if record is not None and list(_vouch(info)) == record[:5] and isinstance(record[5], str):
        return record[5], _vouch(info)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return EMPTY, None
    with os.fdopen(fd, "rb") as file:
        opened = os.fstat(file.fileno())  # before the read: a write during it changes ctime after this
        if not stat.S_ISREG(opened.st_mode):
            return EMPTY, None
        digest = hashlib.sha256()
        while chunk := file.read(2**20):
            digest.update(chunk)
        return digest.hexdigest(), _vouch(opened)


def _vouch(info: os.stat_result) -> Vouch:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _records_path(root: Path) -> Path:
    from harness.images.installer import cache_dir

    checkout = hashlib.sha256(os.path.realpath(root).encode()).hexdigest()[:24]
    return cache_dir("file-digests") / f"{checkout}.json"


def _read_records(path: Path) -> dict[str, list[object]]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return {}
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_RECORDS_BYTES:
            return {}
        try:
            data = json.loads(file.read(MAX_RECORDS_BYTES))
        except (ValueError, OSError):
            return {}
    if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("files"), dict):
        return {}
    return {
        str(name): record
        for name, record in data["files"].items()
        if isinstance(record, list) and len(record) == 6 and all(isinstance(x, int) for x in record[:5])
    }


def _write_records(path: Path, records: dict[str, list[object]]) -> None:
    """Written whole under a fresh name, then renamed: a run beside this one reads the old or the new."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".digests.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w") as out:
            json.dump({"version": VERSION, "files": records}, out)
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass  # a cache: without it the next run reads the files again
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

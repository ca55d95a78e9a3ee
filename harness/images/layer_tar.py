"""A folder a container wrote, made into one image layer: a deterministic tar, read as untrusted input.

The project's layer is installed by a throw-away container into host folders bind-mounted at the
paths they have in the image (harness/images/project_layer.py); this module turns those folders
into the layer's tar. Identical files give an identical tar (and so the same layer id): names
sorted, every time fixed (but in a `timed` root, below), owner root, no host user or group names,
modes kept only as permission bits. The container ran the project's code, so what it left is read
as input: links are stored as links and never followed, devices, fifos and sockets are left out,
every file is opened without following a link, and the number of entries and bytes is bounded.

A folder that held files before the container ran (gpuci's venv, copied out of its layer) is
compared with its `snapshot`: only what is new or changed goes into the layer, and what is gone
becomes a whiteout (`.wh.NAME`, the layer format's deletion).

A `timed` root keeps its files' own times: a build folder that rebuilds on import (meson-python's, and
scikit-build-core's with `editable.rebuild`), whose times the install settled past any checkout's
(in_image/install_project.py). ninja compares its outputs' times with the sources', the mounted
checkout's: at 2000-01-01 every output was older than every source, and every run of PyWavelets
recompiled all its extensions at its first import (21 s of a 72-s warm run). Its `.ninja_deps` holds
each output's time to the nanosecond and calls a later one stale, so the times are kept exactly.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from harness.errors import ImageBuildError, UsageError

# How a `timed` root's times are written; part of the tag of an image with such a root (an image written
# before kept 2000-01-01 there, and rebuilt everything at every run's first import).
BUILD_DIR_TIMES = "settled-ns"
FIXED_MTIME = 946684800  # 2000-01-01: no build's clock in the layer (bytecode is hash-checked, not timed)
MAX_ENTRIES = 1_000_000
MAX_BYTES = 64 * 2**30
MAX_DEPTH = 256  # folders below a root: site-packages' deepest are some tens
# A file over this whose disk is under a 64th of its size is sparse (compression alone rarely goes so far):
# the container paid nothing for the zeros the host would write. And the holes of all the layer's files
# together (a file's bytes beyond its disk, where it has a hole) are at most this: a thousand files of
# 64 MiB each, all holes, sized a 62.5 GiB layer from 28 KiB of disk.
SPARSE_FROM = 64 * 2**20

# What a snapshot keeps of an entry: its kind, mode, size and time, or its link's target. The folder was
# written by gpuci (its own venv, extracted with the times its layer has); a file the container rewrote
# gets a new time, and one it left alone keeps its own.
Entry = tuple[str, int, int, int, str]


def _entry(path: Path, info: os.stat_result) -> Entry | None:
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISDIR(info.st_mode):
        return ("dir", mode, 0, 0, "")
    if stat.S_ISLNK(info.st_mode):
        return ("link", 0o777, 0, 0, os.readlink(path))
    if stat.S_ISREG(info.st_mode):
        return ("file", mode, info.st_size, info.st_mtime_ns, "")
    return None  # devices, fifos, sockets: never part of a layer


def _unreadable(path: Path, why: str | None) -> UsageError:
    return UsageError(
        f"{str(path)[-200:]} cannot be read ({why}): the project's install left a file gpuci cannot read "
        "(its mode, as the install set it). Nothing was built; check what the project's build writes."
    )


def _holes(path: Path, info: os.stat_result) -> int:
    """The bytes of a file with fewer blocks than its size that are holes: none where it has no hole
    (compressed), else its size beyond its disk. Opened without following a link, never read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _unreadable(path, exc.strerror) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode) or os.lseek(fd, 0, os.SEEK_HOLE) >= info.st_size:
            return 0
    except OSError:
        pass  # no hole search on this file system: its size beyond its disk counts
    finally:
        os.close(fd)
    return info.st_size - info.st_blocks * 512


def _open_regular(path: Path) -> BinaryIO:
    """A regular file opened without following a link at its last component (its folders were walked
    without following any)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:  # an OSError out of the load's body is requests' ConnectionError: a traceback
        raise _unreadable(path, exc.strerror) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ImageBuildError(f"{path} changed kind while the project's layer was written: nothing was built.")
    return os.fdopen(fd, "rb")


def _walk(top: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(path relative to `top`, path, lstat) of everything under `top`, sorted, links never followed, in
    os.walk's top-down order. Iterative and bounded: os.walk recursed once a level, and a tree the install
    nested 3,000 deep raised RecursionError out of the build."""
    pending = [(top, 0)]
    while pending:
        here, depth = pending.pop()
        names = []
        try:
            with os.scandir(here) as entries:
                for entry in entries:  # counted as listed: a folder is bounded before it is held whole
                    names.append(entry.name)
                    if len(names) > MAX_ENTRIES:
                        raise _too_many(top)
        except OSError:
            continue  # as os.walk: a folder that cannot be listed is left out
        names.sort()
        folders = []
        for name in names:
            path = here / name
            try:
                info = os.lstat(path)
            except OSError as exc:
                raise UsageError(
                    f"{path} cannot be read ({exc.strerror}): the install left a path the system cannot name. "
                    "Nothing was built; check what the project's build writes."
                ) from None
            yield str(path.relative_to(top)), path, info
            if stat.S_ISDIR(info.st_mode):
                folders.append(path)
        if folders and depth >= MAX_DEPTH:
            raise UsageError(
                f"{top} nests deeper than {MAX_DEPTH} folders (…{str(here)[-80:]}): no package does; the project's "
                "install wrote it. Nothing was built; check what the project's build writes."
            )
        pending += [(folder, depth + 1) for folder in reversed(folders)]


def _too_many(top: Path) -> UsageError:
    return UsageError(
        f"{str(top)[-200:]} holds over {MAX_ENTRIES} files and folders: no package's install writes so many; "
        "the recipe's steps or the project's install did. Nothing was built; check what they write."
    )


def snapshot(top: Path) -> dict[str, Entry]:
    """What `top` holds now, to compare with after the container ran (as bounded as a layer)."""
    found = {}
    for count, (rel, path, info) in enumerate(_walk(top)):
        if count >= MAX_ENTRIES:
            raise _too_many(top)
        entry = _entry(path, info)
        if entry is not None:
            found[rel] = entry
    return found


@dataclass
class LayerCount:
    entries: int = 0
    bytes: int = 0
    names: set[str] = field(default_factory=set)
    holes: int = 0  # bytes of the layer's files that take no disk: zeros the engine writes whole, twice

    def file(self, path: Path, info: os.stat_result) -> None:
        if info.st_blocks * 512 >= info.st_size:
            return  # all on disk (a compressed file system's file has fewer blocks, but no hole)
        self.holes += _holes(path, info)
        if self.holes > SPARSE_FROM:
            raise UsageError(
                f"the project's layer holds over {SPARSE_FROM // 2**20} MiB of sparse files' holes (such as "
                f"{str(path)[-200:]}, {info.st_size // 2**20} MiB on {info.st_blocks // 2048} MiB of disk): "
                "zeros the engine would write whole, twice, that took no disk to make. No package ships them; "
                "the project's install made them (truncate, a seek). Nothing was built."
            )

    def add(self, name: str, size: int) -> None:
        self.entries += 1
        self.bytes += size
        if self.entries > MAX_ENTRIES or self.bytes > MAX_BYTES:
            raise UsageError(
                f"the project's layer is over {MAX_ENTRIES} files or {MAX_BYTES // 2**30} GiB: the install "
                "wrote far more than packages take. Check the project's requirements (gpuci.lock) and its "
                "build; nothing was built."
            )


def _info(
    name: str, kind: bytes, mode: int, size: int = 0, link: str = "", mtime_ns: int | None = None
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = FIXED_MTIME, 0, 0, "", ""
    if mtime_ns is not None:  # to the nanosecond, as PAX can say it: ninja checks its outputs' times exactly
        info.mtime = mtime_ns // 10**9
        info.pax_headers = {"mtime": f"{mtime_ns // 10**9}.{mtime_ns % 10**9:09d}"}
    return info


# An entry of the layer: its header, and the file its bytes come from (None: no bytes).
Member = tuple[tarfile.TarInfo, "Path | None"]


class _Entries:
    """The layer's entries in order, counted and bounded; parent folders once, before their contents."""

    def __init__(self) -> None:
        self.count, self.written = LayerCount(), set[str]()

    def parents(self, name: str) -> Iterator[Member]:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            folder = "/".join(parts[:i])
            if folder not in self.written:
                yield from self.folder(folder, 0o755)

    def folder(self, name: str, mode: int) -> Iterator[Member]:
        yield from self.parents(name)
        self.written.add(name)
        self.count.add(name, 0)
        yield _info(name, tarfile.DIRTYPE, mode), None

    def add(self, name: str, path: Path, info: os.stat_result, timed: bool = False) -> Iterator[Member]:
        if stat.S_ISDIR(info.st_mode):
            if name not in self.written:
                yield from self.folder(name, stat.S_IMODE(info.st_mode))
            return
        yield from self.parents(name)
        if stat.S_ISLNK(info.st_mode):
            self.count.add(name, 0)
            yield _info(name, tarfile.SYMTYPE, 0o777, link=os.readlink(path)), None
        elif stat.S_ISREG(info.st_mode):
            if not os.access(path, os.R_OK):  # asked now: the writing walk's error would end the load's body
                raise _unreadable(path, "permission denied")
            if info.st_size > SPARSE_FROM and info.st_blocks * 512 * 64 < info.st_size:
                raise UsageError(
                    f"{path} is a sparse file of {info.st_size // 2**20} MiB taking {info.st_blocks // 2048} MiB of "
                    "disk: its layer would write every zero of it, twice. No package ships one; the project's "
                    "install made it. Nothing was built."
                )
            self.count.add(name, info.st_size)
            self.count.file(path, info)
            mtime_ns = info.st_mtime_ns if timed else None
            yield _info(name, tarfile.REGTYPE, stat.S_IMODE(info.st_mode), info.st_size, mtime_ns=mtime_ns), path

    def whiteout(self, name: str) -> Iterator[Member]:
        folder, _, base = name.rpartition("/")
        yield from self.parents(name)
        self.count.add(name, 0)
        yield _info(f"{folder}/.wh.{base}" if folder else f".wh.{base}", tarfile.REGTYPE, 0o644), None


def _members(
    stage: Path, roots: list[str], before: dict[str, dict[str, Entry]], timed: tuple[str, ...] = ()
) -> Iterator[Member]:
    """The layer of `roots` (folders under `stage`, named as in the image: `opt/gpuci/venv`), entry by
    entry; a root in `before` gives only its changes; a root in `timed` keeps its files' times."""
    entries = _Entries()
    for root in sorted(roots):
        top = stage / root
        if not top.is_dir() or top.is_symlink():
            continue
        yield from entries.folder(root, 0o755)
        old = before.get(root)
        seen = set()
        for rel, path, info in _walk(top):
            seen.add(rel)
            if old is not None and rel in old and old[rel] == _entry(path, info):
                continue  # as gpuci's layer has it already
            yield from entries.add(f"{root}/{rel}", path, info, timed=root in timed)
        gone = {rel for rel in (old or {}) if rel not in seen}
        for rel in sorted(gone):
            if os.path.dirname(rel) not in gone:  # a folder's whiteout covers what was in it
                yield from entries.whiteout(f"{root}/{rel}")


def _header(info: tarfile.TarInfo) -> bytes:
    # As tarfile's own `addfile` writes it (PAX, the file system's encoding): the same bytes as before.
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def _padding(size: int, block: int = tarfile.BLOCKSIZE) -> int:
    return -size % block


def _end(offset: int) -> bytes:
    """Two zero blocks, then zeros to a whole record: how tarfile closes a stream."""
    end = offset + 2 * tarfile.BLOCKSIZE
    return b"\0" * (2 * tarfile.BLOCKSIZE + _padding(end, tarfile.RECORDSIZE))


@dataclass
class Layer:
    """The layer's tar, sized first (its entries walked and checked, no file read) so that it can be
    streamed to the engine as it is written, with no copy on disk: `chunks()` walks again and yields its
    bytes, then `diff_id` is known. A tree that changed between the two walks is refused."""

    stage: Path
    roots: list[str]
    before: dict[str, dict[str, Entry]]
    timed: tuple[str, ...] = ()  # roots whose files keep their own times (a build folder ninja checks)
    size: int = 0
    diff_id: str = ""

    def __post_init__(self) -> None:
        offset = 0
        for info, _ in _members(self.stage, self.roots, self.before, self.timed):
            offset += len(_header(info)) + info.size + _padding(info.size)
        self.size = offset + len(_end(offset))

    def chunks(self) -> Iterator[bytes]:
        """The tar's bytes in pieces of about a MiB (a piece a member made the load's upload one HTTP chunk
        a small file, and slower than writing the tar to disk first)."""
        digest, offset, pending = hashlib.sha256(), 0, bytearray()
        for info, path in _members(self.stage, self.roots, self.before, self.timed):
            header = _header(info)
            if offset + len(header) + info.size + _padding(info.size) > self.size:
                # Checked before any of its bytes go: the archive names the layer's size ahead of it, and
                # what came past that size would be read as the load's own members (a manifest, any tag).
                offset += len(header) + info.size + _padding(info.size)
                break
            for data in (header, *(_content(path, info.size) if path is not None else ())):
                pending += data
                if len(pending) >= _PIECE:
                    yield from _flush(pending, digest)
            pending += b"\0" * _padding(info.size)
            offset += len(header) + info.size + _padding(info.size)
        end = _end(offset)
        if offset + len(end) != self.size:
            raise ImageBuildError(
                f"{self.stage} changed while the project's layer was written ({offset + len(end)} bytes, not "
                f"{self.size}): nothing was built."
            )
        pending += end
        yield from _flush(pending, digest)
        self.diff_id = f"sha256:{digest.hexdigest()}"


_PIECE = 1 << 20


def _flush(pending: bytearray, digest: Any) -> Iterator[bytes]:
    data = bytes(pending)
    pending.clear()
    digest.update(data)
    yield data


def _content(path: Path, size: int) -> Iterator[bytes]:
    """A file's first `size` bytes (the size its header says), opened without following a link."""
    with _open_regular(path) as handle:
        left = size
        while left:
            data = handle.read(min(left, 1 << 20))
            if not data:
                raise ImageBuildError(f"{path} shrank while the project's layer was written: nothing was built.")
            left -= len(data)
            yield data


def write_layer(
    stage: Path, roots: list[str], before: dict[str, dict[str, Entry]], out: BinaryIO, timed: tuple[str, ...] = ()
) -> str:
    """The layer of `roots` into `out`; returns its diff id (`sha256:…` of the tar)."""
    layer = Layer(stage, roots, before, timed)
    for data in layer.chunks():
        out.write(data)
    return layer.diff_id

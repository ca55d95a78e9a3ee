"""What a workload can write is input: read as regular files only, never through a link, bounded.

The workload is a pull request's code. Anything it can write (its outbox, the checkout) may hold
links to host files, FIFOs that block a reader, or files of any size; the supervisor runs as the
agent's user, often root. So such files are opened relative to a folder descriptor, with
O_NOFOLLOW, checked to be regular and small enough, and skipped (with the reason) otherwise.
gpuci's own state folders must be real folders: a checkout that ships `.gpuci` as a link to
`/etc` would otherwise have the supervisor write there.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UsageError

_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# Deeper than any record gpuci writes; shallow enough that every reader after the parse (the
# redactor, json.dumps, dataclasses) stays far from Python's recursion limit.
MAX_DEPTH = 64


class Refused(ValueError):
    """A file of the project's or the workload's that gpuci does not read: the reason, one line."""


def read_capped(path: Path, limit: int, inside: Path | None = None) -> bytes:
    """`path`'s bytes when it is a regular file of at most `limit` bytes (and, with `inside`, one whose
    real place is in that folder: a link out of a checkout is refused); else Refused, at once: the
    size is known before a byte is read, and a FIFO or a device (`/dev/zero`) is never read at all."""
    real = os.path.realpath(path)
    if inside is not None and not Path(real).is_relative_to(os.path.realpath(inside)):
        raise Refused(f"{path} is a link out of {inside}; gpuci does not follow it")
    try:
        fd = os.open(real, _FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise Refused(f"{path} cannot be read ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"{path} is not a regular file")
        if info.st_size > limit:
            raise Refused(f"{path} is larger than {_size(limit)} ({_size(info.st_size)})")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:  # it grew while read
            raise Refused(f"{path} is larger than {_size(limit)}")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n} bytes"


# A project's own files gpuci reads on the host (pyproject.toml, requirement files, pytest's ini
# files): real ones are kilobytes; this is far above them and parses in well under a second.
PROJECT_FILE_LIMIT = 2 * 2**20


def project_text(path: Path, root: Path, limit: int = PROJECT_FILE_LIMIT) -> str:
    """A file of the checkout as text (UTF-8): read_capped, inside `root`."""
    return read_capped(path, limit, root).decode("utf-8")


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    """tomllib.loads, with a nesting too deep for its recursive parser Refused rather than a crash."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise Refused(f"{path} nests too deeply to be read as TOML") from None


def parse_json(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads of input someone else wrote: ValueError (never RecursionError) when it is not
    JSON or nests deeper than `max_depth`, so no later reader can meet a structure too deep."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise ValueError(f"nested deeper than {max_depth} levels") from None
    stack = [(value, 1)]
    while stack:  # iterative: the check itself cannot recurse
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                raise ValueError(f"nested deeper than {max_depth} levels")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return value


@dataclass(frozen=True)
class Skipped:
    """A file of the workload's that was not read, and why (kept in the report)."""

    name: str
    reason: str


def read_names(folder: Path, names: list[str], limit: int) -> tuple[dict[str, bytes], list[Skipped]]:
    """The named files of `folder` that are regular and at most `limit` bytes; the rest, with why."""
    found: dict[str, bytes] = {}
    skipped: list[Skipped] = []
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return found, skipped
    try:
        for name in names:
            data, reason = _read_at(dir_fd, name, limit)
            if data is not None:
                found[name] = data
            elif reason:
                skipped.append(Skipped(name, reason))
    finally:
        os.close(dir_fd)
    return found, skipped


def list_names(folder: Path) -> list[str]:
    """Entry names of a folder the workload can write (the folder itself must not be a link)."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        return sorted(os.listdir(dir_fd))
    finally:
        os.close(dir_fd)


def _read_at(dir_fd: int, name: str, limit: int) -> tuple[bytes | None, str | None]:
    try:
        fd = os.open(name, _FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        # ELOOP is O_NOFOLLOW meeting a link: the one case an attack looks like.
        return None, "a symbolic link" if exc.errno == 40 else f"unreadable ({exc.strerror})"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None, "not a regular file"
        if info.st_size > limit:
            return None, f"larger than {limit} bytes"
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            return None, f"larger than {limit} bytes"
        return b"".join(chunks), None
    finally:
        os.close(fd)


def private_dir(root: Path, *parts: str) -> Path:
    """`root/parts…`, each component a real folder (made where missing), never a link."""
    path = Path(root)
    for part in parts:
        path = path / part
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):  # another run made it first
                path.mkdir()
            info = os.lstat(path)
        if not stat.S_ISDIR(info.st_mode):
            kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a folder"
            raise UsageError(
                f"{path} is {kind}; gpuci keeps its runs and images' inputs there and never writes "
                "through a link. Remove it (it may come from the checkout) and run again."
            )
    return path


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def remove_tree(path: Path) -> None:
    """Remove a folder the workload could write, however deep, never following a link. shutil.rmtree
    recurses once a level (RecursionError past about 1,000, out of any clean-up); here each sub-folder's
    entries move up into the top folder, so at most two folders are open and nothing recurses."""
    try:
        top = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        return
    except OSError:  # a link or a file where the folder was: removed itself
        with contextlib.suppress(OSError):
            os.unlink(path)
        return
    prefix, moved = f".gpuci-rm-{secrets.token_hex(4)}-", 0
    try:
        progress = True
        while progress:  # a pass that changes nothing (an entry gpuci may not remove) ends it
            progress = False
            with os.scandir(top) as entries:
                names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
            for name, is_dir in names:
                if not is_dir:
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=top)
                        progress = True
                    continue
                with contextlib.suppress(OSError):
                    sub = os.open(name, _DIR_FLAGS, dir_fd=top)
                    try:
                        with os.scandir(sub) as inner:
                            children = [child.name for child in inner]
                        for child in children:
                            os.rename(child, f"{prefix}{moved}", src_dir_fd=sub, dst_dir_fd=top)
                            moved, progress = moved + 1, True
                    finally:
                        os.close(sub)
                    os.rmdir(name, dir_fd=top)
                    progress = True
    finally:
        os.close(top)
    with contextlib.suppress(OSError):
        os.rmdir(path)

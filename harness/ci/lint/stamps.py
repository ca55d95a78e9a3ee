"""A file's stamp as stat sees it (size, times, inode), never following a link: what the checkout's
reader (`files`) and the replayed findings (`memo`) compare to know a file unchanged without reading it.
Standard library only, so that a warm lint that replays its memo imports nothing more."""

from __future__ import annotations

import os


def stamp(path: str) -> str | None:
    """`size:mtime_ns:ctime_ns:inode` of `path`, or None where there is nothing to stat."""
    try:
        done = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return f"{done.st_size}:{done.st_mtime_ns}:{done.st_ctime_ns}:{done.st_ino}"

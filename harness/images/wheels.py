"""Wheels going into an image are the ones gpuci fetched: their hashes are recorded when fetched and
checked when an image is built.

The wheelhouse is read-only to containers, but it is a folder on the host that other tools (or
a step of an older gpuci) could write. A wheel whose bytes differ from its record stops the build
(a `.pth` planted in a wheel runs at every Python start in the image). Wheels with no record
(put there by hand on an air-gapped host) are recorded the first time they are seen, and said so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Collection, Iterator
from pathlib import Path

from harness.console import say
from harness.errors import UsageError
from harness.untrusted import private_dir

RECORD_NAME = "wheel-hashes.json"


def record_path(root: Path) -> Path:
    return private_dir(root, ".gpuci") / RECORD_NAME


def _load(root: Path) -> dict[str, str]:
    try:
        data = json.loads(record_path(root).read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def recorded(root: Path) -> dict[str, str]:
    """The recorded hashes of the wheelhouse's wheels, by file name."""
    return _load(root)


def _save(root: Path, record: dict[str, str]) -> None:
    path = record_path(root)
    tmp = path.with_name(f".{RECORD_NAME}.{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
    tmp.replace(path)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_fetched(root: Path, wheelhouse: Path, names: set[str]) -> None:
    """Record the hashes of wheels pip just downloaded (`names`: files new in the wheelhouse)."""
    record = _load(root)
    for name in sorted(names):
        path = wheelhouse / name
        if name.endswith(".whl") and stat.S_ISREG(os.lstat(path).st_mode):
            record[name] = sha256_of(path)
    _save(root, record)


@contextlib.contextmanager
def recording(root: Path, wheelhouse: Path) -> Iterator[None]:
    """Record the wheels that appear in `wheelhouse` while the block runs: every place gpuci fetches
    wheels (its pins, the project's resolution, the build backend's own) goes through here, so the
    hand-put warning of `copy_verified` is only ever said of wheels gpuci did not fetch."""
    before = set(os.listdir(wheelhouse)) if wheelhouse.is_dir() else set()
    try:
        yield
    finally:
        if wheelhouse.is_dir():
            record_fetched(root, wheelhouse, set(os.listdir(wheelhouse)) - before)


def copy_verified(root: Path, wheelhouse: Path, target: Path, names: Collection[str] | None = None) -> str:
    """Copy the wheelhouse's wheels (regular files only; of them `names` alone, where given) into a
    build context, check each copy against its record; the hash of the whole set (the image's
    `gpuci.wheels-sha256` label)."""
    target.mkdir(parents=True, exist_ok=True)
    record = _load(root)
    unrecorded = []
    lines = []
    for path in sorted(wheelhouse.glob("*.whl")):
        if names is not None and path.name not in names:
            continue
        if not stat.S_ISREG(os.lstat(path).st_mode):
            continue  # a link or anything else is no wheel gpuci fetched
        copy = target / path.name
        shutil.copyfile(path, copy, follow_symlinks=False)
        digest = sha256_of(copy)  # the bytes that go into the image, not the ones first read
        known = record.get(path.name)
        if known is None:
            unrecorded.append(path.name)
            record[path.name] = digest
        elif known != digest:
            raise UsageError(
                f"wheel {path.name} in {wheelhouse} changed since gpuci fetched it (sha256 {known[:12]}… "
                f"recorded, {digest[:12]}… now): something rewrote it. Delete it and run again to fetch "
                "it afresh; nothing was built."
            )
        lines.append(f"{path.name} {digest}\n")
    if unrecorded:
        say(f"recorded the hashes of {len(unrecorded)} wheel(s) gpuci did not fetch (put in {wheelhouse} by hand)")
        _save(root, record)
    return hashlib.sha256("".join(lines).encode()).hexdigest()

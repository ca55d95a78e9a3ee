"""The resolved set, kept: `gpuci.lock` records what the project's requirements resolved to, and the
image's content tag hashes it.

Requirements as people write them (`numpy`, `pytest>=8`) resolve to different versions as releases
come out; hashing only what was written would give one tag to two different images (yesterday's
numpy on the laptop, today's on a fresh agent). So the resolution comes first: for each image
recipe (platform, base image, machine) `gpuci.lock` holds the pins with a hash of the inputs they
were resolved from, and the tag covers the pins. A changed resolution is a new image; repro at a
commit gets that commit's set. Commit `gpuci.lock`: an agent that has it knows the tag without
resolving anything (and pulls by it); one without it resolves, as a laptop does, and writes it.

The file is the pull request's: read without following links, bounded, every pin checked to be
`name==version` before anything uses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import tempfile
from pathlib import Path
from typing import Any

from harness.console import say
from harness.errors import UsageError
from harness.untrusted import parse_json, read_names

LOCK_FILE = "gpuci.lock"
LOCK_VERSION = 1
MAX_BYTES = 4 * 2**20
PIN = re.compile(r"^[a-z0-9][a-z0-9._-]*==[A-Za-z0-9.!+_-]+$")


def lock_key(platform_name: str, base_image: str | None) -> str:
    """One resolution per recipe target: the platform's image on this base, on this machine."""
    return f"{platform_name} {base_image or 'dockerfile-base'} {platform.machine()}"


def inputs_hash(requirements_text: str, constraints: Path) -> str:
    """What a resolution was made from: the project's requirement lines and gpuci's own pins."""
    digest = hashlib.sha256(requirements_text.encode())
    digest.update(b"\0constraints\0" + constraints.read_bytes())
    return digest.hexdigest()[:32]


def read_lock(root: Path) -> dict[str, Any]:
    """The lock's entries; {} where there is none. A malformed lock is an error naming it."""
    path = Path(root) / LOCK_FILE
    found, skipped = read_names(Path(root), [LOCK_FILE], MAX_BYTES)
    if skipped:
        raise UsageError(f"{path}: {skipped[0].reason}; it must be a regular file of at most 4 MiB (or remove it).")
    if LOCK_FILE not in found:
        return {}
    try:
        data = parse_json(found[LOCK_FILE])  # a nesting too deep is a ValueError, never a RecursionError
    except ValueError as exc:
        raise UsageError(f"{path}: is not JSON ({exc}); remove it and gpuci resolves and writes it again.") from None
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or data.get("version") != LOCK_VERSION:
        raise UsageError(f"{path}: is not a gpuci lock of version {LOCK_VERSION}; remove it and gpuci writes it again.")
    for key, entry in entries.items():
        pins = entry.get("pins") if isinstance(entry, dict) else None
        if not isinstance(pins, list) or not all(isinstance(p, str) and PIN.match(p) for p in pins):
            bad = next((p for p in pins or [] if not (isinstance(p, str) and PIN.match(p))), entry)
            raise UsageError(
                f"{path}: entry {key!r} holds {str(bad)[:80]!r}, not a list of name==version pins; remove the "
                "entry (or the file) and gpuci resolves it again."
            )
    return entries


def locked_pins(root: Path, key: str, inputs: str) -> tuple[str, ...] | None:
    """The pins the lock holds for `key`, where they were resolved from these inputs."""
    entry = read_lock(root).get(key)
    if isinstance(entry, dict) and entry.get("inputs") == inputs:
        return tuple(entry["pins"])
    return None


def write_pins(root: Path, key: str, inputs: str, pins: tuple[str, ...], python: str) -> None:
    """Record a resolution (atomically: a fresh file renamed over the old one)."""
    entries = {k: v for k, v in read_lock(root).items() if k != key}
    entries[key] = {"inputs": inputs, "python": python, "pins": list(pins)}
    text = json.dumps({"version": LOCK_VERSION, "entries": dict(sorted(entries.items()))}, indent=1) + "\n"
    descriptor, temporary = tempfile.mkstemp(dir=root, prefix=".gpuci-lock-", suffix=".tmp")
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    os.chmod(temporary, 0o644)
    os.replace(temporary, Path(root) / LOCK_FILE)
    say(f"wrote {LOCK_FILE} ({len(pins)} pins for {key}): commit it, so every agent builds and pulls the same image")

"""gpuci's own pins' wheels as the index named them, remembered in the host cache: a second checkout on the
host (a new project, a fresh clone on an agent) takes them from the cache with no resolution.

Filling a fresh wheelhouse with gpuci's pins asked the index each time (`uv pip compile`, about a second),
although the pins are exact and their wheels were in the host cache already. The answer is kept under
the hash of the requirements file's bytes, the machine and the host's index settings; it is used only
when every wheel it names is in the host cache (`wheels/<sha256>`), whose bytes fetch checks against the
hash again. A project's edited requirements file is another key: what it names was resolved for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from harness.images.installer import cache_dir
from harness.images.uv_resolve import Wheel
from harness.untrusted import Refused, read_capped

MAX_BYTES = 1 << 20  # a pins file of gpuci's is a few hundred bytes; a bigger one is not remembered
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _key(requirements: Path, machine: str) -> str | None:
    try:  # the project's copy of the pins: a regular file, bounded, never a FIFO or a device
        data = read_capped(requirements, MAX_BYTES)
    except (OSError, Refused):
        return None
    index = "\n".join([os.environ.get("PIP_INDEX_URL", ""), os.environ.get("PIP_EXTRA_INDEX_URL", "")])
    return hashlib.sha256(b"\0".join([data, machine.encode(), index.encode()])).hexdigest()


def _file(key: str) -> Path:
    return cache_dir("pinned-wheels") / f"{key}.json"


def recall(requirements: Path, machine: str) -> list[Wheel] | None:
    """The wheels remembered for these pins, where every one is in the host cache; None otherwise."""
    key = _key(requirements, machine)
    if key is None:
        return None
    try:
        rows = json.loads(_file(key).read_text())
        wheels = [Wheel(str(r["name"]), str(r["url"]), str(r["sha256"])) for r in rows]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    cache = cache_dir("wheels")
    if not wheels or not all(_SHA256.fullmatch(w.sha256) and (cache / w.sha256).is_file() for w in wheels):
        return None
    return wheels


def remember(requirements: Path, machine: str, wheels: tuple[Wheel, ...]) -> None:
    key = _key(requirements, machine)
    if key is None or any(w.url is None for w in wheels):
        return  # a wheel found in the wheelhouse alone has no address to remember
    target = _file(key)
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    partial.write_text(json.dumps([{"name": w.name, "url": w.url, "sha256": w.sha256} for w in wheels]))
    os.replace(partial, target)

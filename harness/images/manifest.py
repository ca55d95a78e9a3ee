"""What an image holds: its Debian and Python package versions, read once per image and cached.

Recorded in every report (and at publish time), so a rebuilt image can be compared with the one
a failure ran in, package by package.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import docker
import docker.errors

from harness.console import say

CACHE_DIR = Path(".gpuci") / "images" / "packages"
_SEPARATOR = "---gpuci-python---"
_LIST = (
    "dpkg-query -W -f '${Package}=${Version}\\n' 2>/dev/null; "
    f"echo {_SEPARATOR}; "
    # importlib.metadata, not pip: a venv uv made has no pip.
    "(python3 -c 'import importlib.metadata as m\n"
    'for d in m.distributions(): print(d.metadata["Name"] + "==" + d.version)'
    "' 2>/dev/null || true)"
)


def packages(
    client: docker.DockerClient, image_id: str, root: Path, labels: dict[str, str] | None = None
) -> dict[str, dict[str, str]] | None:
    """{"debian": {name: version}, "python": {name: version}}, or None when it cannot be read."""
    cache = Path(root) / CACHE_DIR / f"{image_id.replace(':', '-')}.json"
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    # Named before it exists and removed by that name in `finally`, not by the SDK's remove=True: a
    # cancel can land while it runs, or after the engine made it but before `create` returned.
    name = f"gpuci-packages-{uuid.uuid4().hex[:12]}"
    try:
        container = client.containers.create(
            image_id,
            ["sh", "-c", _LIST],
            name=name,
            network_mode="none",
            labels={"gpuci.purpose": "package-list", **(labels or {})},
        )
        container.start()
        container.wait(timeout=120)
        out = container.logs(stdout=True, stderr=False)
    except (docker.errors.DockerException, OSError) as exc:
        say(f"could not list the packages of {image_id[:19]} ({str(exc).splitlines()[0][:160]})")
        return None
    finally:
        with contextlib.suppress(docker.errors.DockerException, OSError):
            client.api.remove_container(name, force=True)
    listed = parse(out.decode(errors="replace"))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(listed, sort_keys=True))
    tmp.replace(cache)
    return listed


def parse(text: str) -> dict[str, dict[str, str]]:
    debian_part, _, python_part = text.partition(_SEPARATOR)
    return {"debian": _pairs(debian_part, "="), "python": _pairs(python_part, "==")}


def _pairs(text: str, sep: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        name, found, version = line.strip().partition(sep)
        if found and name:
            out[name.lower() if sep == "==" else name] = version
    return out


def differences(recorded: dict[str, Any] | None, now: dict[str, Any] | None) -> list[str]:
    """Lines naming every package whose version differs, appeared or disappeared."""
    if not recorded or not now:
        return ["package versions: not recorded for " + ("the original image" if not recorded else "this image")]
    lines = []
    for kind in ("debian", "python"):
        before, after = recorded.get(kind) or {}, now.get(kind) or {}
        for name in sorted(set(before) | set(after)):
            if before.get(name) != after.get(name):
                lines.append(f"{kind} {name}: {before.get(name, '(absent)')} → {after.get(name, '(absent)')}")
    return lines

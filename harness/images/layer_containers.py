"""The throw-away containers that install a layer (harness/images/project_layer.py), and the ones a killed
build left.

Each carries its creator: this host, its boot id, its PID and its start in clock ticks after boot. A
build SIGKILLed mid-layer cannot remove its container; the next layer build, `gpuci reap` and `gpuci gc`
remove every such container whose creator is gone: another boot, or no process with that PID and start
(a reused PID does not count). One of another host (a shared engine), or with no creator labels (made
before they were written), is not judged: left alone.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

from harness.images import engine
from harness.owned import boot_id, start_ticks

PURPOSE = "gpuci.purpose=project-layer"
HOST, BOOT, PID, TICKS = "gpuci.host", "gpuci.creator-boot", "gpuci.creator-pid", "gpuci.creator-ticks"


def labels() -> dict[str, str]:
    """A layer container's labels: its purpose and this process as its creator."""
    key, _, value = PURPOSE.partition("=")
    mine = {key: value, HOST: socket.gethostname(), PID: str(os.getpid())}
    boot, ticks = boot_id(), start_ticks("self")
    if boot is not None and ticks is not None:  # elsewhere than Linux: no creator, never judged
        mine.update({BOOT: boot, TICKS: str(ticks)})
    return mine


def creator_gone(container_labels: Mapping[str, str]) -> bool:
    """Whether the container's creator, on this host, is gone for sure; False where it cannot be told."""
    if container_labels.get(HOST) != socket.gethostname():
        return False  # another host's build, on a shared engine: not ours to judge
    boot, pid, ticks = (container_labels.get(k) for k in (BOOT, PID, TICKS))
    here = boot_id()
    if not boot or not pid or not ticks or here is None or not pid.isdigit():
        return False
    if boot != here:
        return True  # made before this boot: every process of that boot is gone
    return str(start_ticks(int(pid))) != ticks  # no such process, or another one with its PID


def dead(client: Any, with_labels: tuple[str, ...] = ()) -> list[engine.ContainerEntry]:
    """Layer containers (carrying every label in `with_labels` too) whose creator is gone."""
    return [c for c in engine.list_containers(client, (PURPOSE, *with_labels)) if creator_gone(c.labels)]


def remove_dead(client: Any) -> list[str]:
    """Remove what killed builds left on this host (a container that went meanwhile is done); their names."""
    removed = []
    for container in dead(client):
        try:
            engine.remove_container(client, container.id)
        except Exception:  # another clean-up's turn, or the engine's: the next sweep retries
            continue
        removed.append(container.name)
    return removed

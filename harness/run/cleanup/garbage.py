"""One thing `gpuci gc` found to remove (harness/run/cleanup/gc.py), whatever kind it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.console import say
from harness.images import engine


@dataclass(frozen=True)
class Garbage:
    kind: str  # image | recipe-image | dangling-image | layer-container | layer-archive | worktree | build-folder
    # | secrets-folder | lock-file
    id: str
    bytes: int
    detail: str
    image_id: str = ""  # an image's id where `id` is its tag


def remove_image_or_report(client: Any, item: Garbage, shown: str) -> str | None:
    """Remove the item's image (its guards already held by the caller); a problem to report, or None
    (removed, or kept because a container or a newer image took it meanwhile: said on stderr)."""
    try:
        engine.remove_image(client, item.id)
    except engine.ImageInUse:
        say(f"kept {item.kind} {shown}: a container or a newer image uses it now")
    except Exception as exc:  # reported, not raised: remove the rest
        return f"{item.kind} {shown}: {exc}"
    return None

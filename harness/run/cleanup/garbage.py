"""One thing `gpuci gc` found to remove (harness/run/cleanup/gc.py), whatever kind it is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Garbage:
    kind: str  # image | recipe-image | dangling-image | layer-container | layer-archive | worktree | build-folder
    # | secrets-folder | lock-file
    id: str
    bytes: int
    detail: str
    image_id: str = ""  # an image's id where `id` is its tag

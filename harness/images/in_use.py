"""What keeps gc and reap off the images a build or a run on this host is using.

The engine itself refuses to remove an image a container uses, running or stopped, or one with child
images (gpuci never forces an image's removal). What it cannot see is the time around that:
- a run between finding its image and creating its container, and a build between finding its
  base image and its first layer: each holds a **pin**, a shared lock named by the image's id, and
  `gc` removes an image only while it holds that pin's lock exclusively;
- a build's newest layer between two steps of the classic builder, a dangling image that nothing
  names: every build holds the host's **build lock** shared, and dangling images are removed only
  while it is held exclusively, i.e. while no build runs on this host, and only when older than
  `BUILD_WINDOW_S` (builds from other hosts or tools on a shared engine take no lock of ours).
Locks, not a waiting list: the kernel drops them when their holder dies, so a crash leaves none held.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from harness.gpu.locks import host_lock, try_host_lock

BUILDS_LOCK = "builds"
# Dangling images younger than this may be a build's newest layer on another host or tool.
BUILD_WINDOW_S = 6 * 3600


def _pin_name(image_id: str) -> str:
    return f"image-{image_id.removeprefix('sha256:')[:24]}"


@contextlib.contextmanager
def pinned(image_id: str) -> Iterator[None]:
    """Keep gc off this image (by id) for the block; shared, so pins of many runs coexist."""
    with host_lock(_pin_name(image_id), shared=True):
        yield


@contextlib.contextmanager
def building() -> Iterator[None]:
    """Held (shared) for the whole of a build: its dangling layers are not garbage meanwhile."""
    with host_lock(BUILDS_LOCK, shared=True):
        yield


@contextlib.contextmanager
def unpinned(image_id: str, wait_s: float = 0.0) -> Iterator[bool]:
    """Whether no build or run on this host pins the image; while True, none can pin it."""
    with try_host_lock(_pin_name(image_id), wait_s) as free:
        yield free


@contextlib.contextmanager
def no_builds(wait_s: float = 0.0) -> Iterator[bool]:
    """Whether no build runs on this host; while True, none can start."""
    with try_host_lock(BUILDS_LOCK, wait_s) as free:
        yield free


def pin_files() -> list[str]:
    """The pin lock files (gc deletes those nobody holds)."""
    from harness.gpu.locks import lock_path

    return [str(p) for p in sorted(lock_path("image-x").parent.glob("gpuci-image-*.lock"))]

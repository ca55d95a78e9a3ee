"""`gpuci gc`: what piles up over weeks, found by age or count and removed only when asked.

Each recipe change leaves an image (tens of MB to GBs), every repro a worktree, every killed build
its context folder, every build a lock file. `gc` lists them (a dry run by default) and with
`--yes` removes them: gpuci's images beyond the newest `--keep` per platform and older than
`--older-than` days (never one a container uses), dangling images of interrupted builds, repro
worktrees older than `--older-than`, build folders of processes that are gone, the secrets
folders of runs whose supervisor died, and build lock files nobody holds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.gpu.locks import is_locked, lock_path
from harness.images.build import CONTEXT_PREFIX
from harness.owned import stale_owned_dirs

BUILD_DIR = (".gpuci", "build")
REPRO_DIR = (".gpuci", "repro")


@dataclass(frozen=True)
class Garbage:
    kind: str  # image | dangling-image | worktree | build-folder | secrets-folder | lock-file
    id: str
    bytes: int
    detail: str


def dangling_images(client: Any) -> list[Garbage]:
    """Layers an interrupted build of a gpuci image left (they carry its base's label); never one a
    container uses (a build in progress, or a container not yet removed)."""
    in_use = {c.attrs.get("ImageID") for c in client.containers.list(all=True, sparse=True)}
    found = []
    for label in ("gpuci.base", "gpuci.platform"):
        for image in client.images.list(filters={"dangling": True, "label": label}):
            if image.id not in in_use:
                found.append(
                    Garbage("dangling-image", image.id, int(image.attrs.get("Size") or 0), "interrupted build")
                )
    return list({g.id: g for g in found}.values())


def stale_build_folders(root: Path) -> list[Garbage]:
    return [
        Garbage("build-folder", str(path), _size(path), "its build was killed")
        for path in stale_owned_dirs(Path(root).joinpath(*BUILD_DIR), CONTEXT_PREFIX)
    ]


def stale_secrets() -> list[Garbage]:
    """The secrets folders of runs whose supervisor is gone (SIGKILLed, the machine reset)."""
    from harness.run.secrets import SECRETS_PREFIX, secrets_parent

    return [
        Garbage("secrets-folder", str(path), _size(path), "secrets of a run whose supervisor died")
        for path in stale_owned_dirs(secrets_parent(), SECRETS_PREFIX)
    ]


def find_garbage(root: Path, client: Any, keep: int, older_than_s: float) -> list[Garbage]:
    now = time.time()
    found: list[Garbage] = []
    if client is not None:
        found += _old_images(client, keep, now - older_than_s)
        found += dangling_images(client)
    found += stale_build_folders(root)
    found += stale_secrets()
    repro = Path(root).joinpath(*REPRO_DIR)
    if repro.is_dir():
        for tree in sorted(repro.iterdir()):
            age = now - tree.lstat().st_mtime
            if tree.is_dir() and not tree.is_symlink() and age > older_than_s:
                found.append(Garbage("worktree", str(tree), _size(tree), f"repro worktree, {age / 86400:.0f} days old"))
    for path in sorted(lock_path("build-x").parent.glob("gpuci-build-*.lock")):
        if is_locked(path) is False and now - path.stat().st_mtime > 3600:
            found.append(Garbage("lock-file", str(path), 0, "no process holds it"))
    return found


def _old_images(client: Any, keep: int, cutoff: float) -> list[Garbage]:
    in_use = {c.attrs.get("ImageID") for c in client.containers.list(all=True, sparse=True)}
    by_platform: dict[str, list[Any]] = {}
    for image in client.images.list(filters={"label": "gpuci.content-hash"}):
        by_platform.setdefault(image.labels.get("gpuci.platform", "?"), []).append(image)
    found = []
    for images in by_platform.values():
        images.sort(key=lambda i: i.attrs.get("Created", ""), reverse=True)
        for image in images[keep:]:
            created = _created(image.attrs.get("Created", ""))
            if image.id in in_use or created > cutoff:
                continue
            name = (image.tags or [image.id[:19]])[0]
            days = (time.time() - created) / 86400
            found.append(Garbage("image", name, int(image.attrs.get("Size") or 0), f"{days:.0f} days old"))
    return found


def _created(text: str) -> float:
    from datetime import datetime

    try:  # Docker's RFC 3339 with nanoseconds: seconds are enough here
        return datetime.fromisoformat(text[:19] + "+00:00").timestamp()
    except ValueError:
        return time.time()


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def remove_garbage(root: Path, client: Any, garbage: list[Garbage]) -> list[str]:
    """Remove what was found; what could not be removed."""
    from harness.git import run_git

    problems = []
    for item in garbage:
        try:
            if item.kind in ("image", "dangling-image"):
                client.images.remove(item.id, noprune=False)
            elif item.kind == "worktree":
                run_git(root, "worktree", "remove", "--force", item.id)
                shutil.rmtree(item.id, ignore_errors=True)
            elif item.kind in ("build-folder", "secrets-folder"):
                shutil.rmtree(item.id)
            elif item.kind == "lock-file":
                os.unlink(item.id)
        except Exception as exc:  # reported, not raised: remove the rest
            problems.append(f"{item.kind} {item.id}: {exc}")
    if any(g.kind == "worktree" for g in garbage):
        run_git(root, "worktree", "prune")
    return problems

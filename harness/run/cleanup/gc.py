"""`gpuci gc`: what piles up over weeks, found by age or count and removed only when asked.

Each recipe change leaves an image (tens of MB to GBs), every repro a worktree, every killed build
its context folder, every build a lock file. `gc` lists them (a dry run by default) and with
`--yes` removes them: gpuci's images beyond the newest `--keep` per platform and older than
`--older-than` days, gpuci's own layer images no project image uses any more (and older than that) and
the cached archives of their venv whose image is gone (harness/run/cleanup/own_layers.py), dangling
images of interrupted builds, the containers of builds killed mid-layer, repro worktrees older than
`--older-than`, build folders of processes that are gone, the secrets folders of runs whose
supervisor died, and lock files nobody holds. Never an image a container, a build or a run on this
host may be using (harness/images/in_use.py), and only images with every `--label` given. Every
image is listed and removed through harness/images/engine.py: one another process removed
meanwhile is gone, not an error.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

from harness.console import say
from harness.gpu.locks import is_locked, lock_path, remove_if_unheld
from harness.images import engine
from harness.images import in_use as in_use_guard
from harness.images.build import CONTEXT_PREFIX
from harness.owned import stale_owned_dirs
from harness.run.cleanup import own_layers
from harness.run.cleanup.garbage import Garbage, remove_image_or_report
from harness.untrusted import remove_tree

BUILD_DIR = (".gpuci", "build")
REPRO_DIR = (".gpuci", "repro")


def dangling_images(client: Any, labels: tuple[str, ...] = ()) -> list[Garbage]:
    """Layers an interrupted build of a gpuci image left (they carry its base's label): never one a
    container uses, nor one younger than a build's window (the newest layer of a build in progress
    is dangling between two steps; see harness/images/in_use.py). `labels`: only images with these."""
    in_use = engine.images_in_use(client)
    cutoff = time.time() - in_use_guard.BUILD_WINDOW_S
    found = []
    for label in ("gpuci.base", "gpuci.platform"):
        for image in engine.list_images(client, (label, *labels), dangling=True):
            if image.id not in in_use and image.created < cutoff:
                found.append(Garbage("dangling-image", image.id, image.size, "interrupted build"))
    return list({g.id: g for g in found}.values())


def dead_layer_containers(client: Any, labels: tuple[str, ...] = ()) -> list[Garbage]:
    """The containers that install a layer, left by builds killed mid-layer (their creator is gone:
    harness/images/layer_containers.py); host-wide, as the images they hold in use are."""
    from harness.images import layer_containers

    return [
        Garbage("layer-container", c.id[:12], 0, f"/{c.name} ({c.state}): its build was killed")
        for c in layer_containers.dead(client, labels)
    ]


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


def find_garbage(
    root: Path, client: Any, keep: int, older_than_s: float, labels: tuple[str, ...] = ()
) -> list[Garbage]:
    now = time.time()
    found: list[Garbage] = []
    if client is not None:
        # Killed builds' containers first: removed, they no longer hold their image in use.
        found += dead_layer_containers(client, labels)
        found += _old_images(client, keep, now - older_than_s, labels)
        going = {g.image_id for g in found if g.kind == "image"}
        freed = {g.id for g in found if g.kind == "layer-container"}
        found += own_layers.recipe_images(client, now - older_than_s, labels, going, freed)
        if not labels:  # the cache's archives carry no labels: a gc scoped by label leaves them to others
            found += own_layers.layer_archives(client, {g.image_id for g in found if g.kind == "recipe-image"})
        found += dangling_images(client, labels)
    found += stale_build_folders(root)
    found += stale_secrets()
    repro = Path(root).joinpath(*REPRO_DIR)
    if repro.is_dir():
        for tree in sorted(repro.iterdir()):
            age = now - tree.lstat().st_mtime
            if tree.is_dir() and not tree.is_symlink() and age > older_than_s:
                found.append(Garbage("worktree", str(tree), _size(tree), f"repro worktree, {age / 86400:.0f} days old"))
    folder = lock_path("build-x").parent
    # Lock files carry no labels: a gc scoped by label leaves them to others.
    host_wide = [] if labels else [*folder.glob("gpuci-build-*.lock"), *folder.glob("gpuci-image-*.lock")]
    for path in sorted(host_wide):
        with contextlib.suppress(FileNotFoundError):
            if is_locked(path) is False and now - path.stat().st_mtime > 3600:
                found.append(Garbage("lock-file", str(path), 0, "no process holds it"))
    return found


def _old_images(client: Any, keep: int, cutoff: float, labels: tuple[str, ...]) -> list[Garbage]:
    """gpuci's tagged images beyond the newest `keep` of their platform, older than `cutoff`, that no
    container uses (untagged ones are dangling layers: see `dangling_images`)."""
    in_use = engine.images_in_use(client)
    by_platform: dict[str, list[engine.ImageEntry]] = {}
    for image in engine.list_images(client, ("gpuci.content-hash", *labels)):
        if image.tags:
            by_platform.setdefault(image.labels.get("gpuci.platform", "?"), []).append(image)
    found = []
    for images in by_platform.values():
        images.sort(key=lambda i: i.created, reverse=True)
        for image in images[keep:]:
            if image.id in in_use or image.created > cutoff:
                continue
            days = (time.time() - image.created) / 86400
            found.append(Garbage("image", image.name, image.size, f"{days:.0f} days old", image.id))
    return found


def remove_image(client: Any, item: Garbage) -> str | None:
    """Remove one image garbage item unless a build or run on this host may be using it; a problem
    to report, or None (removed, gone already, or kept because it is in use: said on stderr)."""
    image_id = item.image_id or item.id
    guard = in_use_guard.no_builds() if item.kind == "dangling-image" else in_use_guard.unpinned(image_id)
    with guard as free:
        if not free:
            say(f"kept {item.kind} {item.id[:19]}: a build or run on this host is using it")
            return None
        return remove_image_or_report(client, item, item.id[:19])


def _size(path: Path) -> int:
    """Bytes of the files under `path`, links not followed; iterative (os.walk recurses once a level, and a
    build folder holds what the project's layer container wrote, nested as deep as it liked)."""
    total, pending = 0, [str(path)]
    while pending:
        with contextlib.suppress(OSError), os.scandir(pending.pop()) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
    return total


def remove_garbage(root: Path, client: Any, garbage: list[Garbage]) -> list[str]:
    """Remove what was found; what could not be removed."""
    from harness.git import run_git

    problems = []
    for item in garbage:
        try:
            if item.kind in ("image", "dangling-image"):
                problem = remove_image(client, item)
                if problem:
                    problems.append(problem)
            elif item.kind in ("recipe-image", "layer-archive"):
                problem = own_layers.remove(client, item)
                if problem:
                    problems.append(problem)
            elif item.kind == "layer-container":
                engine.remove_container(client, item.id)  # gone meanwhile: done
            elif item.kind == "worktree":
                run_git(root, "worktree", "remove", "--force", item.id)
                shutil.rmtree(item.id, ignore_errors=True)
            elif item.kind in ("build-folder", "secrets-folder"):
                remove_tree(Path(item.id))  # what the project's layer container wrote: any depth
            elif item.kind == "lock-file":
                remove_if_unheld(Path(item.id))
        except Exception as exc:  # reported, not raised: remove the rest
            problems.append(f"{item.kind} {item.id}: {exc}")
    if any(g.kind == "worktree" for g in garbage):
        run_git(root, "worktree", "prune")
    return problems

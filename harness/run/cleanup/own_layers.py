"""gc of gpuci's own layer images (`gpuci/<platform>-recipe:*`: the recipe's steps and gpuci's layer, under
every project image of that recipe) and of the archives of their venv in the host's cache (about 40 MB
each, harness/images/project_layer.py).

A recipe image goes once no project image uses it any more (none has its layers and more: a project
image is loaded over it, so the engine sees no parent to refuse for), it is older than `--older-than` and
no container uses it; a recipe image another recipe image stands on (its `-steps`) goes with that one.
An archive goes once its image is gone from the engine (a half-written one once its writer is gone).
Both are removed only while no build runs on this host (harness/images/in_use.py: a build holds the build
lock from finding its recipe image to its last layer) and the image is not pinned; a recipe image only
while, checked again then, nothing stands on it.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from harness.console import say
from harness.images import engine
from harness.images import in_use as in_use_guard
from harness.run.cleanup.garbage import Garbage, remove_image_or_report

RECIPE_IMAGES = "gpuci/*-recipe"  # build.py's `gpuci/<platform>-recipe:<hash>` (and its `-steps`)
_ARCHIVE = re.compile(r"([0-9a-f]{64})\.venv\.tar")
_PARTIAL = re.compile(r"\.[0-9a-f]{64}\.venv\.tar\.([0-9]+)")  # venv_copy.remember's, before its rename


def _extends(layers: tuple[str, ...], base: tuple[str, ...]) -> bool:
    return len(layers) >= len(base) and layers[: len(base)] == base


def recipe_images(
    client: Any, cutoff: float, labels: tuple[str, ...], going: Collection[str], freed: Collection[str] = ()
) -> list[Garbage]:
    """Recipe images (with every label in `labels`) older than `cutoff` that no container uses and no image
    stands on but those gc removes in this pass (`going`: ids of project images found old; `freed`: short
    ids of killed builds' containers, removed first); one Garbage a tag."""
    in_use = {c.image_id for c in engine.list_containers(client) if c.image_id and c.id[:12] not in freed}
    recipes = engine.list_images(client, labels, reference=RECIPE_IMAGES)
    # Every project and recipe image counts as a user, whatever the labels given: a scoped gc never breaks
    # another's.
    users = {i.id for i in engine.list_images(client, ("gpuci.content-hash",)) if i.id not in going}
    users |= {i.id for i in engine.list_images(client, reference=RECIPE_IMAGES)}
    layers = {i: engine.layers(client, i) for i in {*users, *(r.id for r in recipes)}}
    candidates = {r.id for r in recipes if r.created < cutoff and r.id not in in_use and layers[r.id] is not None}
    changed = True
    while changed:  # a recipe image kept keeps what it stands on (its -steps image)
        changed = False
        for image in sorted(candidates):
            own = layers[image] or ()
            if any(u != image and u not in candidates and _extends(lay or (), own) for u, lay in layers.items()):
                candidates.discard(image)
                changed = True
    found = []
    # What stands on another first: a -steps image is removed after gpuci's layer over it.
    for recipe in sorted(recipes, key=lambda r: -len(layers[r.id] or ())):
        if recipe.id in candidates:
            days = (time.time() - recipe.created) / 86400
            for tag in recipe.tags:
                detail = f"{days:.0f} days old, no project image stands on it"
                found.append(Garbage("recipe-image", tag, recipe.size, detail, recipe.id))
    return found


def users_now(client: Any, image_id: str) -> list[str]:
    """The images that stand on `image_id` now (its layers and more): project images and recipe images."""
    own = engine.layers(client, image_id)
    if own is None:
        return []
    others = {i.id for i in engine.list_images(client, ("gpuci.content-hash",))}
    others |= {i.id for i in engine.list_images(client, reference=RECIPE_IMAGES)}
    return [o for o in sorted(others - {image_id}) if _extends(engine.layers(client, o) or (), own)]


def layer_archives(client: Any, going: Collection[str]) -> list[Garbage]:
    """Archives in the host's cache whose image is gone from the engine, or goes in this pass (`going`: image
    ids), and half-written ones whose writer is gone."""
    from harness.images.installer import cache_dir
    from harness.images.venv_copy import ARCHIVES

    found = []
    folder = cache_dir(ARCHIVES)
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            whole, partial = _ARCHIVE.fullmatch(entry.name), _PARTIAL.fullmatch(entry.name)
            if entry.is_symlink() or not entry.is_file() or not (whole or partial):
                continue
            size = entry.stat(follow_symlinks=False).st_size
            if partial and not _alive(int(partial.group(1))):
                found.append(Garbage("layer-archive", entry.path, size, "half-written by a killed build"))
            elif whole:
                image_id = f"sha256:{whole.group(1)}"
                if image_id in going:
                    found.append(Garbage("layer-archive", entry.path, size, "its image goes too", image_id))
                elif engine.image_id(client, image_id) is None:
                    found.append(Garbage("layer-archive", entry.path, size, "its image is gone", image_id))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # another user's: alive
    return True


@contextlib.contextmanager
def _no_build_uses(image_id: str) -> Iterator[bool]:
    """Whether no build runs on this host and nothing pins the image; while True, neither can start."""
    with in_use_guard.no_builds() as idle, in_use_guard.unpinned(image_id) if image_id else _true() as free:
        yield idle and free


@contextlib.contextmanager
def _true() -> Iterator[bool]:
    yield True


def remove(client: Any, item: Garbage) -> str | None:
    """Remove a recipe image (by its tag) or an archive, unless a build may be using it; a problem to
    report, or None (removed, gone already, or kept: said on stderr)."""
    shown = Path(item.id).name[:30] if item.kind == "layer-archive" else item.id
    with _no_build_uses(item.image_id) as free:
        if not free:
            say(f"kept {item.kind} {shown}: a build on this host is running")
            return None
        if item.kind == "layer-archive":
            if item.image_id and engine.image_id(client, item.image_id) is not None:
                say(f"kept {item.kind} {shown}: its image is on the engine")
                return None
            Path(item.id).unlink(missing_ok=True)
            return None
        if engine.image_id(client, item.id) != item.image_id:  # gone, or the tag names another image now
            return None
        users = users_now(client, item.image_id)
        if users:
            say(f"kept {item.kind} {item.id}: the image {users[0][:19]} stands on it")
            return None
        return remove_image_or_report(client, item, item.id)
    return None

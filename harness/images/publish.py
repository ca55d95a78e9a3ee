"""`python -m harness image publish`: the platform's image in the registry, once per content tag."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from harness.console import say
from harness.images import manifest
from harness.images.build import ensure
from harness.images.recipe import ImageRecipe
from harness.images.registry import Registry, push, remote_digest
from harness.images.tag_record import TagRecord, remember

RECORDS_DIR = Path(".gpuci") / "images" / "published"


@dataclass(frozen=True)
class Published:
    ref: str
    digest: str
    pushed: bool
    seconds: float
    image_id: str | None = None
    record: Path | None = None

    @property
    def pinned(self) -> str:
        return f"{self.ref.rsplit(':', 1)[0]}@{self.digest}"


def publish(client: docker.DockerClient, recipe: ImageRecipe, root: Path, registry: Registry) -> Published:
    """Push REGISTRY/gpuci-P:<content tag> unless the registry has it (then: one query, nothing else)."""
    started = time.monotonic()
    ref = registry.ref(recipe.platform, recipe.content_hash())
    digest = remote_digest(client, registry, ref)
    if digest:
        return Published(ref, digest, False, time.monotonic() - started)
    image = ensure(client, recipe, root)
    repository, tag = ref.rsplit(":", 1)
    client.api.tag(image.id, repository, tag)
    try:
        digest = push(client, registry, ref)
    finally:
        # The registry's name for it stays only once pushed; an interrupted push leaves no such tag.
        if not digest:
            client.api.remove_image(ref, noprune=True)
    remember(client, TagRecord(image.tag, image.id, image.content_hash, f"{repository}@{digest}"))
    packages = manifest.packages(client, image.id, root)
    record = _record(root, ref, digest, image.id, recipe, packages)
    return Published(ref, digest, True, time.monotonic() - started, image.id, record)


def _record(
    root: Path, ref: str, digest: str, image_id: str, recipe: ImageRecipe, packages: dict[str, Any] | None
) -> Path:
    """Written only after the registry confirmed the digest: an interrupted push is never recorded."""
    path = Path(root) / RECORDS_DIR / f"{recipe.platform}-{recipe.content_hash()[:16]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "ref": ref,
        "digest": digest,
        "image_id": image_id,
        "content_hash": recipe.content_hash(),
        "platform": recipe.platform,
        "published_at": time.time(),
        "packages": packages,
    }
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)
    say(f"recorded in {path}")
    return path

"""The image a run uses: the local one, else pulled from the registry by content tag, else built."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import docker

from harness.console import say
from harness.images.build import EnsuredImage, ensure, existing, resolved
from harness.images.recipe import ImageRecipe
from harness.images.registry import Registry, pull, remote_digest, repo_digest


def obtain(
    client: docker.DockerClient, recipe: ImageRecipe, root: Path, registry: Registry | None, build: bool = False
) -> EnsuredImage:
    """With a registry, a missing image is pulled before any build is considered; `build` skips the pull."""
    started = time.monotonic()
    recipe = resolved(recipe, root, client)  # the tag covers what the requirements resolved to
    content_hash = recipe.content_hash()
    local = existing(client, recipe.tag)
    if local:
        ensured = EnsuredImage(recipe.tag, local, False, time.monotonic() - started, content_hash)
    elif registry is None or build:
        ensured = ensure(client, recipe, root)
    else:
        ref = registry.ref(recipe.platform, content_hash)
        if remote_digest(client, registry, ref):
            image_id = pull(client, registry, ref)
            repository, tag = recipe.tag.rsplit(":", 1)
            client.api.tag(image_id, repository, tag)
            ensured = EnsuredImage(recipe.tag, image_id, False, time.monotonic() - started, content_hash, pulled=True)
        else:
            say(
                f"the registry {registry.address} has no {ref}: building it here. Publish it once "
                f"(`python -m harness image publish --platform {recipe.platform}`) so agents pull instead."
            )
            ensured = ensure(client, recipe, root)
    if registry is not None:
        ensured = replace(ensured, repo_digest=repo_digest(client, ensured.id, [registry.repository(recipe.platform)]))
    return ensured

"""The image a run uses: the local one, else pulled from the registry by content tag, else built."""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from pathlib import Path

import docker

from harness.console import say
from harness.images.build import CONTENT_LABEL, EnsuredImage, ensure, existing, resolved
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
        image_id = pull(client, registry, ref) if remote_digest(client, registry, ref) else None
        if image_id and not _made_from(client, image_id, content_hash, ref):
            image_id = None
            ensured = ensure(client, recipe, root)
        elif image_id:
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


def _made_from(client: docker.DockerClient, image_id: str, content_hash: str, ref: str) -> bool:
    """Whether a pulled image says it was built from this recipe: a tag in a registry is a name anyone
    with push rights can point anywhere, so the image's own content label must agree with it."""
    labels = client.api.inspect_image(image_id).get("Config", {}).get("Labels") or {}
    if labels.get(CONTENT_LABEL) == content_hash:
        return True
    say(
        f"warning: {ref} is labelled {CONTENT_LABEL}={str(labels.get(CONTENT_LABEL))[:16]!r}, not this recipe's "
        f"{content_hash[:16]}: not used (the registry holds another image under this tag); building it here"
    )
    with contextlib.suppress(docker.errors.APIError):
        client.api.remove_image(ref)  # the name only: the bytes stay for whoever else has them
    return False

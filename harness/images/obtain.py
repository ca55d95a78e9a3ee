"""The image a run uses: the local one, else pulled from the registry by content tag, else built;
`for_run` answers a run with one `ImageRecord`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path

import docker

from harness.console import say
from harness.images.build import CONTENT_LABEL, EnsuredImage, ensure, existing, resolved
from harness.images.recipe import ImageRecipe
from harness.images.record import ArchiveRef, ImageRecord, ImageRequest
from harness.images.registry import Registry, pull, remote_digest, repo_digest
from harness.images.tag_record import TagRecord, agrees, remember

# The run's bound on a build or pull, given the recipe's tag (its image_timeout, on the run's clock).
Bound = Callable[[str], AbstractContextManager[object]]


def for_run(client: docker.DockerClient, request: ImageRequest, pin: contextlib.ExitStack, bound: Bound) -> ImageRecord:
    """The run's image (pinned by a repro, else local, pulled or built) and what the report says of it.
    The image is pinned in `pin` from the moment it is found (harness/images/in_use.py); one removed by
    another process before that is looked for once more."""
    from harness.images import engine, in_use

    record = _find(client, request, bound)
    pin.enter_context(in_use.pinned(record.id))
    if engine.image_id(client, record.id) is None:
        say(f"the image {record.id[:19]} was removed as this run found it (a clean-up of the engine): once more")
        pin.close()
        record = _find(client, request, bound)
        pin.enter_context(in_use.pinned(record.id))
    return _described(client, request, record)


def _find(client: docker.DockerClient, request: ImageRequest, bound: Bound) -> ImageRecord:
    from harness.images.recipe import recipe_for

    started = time.monotonic()
    if request.pinned_id:
        return replace(ImageRecord.pinned_from(request.pinned_id, request.pinned_report), seconds=_since(started))
    registry = request.registry
    if registry is None and request.config is not None:  # the run's settings name it ([tool.gpuci] registry)
        from harness.images.registry import registry_from

        registry = registry_from(request.config)  # its credentials checked before anything is built
    root = request.root
    recipe = recipe_for(
        root, request.platform, request.base_image, request.ca_bundle, request.python, config=request.config
    )
    recipe = resolved(recipe, root, client)
    with bound(recipe.tag):
        image = obtain(client, recipe, root, registry, request.build)
    return ImageRecord(
        image.id,
        tag=image.tag,
        built=image.built,
        pulled=image.pulled,
        repo_digest=image.repo_digest,
        content_hash=image.content_hash,
        base_image=recipe.build_args.get("BASE_IMAGE"),
        resolved=tuple(recipe.pins),
        seconds=_since(started),
    )


def _described(client: docker.DockerClient, request: ImageRequest, record: ImageRecord) -> ImageRecord:
    from harness.images import archive, manifest

    loaded = archive.loaded_from(request.root, record.id)
    packages = manifest.packages(client, record.id, request.root, {"gpuci.run-id": request.run_id})
    return record.described(ArchiveRef(loaded["file"], loaded["sha256"]) if loaded else None, packages)


def _since(started: float) -> float:
    return round(time.monotonic() - started, 6)


def obtain(
    client: docker.DockerClient, recipe: ImageRecipe, root: Path, registry: Registry | None, build: bool = False
) -> EnsuredImage:
    """With a registry, a missing image is pulled before any build is considered; `build` skips the pull."""
    started = time.monotonic()
    recipe = resolved(recipe, root, client)  # the tag covers what the requirements resolved to
    content_hash = recipe.content_hash()
    local = existing(client, recipe.tag)
    if local and agrees(client, recipe.tag, local, content_hash, quiet=True):  # else ensure says why
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
    if ensured.pulled:  # the pulled bytes are what this tag names here from now on
        remember(client, TagRecord(ensured.tag, ensured.id, content_hash, ensured.repo_digest))
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

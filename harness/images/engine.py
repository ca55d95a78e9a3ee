"""The connection to the Docker Engine, the one place that lists images and containers, and the removal
clean-up uses (gc, reap, handoff); a module that made a container or an image name removes its own.

A missing engine is an infrastructure error (exit 75). Lists come from the engine's own list calls
(`client.api.images`, `client.api.containers`), never inspecting each entry: docker-py's
`images.list` inspects every image it lists, so an image another process removes meanwhile raised
"No such image". An object listed here may still vanish before it is used: every function that
touches one by id treats "gone" as done, never as an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors

from harness.errors import DockerUnavailable, gpuci_cause


@dataclass(frozen=True)
class ImageEntry:
    """One image as the engine lists it (no inspect)."""

    id: str
    tags: tuple[str, ...]
    created: float  # seconds since the epoch
    size: int
    labels: Mapping[str, str] = field(default_factory=dict)
    digests: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.tags[0] if self.tags else self.id[:19]


@dataclass(frozen=True)
class ContainerEntry:
    """One container as the engine lists it (no inspect)."""

    id: str
    name: str
    image_id: str
    state: str  # created | running | paused | restarting | removing | exited | dead
    labels: Mapping[str, str] = field(default_factory=dict)


# The engine's words (an error 500, not 404) for an image another process removed mid-request.
VANISHED = ("unrecognized image ID", "No such image", "reference does not exist")


class ImageInUse(Exception):
    """The engine refused to remove an image: a container (running or not) or a child image uses it."""


def connect(timeout: int = 600) -> docker.DockerClient:
    try:
        # The SDK asks the engine its API version as it connects: that request is the reachability
        # check too (a ping after it was one more round trip on every run).
        client = docker.from_env(timeout=timeout)
    except docker.errors.DockerException as exc:
        cause = gpuci_cause(exc)
        if cause:  # a cancel that landed inside the SDK's connection: a cancel, not a missing engine
            raise cause from None
        raise DockerUnavailable(
            f"cannot reach the Docker Engine ({_short(exc)}). gpuci runs every step in a container: "
            "start Docker (`sudo systemctl start docker`), check that `docker info` works for this "
            "user and that DOCKER_HOST points at it, then run again. To run a step on the host "
            "instead, pass --no-container."
        ) from None
    return client


def _filters(labels: Iterable[str], **more: Any) -> dict[str, Any]:
    filters: dict[str, Any] = {k: v for k, v in more.items() if v is not None}
    wanted = list(labels)
    if wanted:
        filters["label"] = wanted  # every one must match
    return filters


def list_images(
    client: docker.DockerClient,
    labels: Iterable[str] = (),
    dangling: bool | None = None,
    all: bool = False,
    reference: str | None = None,
) -> list[ImageEntry]:
    """Images carrying every label in `labels` ("key" or "key=value"); `all` adds intermediate layers;
    `reference`: only those with a name that matches it (a pattern: `gpuci/*-recipe`)."""
    rows = client.api.images(all=all, filters=_filters(labels, dangling=dangling, reference=reference)) or []
    return [_image(row) for row in rows]


def _image(row: Mapping[str, Any]) -> ImageEntry:
    tags = tuple(t for t in row.get("RepoTags") or () if t and t != "<none>:<none>")
    digests = tuple(d for d in row.get("RepoDigests") or () if d and not d.startswith("<none>"))
    return ImageEntry(
        id=str(row.get("Id", "")),
        tags=tags,
        created=float(row.get("Created") or 0),
        size=int(row.get("Size") or 0),
        labels=dict(row.get("Labels") or {}),
        digests=digests,
    )


def list_containers(
    client: docker.DockerClient, labels: Iterable[str] = (), status: str | None = None
) -> list[ContainerEntry]:
    """Containers in any state (or `status` only) carrying every label in `labels`."""
    rows = client.api.containers(all=True, filters=_filters(labels, status=status)) or []
    return [
        ContainerEntry(
            id=str(row.get("Id", "")),
            name=((row.get("Names") or ["?"])[0] or "?").lstrip("/"),
            image_id=str(row.get("ImageID") or ""),
            state=str(row.get("State") or ""),
            labels=dict(row.get("Labels") or {}),
        )
        for row in rows
    ]


def container_exists(client: docker.DockerClient, container_id: str) -> bool:
    return bool(client.api.containers(all=True, filters={"id": container_id}))


def images_in_use(client: docker.DockerClient) -> set[str]:
    """Ids of the images some container uses, in any state (a build step's container included)."""
    return {c.image_id for c in list_containers(client) if c.image_id}


def layers(client: docker.DockerClient, ref: str) -> tuple[str, ...] | None:
    """The diff ids of the image's layers, oldest first; None when it is gone."""
    try:
        return tuple(client.api.inspect_image(ref)["RootFS"]["Layers"])
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        if any(text in str(exc) for text in VANISHED):
            return None
        raise


def is_local(client: docker.DockerClient) -> bool:
    """Whether the engine is this host's (its Unix socket): a folder here is a folder it can bind-mount."""
    return str(client.api.base_url).startswith("http+docker://localhost")


def image_id(client: docker.DockerClient, ref: str) -> str | None:
    """The id of the image `ref` names (tag or id), or None when there is none."""
    try:
        return str(client.api.inspect_image(ref)["Id"])
    except docker.errors.NotFound:
        return None


def remove_image(client: docker.DockerClient, ref: str, force: bool = False) -> bool:
    """Remove (or untag) an image; False when it was gone already. Without `force` the engine keeps
    an image a container or a child image uses: that is `ImageInUse`, never a forced removal."""
    try:
        client.api.remove_image(ref, force=force, noprune=False)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        if exc.status_code == 409:
            raise ImageInUse(_short(exc)) from None
        if any(text in str(exc) for text in VANISHED):
            return False  # removed by another process while the engine looked it up
        raise
    return True


def remove_container(client: docker.DockerClient, container_id: str) -> bool:
    """Force-remove a container; False when it was gone already (or the engine is removing it)."""
    try:
        client.api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        if exc.status_code == 409 and "already in progress" in str(exc):
            return False
        raise
    return True


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]

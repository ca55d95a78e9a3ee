"""An image made of a parent image and one layer tar written on the host, handed to the engine by `docker load`.

The load's archive holds the one new layer, then the new image's config (the parent's, with the new
layer's diff id and the labels added) and a manifest: the parent's layers are named but not included,
and the engine skips a layer whose chain it has already (so only the new layer is applied, by the
storage driver's own untar: no container, no diff of the whole tree). The layer comes first and is
written as it is sent (harness/images/layer_tar.py sizes it beforehand): its diff id, which the config
names, is known only once its last byte is out, and the engine reads the manifest only after it has
the whole archive. The parent is pinned while this runs (harness/images/in_use.py); a parent that
vanished anyway fails the load, which is said.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import tarfile
from collections.abc import Iterator
from typing import Any

from harness.errors import ImageBuildError
from harness.images.layer_tar import Layer

LAYER_NAME = "layer.tar"


def history(client: Any, parent_id: str, layers: int) -> list[dict[str, Any]]:
    """The parent's history in the config's form, oldest first, where the engine's answer accounts for
    every layer (a step with no bytes is read as an empty one); none otherwise (history is for people)."""
    entries = []
    for row in reversed(client.api.history(parent_id)):
        entry: dict[str, Any] = {
            "created": _time(float(row.get("Created") or 0)),
            "created_by": str(row.get("CreatedBy") or ""),
        }
        if row.get("Comment"):
            entry["comment"] = str(row["Comment"])
        if not row.get("Size"):
            entry["empty_layer"] = True
        entries.append(entry)
    return entries if sum(not e.get("empty_layer") for e in entries) == layers else []


def _time(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_config(client: Any, parent_id: str, labels: dict[str, str], created_by: str) -> dict[str, Any]:
    """The new image's config: the parent's settings (environment, command, workdir) and layers; ours is
    added by `with_layer` once its diff id is known."""
    parent = client.api.inspect_image(parent_id)
    settings = {k: v for k, v in (parent.get("Config") or {}).items() if k != "Image"}
    settings["Labels"] = {**(settings.get("Labels") or {}), **labels}
    layers = list(parent["RootFS"]["Layers"])
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    config = {
        "architecture": parent["Architecture"],
        "os": parent.get("Os") or "linux",
        "created": now,
        "config": settings,
        "rootfs": {"type": "layers", "diff_ids": layers},
        "history": [*history(client, parent_id, len(layers)), {"created": now, "created_by": created_by}],
    }
    if parent.get("Variant"):
        config["variant"] = parent["Variant"]
    return config


def with_layer(config: dict[str, Any], diff_id: str) -> bytes:
    rootfs = {**config["rootfs"], "diff_ids": [*config["rootfs"]["diff_ids"], diff_id]}
    return json.dumps({**config, "rootfs": rootfs}, sort_keys=True, separators=(",", ":")).encode()


def _member(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    # PAX: USTAR's size field ends below 8 GiB (ValueError out of the load); below that the bytes are USTAR's.
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _small(name: str, data: bytes) -> Iterator[bytes]:
    yield _member(name, len(data))
    yield data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


class Loaded:
    """What a load made: the image's id (its config's hash), known once the archive is sent."""

    image_id = ""


def archive(config: dict[str, Any], layer: Layer, tag: str, loaded: Loaded) -> Iterator[bytes]:
    """The load's archive, streamed: the layer's bytes as they are written, then config and manifest."""
    yield _member(f"new/{LAYER_NAME}", layer.size)
    yield from layer.chunks()
    yield b"\0" * (-layer.size % tarfile.BLOCKSIZE)
    data = with_layer(config, layer.diff_id)
    config_name = f"{hashlib.sha256(data).hexdigest()}.json"
    layers = json.loads(data)["rootfs"]["diff_ids"]
    # Every layer but the last is the engine's already: named, never read (docker load skips its chain).
    paths = [f"{d.split(':', 1)[1]}/{LAYER_NAME}" for d in layers[:-1]] + [f"new/{LAYER_NAME}"]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": paths}]).encode()
    yield from _small(config_name, data)
    yield from _small("manifest.json", manifest)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)
    loaded.image_id = f"sha256:{hashlib.sha256(data).hexdigest()}"


def load(client: Any, config: dict[str, Any], layer: Layer, tag: str) -> str:
    """Write the layer into the engine and load the image under `tag`; its id."""
    import docker.errors
    import requests

    loaded = Loaded()
    try:
        for message in client.api.load_image(archive(config, layer, tag, loaded)):
            error = message.get("error") or (message.get("errorDetail") or {}).get("message")
            if error:
                raise ImageBuildError(f"the engine refused the project's layer for {tag}: {str(error)[:300]}")
    except docker.errors.APIError as exc:
        raise ImageBuildError(f"the engine refused the project's layer for {tag}: {exc.explanation or exc}") from None
    except requests.exceptions.RequestException as exc:  # an OSError with no errno: a traceback otherwise
        raise ImageBuildError(
            f"the engine did not answer the load of {tag} in time or closed it ({str(exc)[:200]}); a layer of many "
            "GiB can outlast the client's timeout, and the engine may still finish and tag it. Run again."
        ) from None
    if not loaded.image_id:
        raise ImageBuildError(f"the engine ended the load of {tag} before it had the whole layer.")
    return loaded.image_id

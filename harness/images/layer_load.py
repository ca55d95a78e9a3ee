"""An image made of a parent image and one layer tar written on the host, handed to the engine by `docker load`.

The load's archive holds the new image's config (the parent's, with the new layer's diff id and the
labels added), a manifest, and the one new layer: the parent's layers are named but not included,
and the engine skips a layer whose chain it has already (so only the new layer is applied, by the
storage driver's own untar: no container, no diff of the whole tree). The parent is pinned while
this runs (harness/images/in_use.py); a parent that vanished anyway fails the load, which is said.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import ImageBuildError

_CHUNK = 1 << 20
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


def image_config(client: Any, parent_id: str, diff_id: str, labels: dict[str, str], created_by: str) -> bytes:
    """The new image's config: the parent's settings (environment, command, workdir) and layers, then ours."""
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
        "rootfs": {"type": "layers", "diff_ids": [*layers, diff_id]},
        "history": [*history(client, parent_id, len(layers)), {"created": now, "created_by": created_by}],
    }
    if parent.get("Variant"):
        config["variant"] = parent["Variant"]
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def _member(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def _small(name: str, data: bytes) -> Iterator[bytes]:
    yield _member(name, len(data))
    yield data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


def archive(config: bytes, layer: Path, tag: str) -> Iterator[bytes]:
    """The load's archive, streamed: config, manifest, then the layer's bytes (never a second copy on disk)."""
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    layers = json.loads(config)["rootfs"]["diff_ids"]
    # Every layer but the last is the engine's already: named, never read (docker load skips its chain).
    paths = [f"{d.split(':', 1)[1]}/{LAYER_NAME}" for d in layers[:-1]] + [f"new/{LAYER_NAME}"]
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": paths}]).encode()
    yield from _small(config_name, config)
    yield from _small("manifest.json", manifest)
    size = layer.stat().st_size
    yield _member(paths[-1], size)
    with open(layer, "rb") as handle:
        yield from iter(lambda: handle.read(_CHUNK), b"")
    yield b"\0" * (-size % tarfile.BLOCKSIZE) + b"\0" * (2 * tarfile.BLOCKSIZE)


def load(client: Any, config: bytes, layer: Path, tag: str) -> str:
    """Load the image under `tag`; its id (the config's hash)."""
    import docker.errors

    try:
        for message in client.api.load_image(archive(config, layer, tag)):
            error = message.get("error") or (message.get("errorDetail") or {}).get("message")
            if error:
                raise ImageBuildError(f"the engine refused the project's layer for {tag}: {str(error)[:300]}")
    except docker.errors.APIError as exc:
        raise ImageBuildError(f"the engine refused the project's layer for {tag}: {exc.explanation or exc}") from None
    return f"sha256:{hashlib.sha256(config).hexdigest()}"

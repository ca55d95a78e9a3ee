"""What gpuci made under each content tag on this engine: the image id, and the registry's digest where
it was pushed or pulled. Kept in gpuci's host cache, one folder per engine, never in a checkout (which
the pull request writes).

A content tag names a recipe, but the engine lets anyone move a tag: another process's `docker tag`, a
`docker load` of someone else's archive. A tag found on another image than the one recorded is not
gpuci's image, whatever its labels say (labels are copied as easily): the caller builds it again. A tag
seen for the first time is recorded as found, so a later move is caught.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import docker

from harness.console import say
from harness.images.installer import cache_dir
from harness.untrusted import parse_json, read_names

RECORDS = ("images", "tags")
MAX_BYTES = 64 * 1024
UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class TagRecord:
    tag: str
    id: str
    content_hash: str
    repo_digest: str | None = None  # REPO@sha256:… where a registry holds the same bytes


def folder(client: docker.DockerClient) -> Path:
    """This engine's records: engines on one host (rootless, remote) keep their own images."""
    engine = UNSAFE.sub("-", str(client.info().get("ID") or client.api.base_url))[:100]
    return cache_dir(*RECORDS, engine)


def _name(tag: str) -> str:
    return UNSAFE.sub("_", tag) + ".json"


def recorded(client: docker.DockerClient, tag: str) -> TagRecord | None:
    """The record of `tag`, or None where there is none or it is not one gpuci wrote (read bounded,
    never through a link)."""
    found, _ = read_names(folder(client), [_name(tag)], MAX_BYTES)
    try:
        data = parse_json(found[_name(tag)]) if found else None
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("tag") != tag:
        return None
    image_id, content_hash, digest = data.get("id"), data.get("content_hash"), data.get("repo_digest")
    if not (isinstance(image_id, str) and isinstance(content_hash, str) and isinstance(digest, (str, type(None)))):
        return None
    return TagRecord(tag, image_id, content_hash, digest)


def remember(client: docker.DockerClient, record: TagRecord) -> None:
    """Write `record` atomically (a fresh file renamed over the old)."""
    where = folder(client)
    descriptor, temporary = tempfile.mkstemp(dir=where, prefix=".tag-", suffix=".tmp")
    with os.fdopen(descriptor, "w") as out:
        json.dump(vars(record), out)
    os.replace(temporary, where / _name(record.tag))


def agrees(client: docker.DockerClient, tag: str, image_id: str, content_hash: str, quiet: bool = False) -> bool:
    """Whether `image_id`, found under `tag`, is the image gpuci recorded there (saying why not, unless
    `quiet`); a tag with no record is recorded now, as found."""
    record = recorded(client, tag)
    if record is None:
        remember(client, TagRecord(tag, image_id, content_hash))
        return True
    if record.id == image_id or quiet:
        return record.id == image_id
    say(
        f"warning: {tag} is the image {image_id[:19]} on this engine, but gpuci made {record.id[:19]} under that "
        f"tag (recorded in {folder(client) / _name(tag)}): another image took the tag (a `docker tag`, or a "
        "`docker load` of someone else's archive). Not used: building it again."
    )
    return False

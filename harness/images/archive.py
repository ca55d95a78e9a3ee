"""Images as files, for sites with no registry: compressed `docker save` / `docker load`.

A saved image travels as a Buildkite artifact; the file's sha256 is printed, and recorded on
load so the reports of runs in that image name the file they came from.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import time
from pathlib import Path

import docker
import docker.errors

from harness.console import say
from harness.errors import InfrastructureError, UsageError

LOADED_DIR = Path(".gpuci") / "images" / "loaded"
_CHUNK = 1 << 20


def save(client: docker.DockerClient, tag: str, out: Path) -> str:
    """Write the image to `out` (gzip); its sha256. A half-written file never takes `out`'s name."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    digest = hashlib.sha256()
    written, last, started = 0, time.monotonic(), time.monotonic()
    try:
        with open(tmp, "wb") as raw:
            hashing = _HashingWriter(raw, digest)
            with gzip.GzipFile(fileobj=hashing, mode="wb", compresslevel=3, mtime=0) as gz:
                for chunk in client.api.get_image(tag, chunk_size=_CHUNK):
                    gz.write(chunk)
                    written += len(chunk)
                    if time.monotonic() - last >= 2.0:
                        last = time.monotonic()
                        say(f"saving {tag}: {written / 1e6:.0f} MB read")
        tmp.replace(out)
    except docker.errors.DockerException as exc:
        raise InfrastructureError(f"saving {tag} to {out} failed ({exc}); is the image present?") from None
    finally:
        tmp.unlink(missing_ok=True)
    size = out.stat().st_size / 1e6
    say(f"saved {tag}: {written / 1e6:.0f} MB → {out} ({size:.0f} MB) in {time.monotonic() - started:.1f}s")
    return digest.hexdigest()


def load(client: docker.DockerClient, path: Path, root: Path) -> tuple[list[str], str]:
    """Load an image file (gzip or plain tar, as Docker reads both); the tags it brought, the file's sha256."""
    if not path.is_file():
        raise UsageError(f"{path} is not a file; give the path `image save -o` wrote.")
    digest = _sha256(path)
    say(f"loading {path} ({path.stat().st_size / 1e6:.0f} MB, sha256 {digest[:16]}…)")
    try:
        with open(path, "rb") as data:
            out = client.api.load_image(data)
    except docker.errors.DockerException as exc:
        raise InfrastructureError(
            f"the engine could not load {path} ({exc}); is it a file `image save` wrote?"
        ) from None
    tags = [
        line["stream"].split("Loaded image:", 1)[1].strip() for line in out if "Loaded image:" in line.get("stream", "")
    ]
    for tag in tags:
        image_id = str(client.images.get(tag).id)
        record = Path(root) / LOADED_DIR / f"{image_id.replace(':', '-')}.json"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"file": str(path.resolve()), "sha256": digest, "tag": tag}))
    return tags, digest


def loaded_from(root: Path, image_id: str) -> dict[str, str] | None:
    """The file an image was loaded from, when it was."""
    try:
        return json.loads((Path(root) / LOADED_DIR / f"{image_id.replace(':', '-')}.json").read_text())
    except (OSError, ValueError):
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


class _HashingWriter:
    """A file that hashes what passes through, so the digest costs no second read."""

    def __init__(self, raw, digest) -> None:  # type: ignore[no-untyped-def]
        self.raw, self.digest = raw, digest

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

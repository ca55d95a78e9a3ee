"""Content-addressed images: the tag is a hash of the recipe, and a build happens only when it is missing.

The hash covers the Dockerfile, its build args and the files it copies (the pinned
requirements and the extra CA bundle; the wheels are fixed by those pins). The same recipe
gives the same tag on a laptop and on a CI agent, so a failure reproduces in the same image.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from harness.console import say
from harness.declare.platforms import get_platform
from harness.errors import ImageBuildError, UsageError
from harness.gpu.locks import host_lock
from harness.images.airgap import BaseRecipe, bootstrap_base, fill_wheelhouse, wheelhouse_dir

CONTAINERS_DIR = Path("containers")
REQUIREMENTS = CONTAINERS_DIR / "requirements.txt"


@dataclass(frozen=True)
class ImageRecipe:
    platform: str
    dockerfile: Path
    requirements: Path
    build_args: dict[str, str] = field(default_factory=dict)
    ca_bundle: Path | None = None

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for name, data in (
            ("Dockerfile", self.dockerfile.read_bytes()),
            ("requirements.txt", self.requirements.read_bytes()),
            ("extra-ca.crt", self.ca_bundle.read_bytes() if self.ca_bundle else b""),
        ):
            digest.update(f"{name}\0{len(data)}\0".encode() + data)
        for key in sorted(self.build_args):
            digest.update(f"arg\0{key}={self.build_args[key]}\0".encode())
        return digest.hexdigest()

    @property
    def tag(self) -> str:
        return f"gpuci/{self.platform}:{self.content_hash()[:16]}"

    @property
    def local_base(self) -> str | None:
        """The gpuci base image this recipe builds on, when it is one (made, not pulled)."""
        base = self.build_args.get("BASE_IMAGE", "")
        return base if base.startswith(BaseRecipe().tag.split(":")[0] + ":") else None


@dataclass(frozen=True)
class EnsuredImage:
    tag: str
    id: str
    built: bool
    seconds: float
    content_hash: str


def recipe_for(root: Path, platform: str, base_image: str | None = None, ca_bundle: Path | None = None) -> ImageRecipe:
    """The recipe of a platform's image. With no base image named, cpu builds on the local
    Debian base (no registry needed) and cuda/rocm on the vendors' images (their Dockerfile
    defaults); GPUCI_BASE_IMAGE or --base-image overrides, e.g. `local` for the Debian base."""
    dockerfile = Path(root) / CONTAINERS_DIR / get_platform(platform).recipe / "Dockerfile"
    if not dockerfile.is_file():
        raise UsageError(f"{dockerfile} is missing: each platform's image recipe lives there.")
    if ca_bundle is not None and not ca_bundle.is_file():
        raise UsageError(f"CA bundle {ca_bundle} does not exist; pass a PEM file with --ca-bundle.")
    base_image = base_image or os.environ.get("GPUCI_BASE_IMAGE") or ("local" if platform == "cpu" else None)
    args = {}
    if base_image:
        args["BASE_IMAGE"] = BaseRecipe(ca_bundle=ca_bundle).tag if base_image == "local" else base_image
    return ImageRecipe(platform, dockerfile, Path(root) / REQUIREMENTS, args, ca_bundle)


def _existing(client: docker.DockerClient, tag: str) -> str | None:
    try:
        return str(client.images.get(tag).id)
    except docker.errors.ImageNotFound:
        return None


def ensure(client: docker.DockerClient, recipe: ImageRecipe, root: Path) -> EnsuredImage:
    """The recipe's image, built only when its tag is missing."""
    started = time.monotonic()
    content_hash = recipe.content_hash()
    tag = f"gpuci/{recipe.platform}:{content_hash[:16]}"
    image_id = _existing(client, tag)
    if image_id:
        return EnsuredImage(tag, image_id, False, time.monotonic() - started, content_hash)
    # Two sessions missing the same tag build it once: the second waits and finds it.
    with host_lock(f"build-{tag}"):
        image_id = _existing(client, tag)
        if image_id:
            return EnsuredImage(tag, image_id, False, time.monotonic() - started, content_hash)
        return _build_missing(client, recipe, root, tag, content_hash, started)


def _build_missing(
    client: docker.DockerClient, recipe: ImageRecipe, root: Path, tag: str, content_hash: str, started: float
) -> EnsuredImage:
    if recipe.local_base:
        bootstrap_base(client, BaseRecipe(ca_bundle=recipe.ca_bundle))
    wheelhouse = wheelhouse_dir(Path(root))
    fill_wheelhouse(recipe.requirements, wheelhouse, recipe.ca_bundle)
    say(f"building {tag} from {recipe.dockerfile}")
    with tempfile.TemporaryDirectory(prefix="gpuci-context-") as context:
        ctx = Path(context)
        shutil.copyfile(recipe.dockerfile, ctx / "Dockerfile")
        shutil.copyfile(recipe.requirements, ctx / "requirements.txt")
        (ctx / "extra-ca.crt").write_bytes(recipe.ca_bundle.read_bytes() if recipe.ca_bundle else b"")
        shutil.copytree(wheelhouse, ctx / "wheelhouse")
        _build(client, ctx, tag, recipe, content_hash)
    image_id = _existing(client, tag)
    if image_id is None:
        raise ImageBuildError(f"the build of {tag} reported success but the image is missing.")
    seconds = time.monotonic() - started
    say(f"built {tag} in {seconds:.1f}s")
    return EnsuredImage(tag, image_id, True, seconds, content_hash)


def _build(client: docker.DockerClient, context: Path, tag: str, recipe: ImageRecipe, content_hash: str) -> None:
    labels = {"gpuci.platform": recipe.platform, "gpuci.content-hash": content_hash}
    try:
        stream = client.api.build(
            path=str(context),
            tag=tag,
            buildargs=recipe.build_args,
            labels=labels,
            rm=True,
            forcerm=True,
            decode=True,
            pull=False,
        )
        for chunk in stream:
            if "error" in chunk:
                raise ImageBuildError(f"building {tag} from {recipe.dockerfile} failed: {chunk['error'].strip()}")
            text = chunk.get("stream", "")
            if text.strip():
                sys.stderr.write(f"  {text.rstrip()}\n")
                sys.stderr.flush()
    except docker.errors.APIError as exc:
        raise ImageBuildError(f"building {tag} failed: {exc.explanation or exc}") from None

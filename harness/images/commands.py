"""`gpuci image …`: content tags, builds, the Debian base, publish, save and load."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.console import say
from harness.errors import UsageError
from harness.state import check_state

if TYPE_CHECKING:
    from harness.declare.config import ProjectConfig


def image_command(args: argparse.Namespace) -> int:
    from harness.images import airgap, archive
    from harness.images.build import ensure, resolved
    from harness.images.engine import connect
    from harness.images.recipe import recipe_for

    if args.image_command == "bootstrap":
        if args.make_tarball:
            airgap.make_packages_tarball(args.make_tarball, args.mirror)
            print(args.make_tarball)
            return 0
        recipe = airgap.BaseRecipe(ca_bundle=args.ca_bundle)
        print(airgap.bootstrap_base(connect(), recipe, args.mirror, args.from_tarball))
        return 0
    root = args.root.resolve()
    check_state(root)  # the wheelhouse and records are gpuci's, never the commit's
    if args.image_command == "load":
        tags, digest = archive.load(connect(), args.file, root)
        print(f"{' '.join(tags)} sha256:{digest}")
        return 0
    from harness.declare.config import load_config

    # Read once for the command; only publishing reaches the host (a registry and its credentials).
    config = load_config(root, for_host=args.image_command == "publish")
    python = _python(config, args)
    recipe = resolved(recipe_for(root, args.platform, args.base_image, args.ca_bundle, python, config=config), root)
    if args.image_command == "tag":
        print(recipe.tag)
        return 0
    if args.image_command == "publish":
        return publish_command(root, recipe, config)
    ensured = ensure(connect(), recipe, root)
    if args.image_command == "save":
        digest = archive.save(connect(), ensured.tag, args.output)
        print(f"{args.output} sha256:{digest}")
        return 0
    print(ensured.tag)
    return 0


def publish_command(root: Path, recipe: object, config: ProjectConfig) -> int:
    from harness.images.engine import connect
    from harness.images.publish import publish
    from harness.images.registry import registry_from

    registry = registry_from(config)
    if registry is None:
        raise UsageError(
            'image publish needs a registry: set [tool.gpuci] registry = "HOST[:PORT]/PATH" in pyproject.toml '
            "or GPUCI_REGISTRY. With no registry at all, `image save -o FILE` and `image load FILE` carry an image."
        )
    done = publish(connect(), recipe, root, registry)  # type: ignore[arg-type]
    if done.pushed:
        say(f"published {done.ref} in {done.seconds:.1f}s")
    else:
        say(f"{done.ref} is already in the registry ({done.seconds * 1000:.0f} ms): nothing pushed, nothing built")
    print(done.pinned)
    return 0


def _python(config: ProjectConfig, args: argparse.Namespace) -> str | None:
    """--python, else [tool.gpuci] python's first where the platform builds on gpuci's Debian base."""
    from harness.declare.pythons import builds_on_local_base

    if args.python:
        return str(args.python)
    pythons = config.python
    return pythons[0] if pythons and builds_on_local_base(args.platform, args.base_image) else None

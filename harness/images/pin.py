"""A reproduction's image: exactly the bytes the original run used, or a refusal that says why.

The original's image is found here by its ID, else pulled by the digest the report recorded
(`REPO@sha256:…`) and checked to have the recorded ID. Nothing is rebuilt here: a rebuild is
another container, and only `repro --rebuild` asks for one.
"""

from __future__ import annotations

from typing import Any

import docker

from harness.console import say
from harness.errors import InfrastructureError
from harness.images.build import existing
from harness.images.registry import Registry, pull, remote_digest

REBUILD_HINT = (
    "Pass --rebuild to rebuild from the recipe at the recorded commit: that is NOT the same container "
    "(other Debian and Python packages may come in), and gpuci lists what differs."
)


def pinned_image(client: docker.DockerClient, recorded: dict[str, Any], registry: Registry | None) -> str:
    """The original run's image ID, present on this host (pulled by digest when it was not)."""
    image_id = recorded.get("id")
    if image_id and existing(client, image_id):
        say(f"the original image {str(image_id)[:19]} is on this host")
        return str(image_id)
    ref = recorded.get("repo_digest")
    if not ref:
        raise InfrastructureError(
            f"the original image {str(image_id)[:19]} is not on this host, and the report records no registry "
            "digest (the run's image was built where it ran, never published), so the identical container cannot "
            f"be had. {REBUILD_HINT} To make future failures reproducible, set [tool.gpuci] registry."
        )
    address = ref.split("@", 1)[0].rpartition("/gpuci-")[0]
    # The configured registry's credentials when it is the same registry; else what `docker login` stored.
    source = registry if registry and registry.address == address else Registry(address)
    if remote_digest(client, source, ref) is None:
        raise InfrastructureError(
            f"the registry {address} no longer has {ref}, the image the original run used, and it is not on "
            f"this host: the identical container cannot be had. {REBUILD_HINT}"
        )
    got = pull(client, source, ref)
    if image_id and got != image_id:
        raise InfrastructureError(
            f"{ref} pulled as image {got[:19]}, but the original run recorded {str(image_id)[:19]}: these are not "
            "the same bytes, so nothing was run. Check that the registry serves what was pushed."
        )
    say(f"pulled {ref}: image {got[:19]} is the one the original run used")
    return got

"""The registry credentials an image build may use: those of the registries the host grants, no other.

docker-py hands a build every credential the agent holds (its `docker login`s and credential
helpers: "the build could use any of the registries"), so a pull request's Dockerfile could `FROM`
a private image of any registry the agent can read, and run it in its step. A build here gets only
the credentials of the registries the host policy lists and of GPUCI_REGISTRY (the host's own), for
the build's duration; a Dockerfile naming another private registry fails to pull.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import UsageError

REGISTRY_ENV = "GPUCI_REGISTRY"
# Sent when nothing is granted: an empty set would make docker-py load the agent's whole config again.
NOTHING = {"gpuci.invalid": {}}


def granted_hosts(root: Path | None) -> set[str]:
    """HOST[:PORT] of each registry the host grants: the policy's `registries`, and GPUCI_REGISTRY."""
    hosts = {os.environ[REGISTRY_ENV].split("/", 1)[0]} if os.environ.get(REGISTRY_ENV) else set()
    if root is not None:
        from harness.declare.config import load_config

        hosts |= {address.split("/", 1)[0] for address in load_config(Path(root)).policy.registries}
    return hosts


@contextlib.contextmanager
def granted_credentials(client: Any, hosts: set[str]) -> Iterator[None]:
    """While inside: builds through `client` send only the agent's credentials for `hosts`."""
    import docker.auth

    api = client.api
    held = getattr(api, "_auth_configs", None)  # docker-py's loaded config: what its build sends
    everything = held if held and not held.is_empty else docker.auth.load_config(credstore_env=api.credstore_env)
    allowed = {host: entry for host, entry in everything.get_all_credentials().items() if host in hosts and entry}
    narrowed = docker.auth.AuthConfig({})
    narrowed["auths"] = allowed or dict(NOTHING)
    api._auth_configs = narrowed
    try:
        yield
    finally:
        api._auth_configs = held


# What the engine says when a pull it makes for the build has no (or no valid) credentials.
_NO_CREDENTIALS = ("no basic auth credentials", "unauthorized: authentication required", "pull access denied")


def ungranted_pull(error: str, dockerfile: Path) -> UsageError | None:
    """The build's error as the project's to fix where its Dockerfile names a registry it got no
    credentials for (a retry cannot help); None for any other error."""
    if not any(words in error for words in _NO_CREDENTIALS):
        return None
    return UsageError(
        f"{dockerfile}: the build could not pull an image its FROM names ({error.strip()[:200]}); image builds get "
        "the credentials of the registries the host policy lists only (docs/security.md). Use a public image, "
        "or ask the agent's owner to add that registry to the policy's registries."
    )

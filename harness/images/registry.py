"""Images by digest through a registry: publish once per commit, pull everywhere else.

A content tag names the recipe; the registry's digest names the bytes. `publish` pushes
`REGISTRY/gpuci-<platform>:<content tag>` once (one query when it is already there), and runs
pull that tag before they consider building, so every agent runs the same bytes.
Credentials come from Docker's own config (`docker login`, read by the SDK) or from variables
named in `[tool.gpuci]`; they are passed to the engine per call and never printed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import docker
import docker.errors

from harness.console import say
from harness.declare.config import ProjectConfig
from harness.errors import InfrastructureError, UsageError


@dataclass(frozen=True)
class Registry:
    address: str  # HOST[:PORT][/PATH]
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return self.address.split("/", 1)[0]

    def repository(self, platform: str) -> str:
        return f"{self.address}/gpuci-{platform}"

    def ref(self, platform: str, content_hash: str) -> str:
        return f"{self.repository(platform)}:{content_hash[:16]}"

    def auth(self) -> dict[str, str] | None:
        """Per-call credentials; None lets the engine use what `docker login` stored."""
        if self.username is None or self.password is None:
            return None
        return {"username": self.username, "password": self.password, "serveraddress": self.host}

    def secrets(self) -> dict[str, str]:
        """For the Redactor: the password is masked wherever it might appear."""
        return {"GPUCI_REGISTRY_PASSWORD": self.password} if self.password else {}


def registry_from(config: ProjectConfig, environ: Mapping[str, str] = os.environ) -> Registry | None:
    """The registry and its credentials: the variables the host policy names for it (the project may
    name a registry the policy lists, never a host variable), else what `docker login` stored."""
    if not config.registry:
        return None
    grant = config.policy.registries.get(config.registry)
    # The policy's names for its registry; else the agent's own (GPUCI_REGISTRY_USERNAME_ENV and
    # GPUCI_REGISTRY_PASSWORD_ENV: host-owned settings, which [tool.gpuci] may never set).
    names = (
        (grant.username_env, grant.password_env)
        if grant
        else (config.registry_username_env, config.registry_password_env)
    )
    if not all(names):
        return Registry(config.registry)
    missing = [n for n in names if not environ.get(str(n))]
    if missing:
        named_by = config.policy.rule("registries") if grant else "the agent's GPUCI_REGISTRY_*_ENV"
        raise UsageError(
            f"the registry {config.registry} takes its credentials from {' and '.join(map(str, names))} "
            f"({named_by}), but {' and '.join(map(str, missing))} is not set here; set it in the agent's "
            "environment, or drop them from the policy to use `docker login`."
        )
    return Registry(config.registry, environ[str(names[0])], environ[str(names[1])])


def failure(registry: Registry, exc: Exception | str, doing: str) -> InfrastructureError:
    """One paragraph naming the registry and what to do, by what went wrong."""
    text = str(getattr(exc, "explanation", None) or exc)
    lowered = text.lower()
    if any(w in lowered for w in ("unauthorized", "authentication required", "denied", "401")):
        what = (
            "refused the credentials. Run `docker login "
            f"{registry.host}` as this user, or set the variables that the host policy's "
            "registries entry names"
        )
    elif any(w in lowered for w in ("connection refused", "no such host", "timeout", "dial tcp", "i/o timeout")):
        what = (
            "cannot be reached. Check that it is up and that [tool.gpuci] registry (or GPUCI_REGISTRY) "
            "names it; without a registry, unset it and each host builds its own image"
        )
    else:
        what = f"failed ({_short(text)}). Check the registry's log and run again"
    return InfrastructureError(f"the registry {registry.address} {what}. It happened while {doing}.")


def remote_digest(client: docker.DockerClient, registry: Registry, ref: str) -> str | None:
    """The digest the registry holds for `ref`, or None: one query, nothing downloaded."""
    try:
        data = client.api.inspect_distribution(ref, auth_config=registry.auth())
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        if "manifest unknown" in str(exc.explanation or "").lower() or "not found" in str(exc).lower():
            return None
        raise failure(registry, exc, f"asking for {ref}") from None
    except (docker.errors.DockerException, OSError) as exc:
        raise failure(registry, exc, f"asking for {ref}") from None
    return str(data["Descriptor"]["digest"])


def push(client: docker.DockerClient, registry: Registry, ref: str) -> str:
    """Push a local `ref`; its digest once the registry has every layer. Raises on any error."""
    repository, tag = ref.rsplit(":", 1)
    digest = None
    progress = _Progress(f"pushing {ref}")
    try:
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True, auth_config=registry.auth()):
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("error") or chunk["errorDetail"].get("message", "")
                raise failure(registry, detail, f"pushing {ref}")
            digest = (chunk.get("aux") or {}).get("Digest") or digest
            progress.update(chunk)
    except (docker.errors.APIError, OSError) as exc:
        raise failure(registry, exc, f"pushing {ref}") from None
    if not digest:
        raise failure(registry, "the push ended without a digest", f"pushing {ref}")
    progress.done()
    return str(digest)


def pull(client: docker.DockerClient, registry: Registry, ref: str) -> str:
    """Pull `ref` (a tag or `repo@sha256:…`); the local image ID."""
    repository, _, tag = ref.partition("@") if "@" in ref else ref.rpartition(":")
    progress = _Progress(f"pulling {ref}")
    try:
        for chunk in client.api.pull(repository, tag=tag, stream=True, decode=True, auth_config=registry.auth()):
            if "error" in chunk or "errorDetail" in chunk:
                raise failure(registry, chunk.get("error") or chunk["errorDetail"].get("message", ""), f"pulling {ref}")
            progress.update(chunk)
        image_id = str(client.images.get(ref).id)
    except docker.errors.NotFound as exc:
        raise failure(registry, exc, f"pulling {ref}") from None
    except (docker.errors.APIError, OSError) as exc:
        raise failure(registry, exc, f"pulling {ref}") from None
    progress.done()
    return image_id


def repo_digest(client: docker.DockerClient, image_id: str, repositories: Iterable[str]) -> str | None:
    """`REPO@sha256:…` of the image in one of these repositories, when it came from or went to one."""
    wanted = tuple(f"{r}@" for r in repositories)
    for entry in client.images.get(image_id).attrs.get("RepoDigests") or []:
        if entry.startswith(wanted):
            return str(entry)
    return None


class _Progress:
    """Layer progress, summed, at most one line every two seconds (pushes can take minutes)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.started = self.last = time.monotonic()
        self.layers: dict[str, tuple[int, int]] = {}
        say(f"{what} …")

    def update(self, chunk: dict[str, Any]) -> None:
        detail = chunk.get("progressDetail") or {}
        if chunk.get("id") and detail.get("total"):
            self.layers[chunk["id"]] = (int(detail.get("current", 0)), int(detail["total"]))
        now = time.monotonic()
        if now - self.last >= 2.0 and self.layers:
            self.last = now
            current = sum(c for c, _ in self.layers.values()) / 1e6
            total = sum(t for _, t in self.layers.values()) / 1e6
            say(f"{self.what}: {current:.0f}/{total:.0f} MB over {len(self.layers)} layer(s)")

    def done(self) -> None:
        say(f"{self.what}: done in {time.monotonic() - self.started:.1f}s")


def _short(text: str) -> str:
    return " ".join(text.split())[:240]

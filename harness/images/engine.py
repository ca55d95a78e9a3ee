"""The connection to the Docker Engine; a missing engine is an infrastructure error (exit 75)."""

from __future__ import annotations

import docker
import docker.errors

from harness.errors import DockerUnavailable, gpuci_cause


def connect(timeout: int = 600) -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
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


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]

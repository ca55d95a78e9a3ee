"""An image build gets the registry credentials the host grants, never every one the agent holds."""

from __future__ import annotations

import base64
import io
import json
import shutil
import tarfile
import uuid
from pathlib import Path

import docker

from tests.conftest import ROOT

PASSWORD = "reg-pa55-hunter2-xyz"  # the private_registry fixture's


def _tiny_image(client: docker.DockerClient, tag: str, marker: str) -> None:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, text in (("Dockerfile", "FROM scratch\nCOPY marker /marker\n"), ("marker", marker)):
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    data.seek(0)
    client.images.build(fileobj=data, custom_context=True, tag=tag, rm=True, labels={"gpuci.test": "build-auth"})


def test_a_projects_dockerfile_cannot_pull_with_the_agents_credentials(
    private_registry, run_harness, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    """The agent logged in to a private registry the host policy does not list; a pull request's
    Dockerfile names an image there. Its build must not pull it with the agent's login."""
    private = f"{private_registry.address}/private-{uuid.uuid4().hex[:8]}"
    _tiny_image(docker_client, f"{private}:1", "private-content-77")
    auth = {"username": "ci-bot", "password": PASSWORD}
    for _ in docker_client.api.push(private, tag="1", stream=True, decode=True, auth_config=auth):
        pass
    docker_client.images.remove(f"{private}:1", force=True)
    config = tmp_path / "docker-config"  # the agent's `docker login`
    config.mkdir()
    token = base64.b64encode(f"ci-bot:{PASSWORD}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {private.split("/")[0]: {"auth": token}}}))
    root = tmp_path / "project"
    (root / "containers" / "cpu").mkdir(parents=True)
    shutil.copy(ROOT / "containers" / "requirements.txt", root / "containers" / "requirements.txt")
    (root / "containers" / "cpu" / "Dockerfile").write_text(f"FROM {private}:1\nLABEL hostile=1\n")
    (root / ".buildkite" / "test_areas").mkdir(parents=True)
    (root / ".buildkite" / "test_areas" / "p.yaml").write_text(
        "platforms: [cpu]\nsteps:\n  - label: p\n    num_gpus: 0\n    commands: [cat /marker]\n"
    )
    try:
        done = run_harness(
            "run", "--platform", "cpu", "--area", "p", "--root", str(root), timeout=600, DOCKER_CONFIG=str(config)
        )
        assert "Successfully built" not in done.stderr, done.stderr[-1500:]
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-1500:]
        assert "containers/cpu/Dockerfile" in done.stderr and "policy" in done.stderr
        assert not docker_client.images.list(name=private), "the private image was pulled"
    finally:
        for image in docker_client.images.list(name=private):
            docker_client.images.remove(image.id, force=True)

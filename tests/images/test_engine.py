"""The engine module lists without inspecting, and treats an object that vanished as gone, not as an error."""

from __future__ import annotations

import io
import json
import tarfile
import uuid

import docker
import pytest

from harness.images import engine
from tests.conftest import SESSION_LABEL


def tiny_image(client: docker.DockerClient, *labels: str, tag: str | None = None) -> str:
    """A one-file image made in a moment (an import, no build): its id."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        body = uuid.uuid4().hex.encode()  # new content: a new image each time
        info = tarfile.TarInfo("marker")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    repository, _, version = (tag or "").partition(":")
    changes = [f"LABEL {label}" for label in (SESSION_LABEL, *labels)]
    result = client.api.import_image_from_data(
        data.getvalue(), repository=repository or None, tag=version or None, changes=changes
    )
    return str(json.loads(str(result).strip().splitlines()[-1])["status"])


def test_lists_only_what_carries_every_label_and_removes_what_vanished_quietly(docker_client) -> None:
    mark = f"gpuci.test-engine={uuid.uuid4().hex[:8]}"
    tag = f"gpuci-test-engine/{uuid.uuid4().hex[:8]}:x"
    tiny_image(docker_client, mark, tag=tag)
    try:
        [listed] = engine.list_images(docker_client, (SESSION_LABEL, mark))
        assert listed.tags == (tag,) and listed.labels[mark.split("=")[0]] == mark.split("=")[1]
        assert listed.created > 0 and engine.image_id(docker_client, tag) == listed.id
        assert engine.list_images(docker_client, (SESSION_LABEL, mark + "-other")) == []
        assert engine.remove_image(docker_client, listed.id) is True
        assert engine.remove_image(docker_client, listed.id) is False  # gone: done, not an error
        assert engine.image_id(docker_client, tag) is None
    finally:
        engine.remove_image(docker_client, tag, force=True)


def test_an_image_a_container_uses_is_kept_and_said_so(docker_client) -> None:
    mark = f"gpuci.test-engine={uuid.uuid4().hex[:8]}"
    tiny_image(docker_client, mark)
    [image] = engine.list_images(docker_client, (SESSION_LABEL, mark))
    key, value = mark.split("=")
    container = docker_client.api.create_container(image.id, ["/marker"], labels={key: value})
    try:
        [listed] = engine.list_containers(docker_client, (mark,), status="created")
        assert listed.image_id == image.id and listed.state == "created" and listed.labels[key] == value
        assert image.id in engine.images_in_use(docker_client)
        with pytest.raises(engine.ImageInUse):
            engine.remove_image(docker_client, image.id)  # never forced
        assert engine.container_exists(docker_client, container["Id"][:12])
        assert engine.remove_container(docker_client, container["Id"]) is True
        assert engine.remove_container(docker_client, container["Id"]) is False
        assert not engine.container_exists(docker_client, container["Id"][:12])
    finally:
        engine.remove_container(docker_client, container["Id"])
        engine.remove_image(docker_client, image.id, force=True)

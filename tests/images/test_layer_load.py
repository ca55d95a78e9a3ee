"""A layer streamed into `docker load` as it is written (real engine): the image holds the files and the
labels, and a tree that changed between sizing and writing is refused with no image made."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from harness.errors import ImageBuildError
from harness.images.airgap import BaseRecipe, bootstrap_base
from harness.images.layer_load import image_config, load
from harness.images.layer_tar import Layer


def test_a_streamed_layer_loads_onto_its_parent_and_a_changed_tree_makes_no_image(
    docker_client, tmp_path: Path
) -> None:
    base = BaseRecipe()
    bootstrap_base(docker_client, base)
    parent = docker_client.images.get(base.tag).id
    (tmp_path / "opt" / "x").mkdir(parents=True)
    (tmp_path / "opt" / "x" / "a.txt").write_text("hello\n" * 100_000)  # several chunks
    good, bad = (f"gpuci-test-layer-load:{uuid.uuid4().hex[:12]}-{n}" for n in ("good", "bad"))
    config = image_config(docker_client, parent, {"gpuci.test": "streamed"}, "test")
    try:
        image_id = load(docker_client, config, Layer(tmp_path, ["opt/x"], {}), good)
        image = docker_client.images.get(good)
        assert image.id == image_id and image.labels["gpuci.test"] == "streamed"
        assert image.attrs["RootFS"]["Layers"][:-1] == docker_client.images.get(parent).attrs["RootFS"]["Layers"]
        out = docker_client.containers.run(good, ["wc", "-c", "/opt/x/a.txt"], remove=True, network_disabled=True)
        assert out.split()[0] == b"600000"

        layer = Layer(tmp_path, ["opt/x"], {})
        (tmp_path / "opt" / "x" / "a.txt").write_text("short\n")
        with pytest.raises(ImageBuildError, match="changed while"):
            load(docker_client, config, layer, bad)
        assert not docker_client.api.images(name=bad)
    finally:
        for tag in (good, bad):
            if docker_client.api.images(name=tag):
                docker_client.images.remove(tag)

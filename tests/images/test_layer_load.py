"""A layer streamed into `docker load` as it is written (real engine): the image holds the files and the
labels, and a tree that changed between sizing and writing is refused with no image made."""

from __future__ import annotations

import io
import os
import tarfile
import time
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


def test_the_archive_names_a_layer_of_8_gib_and_more(tmp_path: Path) -> None:
    """Hostile review 2026-12-04 (second): the load's header for the layer was USTAR, whose size field ends below
    8 GiB: a layer that large (a CUDA venv can be) raised ValueError out of the load, a traceback. The size
    goes in a PAX record there, which the engine's Go reader takes."""
    from harness.images.layer_load import Loaded, archive

    (tmp_path / "opt" / "x").mkdir(parents=True)
    (tmp_path / "opt" / "x" / "a.txt").write_text("a\n")
    layer = Layer(tmp_path, ["opt/x"], {})
    layer.size = 9 * 2**30  # as sized from 9 GiB of files: this test's disk is not to fill
    stream = archive({"rootfs": {"diff_ids": []}}, layer, "gpuci-test:big", Loaded())
    head = next(stream)  # the archive's header for the layer, before any of its bytes
    stream.close()
    with tarfile.open(fileobj=io.BytesIO(head + b"\0" * 1024), mode="r|") as tar:
        first = tar.next()
        assert first is not None and first.name == "new/layer.tar" and first.size == layer.size


def test_a_load_the_client_stops_waiting_for_is_one_paragraph(docker_client, tmp_path: Path) -> None:
    """Hostile review 2026-12-04 (second): a layer the engine takes longer to apply than the client's timeout (600 s:
    some tens of GiB of real files, which the project's install may write on fuse-overlayfs) raised
    requests' ReadTimeout out of the load, an OSError with no errno: a traceback, exit 1. Here the client
    waits 0.05 s. The engine goes on and tags the image, which is gpuci's own layer: the next build uses it."""
    from harness.images.engine import connect

    base = BaseRecipe()
    bootstrap_base(docker_client, base)
    parent = docker_client.images.get(base.tag).id
    (tmp_path / "opt" / "x").mkdir(parents=True)
    (tmp_path / "opt" / "x" / "random.bin").write_bytes(os.urandom(64 * 2**20))
    tag = f"gpuci-test-layer-load:{uuid.uuid4().hex[:12]}-impatient"
    config = image_config(docker_client, parent, {}, "test")
    try:
        with pytest.raises(ImageBuildError, match="did not answer"):
            load(connect(timeout=0.05), config, Layer(tmp_path, ["opt/x"], {}), tag)  # type: ignore[arg-type]
    finally:
        for _ in range(60):  # the engine's load goes on: its image, once there, is this test's to remove
            if docker_client.api.images(name=tag):
                docker_client.images.remove(tag)
                break
            time.sleep(1)
